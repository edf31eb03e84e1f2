package rollout

import (
	"context"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	sluicev1 "github.com/sluice-dev/sluice/api/v1alpha1"
)

// Operator metrics, served on the manager's metrics endpoint. docs/observability.md lists them.
//
// The gauges of each Rollout's state (phase, weight, failed checks, metric
// values) are read from the cached Rollouts when Prometheus scrapes, by
// rolloutCollector: kept as metric vectors they held about 5 KiB of heap
// per Rollout, idle or not, for what the cache holds already. What status
// does not keep, the releases that ended, is counted here: their number in
// a small map the same collector exports (releases), their durations in a
// histogram vector.
var (
	releaseDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "sluice_release_duration_seconds", Help: "Time from a new revision to its promotion or rollback.",
		Buckets: []float64{30, 60, 120, 300, 600, 1200, 1800, 3600, 7200, 14400},
	}, []string{"namespace", "name", "result"})
	reconcileErrors = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "sluice_reconcile_errors_total", Help: "Reconciles of Rollouts that ended in an error.",
	})
	eventsTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "sluice_events_total", Help: "Events Sluice recorded, by type and reason: compare with the Events the API server stored.",
	}, []string{"type", "reason"})
)

// CountEvents returns a recorder that counts each event in
// sluice_events_total before rec records it, so that an operator (and the
// fleet benchmark) can check that no event is lost between the decision and
// the API server.
func CountEvents(rec events.EventRecorder) events.EventRecorder { return countingRecorder{rec} }

type countingRecorder struct{ events.EventRecorder }

func (c countingRecorder) Eventf(regarding, related runtime.Object, eventtype, reason, action, note string, args ...any) {
	eventsTotal.WithLabelValues(eventtype, reason).Inc()
	c.EventRecorder.Eventf(regarding, related, eventtype, reason, action, note, args...)
}

var allPhases = []sluicev1.Phase{
	sluicev1.PhaseInitializing, sluicev1.PhaseInitialized, sluicev1.PhaseWaiting, sluicev1.PhaseProgressing,
	sluicev1.PhaseWaitingPromotion, sluicev1.PhasePromoting, sluicev1.PhaseFinalising, sluicev1.PhaseSucceeded,
	sluicev1.PhaseFailed, sluicev1.PhaseTerminating,
}

func init() {
	metrics.Registry.MustRegister(rolloutGauges, releaseDuration, reconcileErrors, eventsTotal)
}

// recordMetrics counts the release that ended in a reconcile, if one did;
// before is the status the reconcile started from.
func recordMetrics(ro *sluicev1.Rollout, before *sluicev1.RolloutStatus, now time.Time) {
	ns, name, st := ro.Namespace, ro.Name, &ro.Status
	if before.Phase == st.Phase || st.RunStartedAt == nil {
		return
	}
	result := ""
	switch st.Phase {
	case sluicev1.PhaseSucceeded:
		if before.Phase == sluicev1.PhaseFinalising {
			result = "succeeded"
		}
	case sluicev1.PhaseFailed:
		result = "failed"
	}
	if result == "" {
		return
	}
	releases.add(types.NamespacedName{Namespace: ns, Name: name}, result)
	releaseDuration.WithLabelValues(ns, name, result).Observe(now.Sub(st.RunStartedAt.Time).Seconds())
}

// releases counts the releases that ended, per Rollout and result, since
// the manager started. The collector exports them as sluice_releases_total
// with the Rollout's other series: both results of every Rollout, 0 for
// one that has ended none, so that a Rollout's first rollback is an
// increase that increase() and rate() see (a counter born at 1 shows none,
// and an alert on rollbacks missed each Rollout's first one). A counter
// vector would keep about 640 bytes of labels per series from the first
// reconcile on: 12 MiB for 10,000 idle Rollouts.
var releases = &releaseCounts{n: map[types.NamespacedName]*[2]float64{}}

// releaseResults name the results counted, in the order of a Rollout's
// counts.
var releaseResults = [2]string{"succeeded", "failed"}

type releaseCounts struct {
	mu sync.Mutex
	n  map[types.NamespacedName]*[2]float64
}

func (r *releaseCounts) add(key types.NamespacedName, result string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	c := r.n[key]
	if c == nil {
		c = &[2]float64{}
		r.n[key] = c
	}
	if result == releaseResults[0] {
		c[0]++
	} else {
		c[1]++
	}
}

