package rollout

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/tools/events"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	sluicev1 "github.com/sluice-dev/sluice/api/v1alpha1"
)

func TestMetricsCountEndedReleasesAndTheirDuration(t *testing.T) {
	start := time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)
	ro := &sluicev1.Rollout{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "metrics-test"}}
	col, _, _ := gauges(t, ro.DeepCopy())
	// Before any release ended, both results are there at 0: the first
	// rollback is then an increase Prometheus sees.
	if got := releasesOf(t, col, "metrics-test"); got != [2]float64{0, 0} {
		t.Errorf("before any release ended: succeeded, failed = %v, want both 0", got)
	}

	ro.Status = sluicev1.RolloutStatus{Phase: sluicev1.PhaseSucceeded, RunStartedAt: &metav1.Time{Time: start}}
	recordMetrics(ro, &sluicev1.RolloutStatus{Phase: sluicev1.PhaseFinalising}, start.Add(90*time.Second))
	// Reconciles that do not change the phase count nothing more.
	recordMetrics(ro, &sluicev1.RolloutStatus{Phase: sluicev1.PhaseSucceeded}, start.Add(95*time.Second))
	if got := releasesOf(t, col, "metrics-test"); got != [2]float64{1, 0} {
		t.Errorf("succeeded, failed = %v, want 1, 0", got)
	}
	if n := testutil.CollectAndCount(releaseDuration, "sluice_release_duration_seconds"); n != 1 {
		t.Errorf("%d duration series, want 1", n)
	}

	ro.Status.Phase = sluicev1.PhaseFailed
	recordMetrics(ro, &sluicev1.RolloutStatus{Phase: sluicev1.PhaseProgressing}, start.Add(time.Minute))
	if got := releasesOf(t, col, "metrics-test"); got != [2]float64{1, 1} {
		t.Errorf("succeeded, failed = %v, want 1, 1", got)
	}

	// A Rollout deleted and made again under its name starts from 0.
	forgetMetrics("shop", "metrics-test")
	if got := releasesOf(t, col, "metrics-test"); got != [2]float64{0, 0} {
		t.Errorf("after the Rollout was deleted: succeeded, failed = %v, want both 0", got)
	}
}

// releasesOf reads the collector's sluice_releases_total of a Rollout in
// namespace shop: succeeded, failed.
func releasesOf(t *testing.T, col prometheus.Collector, name string) [2]float64 {
	t.Helper()
	var out [2]float64
	seen := 0
	for _, m := range collected(t, col, releasesDesc) {
		if m.GetCounter() == nil {
			t.Fatalf("sluice_releases_total written as %v, want a counter", m)
		}
		l := labelsOf(m)
		if l["namespace"] != "shop" || l["name"] != name {
			continue
		}
		seen++
		switch l["result"] {
		case "succeeded":
			out[0] = m.GetCounter().GetValue()
		case "failed":
			out[1] = m.GetCounter().GetValue()
		default:
			t.Errorf("result %q", l["result"])
		}
	}
	if seen != 2 {
		t.Fatalf("%d sluice_releases_total series for %s, want 2", seen, name)
	}
	return out
}

// collected is what col exports of desc.
func collected(t *testing.T, col prometheus.Collector, desc *prometheus.Desc) []*dto.Metric {
	t.Helper()
	ch := make(chan prometheus.Metric, 100)
	go func() { col.Collect(ch); close(ch) }()
	var out []*dto.Metric
	for m := range ch {
		if m.Desc() != desc {
			continue
		}
		pb := &dto.Metric{}
		if err := m.Write(pb); err != nil {
			t.Fatal(err)
		}
		out = append(out, pb)
	}
	return out
}

func labelsOf(m *dto.Metric) map[string]string {
	l := map[string]string{}
	for _, p := range m.GetLabel() {
		l[p.GetName()] = p.GetValue()
	}
	return l
}

