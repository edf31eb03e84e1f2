package analysis

import (
	"strings"
	"testing"

	sluicev1 "github.com/sluice-dev/sluice/api/v1alpha1"
)

// FuzzRender holds for any query and variable: Render never panics (its
// recover would say "panicked"), and what it renders fits the cap.
func FuzzRender(f *testing.F) {
	for _, q := range []string{
		`sum(rate(x{namespace="{{ .namespace }}",pod=~"{{ target }}-.*"}[{{ interval }}]))`,
		`{{ range $k, $v := .variables }}{{ $k }}={{ $v }},{{ end }}`,
		`{{ range .variables }}{{ range $.variables }}{{ printf "%0999d" 1 }}{{ end }}{{ end }}`,
		`{{ range 100000 }}{{ end }}`,
		`{{ printf "%[2]*[1]d" 1 999999 }}`,
		`{{ define "x" }}{{ template "x" }}{{ end }}`,
		`{{ if .variables.k }}{{ js (html (urlquery .variables.k)) }}{{ else }}{{ println 1 2 }}{{ end }}`,
		`{{ with $x := slice .name 1 3 }}{{ len $x }}{{ index $.variables "k" }}{{ end }}`,
	} {
		f.Add(q, "k", "v")
	}
	f.Fuzz(func(t *testing.T, query, key, value string) {
		check := sluicev1.MetricCheck{Name: "m", Variables: map[string]string{key: value, key + "2": value + value}}
		out, err := Render(query, exampleRollout(nil), check)
		if err != nil && strings.Contains(err.Error(), "panicked") {
			t.Fatalf("Render(%q) panicked: %v", query, err)
		}
		if len(out) > maxRendered {
			t.Fatalf("Render(%q) = %d bytes, above the %d cap", query, len(out), maxRendered)
		}
	})
}
