package plugin

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/spf13/cobra"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	sluicev1 "github.com/sluice-dev/sluice/api/v1alpha1"
)

// actionCommand is a command that asks the controller for a runtime action.
type actionCommand struct {
	use    string
	short  string
	action sluicev1.Action
	// full is the action --full asks for instead (promote only).
	full sluicev1.Action
	// effect says what the controller will do, for the confirmation line.
	effect string
}

var actionCommands = []actionCommand{
	{use: "promote", short: "End the current step, pause or gate now (--full: all steps)",
		action: sluicev1.ActionPromote, full: sluicev1.ActionPromoteFull,
		effect: "the current step, pause or closed gate ends now"},
	{use: "abort", short: "Roll the current release back now",
		action: sluicev1.ActionAbort, effect: "the release is rolled back to the stable revision"},
	{use: "retry", short: "Release the failed revision again",
		action: sluicev1.ActionRetry, effect: "the failed revision is released again"},
	{use: "pause", short: "Hold the Rollout where it is",
		action: sluicev1.ActionPause, effect: "the Rollout holds where it is until resumed"},
	{use: "resume", short: "End a pause",
		action: sluicev1.ActionResume, effect: "the Rollout carries on from where it was paused"},
}

// effects of --full.
const fullEffect = "every remaining step and gate is skipped and the canary promoted"

func newActionCommand(o *options, a actionCommand) *cobra.Command {
	var full bool
	cmd := &cobra.Command{
		Use:   a.use + " NAME",
		Short: a.short,
		Long: a.short + ".\n\nThe action is asked for with the " + sluicev1.ActionAnnotation + " annotation, which the\n" +
			"controller carries out and removes; the spec is not edited.",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			action, effect := a.action, a.effect
			if full {
				action, effect = a.full, fullEffect
			}
			return o.ask(cmd.Context(), args[0], action, effect)
		},
	}
	if a.full != "" {
		cmd.Flags().BoolVar(&full, "full", false, "skip every remaining step and gate and promote")
	}
	return cmd
}

// ask sets the action annotations on a Rollout with a merge patch, which
// touches nothing else of the object.
func (o *options) ask(ctx context.Context, name string, action sluicev1.Action, effect string) error {
	c, err := o.clients()
	if err != nil {
		return err
	}
	_, ro, err := c.getRollout(ctx, name)
	if err != nil {
		return err
	}
	if prev := ro.Annotations[sluicev1.ActionAnnotation]; prev != "" {
		fmt.Fprintf(o.streams.ErrOut, "warning: replacing the pending action %q (asked by %s) that the controller has not carried out yet\n",
			prev, orDash(ro.Annotations[sluicev1.ActionByAnnotation]))
	}
	by := c.whoAmI(ctx)
	patch, err := actionPatch(action, by)
	if err != nil {
		return err
	}
	if _, err := c.rollouts(c.namespace).Patch(ctx, name, types.MergePatchType, patch, metav1.PatchOptions{}); err != nil {
		return describeErr(err, c.namespace, name)
	}
	fmt.Fprintf(o.streams.Out, "rollout %s/%s: asked to %s (as %s): %s\n", c.namespace, name, action, by, effect)
	return nil
}

// actionPatch is the merge patch that asks for action on behalf of by.
func actionPatch(action sluicev1.Action, by string) ([]byte, error) {
	return json.Marshal(map[string]any{
		"metadata": map[string]any{
			"annotations": map[string]string{
				sluicev1.ActionAnnotation:   string(action),
				sluicev1.ActionByAnnotation: by,
			},
		},
	})
}
