package newrelic

import (
	"encoding/json"
	"io"
	"net/http"
	"testing"

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