// gauges returns a collector over the given Rollouts, and a switch for
// whether its replica leads.
func gauges(t *testing.T, ros ...client.Object) (*rolloutCollector, client.Client, *bool) {
	t.Helper()
	s := runtime.NewScheme()
	if err := sluicev1.AddToScheme(s); err != nil {
		t.Fatal(err)
	}
	c := fake.NewClientBuilder().WithScheme(s).WithObjects(ros...).Build()
	leading := true
	col := &rolloutCollector{}
	col.source.Store(&rolloutSource{reader: c, leading: func() bool { return leading }})
	return col, c, &leading
}

func TestEachRolloutsStateIsExportedFromTheCachedRollout(t *testing.T) {
	web := &sluicev1.Rollout{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "web"}}
	web.Status = sluicev1.RolloutStatus{Phase: sluicev1.PhaseProgressing, CanaryWeight: 30, FailedChecks: 1,
		Metrics: []sluicev1.MetricStatus{
			{Name: "request-success-rate", Value: "99.5"},
			{Name: "latency", Value: "240", PrimaryValue: "200"},
			// The same name twice must not fail the scrape.
			{Name: "latency", Value: "250"},
			{Name: "no-data-yet"},
		}}
	api := &sluicev1.Rollout{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "api"}}
	api.Status.Phase = sluicev1.PhaseSucceeded
	// Its canary has no available pod: its 20 % is held on the primary.
	cart := &sluicev1.Rollout{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "cart"}}
	cart.Status = sluicev1.RolloutStatus{Phase: sluicev1.PhaseProgressing, CanaryWeight: 20, CanaryShareHeld: true, FailedChecks: 1}
	col, c, leading := gauges(t, web, api, cart)

	want := `
# HELP sluice_rollout_canary_weight Percentage of traffic the canary should receive.
# TYPE sluice_rollout_canary_weight gauge
sluice_rollout_canary_weight{name="api",namespace="shop"} 0
sluice_rollout_canary_weight{name="cart",namespace="shop"} 0
sluice_rollout_canary_weight{name="web",namespace="shop"} 30
# HELP sluice_rollout_failed_checks Failed checks in the current run.
# TYPE sluice_rollout_failed_checks gauge
sluice_rollout_failed_checks{name="api",namespace="shop"} 0
sluice_rollout_failed_checks{name="cart",namespace="shop"} 1
sluice_rollout_failed_checks{name="web",namespace="shop"} 1
# HELP sluice_rollout_metric_primary_value Last median of the primary for each compare check of a Rollout.
# TYPE sluice_rollout_metric_primary_value gauge
sluice_rollout_metric_primary_value{metric="latency",name="web",namespace="shop"} 200
# HELP sluice_rollout_metric_value Last value of each analysis metric of a Rollout (the canary's median for a compare check).
# TYPE sluice_rollout_metric_value gauge
sluice_rollout_metric_value{metric="latency",name="web",namespace="shop"} 240
sluice_rollout_metric_value{metric="request-success-rate",name="web",namespace="shop"} 99.5
`
	if err := testutil.CollectAndCompare(col, strings.NewReader(want),
		"sluice_rollout_canary_weight", "sluice_rollout_failed_checks", "sluice_rollout_metric_value", "sluice_rollout_metric_primary_value"); err != nil {
		t.Error(err)
	}
	// One phase series per Rollout, the phase it is in, at 1.
	wantPhases := map[string]string{"web": "Progressing", "api": "Succeeded", "cart": "Progressing"}
	gotPhases := map[string]string{}
	for _, m := range collected(t, col, phaseDesc) {
		l := labelsOf(m)
		if v := m.GetGauge().GetValue(); v != 1 {
			t.Errorf("sluice_rollout_phase{name=%q,phase=%q} = %v, want only the phase it is in, at 1", l["name"], l["phase"], v)
		}
		if was, dup := gotPhases[l["name"]]; dup {
			t.Errorf("%s has two phase series: %s and %s", l["name"], was, l["phase"])
		}
		gotPhases[l["name"]] = l["phase"]
	}
	if !maps.Equal(gotPhases, wantPhases) {
		t.Errorf("phase series %v, want %v", gotPhases, wantPhases)
	}
	if n := testutil.CollectAndCount(col, "sluice_releases_total"); n != 3*2 {
		t.Errorf("%d release counters, want 6 (both results of 3 Rollouts)", n)
	}
	// A Rollout that moves on has its old phase's series end.
	moved := &sluicev1.Rollout{}
	if err := c.Get(context.Background(), client.ObjectKeyFromObject(web), moved); err != nil {
		t.Fatal(err)
	}
	moved.Status.Phase = sluicev1.PhaseSucceeded
	if err := c.Update(context.Background(), moved); err != nil {
		t.Fatal(err)
	}
	for _, m := range collected(t, col, phaseDesc) {
		if l := labelsOf(m); l["name"] == "web" && l["phase"] != "Succeeded" {
			t.Errorf("web, now Succeeded, still exports phase %s", l["phase"])
		}
	}
	// The series share their labels; each must still list them sorted by
	// name, as every client library writes them.
	ch := make(chan prometheus.Metric, 100)
	go func() { col.Collect(ch); close(ch) }()
	for m := range ch {
		var pb dto.Metric
		if err := m.Write(&pb); err != nil {
			t.Fatal(err)
		}
		if !slices.IsSortedFunc(pb.GetLabel(), func(a, b *dto.LabelPair) int { return strings.Compare(a.GetName(), b.GetName()) }) {
			t.Errorf("%s has its labels out of order: %v", m.Desc(), pb.GetLabel())
		}
	}

	// A deleted Rollout's series go with it.
	if err := c.Delete(context.Background(), api); err != nil {
		t.Fatal(err)
	}
	if n := testutil.CollectAndCount(col, "sluice_rollout_canary_weight"); n != 2 {
		t.Errorf("%d weight series after a Rollout was deleted, want 2", n)
	}
	// A replica that does not lead exports none: two replicas must not
	// show the same Rollout twice.
	*leading = false
	if n := testutil.CollectAndCount(col); n != 0 {
		t.Errorf("a standby replica exported %d series, want none", n)
	}
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

