package newrelic

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	sluicev1 "github.com/sluice-dev/sluice/api/v1alpha1"
	"github.com/sluice-dev/sluice/pkg/analysis/provider"
	"github.com/sluice-dev/sluice/pkg/analysis/provider/providertest"
)

var key = map[string]string{"api-key": "NRAK-XYZ"}

func spec(address string) sluicev1.MetricProvider {
	account := int64(1234567)
	return sluicev1.MetricProvider{Type: "newrelic", Address: address, AccountID: &account}
}

func TestNewRelicReadsTheOneNumberOfTheNRQLResults(t *testing.T) {
	providertest.Run(t, []providertest.Case{
		{Name: "one row with one number", Answer: providertest.Answer{Body: `{"data":{"actor":{"account":{"nrql":{"results":[{"percentage":1.25}]}}}}}`}, Want: 1.25},
		{Name: "the time bounds of a row are not values", Answer: providertest.Answer{Body: `{"data":{"actor":{"account":{"nrql":{"results":[{"beginTimeSeconds":1,"endTimeSeconds":2,"count":7}]}}}}}`}, Want: 7},
		{Name: "no rows is no data", Answer: providertest.Answer{Body: `{"data":{"actor":{"account":{"nrql":{"results":[]}}}}}`}, Err: "no rows", NoData: true},
		{Name: "a percentile's one number is its value", Answer: providertest.Answer{Body: `{"data":{"actor":{"account":{"nrql":{"results":[{"percentile.duration":{"95":0.31}}]}}}}}`}, Want: 0.31},
		{Name: "a null value is no data", Answer: providertest.Answer{Body: `{"data":{"actor":{"account":{"nrql":{"results":[{"average.duration":null}]}}}}}`}, Err: "null", NoData: true},
		{Name: "a TIMESERIES is an error", Answer: providertest.Answer{Body: `{"data":{"actor":{"account":{"nrql":{"results":[{"count":1},{"count":2}]}}}}}`}, Err: "2 rows, want one"},
		{Name: "two fields are an error", Answer: providertest.Answer{Body: `{"data":{"actor":{"account":{"nrql":{"results":[{"a":1,"b":2}]}}}}}`}, Err: "the fields a, b, want exactly one"},
		{Name: "GraphQL errors in a 200 are an error", Answer: providertest.Answer{Body: `{"data":{"actor":{"account":{"nrql":null}}},"errors":[{"message":"NRQL Syntax Error: Error at line 1 position 8","path":["actor","account","nrql"]}]}`},
			Err: "new relic: NRQL Syntax Error"},
		{Name: "a 429 is the rate limit, never a pass", Answer: providertest.RateLimited, Err: "new relic rate limit reached (429 Too Many Requests); it asks to retry after 30"},
		{Name: "a 401 says the key was refused", Answer: providertest.Answer{Status: 401, Body: `{"errors":[{"message":"Invalid API key"}]}`},
			Err: "new relic refused the credentials (401 Unauthorized)"},
	}, "SELECT count(*) FROM Transaction", func(url string) (provider.Provider, error) {
		return New(providertest.Config(spec(url), key))
	})
}

func TestNewRelicSendsTheNRQLAsAVariableWithItsKey(t *testing.T) {
	var got *http.Request
	var body map[string]any
	srv := providertest.Server(t, &providertest.Answer{Body: `{"data":{"actor":{"account":{"nrql":{"results":[{"count":1}]}}}}}`}, func(r *http.Request) {
		got = r
		raw, _ := io.ReadAll(r.Body)
		_ = json.Unmarshal(raw, &body)
	})
	p, err := New(providertest.Config(spec(srv.URL), key))
	if err != nil {
		t.Fatal(err)
	}
	nrql := `SELECT count(*) FROM Transaction WHERE appName = 'shop" } }'`
	if _, err := p.Query(t.Context(), nrql); err != nil {
		t.Fatal(err)
	}
	if got.Method != http.MethodPost || got.URL.Path != "/graphql" || got.Header.Get("API-Key") != "NRAK-XYZ" {
		t.Errorf("request %s %s, headers %v", got.Method, got.URL, got.Header)
	}
	vars, _ := body["variables"].(map[string]any)
	if body["query"] != nrqlQuery || vars["nrql"] != nrql || vars["accountId"] != float64(1234567) {
		t.Errorf("body %v", body)
	}
}

