package test

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

func readFile(t *testing.T, parts ...string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(parts...))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestChartCRDsAreTheGeneratedCRDs(t *testing.T) {
	const fix = "copy them: cp config/crd/bases/*.yaml charts/sluice/crds/"
	generated, err := filepath.Glob(filepath.Join(repoRoot, "config", "crd", "bases", "*.yaml"))
	if err != nil || len(generated) == 0 {
		t.Fatalf("no generated CRDs in config/crd/bases (%v)", err)
	}
	inChart, err := filepath.Glob(filepath.Join(chartDir, "crds", "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	names := func(paths []string) []string {
		var out []string
		for _, p := range paths {
			out = append(out, filepath.Base(p))
		}
		return out
	}
	if !slices.Equal(names(generated), names(inChart)) {
		t.Fatalf("charts/sluice/crds has %v, config/crd/bases has %v: %s", names(inChart), names(generated), fix)
	}
	for _, p := range generated {
		name := filepath.Base(p)
		if !bytes.Equal(readFile(t, p), readFile(t, chartDir, "crds", name)) {
			t.Errorf("charts/sluice/crds/%s differs from config/crd/bases/%s: %s", name, name, fix)
		}
	}
}

// knownMetrics are the metrics the manager exports (docs/observability.md)
// and the controller-runtime ones the dashboard reads.
var knownMetrics = []string{
	"sluice_rollout_phase", "sluice_rollout_canary_weight", "sluice_rollout_failed_checks",
	"sluice_rollout_metric_value", "sluice_rollout_metric_primary_value", "sluice_release_duration_seconds", "sluice_releases_total",
	"sluice_webhook_duration_seconds", "sluice_webhook_failures_total", "sluice_reconcile_errors_total", "sluice_events_total",
	"sluice_events_queued", "sluice_events_failed_total",
	"sluice_notifications_sent_total", "sluice_notifications_failed_total", "sluice_notifications_dropped_total",
	"sluice_alerts_sent_total", "sluice_alerts_failed_total", "sluice_alerts_dropped_total",
	"controller_runtime_reconcile_total", "controller_runtime_reconcile_errors_total",
	"controller_runtime_reconcile_time_seconds", "workqueue_depth",
}

func TestDashboardQueriesOnlyMetricsTheManagerExports(t *testing.T) {
	var dash struct {
		Title  string `json:"title"`
		Panels []struct {
			Title   string `json:"title"`
			Type    string `json:"type"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(readFile(t, chartDir, "dashboards", "sluice.json"), &dash); err != nil {
		t.Fatalf("dashboards/sluice.json is not valid JSON: %v", err)
	}
	metric := regexp.MustCompile(`\b(sluice|controller_runtime|workqueue)_[a-z_]+`)
	used := map[string]bool{}
	for _, p := range dash.Panels {
		if p.Type == "row" {
			continue
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, tg := range p.Targets {
			for _, m := range metric.FindAllString(tg.Expr, -1) {
				m = strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(m, "_bucket"), "_sum"), "_count")
				if !slices.Contains(knownMetrics, m) {
					t.Errorf("panel %q queries %s, which the manager does not export", p.Title, m)
				}
				used[m] = true
			}
		}
	}
	for _, m := range knownMetrics {
		if strings.HasPrefix(m, "sluice_") && !used[m] {
			t.Errorf("no panel shows %s", m)
		}
	}
}

func TestEveryValueIsDocumentedInTheChartREADME(t *testing.T) {
	vals := map[string]any{}
	if err := yaml.Unmarshal(readFile(t, chartDir, "values.yaml"), &vals); err != nil {
		t.Fatal(err)
	}
	readme := string(readFile(t, chartDir, "README.md"))
	var walk func(prefix string, m map[string]any)
	walk = func(prefix string, m map[string]any) {
		for k, v := range m {
			path := prefix + k
			if strings.Contains(readme, "| `"+path+"` |") {
				continue
			}
			if sub, ok := v.(map[string]any); ok && len(sub) > 0 {
				walk(path+".", sub)
				continue
			}
			t.Errorf("value %s is not in the README's table", path)
		}
	}
	walk("", vals)
}
