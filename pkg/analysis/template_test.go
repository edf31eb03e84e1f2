package analysis

import (
	"fmt"
	"strings"
	"testing"

	sluicev1 "github.com/sluice-dev/sluice/api/v1alpha1"
)

// manyVariables is a check with n variables of 100 bytes each.
func manyVariables(n int) sluicev1.MetricCheck {
	vars := map[string]string{}
	for i := range n {
		vars[fmt.Sprintf("v%03d", i)] = strings.Repeat("x", 100)
	}
	return sluicev1.MetricCheck{Name: "m", Variables: vars}
}

func TestATemplateThatRendersMoreThan64KiBIsRefused(t *testing.T) {
	for _, tt := range []struct {
		name, query string
		check       sluicev1.MetricCheck
	}{
		{"nested ranges over a large variable list",
			`{{ range .variables }}{{ range $.variables }}{{ . }}{{ end }}{{ end }}`, manyVariables(300)},
		{"a huge printf width", `{{ printf "%0999999d" 1 }}`, sluicev1.MetricCheck{Name: "m"}},
		{"a huge printf width in a loop",
			`{{ range .variables }}{{ printf "%0999999d" 1 }}{{ end }}`, manyVariables(30)},
		{"a huge printf precision", `{{ printf "%.999999f" 1.0 }}`, sluicev1.MetricCheck{Name: "m"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			out, err := Render(tt.query, exampleRollout(nil), tt.check)
			if err == nil || !strings.Contains(err.Error(), "query template renders more than 64 KiB") {
				t.Errorf("Render = %d bytes, %v; want the 64 KiB error", len(out), err)
			}
		})
	}
}

func TestATemplateCannotGrowAValueBeyondTheCapWithoutWritingIt(t *testing.T) {
	// Values built in variables are never written, so the capped writer
	// alone would not see them: the template's own functions are capped.
	angles := sluicev1.MetricCheck{Name: "m", Variables: map[string]string{"a": strings.Repeat("<", 20000)}}
	for _, tt := range []struct {
		name, query string
		check       sluicev1.MetricCheck
	}{
		{"printf of printf", `{{ $a := printf "%065000d" 1 }}{{ $b := printf "%s%s%s%s" $a $a $a $a }}x`, sluicev1.MetricCheck{Name: "m"}},
		{"print of a large value", `{{ $a := printf "%065000d" 1 }}{{ $b := print $a $a $a $a }}x`, sluicev1.MetricCheck{Name: "m"}},
		{"an escaper that multiplies its input", `{{ $b := js .variables.a }}x`, angles},
	} {
		t.Run(tt.name, func(t *testing.T) {
			out, err := Render(tt.query, exampleRollout(nil), tt.check)
			if err == nil || !strings.Contains(err.Error(), "query template renders more than 64 KiB") {
				t.Errorf("Render = %q, %v; want the 64 KiB error", out, err)
			}
		})
	}
}

func TestATemplateThatLoopsWithoutWritingIsStopped(t *testing.T) {
	out, err := Render(`{{ range 1000000 }}{{ end }}done`, exampleRollout(nil), sluicev1.MetricCheck{Name: "m"})
	if err == nil || !strings.Contains(err.Error(), "query template runs more than 10000 range iterations") {
		t.Errorf("Render = %q, %v; want the iteration error", out, err)
	}
}

func TestATemplateMayNotDefineOrCallOtherTemplates(t *testing.T) {
	// A template calling itself twice would run for ever within
	// text/template's depth limit.
	for _, query := range []string{
		`{{ define "x" }}a{{ end }}{{ template "x" }}`,
		`{{ block "x" . }}a{{ end }}`,
		`{{ template "m" }}`,
	} {
		out, err := Render(query, exampleRollout(nil), sluicev1.MetricCheck{Name: "m"})
		if err == nil || !strings.Contains(err.Error(), "query template may not define or call templates") {
			t.Errorf("Render(%q) = %q, %v; want a refusal", query, out, err)
		}
	}
}

func TestATemplateSourceLongerThan16KiBIsRefused(t *testing.T) {
	out, err := Render(strings.Repeat("a", 16<<10+1), exampleRollout(nil), sluicev1.MetricCheck{Name: "m"})
	if err == nil || !strings.Contains(err.Error(), "query template is longer than 16 KiB") {
		t.Errorf("Render = %d bytes, %v; want a refusal", len(out), err)
	}
}

func TestAnOrdinaryTemplateStillRendersWithRangesAndPrintf(t *testing.T) {
	check := sluicev1.MetricCheck{Name: "m", Variables: map[string]string{"a": "1", "b": "2"}}
	got, err := Render(`sum(x{ {{- range $k, $v := .variables }}{{ $k }}="{{ $v }}",{{ end -}} }) > {{ printf "%.2f" 0.5 }} {{ print "ok" }} {{ js "<" }}`,
		exampleRollout(nil), check)
	want := `sum(x{a="1",b="2",}) > 0.50 ok \u003C`
	if err != nil || got != want {
		t.Errorf("Render = %q, %v; want %q", got, err, want)
	}
	// Exactly the cap is allowed.
	got, err = Render(`{{ printf "%065536d" 1 }}`, exampleRollout(nil), sluicev1.MetricCheck{Name: "m"})
	if err != nil || len(got) != 64<<10 {
		t.Errorf("Render at the cap = %d bytes, %v; want 65536 bytes", len(got), err)
	}
}
