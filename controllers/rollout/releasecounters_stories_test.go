package rollout_test

import (
	"fmt"
	"maps"
	"testing"

	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	sluicev1 "github.com/sluice-dev/sluice/api/v1alpha1"
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
// result, from the registry the manager's /metrics serves.
func releasesExported(t *testing.T, namespace, name string) map[string]float64 {
	t.Helper()
	families, err := ctrlmetrics.Registry.Gather()
	if err != nil {
		t.Fatal(err)
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
