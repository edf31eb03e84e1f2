package rollout

import (
	"cmp"
	"context"
	"errors"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	toolscache "k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	sluicev1 "github.com/sluice-dev/sluice/api/v1alpha1"
	"github.com/sluice-dev/sluice/internal/metricsendpoint"
)

// Operator metrics, served on the manager's metrics endpoint. docs/observability.md lists them.
//
// The gauges of each Rollout's state (phase, weight, failed checks, metric
// values) are written from the cached Rollouts when Prometheus scrapes, by
// RolloutState: kept as metric vectors they held about 5 KiB of heap
// per Rollout, idle or not, for what the cache holds already. What status
// does not keep, the releases that ended and how long they took, is counted
// here, in a small map RolloutState writes out too (releases).
var (
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
	metrics.Registry.MustRegister(reconcileErrors, eventsTotal)
}

// recordMetrics counts the release that ended in a reconcile, if one did;
// before is the status the reconcile started from.
func recordMetrics(ro *sluicev1.Rollout, before *sluicev1.RolloutStatus, now time.Time) {
	ns, name, st := ro.Namespace, ro.Name, &ro.Status
	if before.Phase == st.Phase || st.RunStartedAt == nil {
		return
	}
	result := -1
	switch st.Phase {
	case sluicev1.PhaseSucceeded:
		if before.Phase == sluicev1.PhaseFinalising {
			result = succeeded
		}
	case sluicev1.PhaseFailed:
		result = failed
	}
	if result < 0 {
		return
	}
	releases.add(types.NamespacedName{Namespace: ns, Name: name}, result, now.Sub(st.RunStartedAt.Time).Seconds())
}

// releases counts the releases that ended, per Rollout and result, since
// the manager started, and how long they took. RolloutState writes them
// with the Rollout's other series: sluice_releases_total for both results
// of every Rollout, 0 for one that has ended none, so that a Rollout's
// first rollback is an increase that increase() and rate() see (a counter
// born at 1 shows none, and an alert on rollbacks missed each Rollout's
// first one); sluice_release_duration_seconds for each result that has
// ended a release. Counter and histogram vectors kept about 640 bytes of
// labels per series, and at each scrape built every bucket of every
// Rollout as objects: 13 series for each result of each Rollout.
var releases = &releaseCounts{n: map[types.NamespacedName]*releaseTally{}}

// The results counted, indexes of a releaseTally's arrays.
const (
	succeeded = iota
	failed
)

// releaseResults name the results, in the order of a releaseTally's arrays.
var releaseResults = [2]string{"succeeded", "failed"}

// durationBuckets are the upper bounds of the release durations'
// histogram, in seconds; +Inf follows.
var durationBuckets = [...]float64{30, 60, 120, 300, 600, 1200, 1800, 3600, 7200, 14400}

// releaseTally is one Rollout's ended releases, per result: how many, and
// a histogram of their durations (each bucket counts those of its bound
// and below, as Prometheus's buckets do).
type releaseTally struct {
	ended   [2]float64
	sum     [2]float64
	buckets [2][len(durationBuckets)]float64
}

type releaseCounts struct {
	mu sync.Mutex
	n  map[types.NamespacedName]*releaseTally
}

func (r *releaseCounts) add(key types.NamespacedName, result int, seconds float64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	c := r.n[key]
	if c == nil {
		c = &releaseTally{}
		r.n[key] = c
	}
	c.ended[result]++
	c.sum[result] += seconds
	for i, le := range durationBuckets {
		if seconds <= le {
			c.buckets[result][i]++
		}
	}
}

// of is a Rollout's tally, zero for one that has ended no release.
func (r *releaseCounts) of(key types.NamespacedName) releaseTally {
	r.mu.Lock()
	defer r.mu.Unlock()
	if c := r.n[key]; c != nil {
		return *c
	}
	return releaseTally{}
}

func (r *releaseCounts) forget(key types.NamespacedName) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.n, key)
}

// forgetMetrics drops a deleted Rollout's counts: one made again under its
// name starts from 0.
func forgetMetrics(namespace, name string) {
	releases.forget(types.NamespacedName{Namespace: namespace, Name: name})
}

// rolloutGauges writes each Rollout's series at a scrape; SetupWithManager
// points it at the manager's cache, and it writes only while that manager
// leads.
var rolloutGauges = &rolloutSeries{}

