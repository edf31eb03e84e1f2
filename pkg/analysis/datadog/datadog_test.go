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