// BenchmarkScrapeRolloutState is one Prometheus scrape of the Rollouts'
// state, as the manager's /metrics serves it (collect, gather, encode):
// five series per Rollout, which a fleet pays for at every scrape.
func BenchmarkScrapeRolloutState(b *testing.B) {
	for _, n := range []int{10, 1000} {
		b.Run(fmt.Sprintf("rollouts=%d", n), func(b *testing.B) {
			fleet := make([]sluicev1.Rollout, n)
			for i := range fleet {
				fleet[i].ObjectMeta = metav1.ObjectMeta{Namespace: "shop", Name: fmt.Sprintf("app-%05d", i)}
				fleet[i].Status = sluicev1.RolloutStatus{Phase: allPhases[i%len(allPhases)], CanaryWeight: int32(i % 100)}
				if i%10 == 0 {
					fleet[i].Status.Metrics = []sluicev1.MetricStatus{{Name: "latency", Value: "240", PrimaryValue: "200"}}
				}
			}
			col := &rolloutCollector{}
			col.source.Store(&rolloutSource{reader: cachedRollouts(fleet), leading: func() bool { return true }})
			reg := prometheus.NewRegistry()
			reg.MustRegister(col)
			serve := promhttp.HandlerFor(reg, promhttp.HandlerOpts{})
			b.ReportAllocs()
			for b.Loop() {
				w := httptest.NewRecorder()
				serve.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/metrics", nil))
				if w.Code != http.StatusOK {
					b.Fatalf("scrape: %d %s", w.Code, w.Body)
				}
			}
		})
	}
}

// cachedRollouts lists its Rollouts as the cache does with
// UnsafeDisableDeepCopy: the same objects every time.
type cachedRollouts []sluicev1.Rollout

func (c cachedRollouts) Get(context.Context, client.ObjectKey, client.Object, ...client.GetOption) error {
	return errors.New("not used by the collector")
}

func (c cachedRollouts) List(_ context.Context, list client.ObjectList, _ ...client.ListOption) error {
	list.(*sluicev1.RolloutList).Items = c
	return nil
}