// RolloutState is each Rollout's state as series, for the manager's
// /metrics (internal/metricsendpoint): phase, canary weight, failed checks,
// releases ended and their durations, and the last value of each metric
// checked. They are written from the cached Rollouts at each scrape, never
// built as objects: at 10,000 Rollouts that was 50,000 series made,
// checked and sorted by the registry every 30 s.
var RolloutState metricsendpoint.Streamer = rolloutGauges

// The families and their HELP, in the order a scrape writes them.
var (
	phaseFamily = family{"sluice_rollout_phase",
		"1 for the phase a Rollout is in: one series per Rollout, whose phase label changes with it.", metricsendpoint.Gauge}
	weightFamily = family{"sluice_rollout_canary_weight",
		"Percentage of traffic the canary should receive.", metricsendpoint.Gauge}
	failedChecksFamily = family{"sluice_rollout_failed_checks",
		"Failed checks in the current run.", metricsendpoint.Gauge}
	releasesFamily = family{"sluice_releases_total",
		"Releases that ended, by result (succeeded, failed).", metricsendpoint.Counter}
	durationFamily = family{"sluice_release_duration_seconds",
		"Time from a new revision to its promotion or rollback.", metricsendpoint.Histogram}
	metricValueFamily = family{"sluice_rollout_metric_value",
		"Last value of each analysis metric of a Rollout (the canary's median for a compare check).", metricsendpoint.Gauge}
	metricPrimaryFamily = family{"sluice_rollout_metric_primary_value",
		"Last median of the primary for each compare check of a Rollout.", metricsendpoint.Gauge}
)

type family struct {
	name, help string
	kind       metricsendpoint.Kind
}

func (f family) start(w *metricsendpoint.Writer) { w.Family(f.name, f.help, f.kind) }

// rolloutSource is where the series find the Rollouts: the manager's
// cache, and whether this replica leads (a standby replica exports nothing,
// so that two replicas never show the same Rollout twice).
type rolloutSource struct {
	rollouts func(context.Context) ([]*sluicev1.Rollout, error)
	leading  func() bool
}

type rolloutSeries struct {
	source atomic.Pointer[rolloutSource]
}

// collectTimeout bounds a scrape's wait for the cache.
const collectTimeout = 5 * time.Second

// WriteSeries writes the series of every cached Rollout, sorted by
// namespace and name, one family after the other: the text format wants a
// family's samples together, so each family is a pass over the Rollouts.
func (c *rolloutSeries) WriteSeries(w *metricsendpoint.Writer) {
	src := c.source.Load()
	if src == nil || !src.leading() {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), collectTimeout)
	defer cancel()
	ros, err := src.rollouts(ctx)
	if err != nil {
		// A scrape before the cache has synced: no series rather than a
		// failed scrape of every other metric.
		return
	}
	slices.SortFunc(ros, func(a, b *sluicev1.Rollout) int {
		return cmp.Or(strings.Compare(a.Namespace, b.Namespace), strings.Compare(a.Name, b.Name))
	})
	// Only the phase it is in. A series of 0 for each other phase made the
	// phase 10 of a Rollout's 14 series, at every scrape and in
	// Prometheus's storage, for what "== 1" reads from one. The old phase's
	// series ends when the phase changes (Prometheus marks it stale at the
	// next scrape). A Rollout not yet given a phase, or in a phase this
	// build does not know (a status written by a newer manager), has none.
	phaseFamily.start(w)
	for _, ro := range ros {
		if knownPhases[ro.Status.Phase] {
			w.Sample(1, "name", ro.Name, "namespace", ro.Namespace, "phase", string(ro.Status.Phase))
		}
	}
	weightFamily.start(w)
	for _, ro := range ros {
		w.Sample(float64(ro.Status.CanaryTraffic()), "name", ro.Name, "namespace", ro.Namespace)
	}
	failedChecksFamily.start(w)
	for _, ro := range ros {
		w.Sample(float64(ro.Status.FailedChecks), "name", ro.Name, "namespace", ro.Namespace)
	}
	releasesFamily.start(w)
	for _, ro := range ros {
		tally := releases.of(types.NamespacedName{Namespace: ro.Namespace, Name: ro.Name})
		for i, result := range releaseResults {
			w.Sample(tally.ended[i], "name", ro.Name, "namespace", ro.Namespace, "result", result)
		}
	}
	// A result's histogram once it has ended a release, as a histogram
	// vector's child is made by its first observation.
	durationFamily.start(w)
	for _, ro := range ros {
		tally := releases.of(types.NamespacedName{Namespace: ro.Namespace, Name: ro.Name})
		for i, result := range releaseResults {
			if tally.ended[i] == 0 {
				continue
			}
			for j, le := range durationBuckets {
				w.Bucket(tally.buckets[i][j], le, "name", ro.Name, "namespace", ro.Namespace, "result", result)
			}
			w.Bucket(tally.ended[i], math.Inf(1), "name", ro.Name, "namespace", ro.Namespace, "result", result)
			w.Sum(tally.sum[i], "name", ro.Name, "namespace", ro.Namespace, "result", result)
			w.Count(tally.ended[i], "name", ro.Name, "namespace", ro.Namespace, "result", result)
		}
	}
	// No value this time (no data; for the primary, not a compare check
	// either): no series, rather than an old one standing for it.
	metricValueFamily.start(w)
	for _, ro := range ros {
		eachMetric(ro, func(m *sluicev1.MetricStatus) {
			if v, err := strconv.ParseFloat(m.Value, 64); err == nil {
				w.Sample(v, "metric", m.Name, "name", ro.Name, "namespace", ro.Namespace)
			}
		})
	}
	metricPrimaryFamily.start(w)
	for _, ro := range ros {
		eachMetric(ro, func(m *sluicev1.MetricStatus) {
			if v, err := strconv.ParseFloat(m.PrimaryValue, 64); err == nil {
				w.Sample(v, "metric", m.Name, "name", ro.Name, "namespace", ro.Namespace)
			}
		})
	}
}

