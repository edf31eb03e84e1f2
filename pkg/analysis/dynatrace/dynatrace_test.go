package dynatrace

import (
	"net/http"
	"testing"
	"time"

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

// window is the compare window of the series tests: five minutes from
// 1700000000 (ms 1700000000000), 30s steps.
var window = providertest.Window{Start: time.Unix(1700000000, 0), End: time.Unix(1700000300, 0), Step: 30 * time.Second}

// A documented MetricData answer at resolution 1m over the window, with a
// null.
const documentedSeries = `{"totalCount":1,"nextPageKey":null,"resolution":"1m","result":[{"metricId":"builtin:service.response.time:splitBy():avg",
"dataPointCountRatio":0.0000036,"dimensionCountRatio":0.00003,"data":[{"dimensions":[],"dimensionMap":{},
"timestamps":[1700000040000,1700000100000,1700000160000,1700000220000,1700000280000],"values":[210.5,null,198.25,204.0,201.0]}]}]}`

func TestDynatraceSeriesIsTheNonNullValuesOfTheOneSeries(t *testing.T) {
	providertest.RunSeries(t, []providertest.SeriesCase{
		{Name: "the documented answer gives its values, oldest first, nulls skipped",
			Answer: providertest.Answer{Body: documentedSeries}, Want: []float64{210.5, 198.25, 204, 201}},
		{Name: "no data points is no data", Answer: providertest.Answer{Body: `{"totalCount":0,"nextPageKey":null,"resolution":"1m","result":[{"metricId":"builtin:service.response.time","data":[]}]}`},
			Err: "dynatrace returned no series", NoData: true},
		{Name: "only nulls are no data", Answer: providertest.Answer{Body: `{"totalCount":1,"resolution":"1m","result":[{"metricId":"m","data":[{"dimensions":[],"timestamps":[1700000000000,1700000060000],"values":[null,null]}]}]}`},
			Err: "dynatrace series m{} has no value between 2023-11-14T22:13:20Z and 2023-11-14T22:18:20Z", NoData: true},
		{Name: "two series are an error", Answer: providertest.Answer{Body: `{"totalCount":2,"result":[{"metricId":"m","data":[{"dimensions":["SERVICE-1"],"timestamps":[1700000000000],"values":[1]},{"dimensions":["SERVICE-2"],"timestamps":[1700000000000],"values":[2]}]}]}`},
			Err: "2 series (m{SERVICE-1}, m{SERVICE-2}), want exactly one"},
		{Name: "two metrics are an error", Answer: providertest.Answer{Body: `{"totalCount":2,"result":[{"metricId":"a","data":[{"dimensions":[],"timestamps":[1700000000000],"values":[1]}]},{"metricId":"b","data":[{"dimensions":[],"timestamps":[1700000000000],"values":[2]}]}]}`},
			Err: "2 series (a{}, b{}), want exactly one"},
		{Name: "timestamps not matching values are an error", Answer: providertest.Answer{Body: `{"totalCount":1,"result":[{"metricId":"m","data":[{"dimensions":[],"timestamps":[1700000000000],"values":[1,2]}]}]}`},
			Err: "1 timestamps for 2 values"},
		{Name: "a 429 is the rate limit, never a pass", Answer: providertest.RateLimited, Err: "dynatrace rate limit reached (429 Too Many Requests); it asks to retry after 30"},
		{Name: "a 401 says the token was refused", Answer: providertest.Answer{Status: 401, Body: `{"error":{"code":401,"message":"Token Authentication failed"}}`},
			Err: "dynatrace refused the credentials (401 Unauthorized)"},
	}, "builtin:service.response.time:splitBy():avg", window, func(url string) (provider.Provider, error) {
		return New(providertest.Config(sluicev1.MetricProvider{Type: "dynatrace", Address: url}, token))
	})
}

func TestDynatraceSeriesAsksForTheWindowAtTheStepInWholeMinutes(t *testing.T) {
	var got *http.Request
	srv := providertest.Server(t, &providertest.Answer{Body: documentedSeries}, func(r *http.Request) { got = r })
	p, err := New(providertest.Config(sluicev1.MetricProvider{Type: "dynatrace", Address: srv.URL}, token))
	if err != nil {
		t.Fatal(err)
	}
	for step, want := range map[time.Duration]string{30 * time.Second: "1m", time.Minute: "1m", 90 * time.Second: "2m", 5 * time.Minute: "5m", 0: ""} {
		if _, err := p.(provider.SeriesProvider).Series(t.Context(), "builtin:service.response.time:avg", window.Start, window.End, step); err != nil {
			t.Fatal(err)
		}
		q := got.URL.Query()
		if got.URL.Path != "/api/v2/metrics/query" || q.Get("metricSelector") != "builtin:service.response.time:avg" ||
			q.Get("from") != "1700000000000" || q.Get("to") != "1700000300000" || q.Get("resolution") != want {
			t.Errorf("step %s: request %s, want resolution %q", step, got.URL, want)
		}
		if a := got.Header.Get("Authorization"); a != "Api-Token dt0c01.ABC" {
			t.Errorf("Authorization %q", a)
		}
	}
}
