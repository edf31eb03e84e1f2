package plugin

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// clearScreen moves the cursor home and clears a terminal before a redraw.
const clearScreen = "\x1b[H\x1b[2J"

func newGetCommand(o *options) *cobra.Command {
	var watch bool
	var output string
	cmd := &cobra.Command{
		Use:   "get rollout NAME",
		Short: "Show a Rollout: phase, steps, traffic, metrics, gates, events",
		Example: "  kubectl sluice get rollout podinfo -n test\n" +
			"  kubectl sluice get rollout podinfo --watch",
		Args: cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := outputFlag(output); err != nil {
				return err
			}
			switch args[0] {
			case "rollout", "rollouts", "ro", "sr":
			default:
				return &exitError{code: ExitFailed, msg: fmt.Sprintf("unknown kind %q: use `get rollout NAME`", args[0])}
			}
			if len(args) == 1 {
				return o.list(cmd, false, output)
			}
			return o.get(cmd.Context(), args[1], watch, output)
		},
	}
	cmd.Flags().BoolVarP(&watch, "watch", "w", false, "redraw when the Rollout changes")
	cmd.Flags().StringVarP(&output, "output", "o", "", "output format: json or yaml")
	return cmd
}

// get shows one Rollout, once or on every change.
func (o *options) get(ctx context.Context, name string, watch bool, output string) error {
	c, err := o.clients()
	if err != nil {
		return err
	}
	out := o.streams.Out
	s := styleFor(out, getenv)
	show := func(u *unstructured.Unstructured) error {
		if output != "" {
			return printObject(out, output, u.Object)
		}
		ro, err := toRollout(u)
		if err != nil {
			return err
		}
		evs, err := c.events(ctx, ro)
		if err != nil {
			// The view is still worth showing without events.
			fmt.Fprintln(o.streams.ErrOut, "warning:", err)
		}
		v := &view{ro: ro, events: evs, now: time.Now()}
		v.budgets, v.budgetsKnown = c.budgets(ctx, ro)
		v.render(out, s)
		return nil
	}
	if !watch {
		u, _, err := c.getRollout(ctx, name)
		if err != nil {
			return err
		}
		return show(u)
	}
	first := true
	err = c.watchRollout(ctx, name, func(u *unstructured.Unstructured) (bool, error) {
		redraw(out, s, output, first)
		first = false
		return false, show(u)
	})
	if errors.Is(err, context.Canceled) {
		// Interrupted by the user: the normal way a watch ends.
		return nil
	}
	return err
}

// redraw prepares the output for the next drawing: a cleared screen on a
// terminal, a separator line in a log or pipe.
func redraw(out io.Writer, s style, output string, first bool) {
	switch {
	case first:
	case output == "json":
	case output == "yaml":
		fmt.Fprintln(out, "---")
	case s.color:
		fmt.Fprint(out, clearScreen)
	default:
		fmt.Fprintf(out, "\n%s\n\n", s.paint(dim, "----- "+time.Now().Format(time.TimeOnly)+" -----"))
	}
}
