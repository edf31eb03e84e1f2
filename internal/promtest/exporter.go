package promtest

import (
	"fmt"
	"maps"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// Source names the metrics of one source of requests the way a router (or
// an application) exports them: a request counter with a status-code label
// and a latency histogram.
type Source struct {
	// Requests is the counter's name, e.g. http_requests_total.
	Requests string
	// CodeLabel is the label holding the HTTP status code.
	CodeLabel string
	// Duration is the histogram's base name (without _bucket).
	Duration string
	// Millis is true when the histogram is in milliseconds, not seconds.
	Millis bool
	// Labels identify the source (pod, workload, service, cluster).
	Labels map[string]string
}

// HTTPApp is an application's own metrics (promhttp conventions) as scraped
// from one pod by a Kubernetes-aware Prometheus.
func HTTPApp(namespace, pod string) Source {
	return Source{Requests: "http_requests_total", CodeLabel: "code", Duration: "http_request_duration_seconds",
		Labels: map[string]string{"namespace": namespace, "pod": pod}}
}

// Istio is the standard Istio metrics reported by a workload's sidecar.
func Istio(namespace, workload string) Source {
	return Source{Requests: "istio_requests_total", CodeLabel: "response_code", Duration: "istio_request_duration_milliseconds", Millis: true,
		Labels: map[string]string{"reporter": "destination", "destination_workload_namespace": namespace, "destination_workload": workload}}
}

// Traefik is Traefik's per-service metrics; service is the Traefik service
// name, e.g. shop-podinfo-canary-http-9898@kubernetesgateway.
func Traefik(service string) Source {
	return Source{Requests: "traefik_service_requests_total", CodeLabel: "code", Duration: "traefik_service_request_duration_seconds",
		Labels: map[string]string{"service": service, "method": "GET", "protocol": "http"}}
}

// Envoy is an Envoy cluster's upstream metrics.
func Envoy(cluster string) Source {
	return Source{Requests: "envoy_cluster_upstream_rq", CodeLabel: "envoy_response_code", Duration: "envoy_cluster_upstream_rq_time", Millis: true,
		Labels: map[string]string{"envoy_cluster_name": cluster}}
}

// Traffic is the load a source sees: requests per second, the share of them
// that answer 500, and the latency of every request.
type Traffic struct {
	RPS        float64
	ErrorRatio float64
	Latency    time.Duration
}

// bucketsSeconds are the histogram's upper bounds in seconds.
var bucketsSeconds = []float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}

// Exporter serves Prometheus text metrics for the sources a test sets. The
// counters grow at each scrape by what the sources' traffic would have
// produced since the previous one, so rate() sees the traffic set.
type Exporter struct {
	// Addr is the exporter's host:port, the target to scrape.
	Addr string

	mu      sync.Mutex
	sources map[string]*state
	gauges  map[string]gauge
	srv     *httptest.Server
}

// gauge is a gauge series whose value is read at each scrape.
type gauge struct {
	name   string
	labels map[string]string
	value  func() float64
}

type state struct {
	src     Source
	traffic Traffic
	last    time.Time
	ok, bad float64
	buckets []float64 // cumulative counts per bucket
	count   float64
	sum     float64
}

// NewExporter starts an exporter on loopback, closed in the test's cleanup.
func NewExporter(t testing.TB) *Exporter {
	t.Helper()
	e := &Exporter{sources: map[string]*state{}, gauges: map[string]gauge{}}
	e.srv = httptest.NewServer(http.HandlerFunc(e.serve))
	t.Cleanup(e.srv.Close)
	e.Addr = strings.TrimPrefix(e.srv.URL, "http://")
	return e
}

func key(s Source) string {
	var b strings.Builder
	b.WriteString(s.Requests)
	for _, k := range slices.Sorted(maps.Keys(s.Labels)) {
		fmt.Fprintf(&b, ",%s=%s", k, s.Labels[k])
	}
	return b.String()
}

