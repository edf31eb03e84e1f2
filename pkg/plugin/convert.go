package plugin

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/spf13/cobra"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"

	sluicev1 "github.com/sluice-dev/sluice/api/v1alpha1"

	"github.com/sluice-dev/sluice/pkg/convert"
)

func newConvertCommand(o *options) *cobra.Command {
	var files []string
	var output string
	var allowLoss, apply bool
	cmd := &cobra.Command{
		Use:   "convert -f FILE [-f FILE...]",
		Short: "Turn Flagger Canaries, MetricTemplates and AlertProviders into their Sluice counterparts",
		Long: "convert reads flagger.app/v1beta1 Canary, MetricTemplate and AlertProvider objects\n" +
			"and prints sluice.dev/v1alpha1 Rollouts, MetricTemplates and AlertProviders on\n" +
			"stdout. For each input it\n" +
			"reports on stderr, as YAML comments, every field it could not carry over or\n" +
			"that behaves differently in Sluice, and why (docs/migrating-from-flagger.md).\n" +
			"It needs no cluster unless --apply is given. It exits with 1 when an input\n" +
			"could not be converted, or when a field could not be carried over (unless\n" +
			"--allow-loss). With --apply it server-side applies what it converted, with\n" +
			"strict field validation: an unknown field is an error, never pruned.",
		Example: "  kubectl sluice convert -f canary.yaml > rollout.yaml\n" +
			"  kubectl get canaries -A -o yaml | kubectl sluice convert -f -\n" +
			"  kubectl sluice convert -f canary.yaml --allow-loss --apply",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if len(files) == 0 {
				return &exitError{code: ExitFailed, msg: "convert needs -f FILE (or -f - for stdin)"}
			}
			if output != "yaml" && output != "json" {
				return &exitError{code: ExitFailed, msg: fmt.Sprintf("unknown output format %q: use yaml or json", output)}
			}
			return o.convert(cmd.Context(), files, output, allowLoss, apply)
		},
	}
	cmd.Flags().StringArrayVarP(&files, "filename", "f", nil, "a file or directory of Flagger objects, or - for stdin; repeatable")
	cmd.Flags().StringVarP(&output, "output", "o", "yaml", "output format: yaml or json")
	cmd.Flags().BoolVar(&allowLoss, "allow-loss", false, "exit 0 (and apply) even when fields could not be carried over")
	cmd.Flags().BoolVar(&apply, "apply", false, "server-side apply the converted objects (strict field validation) instead of printing them")
	return cmd
}

// convert converts every object of the files and prints (or applies) the
// Sluice objects. It exits with 1 if any file could not be read or any object
// converted, or, unless allowLoss, if any field was not carried over; then
// nothing is applied.
func (o *options) convert(ctx context.Context, files []string, output string, allowLoss, apply bool) error {
	paths, err := expandFiles(files)
	if err != nil {
		return &exitError{code: ExitFailed, msg: err.Error()}
	}
	var objs []map[string]any
	failed, lost := 0, 0
	for _, p := range paths {
		if len(paths) > 1 {
			fmt.Fprintf(o.streams.ErrOut, "# %s\n", displayName(p))
		}
		docs, err := o.decodeFile(p)
		if err != nil {
			fmt.Fprintf(o.streams.ErrOut, "# %s: NOT READ: %v\n", displayName(p), err)
			failed++
		}
		for _, d := range docs {
			res := convert.Convert(d)
			if res.Err != nil {
				failed++
			}
			objs = append(objs, res.Objects...)
			for _, n := range res.Notes {
				if n.Kind == convert.NotCarried {
					lost++
				}
			}
			if err := convert.WriteReport(o.streams.ErrOut, res); err != nil {
				return err
			}
		}
	}
	refused := ""
	switch {
	case failed > 0:
		refused = fmt.Sprintf("%d input(s) could not be converted: see the report above", failed)
	case lost > 0 && !allowLoss:
		refused = fmt.Sprintf("%d field(s) could not be carried over: see the report above; rerun with --allow-loss to accept that", lost)
	}
	if !apply {
		if err := convert.WriteObjects(o.streams.Out, objs, output); err != nil {
			return err
		}
	}
	if refused != "" {
		if apply {
			refused += "; nothing was applied"
		}
		return &exitError{code: ExitFailed, msg: refused}
	}
	if apply {
		return o.applyConverted(ctx, objs)
	}
	return nil
}

