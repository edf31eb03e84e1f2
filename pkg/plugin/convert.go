package plugin

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/spf13/cobra"

	"github.com/sluice-dev/sluice/pkg/convert"
)

func newConvertCommand(o *options) *cobra.Command {
	var files []string
	var output string
	cmd := &cobra.Command{
		Use:   "convert -f FILE [-f FILE...]",
		Short: "Turn Flagger Canaries, MetricTemplates and AlertProviders into their Sluice counterparts",
		Long: "convert reads flagger.app/v1beta1 Canary, MetricTemplate and AlertProvider objects\n" +
			"and prints sluice.dev/v1alpha1 Rollouts, MetricTemplates and AlertProviders on\n" +
			"stdout. For each input it\n" +
			"reports on stderr, as YAML comments, every field it could not carry over or\n" +
			"that behaves differently in Sluice, and why (docs/migrating-from-flagger.md).\n" +
			"It needs no cluster. It exits with 1 when an input could not be converted.",
		Example: "  kubectl sluice convert -f canary.yaml > rollout.yaml\n" +
			"  kubectl get canaries -A -o yaml | kubectl sluice convert -f -",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if len(files) == 0 {
				return &exitError{code: ExitFailed, msg: "convert needs -f FILE (or -f - for stdin)"}
			}
			if output != "yaml" && output != "json" {
				return &exitError{code: ExitFailed, msg: fmt.Sprintf("unknown output format %q: use yaml or json", output)}
			}
			return o.convert(files, output)
		},
	}
	cmd.Flags().StringArrayVarP(&files, "filename", "f", nil, "a file or directory of Flagger objects, or - for stdin; repeatable")
	cmd.Flags().StringVarP(&output, "output", "o", "yaml", "output format: yaml or json")
	return cmd
}

// convert converts every object of the files and prints the Sluice objects,
// then exits with 1 if any file could not be read or any object converted.
func (o *options) convert(files []string, output string) error {
	paths, err := expandFiles(files)
	if err != nil {
		return &exitError{code: ExitFailed, msg: err.Error()}
	}
	var objs []map[string]any
	failed := 0
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
			if err := convert.WriteReport(o.streams.ErrOut, res); err != nil {
				return err
			}
		}
	}
	if err := convert.WriteObjects(o.streams.Out, objs, output); err != nil {
		return err
	}
	if failed > 0 {
		return &exitError{code: ExitFailed, msg: fmt.Sprintf("%d input(s) could not be converted: see the report above", failed)}
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
