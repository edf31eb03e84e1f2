package dynatrace

import (
	"net/http"
	"testing"

	sluicev1 "github.com/sluice-dev/sluice/api/v1alpha1"
	"github.com/sluice-dev/sluice/pkg/analysis/provider"
	"github.com/sluice-dev/sluice/pkg/analysis/provider/providertest"
)

var token = map[string]string{"api-token": "dt0c01.ABC"}

// A metrics API v2 answer in the documented MetricData shape: one series
// folded to one value by resolution=Inf.
const documented = `{"totalCount":1,"nextPageKey":null,"resolution":"Inf","result":[{"metricId":"builtin:service.errors.total.rate:splitBy():avg",
"dataPointCountRatio":0.0000036,"dimensionCountRatio":0.00003,"data":[{"dimensions":[],"dimensionMap":{},"timestamps":[1700000000000],"values":[0.42]}]}]}`

func TestDynatraceReadsTheOneSeriesOfTheMetricsAPI(t *testing.T) {
	providertest.Run(t, []providertest.Case{
		{Name: "the documented answer gives its value", Answer: providertest.Answer{Body: documented}, Want: 0.42},
		{Name: "no data points is no data", Answer: providertest.Answer{Body: `{"totalCount":0,"nextPageKey":null,"resolution":"Inf","result":[{"metricId":"builtin:service.errors.total.rate","dataPointCountRatio":0,"dimensionCountRatio":0,"data":[]}]}`},
			Err: "no series", NoData: true},
		{Name: "a null value is no data", Answer: providertest.Answer{Body: `{"totalCount":1,"result":[{"metricId":"m","data":[{"dimensions":[],"timestamps":[1],"values":[null]}]}]}`},
			NoData: true, Err: "null"},
		{Name: "two series are an error", Answer: providertest.Answer{Body: `{"totalCount":2,"result":[{"metricId":"m","data":[{"dimensions":["SERVICE-1"],"values":[1]},{"dimensions":["SERVICE-2"],"values":[2]}]}]}`},
			Err: "2 series (m{SERVICE-1}, m{SERVICE-2}), want exactly one"},
		{Name: "the documented error envelope is an error", Answer: providertest.Answer{Status: 400, Body: `{"error":{"code":400,"message":"The metric selector is invalid"}}`},
			Err: "dynatrace answered 400 Bad Request: {\"error\":{\"code\":400,\"message\":\"The metric selector is invalid\"}}"},
		{Name: "a 429 is the rate limit, never a pass", Answer: providertest.RateLimited, Err: "dynatrace rate limit reached (429 Too Many Requests); it asks to retry after 30"},
		{Name: "a 401 says the token was refused", Answer: providertest.Answer{Status: 401, Body: `{"error":{"code":401,"message":"Token Authentication failed"}}`},
			Err: "dynatrace refused the credentials (401 Unauthorized)"},
	}, "builtin:service.errors.total.rate:splitBy():avg", func(url string) (provider.Provider, error) {
		return New(providertest.Config(sluicev1.MetricProvider{Type: "dynatrace", Address: url}, token))
	})
}

func TestDynatraceSendsItsTokenSelectorAndWindow(t *testing.T) {
	var got *http.Request
	srv := providertest.Server(t, &providertest.Answer{Body: documented}, func(r *http.Request) { got = r })
	p, err := New(providertest.Config(sluicev1.MetricProvider{Type: "dynatrace", Address: srv.URL + "/"}, token))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Query(t.Context(), "builtin:service.response.time:avg"); err != nil {
		t.Fatal(err)
	}
	q := got.URL.Query()
	if got.URL.Path != "/api/v2/metrics/query" || q.Get("metricSelector") != "builtin:service.response.time:avg" ||
		q.Get("from") != "now-300s" || q.Get("resolution") != "Inf" {
		t.Errorf("request %s", got.URL)
	}
	if a := got.Header.Get("Authorization"); a != "Api-Token dt0c01.ABC" {
		t.Errorf("Authorization %q", a)
	}
}
