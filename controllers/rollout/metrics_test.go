package rollout

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/events"

	sluicev1 "github.com/sluice-dev/sluice/api/v1alpha1"
)

func TestMetricsCountEndedReleasesAndTheirDuration(t *testing.T) {
	start := time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)
	ro := &sluicev1.Rollout{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "metrics-test"}}
	ro.Status = sluicev1.RolloutStatus{
		Phase: sluicev1.PhaseSucceeded, RunStartedAt: &metav1.Time{Time: start}, CanaryWeight: 0,
		Metrics: []sluicev1.MetricStatus{{Name: "request-success-rate", Value: "99.5"}},
	}
	recordMetrics(ro, &sluicev1.RolloutStatus{Phase: sluicev1.PhaseFinalising}, start.Add(90*time.Second))
	// Reconciles that do not change the phase count nothing more.
	recordMetrics(ro, &sluicev1.RolloutStatus{Phase: sluicev1.PhaseSucceeded}, start.Add(95*time.Second))

	if got := testutil.ToFloat64(releasesTotal.WithLabelValues("shop", "metrics-test", "succeeded")); got != 1 {
		t.Errorf("releases succeeded = %v, want 1", got)
	}
	if got := testutil.ToFloat64(phaseGauge.WithLabelValues("shop", "metrics-test", "Succeeded")); got != 1 {
		t.Errorf("phase gauge for Succeeded = %v, want 1", got)
	}
	if got := testutil.ToFloat64(metricValueGauge.WithLabelValues("shop", "metrics-test", "request-success-rate")); got != 99.5 {
		t.Errorf("metric value = %v, want 99.5", got)
	}
	if n := testutil.CollectAndCount(releaseDuration, "sluice_release_duration_seconds"); n != 1 {
		t.Errorf("%d duration series, want 1", n)
	}

	ro.Status.Phase = sluicev1.PhaseFailed
	recordMetrics(ro, &sluicev1.RolloutStatus{Phase: sluicev1.PhaseProgressing}, start.Add(time.Minute))
	if got := testutil.ToFloat64(releasesTotal.WithLabelValues("shop", "metrics-test", "failed")); got != 1 {
		t.Errorf("releases failed = %v, want 1", got)
	}

	forgetMetrics("shop", "metrics-test")
	if n := testutil.CollectAndCount(phaseGauge, "sluice_rollout_phase"); n != 0 {
		t.Errorf("%d phase series left after the Rollout was deleted", n)
	}
}

func TestACompareCheckExportsThePrimarysMedianBesideTheCanarys(t *testing.T) {
	ro := &sluicev1.Rollout{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "compare-test"}}
	ro.Status.Metrics = []sluicev1.MetricStatus{{Name: "latency", Value: "240", PrimaryValue: "200", Estimate: "+20.0%", PValue: "0.0001"}}
	recordMetrics(ro, &ro.Status, time.Now())
	if got := testutil.ToFloat64(metricPrimaryGauge.WithLabelValues("shop", "compare-test", "latency")); got != 200 {
		t.Errorf("primary value = %v, want 200", got)
	}
	if got := testutil.ToFloat64(metricValueGauge.WithLabelValues("shop", "compare-test", "latency")); got != 240 {
		t.Errorf("canary value = %v, want 240", got)
	}
	// The next check has no primary data: its old median goes.
	ro.Status.Metrics[0].PrimaryValue = ""
	recordMetrics(ro, &ro.Status, time.Now())
	if n := testutil.CollectAndCount(metricPrimaryGauge, "sluice_rollout_metric_primary_value"); n != 0 {
		t.Errorf("%d primary series left without primary data", n)
	}
	forgetMetrics("shop", "compare-test")
}

func TestEveryRecordedEventIsCountedAndPassedOn(t *testing.T) {
	fake := events.NewFakeRecorder(4)
	rec := CountEvents(fake)
	before := testutil.ToFloat64(eventsTotal.WithLabelValues("Normal", "CountTest"))
	ro := &sluicev1.Rollout{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "events-test"}}
	rec.Eventf(ro, nil, "Normal", "CountTest", "Test", "step %d", 1)
	rec.Eventf(ro, nil, "Normal", "CountTest", "Test", "step %d", 2)
	if got := testutil.ToFloat64(eventsTotal.WithLabelValues("Normal", "CountTest")) - before; got != 2 {
		t.Errorf("sluice_events_total grew by %v, want 2", got)
	}
	for _, want := range []string{"Normal CountTest step 1", "Normal CountTest step 2"} {
		if got := <-fake.Events; got != want {
			t.Errorf("recorded %q, want %q", got, want)
		}
	}
}
