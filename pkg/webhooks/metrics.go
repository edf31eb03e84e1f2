package webhooks

import (
	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
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

func init() { metrics.Registry.MustRegister(callDuration, callFailures) }
