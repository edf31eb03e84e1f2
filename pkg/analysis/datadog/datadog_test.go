package datadog

import (
	"net/http"
	"testing"
	"time"

	sluicev1 "github.com/sluice-dev/sluice/api/v1alpha1"
	"github.com/sluice-dev/sluice/pkg/analysis/provider"
	"github.com/sluice-dev/sluice/pkg/analysis/provider/providertest"
)

var keys = map[string]string{"api-key": "dd-api", "app-key": "dd-app"}

// The v1 /api/v1/query answer as Datadog's API reference documents it (two
// points, the newest null).
const documented = `{"status":"ok","res_type":"time_series","resp_version":1,"query":"sum:trace.http.request.errors{service:shop}.as_count()",
"from_date":1636542671000,"to_date":1636629071000,"group_by":[],"message":"",
"series":[{"unit":null,"query_index":0,"aggr":"sum","metric":"trace.http.request.errors","tag_set":[],
"expression":"sum:trace.http.request.errors{service:shop}.as_count()","scope":"service:shop","interval":60,"length":3,
"start":1636542600000,"end":1636629000000,"pointlist":[[1636542600000.0,1.0],[1636542660000.0,2.5],[1636542720000.0,null]],
"display_name":"trace.http.request.errors","attributes":{}}]}`

func TestDatadogReadsTheLastPointOfTheOneSeries(t *testing.T) {
	providertest.Run(t, []providertest.Case{
		{Name: "the documented answer gives its last non-null point", Answer: providertest.Answer{Body: documented}, Want: 2.5},
		{Name: "no series is no data", Answer: providertest.Answer{Body: `{"status":"ok","res_type":"time_series","series":[]}`},
			Err: "no series", NoData: true},
		{Name: "only null points are no data", Answer: providertest.Answer{Body: `{"status":"ok","series":[{"scope":"*","pointlist":[[1,null]]}]}`},
			NoData: true, Err: "null"},
		{Name: "two series are an error", Answer: providertest.Answer{Body: `{"status":"ok","series":[{"scope":"host:a","pointlist":[[1,1]]},{"scope":"host:b","pointlist":[[1,2]]}]}`},
			Err: "2 series (host:a, host:b), want exactly one"},
		{Name: "a query error in a 200 is an error", Answer: providertest.Answer{Body: `{"status":"error","res_type":"time_series","error":"Error parsing query: unable to parse sum:: Rule 'scope_expr' didn't match"}`},
			Err: "datadog: Error parsing query"},
		{Name: "a 400 quotes Datadog's errors", Answer: providertest.Answer{Status: 400, Body: `{"errors":["The value provided for parameter 'query' is invalid"]}`},
			Err: "400 Bad Request: {\"errors\":[\"The value provided for parameter 'query' is invalid\"]}"},
		{Name: "a 429 is the rate limit, never a pass", Answer: providertest.RateLimited,
			Err: "datadog rate limit reached (429 Too Many Requests); it asks to retry after 30"},
		{Name: "a 403 says the keys were refused", Answer: providertest.Unauthorized,
			Err: "datadog refused the credentials (403 Forbidden): check the template's secretRef"},
		{Name: "a redirect is not followed", Answer: providertest.Answer{Status: 302, Headers: map[string]string{"Location": "http://elsewhere/"}},
			Err: "redirects are not followed"},
		{Name: "an answer that is not JSON is an error", Answer: providertest.Answer{Body: `<html>`}, Err: "not the documented JSON"},
	}, "sum:trace.http.request.errors{service:shop}.as_count()", func(url string) (provider.Provider, error) {
		return New(providertest.Config(sluicev1.MetricProvider{Type: "datadog", Address: url}, keys))
	})
}

func TestDatadogSendsItsKeysAndTheWindow(t *testing.T) {
	var got *http.Request
	srv := providertest.Server(t, &providertest.Answer{Body: documented}, func(r *http.Request) { got = r })
	p, err := New(providertest.Config(sluicev1.MetricProvider{Type: "datadog", Address: srv.URL}, keys))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Unix(1700000000, 0)
	p.(*Datadog).now = func() time.Time { return now }
	if _, err := p.Query(t.Context(), "avg:system.cpu.idle{*}"); err != nil {
		t.Fatal(err)
	}
	q := got.URL.Query()
	if got.URL.Path != "/api/v1/query" || q.Get("query") != "avg:system.cpu.idle{*}" || q.Get("from") != "1699999700" || q.Get("to") != "1700000000" {
		t.Errorf("request %s", got.URL)
	}
	if got.Header.Get("DD-API-KEY") != "dd-api" || got.Header.Get("DD-APPLICATION-KEY") != "dd-app" {
		t.Errorf("headers %v", got.Header)
	}
}

func TestDatadogNeedsBothKeys(t *testing.T) {
	_, err := New(providertest.Config(sluicev1.MetricProvider{Type: "datadog"}, map[string]string{"api-key": "x"}))
	if err == nil || err.Error() != `Secret creds has no key "app-key" (provider type datadog)` {
		t.Errorf("got %v", err)
	}
	_, err = New(providertest.Config(sluicev1.MetricProvider{Type: "datadog"}, nil))
	if err == nil || err.Error() != `provider type datadog needs provider.secretRef with the key "api-key"` {
		t.Errorf("got %v", err)
	}
}

// window is the compare window of the series tests: five minutes from
// 1700000000 (ms 1700000000000), 30s steps.
var window = providertest.Window{Start: time.Unix(1700000000, 0), End: time.Unix(1700000300, 0), Step: 30 * time.Second}

