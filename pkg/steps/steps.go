// Package steps expands a Rollout's strategy into the steps of a run, and
// reads the analysis settings with their defaults. The state machine and the
// kubectl plugin both use it, so what the plugin shows is what runs.
package steps

import (
	"fmt"
	"strings"
	"time"

	sluicev1 "github.com/sluice-dev/sluice/api/v1alpha1"
)

// DefaultInterval is the analysis interval when the spec leaves it out (the
// API server defaults it too; this covers objects built in code).
const DefaultInterval = time.Minute

// DefaultThreshold is the failed-check threshold when the spec leaves it out.
const DefaultThreshold = 5

// DefaultProgressDeadline is used when spec.progressDeadlineSeconds is unset.
const DefaultProgressDeadline = 600 * time.Second

// DefaultScaleDownDelay is used when spec.scaleDownDelaySeconds is unset.
const DefaultScaleDownDelay = 10 * time.Second

// Step is one step of a run, expanded from the strategy.
type Step struct {
	// Weight is the canary weight held during the step.
	Weight int32
	// Check is true when the step ends with the checks (metrics, rollout hooks).
	Check bool
	// Pause, when set, is a timed pause; ManualPause waits for a promote.
	Pause       *time.Duration
	ManualPause bool
}

// Plan expands a strategy into the ordered steps of a run. A run with
// skipAnalysis has no steps.
func Plan(spec *sluicev1.RolloutSpec) []Step {
	if spec.SkipAnalysis {
		return nil
	}
	iterations := int32(0)
	switch {
	case spec.Strategy.BlueGreen != nil:
		iterations = spec.Strategy.BlueGreen.Iterations
	case spec.Strategy.ABTesting != nil:
		iterations = spec.Strategy.ABTesting.Iterations
	}
	if spec.Strategy.BlueGreen != nil || spec.Strategy.ABTesting != nil {
		n := iterations
		if n < 1 {
			n = 1
		}
		steps := make([]Step, n)
		for i := range steps {
			steps[i] = Step{Weight: 0, Check: true}
		}
		return steps
	}
	c := spec.Strategy.Canary
	if c == nil {
		return nil
	}
	var steps []Step
	switch {
	case len(c.Steps) > 0:
		var weight int32
		for _, s := range c.Steps {
			switch {
			case s.SetWeight != nil:
				weight = *s.SetWeight
				steps = append(steps, Step{Weight: weight, Check: true})
			case s.Pause != nil && s.Pause.Duration != nil:
				d := s.Pause.Duration.Duration
				steps = append(steps, Step{Weight: weight, Pause: &d})
			case s.Pause != nil:
				steps = append(steps, Step{Weight: weight, ManualPause: true})
			}
		}
	case len(c.StepWeights) > 0:
		for _, w := range c.StepWeights {
			steps = append(steps, Step{Weight: w, Check: true})
		}
	case c.StepWeight != nil && *c.StepWeight > 0:
		maxWeight := int32(100)
		if c.MaxWeight != nil {
			maxWeight = *c.MaxWeight
		}
		w := *c.StepWeight
		for ; w < maxWeight; w += *c.StepWeight {
			steps = append(steps, Step{Weight: w, Check: true})
		}
		steps = append(steps, Step{Weight: maxWeight, Check: true})
	}
	return steps
}

// Interval is the hold time of a step and the retry period of gates.
func Interval(spec *sluicev1.RolloutSpec) time.Duration {
	if a := spec.Analysis; a != nil && a.Interval != nil && a.Interval.Duration > 0 {
		return a.Interval.Duration
	}
	return DefaultInterval
}

// Threshold is the number of failed checks that rolls a run back.
func Threshold(spec *sluicev1.RolloutSpec) int32 {
	if a := spec.Analysis; a != nil && a.Threshold > 0 {
		return a.Threshold
	}
	return DefaultThreshold
}