// decodeFile reads the objects of one file, or of stdin for "-".
func (o *options) decodeFile(path string) ([]map[string]any, error) {
	var r io.Reader = o.streams.In
	if path != "-" {
		f, err := os.Open(path)
		if err != nil {
			return nil, err
		}
		defer func() { _ = f.Close() }()
		r = f
	}
	return convert.Decode(r)
}

// expandFiles replaces each directory by its .yaml, .yml and .json files,
// in name order (not recursively).
func expandFiles(files []string) ([]string, error) {
	var out []string
	for _, f := range files {
		if f == "-" {
			out = append(out, f)
			continue
		}
		st, err := os.Stat(f)
		if err != nil {
			return nil, err
		}
		if !st.IsDir() {
			out = append(out, f)
			continue
		}
		entries, err := os.ReadDir(f)
		if err != nil {
			return nil, err
		}
		var names []string
		for _, e := range entries {
			ext := strings.ToLower(filepath.Ext(e.Name()))
			if !e.IsDir() && (ext == ".yaml" || ext == ".yml" || ext == ".json") {
				names = append(names, filepath.Join(f, e.Name()))
			}
		}
		sort.Strings(names)
		out = append(out, names...)
	}
	return out, nil
}

// displayName names a file for the report; "-" is stdin.
func displayName(path string) string {
	if path == "-" {
		return "(stdin)"
	}
	return path
}

// convertFieldManager owns the fields that convert --apply sets.
const convertFieldManager = "kubectl-sluice-convert"

// applyConverted server-side applies objs, each in its own namespace or,
// without one, in the namespace of -n or the kubeconfig's context.
func (o *options) applyConverted(ctx context.Context, objs []map[string]any) error {
	c, err := o.clients()
	if err != nil {
		return &exitError{code: ExitFailed, msg: err.Error()}
	}
	for _, obj := range objs {
		u := &unstructured.Unstructured{Object: obj}
		if u.GetNamespace() == "" {
			u.SetNamespace(c.namespace)
		}
		if err := c.apply(ctx, u.Object); err != nil {
			return &exitError{code: ExitFailed, msg: err.Error()}
		}
		fmt.Fprintf(o.streams.Out, "%s.%s/%s applied\n", strings.ToLower(u.GetKind()), sluicev1.GroupVersion.Group, u.GetName())
	}
	return nil
}

// apply server-side applies one sluice.dev object with strict field
// validation: the API server refuses an unknown or misspelt field by name
// rather than dropping it, so a converted spec is never silently cut short.
func (c *clients) apply(ctx context.Context, obj map[string]any) error {
	u := &unstructured.Unstructured{Object: obj}
	gvk := u.GroupVersionKind()
	if gvk.GroupVersion() != sluicev1.GroupVersion {
		return fmt.Errorf("%s %s: only %s objects are applied", u.GetKind(), u.GetName(), sluicev1.GroupVersion)
	}
	resource := strings.ToLower(gvk.Kind) + "s"
	data, err := json.Marshal(obj)
	if err != nil {
		return err
	}
	_, err = c.dyn.Resource(sluicev1.GroupVersion.WithResource(resource)).Namespace(u.GetNamespace()).Patch(ctx, u.GetName(),
		types.ApplyPatchType, data, metav1.PatchOptions{FieldManager: convertFieldManager, FieldValidation: "Strict"})
	if err != nil {
		return fmt.Errorf("applying %s %s/%s: %w", u.GetKind(), u.GetNamespace(), u.GetName(), err)
	}
	return nil
}