// Set starts (or changes) the traffic of a source. Counters already counted
// are kept, as a real process's would be.
func (e *Exporter) Set(src Source, tr Traffic) {
	e.mu.Lock()
	defer e.mu.Unlock()
	now := time.Now()
	st, ok := e.sources[key(src)]
	if !ok {
		st = &state{src: src, last: now, buckets: make([]float64, len(bucketsSeconds))}
		e.sources[key(src)] = st
	}
	st.advance(now)
	st.traffic = tr
}

// SetGauge exports a gauge series whose value is asked of value at each
// scrape, e.g. a latency with noise. It replaces the series of the same
// name and labels.
func (e *Exporter) SetGauge(name string, labels map[string]string, value func() float64) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.gauges[key(Source{Requests: name, Labels: labels})] = gauge{name: name, labels: labels, value: value}
}

// Remove stops exporting a source: its series go stale in Prometheus.
func (e *Exporter) Remove(src Source) {
	e.mu.Lock()
	defer e.mu.Unlock()
	delete(e.sources, key(src))
}

// advance adds the requests served since the last advance.
func (st *state) advance(now time.Time) {
	n := st.traffic.RPS * now.Sub(st.last).Seconds()
	st.last = now
	if n <= 0 {
		return
	}
	st.bad += n * st.traffic.ErrorRatio
	st.ok += n * (1 - st.traffic.ErrorRatio)
	lat := st.traffic.Latency.Seconds()
	for i, le := range bucketsSeconds {
		if lat <= le {
			st.buckets[i] += n
		}
	}
	st.count += n
	st.sum += n * st.scale(lat)
}

func (st *state) scale(seconds float64) float64 {
	if st.src.Millis {
		return seconds * 1000
	}
	return seconds
}

func (e *Exporter) serve(w http.ResponseWriter, _ *http.Request) {
	e.mu.Lock()
	defer e.mu.Unlock()
	w.Header().Set("Content-Type", "text/plain; version=0.0.4")
	now := time.Now()
	for _, k := range slices.Sorted(maps.Keys(e.sources)) {
		st := e.sources[k]
		st.advance(now)
		src := st.src
		fmt.Fprintf(w, "%s%s %g\n", src.Requests, labels(src.Labels, src.CodeLabel, "200"), st.ok)
		if st.bad > 0 {
			fmt.Fprintf(w, "%s%s %g\n", src.Requests, labels(src.Labels, src.CodeLabel, "500"), st.bad)
		}
		for i, le := range bucketsSeconds {
			fmt.Fprintf(w, "%s_bucket%s %g\n", src.Duration, labels(src.Labels, "le", fmt.Sprint(st.scale(le))), st.buckets[i])
		}
		fmt.Fprintf(w, "%s_bucket%s %g\n", src.Duration, labels(src.Labels, "le", "+Inf"), st.count)
		fmt.Fprintf(w, "%s_sum%s %g\n", src.Duration, labels(src.Labels), st.sum)
		fmt.Fprintf(w, "%s_count%s %g\n", src.Duration, labels(src.Labels), st.count)
	}
	for _, k := range slices.Sorted(maps.Keys(e.gauges)) {
		g := e.gauges[k]
		fmt.Fprintf(w, "%s%s %g\n", g.name, labels(g.labels), g.value())
	}
}

// labels renders {k="v",...} from base plus extra key/value pairs.
func labels(base map[string]string, extra ...string) string {
	all := maps.Clone(base)
	for i := 0; i+1 < len(extra); i += 2 {
		all[extra[i]] = extra[i+1]
	}
	parts := make([]string, 0, len(all))
	for _, k := range slices.Sorted(maps.Keys(all)) {
		parts = append(parts, fmt.Sprintf("%s=%q", k, all[k]))
	}
	return "{" + strings.Join(parts, ",") + "}"
}