// A documented answer over the window, with a point before it, a null
// inside it and a point after it.
const documentedSeries = `{"status":"ok","res_type":"time_series","resp_version":1,"query":"avg:trace.http.request.duration{service:shop}.rollup(avg, 30)",
"from_date":1700000000000,"to_date":1700000300000,"group_by":[],"message":"",
"series":[{"unit":null,"query_index":0,"aggr":"avg","metric":"trace.http.request.duration","tag_set":[],
"expression":"avg:trace.http.request.duration{service:shop}.rollup(avg, 30)","scope":"service:shop","interval":30,"length":5,
"start":1699999970000,"end":1700000330000,"pointlist":[[1699999970000.0,9.0],[1700000000000.0,0.2],[1700000030000.0,null],[1700000060000.0,0.25],[1700000330000.0,9.0]],
"display_name":"trace.http.request.duration","attributes":{}}]}`

func TestDatadogSeriesIsTheNonNullPointsInsideTheWindow(t *testing.T) {
	providertest.RunSeries(t, []providertest.SeriesCase{
		{Name: "the documented answer gives the points inside the window, oldest first, nulls skipped",
			Answer: providertest.Answer{Body: documentedSeries}, Want: []float64{0.2, 0.25}},
		{Name: "no series is no data", Answer: providertest.Answer{Body: `{"status":"ok","res_type":"time_series","series":[]}`},
			Err: "datadog returned no series", NoData: true},
		{Name: "only null points are no data", Answer: providertest.Answer{Body: `{"status":"ok","series":[{"scope":"service:shop","pointlist":[[1700000000000,null],[1700000030000,null]]}]}`},
			Err: "datadog series service:shop has no non-null point between 2023-11-14T22:13:20Z and 2023-11-14T22:18:20Z", NoData: true},
		{Name: "points only outside the window are no data", Answer: providertest.Answer{Body: `{"status":"ok","series":[{"scope":"*","pointlist":[[1600000000000,1]]}]}`},
			Err: "no non-null point", NoData: true},
		{Name: "two series are an error", Answer: providertest.Answer{Body: `{"status":"ok","series":[{"scope":"host:a","pointlist":[[1700000000000,1]]},{"scope":"host:b","pointlist":[[1700000000000,2]]}]}`},
			Err: "2 series (host:a, host:b), want exactly one"},
		{Name: "a 429 is the rate limit, never a pass", Answer: providertest.RateLimited,
			Err: "datadog rate limit reached (429 Too Many Requests); it asks to retry after 30"},
		{Name: "a 403 says the keys were refused", Answer: providertest.Unauthorized,
			Err: "datadog refused the credentials (403 Forbidden): check the template's secretRef"},
	}, "avg:trace.http.request.duration{service:shop}", window, func(url string) (provider.Provider, error) {
		return New(providertest.Config(sluicev1.MetricProvider{Type: "datadog", Address: url}, keys))
	})
}

func TestDatadogSeriesAsksForTheWindowRolledUpToTheStep(t *testing.T) {
	var got *http.Request
	srv := providertest.Server(t, &providertest.Answer{Body: documentedSeries}, func(r *http.Request) { got = r })
	p, err := New(providertest.Config(sluicev1.MetricProvider{Type: "datadog", Address: srv.URL}, keys))
	if err != nil {
		t.Fatal(err)
	}
	sp := p.(provider.SeriesProvider)
	for _, tc := range []struct {
		name, query string
		step        time.Duration
		want        string
	}{
		{name: "a query without rollup is rolled up to the step", query: "avg:trace.http.request.duration{service:shop}", step: 30 * time.Second,
			want: "avg:trace.http.request.duration{service:shop}.rollup(avg, 30)"},
		{name: "a query with its own rollup is sent as written", query: "sum:errors{service:shop}.as_count().rollup(sum, 60)", step: 30 * time.Second,
			want: "sum:errors{service:shop}.as_count().rollup(sum, 60)"},
		{name: "without a step the query is sent as written", query: "avg:latency{*}", want: "avg:latency{*}"},
		{name: "an arithmetic query is sent as written", query: "sum:errors{service:shop-api}.as_count() / sum:hits{service:shop-api}.as_count() * 100", step: 30 * time.Second,
			want: "sum:errors{service:shop-api}.as_count() / sum:hits{service:shop-api}.as_count() * 100"},
		{name: "a function of a query is sent as written", query: "abs(timeshift(avg:latency{env:prod-eu}, -3600))", step: time.Minute,
			want: "abs(timeshift(avg:latency{env:prod-eu}, -3600))"},
		{name: "tags with dashes and a by clause are one metric query", query: "sum:trace.http.request.hits{service:shop-api} by {service}.as_count()", step: time.Minute,
			want: "sum:trace.http.request.hits{service:shop-api} by {service}.as_count().rollup(avg, 60)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := sp.Series(t.Context(), tc.query, window.Start, window.End, tc.step); err != nil {
				t.Fatal(err)
			}
			q := got.URL.Query()
			if got.URL.Path != "/api/v1/query" || q.Get("query") != tc.want || q.Get("from") != "1700000000" || q.Get("to") != "1700000300" {
				t.Errorf("request %s, want query %q from 1700000000 to 1700000300", got.URL, tc.want)
			}
		})
	}
	if _, err := sp.Series(t.Context(), "avg:latency{*}", window.End, window.Start, 0); err == nil {
		t.Error("a window ending before it starts was accepted")
	}
}
