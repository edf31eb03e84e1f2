package rollout

import (
	"context"
	"fmt"
	"maps"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	sluicev1 "github.com/sluice-dev/sluice/api/v1alpha1"
	"github.com/sluice-dev/sluice/internal/metricsendpoint"
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
	// The duration's histogram, of the succeeded result only: a result has
	// one once it has ended a release.
	want := `# HELP sluice_release_duration_seconds Time from a new revision to its promotion or rollback.
# TYPE sluice_release_duration_seconds histogram
sluice_release_duration_seconds_bucket{name="metrics-test",namespace="shop",result="succeeded",le="30"} 0
sluice_release_duration_seconds_bucket{name="metrics-test",namespace="shop",result="succeeded",le="60"} 0
sluice_release_duration_seconds_bucket{name="metrics-test",namespace="shop",result="succeeded",le="120"} 1
sluice_release_duration_seconds_bucket{name="metrics-test",namespace="shop",result="succeeded",le="300"} 1
sluice_release_duration_seconds_bucket{name="metrics-test",namespace="shop",result="succeeded",le="600"} 1
sluice_release_duration_seconds_bucket{name="metrics-test",namespace="shop",result="succeeded",le="1200"} 1
sluice_release_duration_seconds_bucket{name="metrics-test",namespace="shop",result="succeeded",le="1800"} 1
sluice_release_duration_seconds_bucket{name="metrics-test",namespace="shop",result="succeeded",le="3600"} 1
sluice_release_duration_seconds_bucket{name="metrics-test",namespace="shop",result="succeeded",le="7200"} 1
sluice_release_duration_seconds_bucket{name="metrics-test",namespace="shop",result="succeeded",le="14400"} 1
sluice_release_duration_seconds_bucket{name="metrics-test",namespace="shop",result="succeeded",le="+Inf"} 1
sluice_release_duration_seconds_sum{name="metrics-test",namespace="shop",result="succeeded"} 90
sluice_release_duration_seconds_count{name="metrics-test",namespace="shop",result="succeeded"} 1
`
	if got := scraped(t, col); !strings.Contains(got, want) {
		t.Errorf("/metrics answered\n%s\nwant in it\n%s", got, want)
	}

	ro.Status.Phase = sluicev1.PhaseFailed
	recordMetrics(ro, &sluicev1.RolloutStatus{Phase: sluicev1.PhaseProgressing}, start.Add(time.Minute))
	if got := releasesOf(t, col, "metrics-test"); got != [2]float64{1, 1} {
		t.Errorf("succeeded, failed = %v, want 1, 1", got)
	}
	// A rollback of 60 s is counted in the bucket of 60 s and above.
	durations := map[string]float64{}
	for _, m := range collected(t, col, "sluice_release_duration_seconds") {
		h := m.GetHistogram()
		for _, b := range h.GetBucket() {
			durations[fmt.Sprintf("%s le=%v", labelsOf(m)["result"], b.GetUpperBound())] = float64(b.GetCumulativeCount())
		}
		durations[labelsOf(m)["result"]+" sum"] = h.GetSampleSum()
	}
	for k, want := range map[string]float64{"failed le=30": 0, "failed le=60": 1, "failed le=14400": 1, "failed sum": 60,
		"succeeded le=60": 0, "succeeded le=120": 1, "succeeded sum": 90} {
		if durations[k] != want {
			t.Errorf("duration histogram %s = %v, want %v (all: %v)", k, durations[k], want, durations)
		}
	}

	// A Rollout deleted and made again under its name starts from 0.
	forgetMetrics("shop", "metrics-test")
	if got := releasesOf(t, col, "metrics-test"); got != [2]float64{0, 0} {
		t.Errorf("after the Rollout was deleted: succeeded, failed = %v, want both 0", got)
	}
	if n := count(t, col, "sluice_release_duration_seconds"); n != 0 {
		t.Errorf("after the Rollout was deleted: %d duration histograms, want none", n)
	}
}

