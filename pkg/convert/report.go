package convert

import (
	"fmt"
	"io"
	"strings"
)

// WriteReport writes what became of one input, as YAML comments: the
// objects made, then one line per note.
//
//	# Canary shop/podinfo -> Rollout shop/podinfo: 2 notes
//	#   spec.service.delegation: not carried over: Sluice generates a VirtualService that is not a delegate ...
func WriteReport(w io.Writer, res Result) error {
	var b strings.Builder
	switch {
	case res.Skipped != "":
		fmt.Fprintf(&b, "# %s: skipped: %s\n", res.Source, res.Skipped)
	case res.Err != nil:
		fmt.Fprintf(&b, "# %s: NOT CONVERTED: %v\n", res.Source, res.Err)
	default:
		fmt.Fprintf(&b, "# %s -> %s: %s\n", res.Source, made(res.Objects), plural(len(res.Notes), "note"))
	}
	for _, n := range res.Notes {
		fmt.Fprintf(&b, "#   %s: %s: %s\n", n.Field, n.Kind, n.Reason)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// made names the objects of a conversion.
func made(objs []map[string]any) string {
	var names []string
	for _, o := range objs {
		kind, _ := o["kind"].(string)
		names = append(names, source(kind, o))
	}
	return strings.Join(names, ", ")
}

func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}
