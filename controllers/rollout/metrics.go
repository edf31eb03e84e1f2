package rollout

import (
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/tools/events"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	sluicev1 "github.com/sluice-dev/sluice/api/v1alpha1"
)

// Operator metrics, served on the manager's metrics endpoint. docs/observability.md lists them.
var (
	phaseGauge = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "sluice_rollout_phase", Help: "1 for the phase a Rollout is in, 0 for the others.",
	}, []string{"namespace", "name", "phase"})
	weightGauge = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "sluice_rollout_canary_weight", Help: "Percentage of traffic the canary should receive.",
	}, []string{"namespace", "name"})
	failedChecksGauge = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "sluice_rollout_failed_checks", Help: "Failed checks in the current run.",
	}, []string{"namespace", "name"})
	metricValueGauge = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "sluice_rollout_metric_value", Help: "Last value of each analysis metric of a Rollout (the canary's median for a compare check).",
	}, []string{"namespace", "name", "metric"})
	metricPrimaryGauge = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "sluice_rollout_metric_primary_value", Help: "Last median of the primary for each compare check of a Rollout.",
	}, []string{"namespace", "name", "metric"})
	releaseDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "sluice_release_duration_seconds", Help: "Time from a new revision to its promotion or rollback.",
		Buckets: []float64{30, 60, 120, 300, 600, 1200, 1800, 3600, 7200, 14400},
	}, []string{"namespace", "name", "result"})
	releasesTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "sluice_releases_total", Help: "Releases that ended, by result (succeeded, failed).",
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
	metrics.Registry.MustRegister(phaseGauge, weightGauge, failedChecksGauge, metricValueGauge, metricPrimaryGauge,
		releaseDuration, releasesTotal, reconcileErrors, eventsTotal)
}

// recordMetrics exports a Rollout's state after a reconcile; before is the
// status it started from, to count releases that ended in this reconcile.
func recordMetrics(ro *sluicev1.Rollout, before *sluicev1.RolloutStatus, now time.Time) {
	ns, name, st := ro.Namespace, ro.Name, &ro.Status
	for _, p := range allPhases {
		v := 0.0
		if st.Phase == p {
			v = 1
		}
		phaseGauge.WithLabelValues(ns, name, string(p)).Set(v)
	}
	weightGauge.WithLabelValues(ns, name).Set(float64(st.CanaryWeight))
	failedChecksGauge.WithLabelValues(ns, name).Set(float64(st.FailedChecks))
	for _, m := range st.Metrics {
		if v, err := strconv.ParseFloat(m.Value, 64); err == nil {
			metricValueGauge.WithLabelValues(ns, name, m.Name).Set(v)
		}
		if v, err := strconv.ParseFloat(m.PrimaryValue, 64); err == nil {
			metricPrimaryGauge.WithLabelValues(ns, name, m.Name).Set(v)
		} else {
			// No primary median this time (no data, or no longer a
			// compare check): an old one must not stand for it.
			metricPrimaryGauge.DeleteLabelValues(ns, name, m.Name)
		}
	}
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
	releasesTotal.WithLabelValues(ns, name, result).Inc()
	releaseDuration.WithLabelValues(ns, name, result).Observe(now.Sub(st.RunStartedAt.Time).Seconds())
}

// forgetMetrics drops a deleted Rollout's series.
func forgetMetrics(namespace, name string) {
	labels := prometheus.Labels{"namespace": namespace, "name": name}
	for _, v := range []*prometheus.GaugeVec{phaseGauge, weightGauge, failedChecksGauge, metricValueGauge, metricPrimaryGauge} {
		v.DeletePartialMatch(labels)
	}
	releaseDuration.DeletePartialMatch(labels)
	releasesTotal.DeletePartialMatch(labels)
}