// of is a Rollout's counts: succeeded, failed.
func (r *releaseCounts) of(key types.NamespacedName) [2]float64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	if c := r.n[key]; c != nil {
		return *c
	}
	return [2]float64{}
}

func (r *releaseCounts) forget(key types.NamespacedName) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.n, key)
}

// forgetMetrics drops a deleted Rollout's series.
func forgetMetrics(namespace, name string) {
	labels := prometheus.Labels{"namespace": namespace, "name": name}
	releaseDuration.DeletePartialMatch(labels)
	releases.forget(types.NamespacedName{Namespace: namespace, Name: name})
}

// rolloutGauges is registered once; SetupWithManager points it at the
// manager's cache, and it exports only while that manager leads.
var rolloutGauges = &rolloutCollector{}

var (
	phaseDesc = prometheus.NewDesc("sluice_rollout_phase",
		"1 for the phase a Rollout is in: one series per Rollout, whose phase label changes with it.", []string{"namespace", "name", "phase"}, nil)
	weightDesc = prometheus.NewDesc("sluice_rollout_canary_weight",
		"Percentage of traffic the canary should receive.", []string{"namespace", "name"}, nil)
	failedChecksDesc = prometheus.NewDesc("sluice_rollout_failed_checks",
		"Failed checks in the current run.", []string{"namespace", "name"}, nil)
	metricValueDesc = prometheus.NewDesc("sluice_rollout_metric_value",
		"Last value of each analysis metric of a Rollout (the canary's median for a compare check).", []string{"namespace", "name", "metric"}, nil)
	metricPrimaryDesc = prometheus.NewDesc("sluice_rollout_metric_primary_value",
		"Last median of the primary for each compare check of a Rollout.", []string{"namespace", "name", "metric"}, nil)
	releasesDesc = prometheus.NewDesc("sluice_releases_total",
		"Releases that ended, by result (succeeded, failed).", []string{"namespace", "name", "result"}, nil)
)

// rolloutSource is where the collector finds the Rollouts: the manager's
// cache, and whether this replica leads (a standby replica exports nothing,
// so that two replicas never show the same Rollout twice).
type rolloutSource struct {
	reader  client.Reader
	leading func() bool
}

// rolloutCollector exports each Rollout's state, read from the cache when
// Prometheus scrapes.
type rolloutCollector struct {
	source atomic.Pointer[rolloutSource]
}

// collectTimeout bounds a scrape's wait for the cache (it waits only before
// the cache has synced).
const collectTimeout = 5 * time.Second

func (c *rolloutCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{phaseDesc, weightDesc, failedChecksDesc, metricValueDesc, metricPrimaryDesc, releasesDesc} {
		ch <- d
	}
}

func (c *rolloutCollector) Collect(ch chan<- prometheus.Metric) {
	src := c.source.Load()
	if src == nil || !src.leading() {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), collectTimeout)
	defer cancel()
	var list sluicev1.RolloutList
	// Read only: no copy of every Rollout at every scrape.
	if err := src.reader.List(ctx, &list, client.UnsafeDisableDeepCopy); err != nil {
		// A scrape before the cache has synced: no series rather than a
		// failed scrape of every other metric.
		return
	}
	for i := range list.Items {
		collectRollout(ch, &list.Items[i])
	}
}

