package web

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	sluicev1 "github.com/sluice-dev/sluice/api/v1alpha1"
	"github.com/sluice-dev/sluice/pkg/analysis/provider"
	"github.com/sluice-dev/sluice/pkg/analysis/provider/providertest"
)

func TestWebSelectsTheOneNumberWithItsJSONPath(t *testing.T) {
	providertest.Run(t, []providertest.Case{
		{Name: "a number", Answer: providertest.Answer{Body: `{"data":{"errorRate":0.5}}`}, Want: 0.5},
		{Name: "a number in a string", Answer: providertest.Answer{Body: `{"data":{"errorRate":" 0.25"}}`}, Want: 0.25},
		{Name: "a missing key is no data", Answer: providertest.Answer{Body: `{"data":{}}`}, Err: "selects nothing", NoData: true},
		{Name: "null is no data", Answer: providertest.Answer{Body: `{"data":{"errorRate":null}}`}, Err: "selects null", NoData: true},
		{Name: "a word is an error", Answer: providertest.Answer{Body: `{"data":{"errorRate":"high"}}`}, Err: `the string "high", not a number`},
		{Name: "an object is an error", Answer: providertest.Answer{Body: `{"data":{"errorRate":{"v":1}}}`}, Err: "want a number"},
		{Name: "not JSON is an error", Answer: providertest.Answer{Body: `ok`}, Err: "not JSON"},
		{Name: "a 500 is an error", Answer: providertest.Answer{Status: 500, Body: `boom`}, Err: "the web provider answered 500 Internal Server Error: boom"},
		{Name: "a 429 is the rate limit, never a pass", Answer: providertest.RateLimited, Err: "rate limit reached (429 Too Many Requests); it asks to retry after 30"},
		{Name: "a 401 says the credentials were refused", Answer: providertest.Answer{Status: 401}, Err: "refused the credentials (401 Unauthorized)"},
		{Name: "a redirect is not followed", Answer: providertest.Answer{Status: 301, Headers: map[string]string{"Location": "http://169.254.169.254/"}}, Err: "redirects are not followed"},
	}, "/stats?service=shop", func(url string) (provider.Provider, error) {
		return New(providertest.Config(sluicev1.MetricProvider{Type: "web", Address: url, JSONPath: "{.data.errorRate}"}, nil))
	})
}

func TestWebSelectingSeveralValuesIsAnError(t *testing.T) {
	srv := providertest.Server(t, &providertest.Answer{Body: `{"items":[{"v":1},{"v":2}]}`}, nil)
	p, err := New(providertest.Config(sluicev1.MetricProvider{Type: "web", Address: srv.URL, JSONPath: ".items[*].v"}, nil))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Query(t.Context(), ""); err == nil || err.Error() != "provider.jsonPath .items[*].v selects 2 values, want exactly one" {
		t.Errorf("got %v", err)
	}
}

func TestWebPostsItsBodyToThePathOnItsAddressWithItsCredentials(t *testing.T) {
	var got *http.Request
	var body string
	srv := providertest.Server(t, &providertest.Answer{Body: `{"value":3}`}, func(r *http.Request) {
		got = r
		raw, _ := io.ReadAll(r.Body)
		body = string(raw)
	})
	cfg := providertest.Config(sluicev1.MetricProvider{Type: "web", Address: srv.URL + "/api/", JSONPath: "{.value}", Method: "POST"},
		map[string]string{"username": "u", "password": "p"})
	cfg.Body = `{"service":"shop"}`
	p, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if v, err := p.Query(t.Context(), "v1/errors?window=5m"); err != nil || v != 3 {
		t.Fatalf("got %v, %v", v, err)
	}
	user, pass, _ := got.BasicAuth()
	if got.Method != "POST" || got.URL.String() != "/api/v1/errors?window=5m" || body != `{"service":"shop"}` ||
		got.Header.Get("Content-Type") != "application/json" || user != "u" || pass != "p" {
		t.Errorf("request %s %s %q %v", got.Method, got.URL, body, got.Header)
	}
}

