// Package newrelic is the New Relic metrics provider: the rendered query is
// an NRQL query (e.g. SELECT percentage(count(*), WHERE error IS true) FROM
// Transaction WHERE appName = 'shop' SINCE 5 minutes ago) run through
// NerdGraph, New Relic's GraphQL API, in provider.accountID; the answer must
// be one row with one number.
//
// The credentials Secret holds `api-key` (a user key, sent as API-Key).
// provider.address is https://api.newrelic.com by default
// (https://api.eu.newrelic.com for the EU region); the query is POSTed to
// its /graphql.
package newrelic

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"strings"

	"github.com/sluice-dev/sluice/pkg/analysis/provider"
)

// DefaultAddress is NerdGraph's US endpoint.
const DefaultAddress = "https://api.newrelic.com"

// nrqlQuery is the GraphQL document: the account and the NRQL go as
// variables, never spliced into the document.
const nrqlQuery = `query($accountId: Int!, $nrql: Nrql!) { actor { account(id: $accountId) { nrql(query: $nrql) { results } } } }`

// NewRelic queries NerdGraph.
type NewRelic struct {
	cfg     provider.Config
	address string
	key     string
	account int64
}

// New builds the New Relic provider of a template.
func New(cfg provider.Config) (provider.Provider, error) {
	if cfg.Spec.AccountID == nil || *cfg.Spec.AccountID < 1 {
		return nil, fmt.Errorf("provider type newrelic needs provider.accountID")
	}
	key, err := cfg.Secret("api-key")
	if err != nil {
		return nil, err
	}
	addr := cfg.Spec.Address
	if addr == "" {
		addr = DefaultAddress
	}
	return &NewRelic{cfg: cfg, address: strings.TrimSuffix(addr, "/"), key: key, account: *cfg.Spec.AccountID}, nil
}

// answer is the GraphQL answer of nrqlQuery.
type answer struct {
	Data *struct {
		Actor *struct {
			Account *struct {
				NRQL *struct {
					Results []map[string]any `json:"results"`
				} `json:"nrql"`
			} `json:"account"`
		} `json:"actor"`
	} `json:"data"`
	Errors []struct {
		Message string `json:"message"`
	} `json:"errors"`
}

// Query implements provider.Provider.
func (n *NewRelic) Query(ctx context.Context, query string) (float64, error) {
	body, err := json.Marshal(map[string]any{
		"query":     nrqlQuery,
		"variables": map[string]any{"accountId": n.account, "nrql": query},
	})
	if err != nil {
		return 0, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, n.address+"/graphql", bytes.NewReader(body))
	if err != nil {
		return 0, fmt.Errorf("building the request: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("API-Key", n.key)
	raw, err := n.cfg.Do(req, "new relic")
	if err != nil {
		return 0, err
	}
	var a answer
	if err := json.Unmarshal(raw, &a); err != nil {
		return 0, fmt.Errorf("the new relic answer is not GraphQL JSON: %w", err)
	}
	if len(a.Errors) > 0 {
		msgs := make([]string, 0, len(a.Errors))
		for _, e := range a.Errors {
			msgs = append(msgs, e.Message)
		}
		return 0, fmt.Errorf("new relic: %s", strings.Join(msgs, "; "))
	}
	if a.Data == nil || a.Data.Actor == nil || a.Data.Actor.Account == nil || a.Data.Actor.Account.NRQL == nil {
		return 0, fmt.Errorf("new relic answered without results for account %d", n.account)
	}
	return one(a.Data.Actor.Account.NRQL.Results)
}

// one is the single number of NRQL results: one row, one numeric field
// (time bounds such as beginTimeSeconds aside).
func one(rows []map[string]any) (float64, error) {
	switch len(rows) {
	case 0:
		return 0, fmt.Errorf("the NRQL query returned no rows: %w", provider.ErrNoData)
	case 1:
	default:
		return 0, fmt.Errorf("the NRQL query returned %d rows, want one (drop TIMESERIES and FACET)", len(rows))
	}
	var keys []string
	for k := range rows[0] {
		switch k {
		case "beginTimeSeconds", "endTimeSeconds", "timestamp":
			continue
		}
		keys = append(keys, k)
	}
	sort.Strings(keys)
	if len(keys) != 1 {
		return 0, fmt.Errorf("the NRQL query returned the fields %s, want exactly one", strings.Join(keys, ", "))
	}
	switch v := rows[0][keys[0]].(type) {
	case nil:
		return 0, fmt.Errorf("the NRQL query returned null for %s: %w", keys[0], provider.ErrNoData)
	case float64:
		return v, nil
	default:
		return 0, fmt.Errorf("the NRQL query returned a %T for %s, want a number", v, keys[0])
	}
}