// window is the compare window of the series tests: five minutes from
// 1700000000, 30s steps.
var window = providertest.Window{Start: time.Unix(1700000000, 0), End: time.Unix(1700000300, 0), Step: 30 * time.Second}

// results wraps TIMESERIES buckets in the NerdGraph answer.
func results(buckets string) providertest.Answer {
	return providertest.Answer{Body: `{"data":{"actor":{"account":{"nrql":{"results":[` + buckets + `]}}}}}`}
}

func TestNewRelicSeriesIsTheBucketsOfTheWindow(t *testing.T) {
	providertest.RunSeries(t, []providertest.SeriesCase{
		{Name: "the buckets overlapping the window, oldest first, nulls skipped", Answer: results(
			`{"beginTimeSeconds":1699999940,"endTimeSeconds":1699999970,"average.duration":9},` +
				`{"beginTimeSeconds":1699999990,"endTimeSeconds":1700000020,"average.duration":0.21},` +
				`{"beginTimeSeconds":1700000020,"endTimeSeconds":1700000050,"average.duration":null},` +
				`{"beginTimeSeconds":1700000050,"endTimeSeconds":1700000080,"average.duration":0.19},` +
				`{"beginTimeSeconds":1700000300,"endTimeSeconds":1700000330,"average.duration":9}`),
			Want: []float64{0.21, 0.19}},
		{Name: "a percentile's buckets hold one number each", Answer: results(
			`{"beginTimeSeconds":1700000000,"endTimeSeconds":1700000030,"percentile.duration":{"95":0.4}},` +
				`{"beginTimeSeconds":1700000030,"endTimeSeconds":1700000060,"percentile.duration":{"95":0.5}}`),
			Want: []float64{0.4, 0.5}},
		{Name: "no buckets is no data", Answer: results(``), Err: "no buckets", NoData: true},
		{Name: "only null buckets are no data", Answer: results(`{"beginTimeSeconds":1700000000,"endTimeSeconds":1700000030,"average.duration":null}`),
			Err: "the NRQL query has no value between 2023-11-14T22:13:20Z and 2023-11-14T22:18:20Z", NoData: true},
		{Name: "one row without time bounds is an error", Answer: results(`{"count":3}`), Err: "not TIMESERIES buckets"},
		{Name: "two values per bucket are an error", Answer: results(`{"beginTimeSeconds":1700000000,"endTimeSeconds":1700000030,"a":1,"b":2}`),
			Err: "the fields a, b, want exactly one"},
		{Name: "GraphQL errors in a 200 are an error", Answer: providertest.Answer{Body: `{"data":{"actor":{"account":{"nrql":null}}},"errors":[{"message":"NRQL Syntax Error: Error at line 1 position 8"}]}`},
			Err: "new relic: NRQL Syntax Error"},
		{Name: "a 429 is the rate limit, never a pass", Answer: providertest.RateLimited, Err: "new relic rate limit reached (429 Too Many Requests); it asks to retry after 30"},
		{Name: "a 401 says the key was refused", Answer: providertest.Answer{Status: 401, Body: `{"errors":[{"message":"Invalid API key"}]}`},
			Err: "new relic refused the credentials (401 Unauthorized)"},
	}, "SELECT average(duration) FROM Transaction WHERE appName = 'shop'", window, func(url string) (provider.Provider, error) {
		return New(providertest.Config(spec(url), key))
	})
}