// ProgressDeadline is how long the canary, a promotion or a handover may take.
func ProgressDeadline(spec *sluicev1.RolloutSpec) time.Duration {
	if spec.ProgressDeadlineSeconds != nil && *spec.ProgressDeadlineSeconds > 0 {
		return time.Duration(*spec.ProgressDeadlineSeconds) * time.Second
	}
	return DefaultProgressDeadline
}

// ScaleDownDelay is how long pods that the route no longer sends traffic to
// are kept while the data plane drains (0: none).
func ScaleDownDelay(spec *sluicev1.RolloutSpec) time.Duration {
	if spec.ScaleDownDelaySeconds == nil {
		return DefaultScaleDownDelay
	}
	return time.Duration(max(*spec.ScaleDownDelaySeconds, 0)) * time.Second
}

// Describe says in words what the planned step p (index i) of spec does.
func Describe(spec *sluicev1.RolloutSpec, p Step, i int) string {
	switch {
	case p.ManualPause:
		return fmt.Sprintf("pause at %d%% until promoted", p.Weight)
	case p.Pause != nil:
		return fmt.Sprintf("pause at %d%% for %s", p.Weight, shortDuration(*p.Pause))
	case spec.Strategy.BlueGreen != nil:
		return fmt.Sprintf("iteration %d: canary checked, primary serves all", i+1)
	case spec.Strategy.ABTesting != nil:
		return fmt.Sprintf("iteration %d: matching requests to canary, checked", i+1)
	}
	return fmt.Sprintf("set weight %d%%, hold %s, check", p.Weight, shortDuration(Interval(spec)))
}

// shortDuration prints 1m rather than 1m0s.
func shortDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// Running reports whether a phase is a release under way.
func Running(p sluicev1.Phase) bool {
	switch p {
	case sluicev1.PhaseWaiting, sluicev1.PhaseProgressing, sluicev1.PhaseWaitingPromotion,
		sluicev1.PhasePromoting, sluicev1.PhaseFinalising:
		return true
	}
	return false
}

// State is where a planned step stands in the current run.
type State string

// The states of a planned step.
const (
	StateDone    State = "done"
	StateCurrent State = "current"
	StatePending State = "pending"
	// StateFailed is the step where a failed run stopped.
	StateFailed State = "failed"
)

// StateOf is the state of planned step i, given the Rollout's status.
func StateOf(st *sluicev1.RolloutStatus, i int) State {
	switch {
	case st.Phase == sluicev1.PhaseSucceeded, st.Phase == sluicev1.PhasePromoting, st.Phase == sluicev1.PhaseFinalising:
		return StateDone
	case st.Phase == sluicev1.PhaseFailed && i == int(st.CurrentStepIndex):
		return StateFailed
	case !Running(st.Phase):
		return StatePending
	case i < int(st.CurrentStepIndex):
		return StateDone
	case i == int(st.CurrentStepIndex) && st.Phase != sluicev1.PhaseWaiting:
		return StateCurrent
	}
	return StatePending
}

// HoldEnds is when the current step's hold ends, as the controller counts
// it: status.stepStartedAt plus the step's hold (the analysis interval, or
// a timed pause's duration). check says whether the step's checks run
// then. ok is false while no hold runs: no run in Progressing, a hold not
// started yet (the router has not confirmed the weight, or the canary is
// not ready), a pause until promoted, or a Rollout paused or suspended,
// whose clocks stop.
func HoldEnds(spec *sluicev1.RolloutSpec, st *sluicev1.RolloutStatus) (ends time.Time, check, ok bool) {
	if st.Phase != sluicev1.PhaseProgressing || st.StepStartedAt == nil || st.Paused || spec.Suspend {
		return time.Time{}, false, false
	}
	plan := Plan(spec)
	i := int(st.CurrentStepIndex)
	if i < 0 || i >= len(plan) || plan[i].ManualPause {
		return time.Time{}, false, false
	}
	hold := Interval(spec)
	if plan[i].Pause != nil {
		hold = *plan[i].Pause
	}
	return st.StepStartedAt.Add(hold), plan[i].Check, true
}