func collectRollout(ch chan<- prometheus.Metric, ro *sluicev1.Rollout) {
	st := &ro.Status
	// A scrape makes 5 series per Rollout: its phase, weight, failed
	// checks and both release counters. Each made by NewConstMetric would
	// copy, sort and check its labels; these share them instead, in the
	// order Prometheus sorts labels (metric < name < namespace < phase <
	// result).
	name, ns := labelPair("name", ro.Name), labelPair("namespace", ro.Namespace)
	series := make([]rolloutSeries, 0, 5+2*len(st.Metrics))
	pairs := make([]*dto.LabelPair, 3+2+6)
	// Only the phase it is in. A series of 0 for each other phase made the
	// phase 10 of a Rollout's 14 series, at every scrape and in
	// Prometheus's storage, for what "== 1" reads from one; at 10,000
	// Rollouts a scrape held them all at once. The old phase's series ends
	// when the phase changes (Prometheus marks it stale at the next
	// scrape). A Rollout not yet given a phase has no phase series.
	if p := phasePair(st.Phase); p != nil {
		labels := pairs[0:3:3]
		labels[0], labels[1], labels[2] = name, ns, p
		series = append(series, rolloutSeries{desc: phaseDesc, labels: labels, gauge: oneGauge})
	}
	byRollout := pairs[3:5:5]
	byRollout[0], byRollout[1] = name, ns
	series = append(series,
		rolloutSeries{desc: weightDesc, labels: byRollout, gauge: gaugeOf(float64(st.CanaryTraffic()))},
		rolloutSeries{desc: failedChecksDesc, labels: byRollout, gauge: gaugeOf(float64(st.FailedChecks))})
	counts := releases.of(types.NamespacedName{Namespace: ro.Namespace, Name: ro.Name})
	for i := range releaseResults {
		labels := pairs[5+3*i : 8+3*i : 8+3*i]
		labels[0], labels[1], labels[2] = name, ns, resultPairs[i]
		value := zeroCounter
		if counts[i] > 0 {
			value = &dto.Counter{Value: &counts[i]}
		}
		series = append(series, rolloutSeries{desc: releasesDesc, labels: labels, counter: value})
	}
	seen := make(map[string]bool, len(st.Metrics))
	for _, m := range st.Metrics {
		// Two series with the same labels would fail the whole scrape.
		if seen[m.Name] {
			continue
		}
		seen[m.Name] = true
		byMetric := []*dto.LabelPair{labelPair("metric", m.Name), name, ns}
		if v, err := strconv.ParseFloat(m.Value, 64); err == nil {
			series = append(series, rolloutSeries{desc: metricValueDesc, labels: byMetric, gauge: gaugeOf(v)})
		}
		// No primary median this time (no data, or not a compare check):
		// no series, rather than an old one standing for it.
		if v, err := strconv.ParseFloat(m.PrimaryValue, 64); err == nil {
			series = append(series, rolloutSeries{desc: metricPrimaryDesc, labels: byMetric, gauge: gaugeOf(v)})
		}
	}
	for i := range series {
		ch <- &series[i]
	}
}

// rolloutSeries is one series of a Rollout's state, a gauge or (with
// counter set) a counter. Its labels and value may be shared with other
// series: nothing writes to them once made.
type rolloutSeries struct {
	desc    *prometheus.Desc
	labels  []*dto.LabelPair
	gauge   *dto.Gauge
	counter *dto.Counter
}

func (s *rolloutSeries) Desc() *prometheus.Desc { return s.desc }

func (s *rolloutSeries) Write(m *dto.Metric) error {
	m.Label = s.labels
	if s.counter != nil {
		m.Counter = s.counter
	} else {
		m.Gauge = s.gauge
	}
	return nil
}

var (
	oneGauge    = gaugeOf(1)
	zeroCounter = &dto.Counter{Value: new(float64)}
	resultPairs = [2]*dto.LabelPair{labelPair("result", releaseResults[0]), labelPair("result", releaseResults[1])}
	phasePairs  = func() map[sluicev1.Phase]*dto.LabelPair {
		pairs := make(map[sluicev1.Phase]*dto.LabelPair, len(allPhases))
		for _, p := range allPhases {
			pairs[p] = labelPair("phase", string(p))
		}
		return pairs
	}()
)

// phasePair is the shared label pair of a phase; nil for none, and for a
// phase this build does not know (a status written by a newer manager):
// no series then, rather than one with a label no dashboard expects.
func phasePair(p sluicev1.Phase) *dto.LabelPair { return phasePairs[p] }

func labelPair(name, value string) *dto.LabelPair {
	return &dto.LabelPair{Name: &name, Value: &value}
}

func gaugeOf(v float64) *dto.Gauge { return &dto.Gauge{Value: &v} }

// exportRolloutGauges points the collector at a manager's cache, for the
// time that manager leads.
func exportRolloutGauges(mgr ctrl.Manager) {
	elected := mgr.Elected()
	rolloutGauges.source.Store(&rolloutSource{reader: mgr.GetCache(), leading: func() bool {
		select {
		case <-elected:
			return true
		default:
			return false
		}
	}})
}
