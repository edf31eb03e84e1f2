package plugin

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	sluicev1 "github.com/sluice-dev/sluice/api/v1alpha1"
)

// outcome is where a release stands, for status.
type outcome int

const (
	// outcomeRunning: a release is under way, or the controller has not yet
	// seen the current spec.
	outcomeRunning outcome = iota
	// outcomeSucceeded: the release ended and the Rollout is ready.
	outcomeSucceeded
	// outcomeFailed: the release was rolled back.
	outcomeFailed
)

// releaseOutcome decides whether a release has ended, and how. Nothing
// counts as ended until the controller has seen the current generation.
func releaseOutcome(ro *sluicev1.Rollout) outcome {
	return releaseOutcomeAfter(ro, 0)
}

// releaseOutcomeAfter is releaseOutcome for a target Deployment at
// targetGeneration: a phase from before Sluice saw that generation (a
// Succeeded left from the previous release) is not the outcome.
func releaseOutcomeAfter(ro *sluicev1.Rollout, targetGeneration int64) outcome {
	st := &ro.Status
	if st.ObservedGeneration != ro.Generation || st.ObservedTargetGeneration < targetGeneration {
		return outcomeRunning
	}
	switch st.Phase {
	case sluicev1.PhaseFailed:
		return outcomeFailed
	case sluicev1.PhaseSucceeded:
		return outcomeSucceeded
	case sluicev1.PhaseInitialized:
		ready := meta.FindStatusCondition(st.Conditions, sluicev1.ConditionReady)
		if ready == nil || ready.Status != metav1.ConditionTrue ||
			(ready.ObservedGeneration != 0 && ready.ObservedGeneration != ro.Generation) {
			return outcomeRunning
		}
		if meta.IsStatusConditionTrue(st.Conditions, sluicev1.ConditionReconciling) {
			return outcomeRunning
		}
		return outcomeSucceeded
	}
	return outcomeRunning
}

func newStatusCommand(o *options) *cobra.Command {
	var wait bool
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "status NAME",
		Short: "Print a Rollout's status; with --wait, block until its release ends",
		Long: "Print a Rollout's status in one line.\n\n" +
			"With --wait, block until the release ends, printing a line at each phase or\n" +
			"step change. Exit codes: 0 when the release succeeded (or, without --wait,\n" +
			"has not failed), 1 when it failed, 2 when --timeout passed first.",
		Example: "  kubectl sluice status podinfo -n test --wait --timeout 15m",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if wait {
				return o.wait(cmd.Context(), args[0], timeout)
			}
			return o.status(cmd.Context(), args[0])
		},
	}
	cmd.Flags().BoolVar(&wait, "wait", false, "block until the release ends")
	cmd.Flags().DurationVar(&timeout, "timeout", 0, "with --wait, give up after this long (exit 2); 0 waits forever")
	return cmd
}

// status prints the one-line status; it fails only when the phase is Failed.
func (o *options) status(ctx context.Context, name string) error {
	c, err := o.clients()
	if err != nil {
		return err
	}
	_, ro, err := c.getRollout(ctx, name)
	if err != nil {
		return err
	}
	s := styleFor(o.streams.Out, getenv)
	fmt.Fprintln(o.streams.Out, statusLine(ro, s, c.namespace+"/"+name+"  "))
	if ro.Status.Phase == sluicev1.PhaseFailed {
		return &exitError{code: ExitFailed}
	}
	return nil
}

// wait follows the Rollout until its release ends or the timeout passes.
func (o *options) wait(ctx context.Context, name string, timeout time.Duration) error {
	c, err := o.clients()
	if err != nil {
		return err
	}
	wctx := ctx
	if timeout > 0 {
		var cancel context.CancelFunc
		wctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	s := styleFor(o.streams.Out, getenv)
	start := time.Now()
	// The target as it is now: a release it started must be seen first.
	targetGeneration := int64(0)
	if _, ro, err := c.getRollout(wctx, name); err == nil {
		if d, err := c.kube.AppsV1().Deployments(c.namespace).Get(wctx, ro.Spec.TargetRef.Name, metav1.GetOptions{}); err == nil {
			targetGeneration = d.Generation
		}
	}
	var last *sluicev1.Rollout
	lastKey := ""
	result := outcomeRunning
	err = c.watchRollout(wctx, name, func(u *unstructured.Unstructured) (bool, error) {
		ro, err := toRollout(u)
		if err != nil {
			return true, err
		}
		last = ro
		if key := changeKey(ro); key != lastKey {
			lastKey = key
			elapsed := time.Since(start).Truncate(time.Second)
			fmt.Fprintln(o.streams.Out, statusLine(ro, s, fmt.Sprintf("[%6s] ", elapsed)))
		}
		result = releaseOutcomeAfter(ro, targetGeneration)
		return result != outcomeRunning, nil
	})
	switch {
	case err == nil && result == outcomeSucceeded:
		fmt.Fprintf(o.streams.Out, "rollout %s/%s: release succeeded\n", c.namespace, name)
		return nil
	case err == nil && result == outcomeFailed:
		return &exitError{code: ExitFailed, msg: fmt.Sprintf("rollout %s/%s: release failed: %s", c.namespace, name, last.Status.Message)}
	case errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil:
		phase := "unknown"
		if last != nil {
			phase = string(last.Status.Phase)
		}
		return &exitError{code: ExitTimeout, msg: fmt.Sprintf("rollout %s/%s: timed out after %s waiting for the release to end (phase %s)",
			c.namespace, name, timeout, phase)}
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return &exitError{code: ExitFailed, msg: "interrupted before the release ended"}
	}
	return err
}

// changeKey is what, when it changes, is worth a line while waiting.
func changeKey(ro *sluicev1.Rollout) string {
	return fmt.Sprintf("%s|%s|%d|%d|%t", ro.Status.Phase, ro.Status.StepProgress, ro.Status.CanaryWeight, ro.Status.FailedChecks, ro.Status.Paused)
}

// statusLine is the one-line status, after prefix, fitted to the width.
func statusLine(ro *sluicev1.Rollout, s style, prefix string) string {
	st := &ro.Status
	phase := string(st.Phase)
	if phase == "" {
		phase = "Pending"
	}
	parts := []string{}
	if st.StepProgress != "" {
		parts = append(parts, "step "+st.StepProgress)
	}
	if running(st.Phase) {
		parts = append(parts, "canary "+weightText(st))
	}
	if st.FailedChecks > 0 {
		parts = append(parts, fmt.Sprintf("failed %d", st.FailedChecks))
	}
	if st.Paused {
		parts = append(parts, "paused")
	}
	rest := strings.Join(parts, ", ")
	if st.Message != "" {
		if rest != "" {
			rest += ": "
		}
		rest += st.Message
	}
	room := s.width - len(prefix) - len(phase) - 2
	line := prefix + s.paint(phaseColor(string(st.Phase)), phase)
	if rest != "" {
		line += "  " + truncate(rest, room)
	}
	return line
}
