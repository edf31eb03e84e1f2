package plugin

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"

	"github.com/spf13/cobra"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
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

// ask asks for action on the Rollout name in the flags' namespace and says
// what the controller will do.
func (o *options) ask(ctx context.Context, name string, action sluicev1.Action, effect string) error {
	c, err := o.clients()
	if err != nil {
		return err
	}
	asked, err := c.requestAction(ctx, c.namespace, name, action)
	if err != nil {
		return err
	}
	if asked.Replaced != "" {
		fmt.Fprintf(o.streams.ErrOut, "warning: replacing the pending action %q (asked by %s) that the controller has not carried out yet\n",
			asked.Replaced, orDash(asked.ReplacedBy))
	}
	fmt.Fprintf(o.streams.Out, "rollout %s/%s: asked to %s (as %s): %s\n", c.namespace, name, action, asked.By, effect)
	return nil
}

// actionAsked is what came of asking for an action: who asked (the user the API
// server authenticates), and the pending action it replaced, if any.
type actionAsked struct {
	By         string
	Replaced   string
	ReplacedBy string
}

// requestAction sets the action annotations on the Rollout ns/name with a
// merge patch, which touches nothing else of the object. Both the commands
// and the dashboard ask through it, with the user's own credentials, so
// RBAC decides; an API error is returned wrapped, its message intact.
func (c *clients) requestAction(ctx context.Context, ns, name string, action sluicev1.Action) (actionAsked, error) {
	u, err := c.rollouts(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return actionAsked{}, describeErr(err, ns, name)
	}
	asked := actionAsked{}
	if p := sluicev1.PendingAction(u.GetAnnotations(), lastAction(u)); p != nil {
		asked.Replaced, asked.ReplacedBy = string(p.Action), p.By
	}
	asked.By = c.whoAmI(ctx)
	patch, err := actionPatch(action, asked.By, newActionID())
	if err != nil {
		return actionAsked{}, err
	}
	if _, err := c.rollouts(ns).Patch(ctx, name, types.MergePatchType, patch, metav1.PatchOptions{}); err != nil {
		return actionAsked{}, fmt.Errorf("asking rollout %s/%s to %s: %w", ns, name, action, err)
	}
	return asked, nil
}

// lastAction is the status.lastAction of a Rollout read unstructured, or
// nil.
func lastAction(u *unstructured.Unstructured) *sluicev1.ActionRecord {
	m, ok, err := unstructured.NestedStringMap(u.Object, "status", "lastAction")
	if !ok || err != nil {
		return nil
	}
	return &sluicev1.ActionRecord{Action: sluicev1.Action(m["action"]), By: m["by"], ID: m["id"]}
}

// actionPatch is the merge patch that asks for action on behalf of by, as
// the request id.
func actionPatch(action sluicev1.Action, by, id string) ([]byte, error) {
	return json.Marshal(map[string]any{
		"metadata": map[string]any{
			"annotations": map[string]string{
				sluicev1.ActionAnnotation:   string(action),
				sluicev1.ActionByAnnotation: by,
				sluicev1.ActionIDAnnotation: id,
			},
		},
	})
}

// newActionID is a new request's id: the controller carries out a request
// once, even if removing its annotations fails, and tells it from the same
// action asked again by its id.
func newActionID() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b) // never fails (crypto/rand)
	return hex.EncodeToString(b)
}
