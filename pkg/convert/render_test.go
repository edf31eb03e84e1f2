package convert

import (
	"encoding/json"
	"strings"
	"testing"

	sluicev1 "github.com/sluice-dev/sluice/api/v1alpha1"
	"github.com/sluice-dev/sluice/pkg/analysis"
)

// TestAConvertedFlaggerQueryRendersInSluice renders the converted
// MetricTemplate of the custom-metrics fixture for its converted Rollout,
// as the manager would: Flagger's {{ namespace }}-style references and the
// rewritten variables must resolve.
func TestAConvertedFlaggerQueryRendersInSluice(t *testing.T) {
	_, _, results := convertFile(t, "testdata/custom-metrics.yaml")
	var tmpl sluicev1.MetricTemplate
	var ro sluicev1.Rollout
	for _, res := range results {
		for _, o := range res.Objects {
			b, _ := json.Marshal(o)
			var into any = &ro
			if o["kind"] == "MetricTemplate" && o["metadata"].(map[string]any)["name"] == "error-ratio" {
				into = &tmpl
			} else if o["kind"] != "Rollout" {
				continue
			}
			if err := json.Unmarshal(b, into); err != nil {
				t.Fatal(err)
			}
		}
	}
	var check sluicev1.MetricCheck
	for _, m := range ro.Spec.Analysis.Metrics {
		if m.TemplateRef != nil && m.TemplateRef.Name == tmpl.Name {
			check = m
		}
	}
	out, err := analysis.Render(tmpl.Spec.Query, &ro, check)
	if err != nil {
		t.Fatalf("the converted query does not render: %v\n%s", err, tmpl.Spec.Query)
	}
	for _, want := range []string{`namespace="payments"`, `deployment=~"payments-api"`, `tier="backend"`, `[2m]`} {
		if !strings.Contains(out, want) {
			t.Errorf("rendered query lacks %s:\n%s", want, out)
		}
	}
}
