package metricservers

import (
	"path/filepath"
	"testing"
	"time"
)

// VictoriaMetrics is a single-node victoria-metrics started for a test: a
// second server speaking Prometheus' query API.
type VictoriaMetrics struct {
	// URL is its HTTP API, e.g. http://127.0.0.1:40123 (/api/v1/query).
	URL string
}

// StartVictoriaMetrics runs victoria-metrics with no search latency offset,
// so that imported points are queryable at once.
func StartVictoriaMetrics(t testing.TB) *VictoriaMetrics {
	t.Helper()
	bin := binary(t, "victoria-metrics")
	dir := t.TempDir()
	addr := freeAddr(t)
	p := start(t, "victoria-metrics", dir, nil, bin,
		"-storageDataPath="+filepath.Join(dir, "data"), "-httpListenAddr="+addr,
		"-search.latencyOffset=0s", "-search.disableCache", "-loggerLevel=ERROR")
	s := &VictoriaMetrics{URL: "http://" + addr}
	p.waitHTTP(t, s.URL+"/health", 200, 20*time.Second)
	return s
}

// Import adds samples in the Prometheus text format (lines such as
// `errors{service="shop"} 0.5`) and flushes them to search.
func (s *VictoriaMetrics) Import(t testing.TB, text string) {
	t.Helper()
	post(t, s.URL+"/api/v1/import/prometheus", "text/plain", []byte(text))
	post(t, s.URL+"/internal/force_flush", "text/plain", nil)
}
