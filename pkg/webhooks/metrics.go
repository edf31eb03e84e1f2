package webhooks

import (
	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	sluicev1 "github.com/sluice-dev/sluice/api/v1alpha1"
)

var (
	callDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "sluice_webhook_duration_seconds", Help: "Duration of webhook calls, retries included, by hook type.",
		Buckets: prometheus.ExponentialBuckets(0.005, 3, 10),
	}, []string{"type"})
	callFailures = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "sluice_webhook_failures_total",
		Help: "Webhook calls not answered 2xx (errors, timeouts and closed gates), by hook type.",
	}, []string{"type"})
)

func init() {
	metrics.Registry.MustRegister(callDuration, callFailures)
	// Each type's failures exported at 0 from the start: a first failure
	// is then an increase that rate() and increase() see, not a series
	// born at 1.
	for _, t := range sluicev1.HookTypes {
		callFailures.WithLabelValues(string(t))
	}
}
