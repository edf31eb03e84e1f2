package rollout_test

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"

	sluicev1 "github.com/sluice-dev/sluice/api/v1alpha1"
	"github.com/sluice-dev/sluice/pkg/analysis"
)

// latencyOf exports the median latency of a Deployment's pods, in ms, with
// ±10% noise at each scrape.
func (s *promStory) latencyOf(deployment string, ms float64) {
	var mu sync.Mutex
	rng := rand.New(rand.NewPCG(uint64(len(deployment)), 14))
	s.exp.SetGauge("app_latency_p50_ms", map[string]string{"namespace": s.ns, "deployment": deployment}, func() float64 {
		mu.Lock()
		defer mu.Unlock()
		return ms * (1 + 0.2*(rng.Float64()-0.5))
	})
}

// latencyComparedWithThePrimary is a compare check on the latency gauge
// with a fixed maximum that both sides stay under. The window starts with
// the run, so its first checks have fewer than minSamples samples: they
// hold, as the docs advise, rather than fail.
func (s *promStory) latencyComparedWithThePrimary() sluicev1.MetricCheck {
	s.t.Helper()
	s.must(k8sClient.Create(s.ctx, &sluicev1.MetricTemplate{
		ObjectMeta: metav1.ObjectMeta{Name: "latency", Namespace: s.ns},
		Spec:       sluicev1.MetricTemplateSpec{Query: `avg(app_latency_p50_ms{namespace="{{ .namespace }}",deployment="{{ .target }}"})`},
	}))
	return sluicev1.MetricCheck{Name: "latency", TemplateRef: &sluicev1.MetricTemplateReference{Name: "latency"},
		Interval: metricsWindow, ThresholdRange: &sluicev1.ThresholdRange{Max: ptrTo(500.0)},
		Compare: &sluicev1.Compare{Direction: sluicev1.CompareIncrease, Tolerance: "10%",
			Step: &metav1.Duration{Duration: time.Second}, OnNoData: sluicev1.NoDataHold}}
}

func TestACanarySlowerThanItsPrimaryIsRolledBackByACompareCheckAndTheEventSaysByHowMuch(t *testing.T) {
	s := newPromStory(t)
	s.latencyOf("podinfo", 240)
	s.latencyOf("podinfo-primary", 200)
	check := s.latencyComparedWithThePrimary()
	s.deploy("podinfo", "podinfo:1.0")
	s.initialized("podinfo", iterations(5), metric(check))
	s.prom.WaitFor(t, fmt.Sprintf(`min(count_over_time(app_latency_p50_ms{namespace=%q}[10s])) >= 10`, s.ns), 30*time.Second)

	s.setImage("podinfo", "podinfo:2.0")

	ro := s.waitPhase("podinfo", sluicev1.PhaseFailed, storyTimeout)
	ms, _ := metricStatus(ro, "latency")
	if ms.Verdict != analysis.VerdictFail || !strings.HasPrefix(ms.Estimate, "+") || ms.PValue == "" || ms.PrimaryValue == "" {
		t.Errorf("metric status %+v, want Fail with the canary's shift, p and the primary's median", ms)
	} else if v := value(t, ms); v > 500 {
		t.Errorf("canary median %v: the story wants it under the maximum", v)
	}
	s.waitEventSaying("podinfo", "CheckFailed", "latency: canary +")
	s.waitEventSaying("podinfo", "CheckFailed", "vs primary (p")
	s.expectKStatus("podinfo", status.FailedStatus)
}

func TestACanaryAsSlowAsItsSlowPrimaryPassesItsCompareCheck(t *testing.T) {
	s := newPromStory(t)
	s.latencyOf("podinfo", 400)
	s.latencyOf("podinfo-primary", 400)
	check := s.latencyComparedWithThePrimary()
	s.deploy("podinfo", "podinfo:1.0")
	s.initialized("podinfo", iterations(2), metric(check))
	s.prom.WaitFor(t, fmt.Sprintf(`min(count_over_time(app_latency_p50_ms{namespace=%q}[10s])) >= 10`, s.ns), 30*time.Second)

	s.setImage("podinfo", "podinfo:2.0")

	ro := s.waitPhase("podinfo", sluicev1.PhaseSucceeded, storyTimeout)
	if ms, _ := metricStatus(ro, "latency"); ms.Verdict != analysis.VerdictPass || ms.Estimate == "" || ms.PrimaryValue == "" {
		t.Errorf("metric status %+v, want Pass with the estimate and the primary's median", ms)
	}
	s.expectKStatus("podinfo", status.CurrentStatus)
}

// TestASlowCanaryReleasedRightAfterAGoodOneIsComparedOnItsOwnSamples: a
// compare check's samples each read their query's range back from their
// own time. Right after a promotion the first samples of the next run
// read the promoted canary's numbers: a canary 50 % slower than its
// primary looked 15 % slower, within the tolerance, and was promoted. Its
// samples now start once they read only its own.
func TestASlowCanaryReleasedRightAfterAGoodOneIsComparedOnItsOwnSamples(t *testing.T) {
	s := newPromStory(t)
	s.latencyOf("podinfo", 200)
	s.latencyOf("podinfo-primary", 200)
	s.must(k8sClient.Create(s.ctx, &sluicev1.MetricTemplate{
		ObjectMeta: metav1.ObjectMeta{Name: "latency", Namespace: s.ns},
		Spec: sluicev1.MetricTemplateSpec{
			Query: `avg(avg_over_time(app_latency_p50_ms{namespace="{{ .namespace }}",deployment="{{ .target }}"}[20s]))`},
	}))
	check := sluicev1.MetricCheck{Name: "latency", TemplateRef: &sluicev1.MetricTemplateReference{Name: "latency"},
		Interval: metricsWindow, Compare: &sluicev1.Compare{Direction: sluicev1.CompareIncrease, Tolerance: "25%",
			Step: &metav1.Duration{Duration: time.Second}, OnNoData: sluicev1.NoDataHold}}
	s.deploy("podinfo", "podinfo:1.0")
	s.initialized("podinfo", iterations(1), metric(check))
	s.prom.WaitFor(t, fmt.Sprintf(`min(count_over_time(app_latency_p50_ms{namespace=%q}[20s])) >= 15`, s.ns), 40*time.Second)
	s.setImage("podinfo", "podinfo:2.0")
	s.waitPhase("podinfo", sluicev1.PhaseSucceeded, time.Minute)

	// Revision 3 is 50 % slower than the primary, from its first sample.
	s.latencyOf("podinfo", 300)
	s.setImage("podinfo", "podinfo:3.0")

	s.eventually(time.Minute, "the check waits for samples of its own", func() error {
		ro := s.getRollout("podinfo")
		ms, _ := metricStatus(ro, "latency")
		if ms.Verdict != analysis.VerdictWait || !strings.Contains(ms.Message, "samples that hold only this revision (each reads 20s back") {
			return fmt.Errorf("phase %s, canary %q, metric %+v", ro.Status.Phase, ro.Status.CanaryRevision, ms)
		}
		return nil
	})
	ro := s.waitPhase("podinfo", sluicev1.PhaseFailed, time.Minute)
	if img := s.getDeployment("podinfo-primary").Spec.Template.Spec.Containers[0].Image; img != "podinfo:2.0" {
		t.Errorf("primary image = %s, want podinfo:2.0: the slow revision was promoted", img)
	}
	if ms, _ := metricStatus(ro, "latency"); ms.Verdict != analysis.VerdictFail || !strings.HasPrefix(ms.Estimate, "+") {
		t.Errorf("metric status %+v, want Fail with the canary's shift", ms)
	}
}
