package rollout_test

import (
	"fmt"
	"maps"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	sluicev1 "github.com/sluice-dev/sluice/api/v1alpha1"
	"github.com/sluice-dev/sluice/controllers/rollout"
	"github.com/sluice-dev/sluice/internal/metricsendpoint"
)

// An SRE alerts on rollbacks with increase(sluice_releases_total{result=
// "failed"}[1h]) > 0. Prometheus sees a Rollout's first rollback only if the
// series was there at 0 before it: a counter born at 1 shows no increase,
// and each Rollout's first rollback after a manager start went unseen.
// Sluice exports both results at 0 from the Rollout's first reconcile; a
// release that ends counts from there.
func TestARolloutsReleaseCountersStartAtZeroBeforeItsFirstReleaseEnds(t *testing.T) {
	s := newStory(t)
	s.deploy("podinfo", "podinfo:1.0")
	s.initialized("podinfo", iterations(1))
	if got, want := releasesExported(t, s.ns, "podinfo"), map[string]float64{"succeeded": 0, "failed": 0}; !maps.Equal(got, want) {
		t.Errorf("before any release ended sluice_releases_total is %v, want %v", got, want)
	}

	s.setImage("podinfo", "podinfo:2.0")
	s.waitPhase("podinfo", sluicev1.PhaseSucceeded, storyTimeout)
	s.eventually(storyTimeout, "the release counted", func() error {
		if got, want := releasesExported(t, s.ns, "podinfo"), map[string]float64{"succeeded": 1, "failed": 0}; !maps.Equal(got, want) {
			return fmt.Errorf("sluice_releases_total is %v, want %v", got, want)
		}
		return nil
	})
}

// releasesExported reads a Rollout's sluice_releases_total series, by
// result, as the manager's /metrics serves it.
func releasesExported(t *testing.T, namespace, name string) map[string]float64 {
	t.Helper()
	w := httptest.NewRecorder()
	metricsendpoint.Handler(ctrlmetrics.Registry, rollout.RolloutState).ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if w.Code != http.StatusOK {
		t.Fatalf("/metrics: %d %s", w.Code, w.Body)
	}
	parser := expfmt.NewTextParser(model.LegacyValidation)
	families, err := parser.TextToMetricFamilies(w.Body)
	if err != nil {
		t.Fatalf("/metrics does not parse: %v", err)
	}
	out := map[string]float64{}
	for _, f := range families {
		if f.GetName() != "sluice_releases_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			l := map[string]string{}
			for _, p := range m.GetLabel() {
				l[p.GetName()] = p.GetValue()
			}
			if l["namespace"] == namespace && l["name"] == name {
				out[l["result"]] = m.GetCounter().GetValue()
			}
		}
	}
	return out
}