func TestAWebQueryCannotLeaveItsAddress(t *testing.T) {
	p, err := New(providertest.Config(sluicev1.MetricProvider{Type: "web", Address: "http://metrics.shop:8080", JSONPath: "{.v}"}, nil))
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{"http://169.254.169.254/latest", "//kubernetes.default/api", "https://metrics.shop:8080/x"} {
		if _, err := p.Query(t.Context(), q); err == nil || !contains(err.Error(), "a web query is a path on provider.address") {
			t.Errorf("%s: got %v", q, err)
		}
	}
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }

func TestWebRefusesABadJSONPath(t *testing.T) {
	if _, err := New(providertest.Config(sluicev1.MetricProvider{Type: "web", Address: "http://m", JSONPath: "{.a[}"}, nil)); err == nil {
		t.Error("a broken JSONPath was accepted")
	}
}

// window is what a compare check asks for; the web provider does not
// send it (the endpoint chooses its window).
var window = providertest.Window{Start: time.Unix(1700000000, 0), End: time.Unix(1700000300, 0), Step: 30 * time.Second}

func TestWebSeriesIsTheNumbersItsJSONPathSelects(t *testing.T) {
	for _, tc := range []struct {
		name, jsonPath string
		cases          []providertest.SeriesCase
	}{
		{name: "an array of numbers", jsonPath: "{.data.values}", cases: []providertest.SeriesCase{
			{Name: "its numbers in the answer's order, nulls skipped", Answer: providertest.Answer{Body: `{"data":{"values":[0.2,null,"0.25",0.3]}}`},
				Want: []float64{0.2, 0.25, 0.3}},
			{Name: "one number is a series of one", Answer: providertest.Answer{Body: `{"data":{"values":0.2}}`}, Want: []float64{0.2}},
			{Name: "an empty array is no data", Answer: providertest.Answer{Body: `{"data":{"values":[]}}`}, Err: "selects no number", NoData: true},
			{Name: "only nulls are no data", Answer: providertest.Answer{Body: `{"data":{"values":[null,null]}}`}, Err: "selects no number", NoData: true},
			{Name: "a missing key is no data", Answer: providertest.Answer{Body: `{"data":{}}`}, Err: "selects no number", NoData: true},
			{Name: "pairs are an error naming the fix", Answer: providertest.Answer{Body: `{"data":{"values":[[1700000000,0.2]]}}`},
				Err: "selects arrays, not numbers; select the numbers themselves, e.g. {.values[*][1]}"},
			{Name: "objects are an error naming the fix", Answer: providertest.Answer{Body: `{"data":{"values":[{"v":1}]}}`},
				Err: "selects objects, not numbers"},
			{Name: "a word is an error", Answer: providertest.Answer{Body: `{"data":{"values":[1,"high"]}}`}, Err: `the string "high", not a number`},
			{Name: "a 429 is the rate limit, never a pass", Answer: providertest.RateLimited, Err: "rate limit reached (429 Too Many Requests); it asks to retry after 30"},
			{Name: "a 401 says the credentials were refused", Answer: providertest.Answer{Status: 401}, Err: "refused the credentials (401 Unauthorized)"},
		}},
		{name: "a field of each point", jsonPath: "{.points[*].value}", cases: []providertest.SeriesCase{
			{Name: "the fields in the answer's order", Answer: providertest.Answer{Body: `{"points":[{"t":1,"value":3},{"t":2,"value":null},{"t":3,"value":4}]}`},
				Want: []float64{3, 4}},
		}},
		{name: "the values of [time, value] pairs", jsonPath: "{.values[*][1]}", cases: []providertest.SeriesCase{
			{Name: "the second of each pair", Answer: providertest.Answer{Body: `{"values":[[1700000000,"0.5"],[1700000030,"0.75"]]}`},
				Want: []float64{0.5, 0.75}},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			providertest.RunSeries(t, tc.cases, "/series?service=shop&step=30s", window, func(url string) (provider.Provider, error) {
				return New(providertest.Config(sluicev1.MetricProvider{Type: "web", Address: url, JSONPath: tc.jsonPath}, map[string]string{"token": "t"}))
			})
		})
	}
}
