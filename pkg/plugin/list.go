package plugin

import (
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/spf13/cobra"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/duration"
	"sigs.k8s.io/yaml"

	sluicev1 "github.com/sluice-dev/sluice/api/v1alpha1"
)

// outputFlag validates -o.
func outputFlag(v string) error {
	switch v {
	case "", "json", "yaml":
		return nil
	}
	return &exitError{code: ExitFailed, msg: fmt.Sprintf("unknown output format %q: use json or yaml", v)}
}

// printObject prints obj as indented JSON or as YAML.
func printObject(w io.Writer, format string, obj any) error {
	if format == "yaml" {
		b, err := yaml.Marshal(obj)
		if err != nil {
			return err
		}
		_, err = w.Write(b)
		return err
	}
	b, err := json.MarshalIndent(obj, "", "    ")
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "%s\n", b)
	return err
}

func newListCommand(o *options) *cobra.Command {
	var all bool
	var output string
	cmd := &cobra.Command{
		Use:     "list",
		Aliases: []string{"ls"},
		Short:   "List Rollouts with their phase, weight and step",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := outputFlag(output); err != nil {
				return err
			}
			return o.list(cmd, all, output)
		},
	}
	cmd.Flags().BoolVarP(&all, "all-namespaces", "A", false, "list Rollouts in every namespace")
	cmd.Flags().StringVarP(&output, "output", "o", "", "output format: json or yaml")
	return cmd
}

func (o *options) list(cmd *cobra.Command, all bool, output string) error {
	c, err := o.clients()
	if err != nil {
		return err
	}
	ns := c.namespace
	if all {
		ns = metav1.NamespaceAll
	}
	list, err := c.rollouts(ns).List(cmd.Context(), metav1.ListOptions{})
	if err != nil {
		return fmt.Errorf("listing rollouts: %w", err)
	}
	if output != "" {
		items := make([]any, len(list.Items))
		for i := range list.Items {
			items[i] = list.Items[i].Object
		}
		return printObject(o.streams.Out, output, map[string]any{
			"apiVersion": "v1", "kind": "List", "items": items,
			"metadata": map[string]any{"resourceVersion": list.GetResourceVersion()},
		})
	}
	if len(list.Items) == 0 {
		if all {
			fmt.Fprintln(o.streams.ErrOut, "No rollouts found.")
		} else {
			fmt.Fprintf(o.streams.ErrOut, "No rollouts found in namespace %s.\n", ns)
		}
		return nil
	}
	ros := make([]*sluicev1.Rollout, 0, len(list.Items))
	for i := range list.Items {
		ro, err := toRollout(&list.Items[i])
		if err != nil {
			return err
		}
		ros = append(ros, ro)
	}
	listTable(ros, all, time.Now()).write(o.streams.Out, styleFor(o.streams.Out, getenv))
	return nil
}

// listTable is the table of `list`: one row per Rollout.
func listTable(ros []*sluicev1.Rollout, all bool, now time.Time) *table {
	t := &table{header: []string{"NAME", "PHASE", "WEIGHT", "STEP", "FAILED", "AGE", "MESSAGE"}}
	if all {
		t.header = append([]string{"NAMESPACE"}, t.header...)
	}
	for _, ro := range ros {
		st := ro.Status
		step := st.StepProgress
		if step == "" {
			step = "-"
		}
		row := []cell{
			{text: ro.Name},
			{text: string(st.Phase), color: phaseColor(string(st.Phase))},
			{text: weightText(&st)},
			{text: step},
			{text: strconv.Itoa(int(st.FailedChecks))},
			{text: age(ro.CreationTimestamp, now)},
			{text: st.Message},
		}
		if st.FailedChecks > 0 {
			row[4].color = red
		}
		if all {
			row = append([]cell{{text: ro.Namespace}}, row...)
		}
		t.add(row...)
	}
	return t
}

// age is how long ago t was, as kubectl shows it ("5m", "2d3h").
func age(t metav1.Time, now time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return duration.HumanDuration(now.Sub(t.Time))
}