func TestNewRelicSeriesNRQLGetsTheWindowUnlessItHasOne(t *testing.T) {
	for _, tc := range []struct {
		name, query string
		step        time.Duration
		want, err   string
	}{
		{name: "a query without time clauses gets the window and the step",
			query: "SELECT average(duration) FROM Transaction WHERE appName = 'shop'", step: 30 * time.Second,
			want: "SELECT average(duration) FROM Transaction WHERE appName = 'shop' SINCE 1700000000 UNTIL 1700000300 TIMESERIES 30 seconds"},
		{name: "without a step TIMESERIES picks its buckets", query: "SELECT count(*) FROM Transaction ",
			want: "SELECT count(*) FROM Transaction SINCE 1700000000 UNTIL 1700000300 TIMESERIES"},
		{name: "a TIMESERIES query runs as written", query: "SELECT count(*) FROM Transaction since 10 minutes ago timeseries 1 minute", step: 30 * time.Second,
			want: "SELECT count(*) FROM Transaction since 10 minutes ago timeseries 1 minute"},
		{name: "clause words inside quotes are not clauses", query: "SELECT count(*) FROM Transaction WHERE name = 'since UNTIL facet' AND `timeseries` = 1", step: time.Minute,
			want: "SELECT count(*) FROM Transaction WHERE name = 'since UNTIL facet' AND `timeseries` = 1 SINCE 1700000000 UNTIL 1700000300 TIMESERIES 60 seconds"},
		{name: "FACET is refused", query: "SELECT count(*) FROM Transaction Facet appName", err: "may not have FACET"},
		{name: "FACET is refused with TIMESERIES too", query: "SELECT count(*) FROM Transaction FACET appName TIMESERIES", err: "may not have FACET"},
		{name: "SINCE without TIMESERIES is refused", query: "SELECT count(*) FROM Transaction SINCE 5 minutes ago", err: "has SINCE or UNTIL but no TIMESERIES"},
		{name: "UNTIL without TIMESERIES is refused", query: "SELECT count(*) FROM Transaction until 1 minute ago", err: "has SINCE or UNTIL but no TIMESERIES"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := seriesNRQL(tc.query, window.Start, window.End, tc.step)
			switch {
			case tc.err == "" && (err != nil || got != tc.want):
				t.Errorf("got %q, %v; want %q", got, err, tc.want)
			case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
				t.Errorf("got %q, %v; want an error containing %q", got, err, tc.err)
			}
		})
	}
}

func TestNewRelicSeriesSendsTheWindowedNRQL(t *testing.T) {
	var body map[string]any
	requests := 0
	srv := providertest.Server(t, &providertest.Answer{Body: results(`{"beginTimeSeconds":1700000000,"endTimeSeconds":1700000030,"count":1}`).Body}, func(r *http.Request) {
		requests++
		raw, _ := io.ReadAll(r.Body)
		_ = json.Unmarshal(raw, &body)
	})
	p, err := New(providertest.Config(spec(srv.URL), key))
	if err != nil {
		t.Fatal(err)
	}
	got, err := p.(provider.SeriesProvider).Series(t.Context(), "SELECT count(*) FROM Transaction", window.Start, window.End, window.Step)
	if err != nil || len(got) != 1 || got[0] != 1 {
		t.Fatalf("got %v, %v", got, err)
	}
	vars, _ := body["variables"].(map[string]any)
	if vars["nrql"] != "SELECT count(*) FROM Transaction SINCE 1700000000 UNTIL 1700000300 TIMESERIES 30 seconds" {
		t.Errorf("nrql %v", vars["nrql"])
	}
	_, err = p.(provider.SeriesProvider).Series(t.Context(), "SELECT count(*) FROM Transaction FACET host", window.Start, window.End, window.Step)
	if err == nil || !strings.Contains(err.Error(), "FACET") || requests != 1 {
		t.Errorf("a FACET query: %v after %d requests, want it refused before any request", err, requests-1)
	}
}