// releasesOf reads the collector's sluice_releases_total of a Rollout in
// namespace shop: succeeded, failed.
func releasesOf(t *testing.T, col metricsendpoint.Streamer, name string) [2]float64 {
	t.Helper()
	var out [2]float64
	seen := 0
	for _, m := range collected(t, col, "sluice_releases_total") {
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

// collected is what col writes of a family, read back by client_golang's
// parser of the text format.
func collected(t *testing.T, col metricsendpoint.Streamer, family string) []*dto.Metric {
	t.Helper()
	return parsed(t, scraped(t, col))[family].GetMetric()
}

// scraped is the answer to a scrape of an endpoint serving only col.
func scraped(t *testing.T, col metricsendpoint.Streamer) string {
	t.Helper()
	w := httptest.NewRecorder()
	metricsendpoint.Handler(prometheus.NewRegistry(), col).ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if w.Code != http.StatusOK {
		t.Fatalf("scrape: %d %s", w.Code, w.Body)
	}
	return w.Body.String()
}

func parsed(t *testing.T, text string) map[string]*dto.MetricFamily {
	t.Helper()
	parser := expfmt.NewTextParser(model.LegacyValidation)
	families, err := parser.TextToMetricFamilies(strings.NewReader(text))
	if err != nil {
		t.Fatalf("the scrape does not parse: %v\n%s", err, text)
	}
	return families
}

// count is the number of series col writes of the given families, or of
// all of them.
func count(t *testing.T, col metricsendpoint.Streamer, families ...string) int {
	t.Helper()
	n := 0
	for name, f := range parsed(t, scraped(t, col)) {
		if len(families) == 0 || slices.Contains(families, name) {
			n += len(f.GetMetric())
		}
	}
	return n
}

func labelsOf(m *dto.Metric) map[string]string {
	l := map[string]string{}
	for _, p := range m.GetLabel() {
		l[p.GetName()] = p.GetValue()
	}
	return l
}

// gauges returns the series of the given Rollouts, and a switch for
// whether its replica leads.
func gauges(t *testing.T, ros ...client.Object) (*rolloutSeries, client.Client, *bool) {
	t.Helper()
	s := runtime.NewScheme()
	if err := sluicev1.AddToScheme(s); err != nil {
		t.Fatal(err)
	}
	c := fake.NewClientBuilder().WithScheme(s).WithObjects(ros...).Build()
	leading := true
	col := &rolloutSeries{}
	col.source.Store(&rolloutSource{rollouts: listed(c), leading: func() bool { return leading }})
	return col, c, &leading
}

// listed lists the Rollouts c holds.
func listed(c client.Reader) func(context.Context) ([]*sluicev1.Rollout, error) {
	return func(ctx context.Context) ([]*sluicev1.Rollout, error) {
		var list sluicev1.RolloutList
		if err := c.List(ctx, &list); err != nil {
			return nil, err
		}
		ros := make([]*sluicev1.Rollout, len(list.Items))
		for i := range list.Items {
			ros[i] = &list.Items[i]
		}
		return ros, nil
	}
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

	// The whole answer, as a person reading /metrics sees it: each family
	// once, Rollouts sorted by namespace and name, labels sorted by name.
	want := `# HELP sluice_rollout_phase 1 for the phase a Rollout is in: one series per Rollout, whose phase label changes with it.
# TYPE sluice_rollout_phase gauge
sluice_rollout_phase{name="api",namespace="shop",phase="Succeeded"} 1
sluice_rollout_phase{name="cart",namespace="shop",phase="Progressing"} 1
sluice_rollout_phase{name="web",namespace="shop",phase="Progressing"} 1
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
# HELP sluice_releases_total Releases that ended, by result (succeeded, failed).
# TYPE sluice_releases_total counter
sluice_releases_total{name="api",namespace="shop",result="succeeded"} 0
sluice_releases_total{name="api",namespace="shop",result="failed"} 0
sluice_releases_total{name="cart",namespace="shop",result="succeeded"} 0
sluice_releases_total{name="cart",namespace="shop",result="failed"} 0
sluice_releases_total{name="web",namespace="shop",result="succeeded"} 0
sluice_releases_total{name="web",namespace="shop",result="failed"} 0
# HELP sluice_rollout_metric_value Last value of each analysis metric of a Rollout (the canary's median for a compare check).
# TYPE sluice_rollout_metric_value gauge
sluice_rollout_metric_value{metric="request-success-rate",name="web",namespace="shop"} 99.5
sluice_rollout_metric_value{metric="latency",name="web",namespace="shop"} 240
# HELP sluice_rollout_metric_primary_value Last median of the primary for each compare check of a Rollout.
# TYPE sluice_rollout_metric_primary_value gauge
sluice_rollout_metric_primary_value{metric="latency",name="web",namespace="shop"} 200
`
	if got := scraped(t, col); got != want {
		t.Errorf("/metrics answered\n%s\nwant\n%s", got, want)
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
	phases := map[string]string{}
	for _, m := range collected(t, col, "sluice_rollout_phase") {
		l := labelsOf(m)
		if was, dup := phases[l["name"]]; dup {
			t.Errorf("%s has two phase series: %s and %s", l["name"], was, l["phase"])
		}
		phases[l["name"]] = l["phase"]
	}
	if want := map[string]string{"web": "Succeeded", "api": "Succeeded", "cart": "Progressing"}; !maps.Equal(phases, want) {
		t.Errorf("phase series %v after web succeeded, want %v", phases, want)
	}

	// A deleted Rollout's series go with it.
	if err := c.Delete(context.Background(), api); err != nil {
		t.Fatal(err)
	}
	if n := count(t, col, "sluice_rollout_canary_weight"); n != 2 {
		t.Errorf("%d weight series after a Rollout was deleted, want 2", n)
	}
	// A replica that does not lead exports none: two replicas must not
	// show the same Rollout twice.
	*leading = false
	if n := count(t, col); n != 0 {
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
// state, as the manager's /metrics serves it: five series per Rollout,
// which a fleet pays for at every scrape, and 13 more for a Rollout that
// has released (its durations' histogram). The Rollouts are handed over as
// the cache's store hands them, pointers to the cached objects.
func BenchmarkScrapeRolloutState(b *testing.B) {
	for _, c := range []struct {
		n        int
		released bool
	}{{10, false}, {1000, false}, {10000, false}, {1000, true}} {
		name := fmt.Sprintf("rollouts=%d", c.n)
		if c.released {
			name += "/released"
		}
		b.Run(name, func(b *testing.B) {
			fleet := make([]*sluicev1.Rollout, c.n)
			for i := range fleet {
				fleet[i] = &sluicev1.Rollout{ObjectMeta: metav1.ObjectMeta{Namespace: "bench", Name: fmt.Sprintf("app-%05d", i)}}
				fleet[i].Status = sluicev1.RolloutStatus{Phase: allPhases[i%len(allPhases)], CanaryWeight: int32(i % 100)}
				if i%10 == 0 {
					fleet[i].Status.Metrics = []sluicev1.MetricStatus{{Name: "latency", Value: "240", PrimaryValue: "200"}}
				}
				if c.released {
					key := types.NamespacedName{Namespace: "bench", Name: fleet[i].Name}
					releases.add(key, succeeded, 45)
					b.Cleanup(func() { releases.forget(key) })
				}
			}
			col := &rolloutSeries{}
			col.source.Store(&rolloutSource{rollouts: func(context.Context) ([]*sluicev1.Rollout, error) {
				return slices.Clone(fleet), nil
			}, leading: func() bool { return true }})
			serve := metricsendpoint.Handler(prometheus.NewRegistry(), col)
			req := httptest.NewRequest(http.MethodGet, "/metrics", nil)
			req.Header.Set("Accept-Encoding", "gzip") // as Prometheus asks
			b.ReportAllocs()
			answered := 0
			for b.Loop() {
				// The answer goes to the connection, not into memory.
				w := &discarded{header: http.Header{}}
				serve.ServeHTTP(w, req)
				if w.code != 0 && w.code != http.StatusOK || w.n == 0 {
					b.Fatalf("scrape: %d, %d bytes", w.code, w.n)
				}
				answered = w.n
			}
			b.ReportMetric(float64(answered), "gzip-bytes")
		})
	}
}

// discarded is a response written to nothing, as a connection would take it.
type discarded struct {
	header http.Header
	code   int
	n      int
}

func (d *discarded) Header() http.Header  { return d.header }
func (d *discarded) WriteHeader(code int) { d.code = code }
func (d *discarded) Write(p []byte) (int, error) {
	d.n += len(p)
	return len(p), nil
}