// eachMetric calls f with each metric of a Rollout's status, the first of
// each name only: two series with the same labels fail the whole scrape.
func eachMetric(ro *sluicev1.Rollout, f func(*sluicev1.MetricStatus)) {
	ms := ro.Status.Metrics
	for i := range ms {
		if !slices.ContainsFunc(ms[:i], func(m sluicev1.MetricStatus) bool { return m.Name == ms[i].Name }) {
			f(&ms[i])
		}
	}
}

var knownPhases = func() map[sluicev1.Phase]bool {
	known := make(map[sluicev1.Phase]bool, len(allPhases))
	for _, p := range allPhases {
		known[p] = true
	}
	return known
}()

// cachedRollouts lists the Rollouts the cache holds, the cached objects
// themselves: read only, never to be changed. A List, even without deep
// copies, copies each Rollout's 824-byte struct into a new slice: 8 MB a
// scrape at 10,000 Rollouts. The informer's store hands out the pointers it
// keeps. A cache of several namespaces has one store per namespace and no
// such store to ask: it is listed.
func cachedRollouts(c cache.Cache) func(context.Context) ([]*sluicev1.Rollout, error) {
	return func(ctx context.Context) ([]*sluicev1.Rollout, error) {
		informer, err := c.GetInformer(ctx, &sluicev1.Rollout{}, cache.BlockUntilSynced(false))
		if err != nil {
			return nil, err
		}
		if !informer.HasSynced() {
			return nil, errors.New("the Rollouts' cache has not synced")
		}
		if s, ok := informer.(interface{ GetStore() toolscache.Store }); ok {
			items := s.GetStore().List()
			ros := make([]*sluicev1.Rollout, 0, len(items))
			for _, item := range items {
				if ro, ok := item.(*sluicev1.Rollout); ok {
					ros = append(ros, ro)
				}
			}
			return ros, nil
		}
		var list sluicev1.RolloutList
		if err := c.List(ctx, &list, client.UnsafeDisableDeepCopy); err != nil {
			return nil, err
		}
		ros := make([]*sluicev1.Rollout, len(list.Items))
		for i := range list.Items {
			ros[i] = &list.Items[i]
		}
		return ros, nil
	}
}

// exportRolloutGauges points the Rollouts' series at a manager's cache, for
// the time that manager leads.
func exportRolloutGauges(mgr ctrl.Manager) {
	elected := mgr.Elected()
	rolloutGauges.source.Store(&rolloutSource{rollouts: cachedRollouts(mgr.GetCache()), leading: func() bool {
		select {
		case <-elected:
			return true
		default:
			return false
		}
	}})
}
