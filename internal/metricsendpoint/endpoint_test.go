package metricsendpoint_test

import (
	"compress/gzip"
	"context"
	"errors"
	"io"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/sluice-dev/sluice/internal/metricsendpoint"
	"github.com/sluice-dev/sluice/internal/promtest"
)

// fleet streams two families, one of them empty, with label values that
// need escaping.
type fleet struct{}

// awkward is a label value with every character the text format escapes.
const awkward = "say \"hi\"\\n\nbye é"

func (fleet) WriteSeries(w *metricsendpoint.Writer) {
	w.Family("app_up", "1 while the app is up.\nOne line\\more.", metricsendpoint.Gauge)
	w.Sample(1, "app", "web", "note", awkward)
	w.Sample(math.Inf(1), "app", "api", "note", "")
	w.Sample(0.25, "app", "cart", "note", "plain")
	w.Family("app_nothing", "A family with no series.", metricsendpoint.Gauge)
	w.Family("app_restarts_total", "Restarts.", metricsendpoint.Counter)
	w.Sample(3)
	w.Family("app_latency_seconds", "Latency.", metricsendpoint.Histogram)
	w.Bucket(2, 0.5, "app", "web")
	w.Bucket(5, math.Inf(1), "app", "web")
	w.Sum(4.5, "app", "web")
	w.Count(5, "app", "web")
}

func registry(t *testing.T) *prometheus.Registry {
	t.Helper()
	reg := prometheus.NewRegistry()
	c := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "registry_requests_total", Help: "From the registry."}, []string{"code"})
	c.WithLabelValues("200").Add(7)
	reg.MustRegister(c)
	return reg
}

func scrape(t *testing.T, h http.Handler, header http.Header) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(http.MethodGet, "/metrics", nil)
	for k, v := range header {
		req.Header[k] = v
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	return w
}

func parse(t *testing.T, r io.Reader) map[string]*dto.MetricFamily {
	t.Helper()
	p := expfmt.NewTextParser(model.LegacyValidation)
	families, err := p.TextToMetricFamilies(r)
	if err != nil {
		t.Fatalf("the answer does not parse as the text format: %v", err)
	}
	return families
}

func TestAScrapeIsTheRegistrysMetricsThenTheStreamedOnes(t *testing.T) {
	h := metricsendpoint.Handler(registry(t), fleet{})
	w := scrape(t, h, http.Header{"Accept": {"application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited;q=0.7,text/plain;version=0.0.4;q=0.3"}})
	if w.Code != http.StatusOK {
		t.Fatalf("scrape: %d %s", w.Code, w.Body)
	}
	// Asked for protobuf first, it answers in the text format it writes.
	if ct := w.Header().Get("Content-Type"); !strings.HasPrefix(ct, "text/plain; version=0.0.4") {
		t.Errorf("Content-Type %q, want the text format", ct)
	}
	body := w.Body.String()
	if !strings.HasPrefix(body, "# HELP registry_requests_total") {
		t.Errorf("the registry's metrics do not come first:\n%s", body)
	}
	if strings.Contains(body, "app_nothing") {
		t.Errorf("a family with no series was written:\n%s", body)
	}
	families := parse(t, strings.NewReader(body))
	if got := families["registry_requests_total"].GetMetric()[0].GetCounter().GetValue(); got != 7 {
		t.Errorf("registry_requests_total = %v, want 7", got)
	}
	up := families["app_up"]
	if up.GetType() != dto.MetricType_GAUGE || up.GetHelp() != "1 while the app is up.\nOne line\\more." {
		t.Errorf("app_up is a %v with help %q", up.GetType(), up.GetHelp())
	}
	notes := map[string]float64{}
	for _, m := range up.GetMetric() {
		for _, l := range m.GetLabel() {
			if l.GetName() == "note" {
				notes[l.GetValue()] = m.GetGauge().GetValue()
			}
		}
	}
	if notes[awkward] != 1 || !math.IsInf(notes[""], 1) || notes["plain"] != 0.25 || len(notes) != 3 {
		t.Errorf("app_up by note: %v", notes)
	}
	latency := families["app_latency_seconds"]
	if h := latency.GetMetric()[0].GetHistogram(); latency.GetType() != dto.MetricType_HISTOGRAM || len(h.GetBucket()) != 2 ||
		h.GetBucket()[0].GetUpperBound() != 0.5 || h.GetBucket()[0].GetCumulativeCount() != 2 || h.GetSampleSum() != 4.5 || h.GetSampleCount() != 5 {
		t.Errorf("app_latency_seconds: %v", latency)
	}
	restarts := families["app_restarts_total"]
	if restarts.GetType() != dto.MetricType_COUNTER || restarts.GetMetric()[0].GetCounter().GetValue() != 3 || len(restarts.GetMetric()[0].GetLabel()) != 0 {
		t.Errorf("app_restarts_total: %v", restarts)
	}
}

func TestAScrapeIsCompressedWhenTheScraperAsks(t *testing.T) {
	h := metricsendpoint.Handler(registry(t), fleet{})
	plain := scrape(t, h, nil).Body.String()
	for range 2 { // the second from a pooled writer
		w := scrape(t, h, http.Header{"Accept-Encoding": {"deflate, gzip;q=1.0"}})
		if w.Header().Get("Content-Encoding") != "gzip" {
			t.Fatalf("Content-Encoding %q, want gzip", w.Header().Get("Content-Encoding"))
		}
		r, err := gzip.NewReader(w.Body)
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(r)
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != plain {
			t.Errorf("decompressed:\n%s\nwant what an uncompressed scrape says:\n%s", got, plain)
		}
	}
}

type failing struct{}

func (failing) Gather() ([]*dto.MetricFamily, error) {
	return nil, errors.New("two collectors export x")
}

func TestARegistryThatCannotGatherFailsTheScrape(t *testing.T) {
	w := scrape(t, metricsendpoint.Handler(failing{}, fleet{}), nil)
	if w.Code != http.StatusInternalServerError || !strings.Contains(w.Body.String(), "two collectors export x") {
		t.Errorf("scrape: %d %q, want 500 with the error", w.Code, w.Body)
	}
}

// A real Prometheus scrapes the endpoint (it asks for gzip and offers
// several formats) and stores every series, its labels as written.
func TestPrometheusStoresWhatTheEndpointServes(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: metricsendpoint.Handler(registry(t), fleet{}), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })

	prom := promtest.Start(t, ln.Addr().String())
	prom.WaitFor(t, `up{job="test"} == 1`, 30*time.Second)
	ctx := context.Background()
	for q, want := range map[string][]string{
		`registry_requests_total{code="200"}`: {"7"},
		`app_up{app="web",note="` + strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`).Replace(awkward) + `"}`: {"1"},
		`app_up{app="api",note=""}`:                           {"+Inf"},
		`app_up{app="cart"}`:                                  {"0.25"},
		`app_restarts_total`:                                  {"3"},
		`app_latency_seconds_bucket{le="0.5"}`:                {"2"},
		`histogram_quantile(0.4, app_latency_seconds_bucket)`: {"0.5"},
		`app_latency_seconds_sum / app_latency_seconds_count`: {"0.9"},
		`scrape_samples_scraped`:                              {"9"},
		`count({__name__=~"app_.*"})`:                         {"8"},
	} {
		got, err := prom.Query(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got, want) {
			t.Errorf("%s = %v, want %v", q, got, want)
		}
	}
}
