// Package newrelic is the New Relic metrics provider: the rendered query is
// an NRQL query (e.g. SELECT percentage(count(*), WHERE error IS true) FROM
// Transaction WHERE appName = 'shop' SINCE 5 minutes ago) run through
// NerdGraph, New Relic's GraphQL API, in provider.accountID; the answer must
// be one row with one number. For compare checks the NRQL is a TIMESERIES
// query over the window (provider.SeriesProvider).
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
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"sort"
	"strings"
	"time"

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
	rows, err := n.run(ctx, query)
	if err != nil {
		return 0, err
	}
	return one(rows)
}

// run sends one NRQL query to NerdGraph and returns its results.
func (n *NewRelic) run(ctx context.Context, query string) ([]map[string]any, error) {
	body, err := json.Marshal(map[string]any{
		"query":     nrqlQuery,
		"variables": map[string]any{"accountId": n.account, "nrql": query},
	})
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, n.address+"/graphql", bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("building the request: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("API-Key", n.key)
	raw, err := n.cfg.Do(req, "new relic")
	if err != nil {
		return nil, err
	}
	var a answer
	if err := json.Unmarshal(raw, &a); err != nil {
		return nil, fmt.Errorf("the new relic answer is not GraphQL JSON: %w", err)
	}
	if len(a.Errors) > 0 {
		msgs := make([]string, 0, len(a.Errors))
		for _, e := range a.Errors {
			msgs = append(msgs, e.Message)
		}
		return nil, fmt.Errorf("new relic: %s", strings.Join(msgs, "; "))
	}
	if a.Data == nil || a.Data.Actor == nil || a.Data.Actor.Account == nil || a.Data.Actor.Account.NRQL == nil {
		return nil, fmt.Errorf("new relic answered without results for account %d", n.account)
	}
	return a.Data.Actor.Account.NRQL.Results, nil
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
	key, err := valueField(rows[0])
	if err != nil {
		return 0, err
	}
	v, ok, err := number(key, rows[0][key])
	switch {
	case err != nil:
		return 0, err
	case !ok:
		return 0, fmt.Errorf("the NRQL query returned null for %s: %w", key, provider.ErrNoData)
	}
	return v, nil
}

// valueField is the one field of a row that is not a time bound.
func valueField(row map[string]any) (string, error) {
	var keys []string
	for k := range row {
		switch k {
		case "beginTimeSeconds", "endTimeSeconds", "timestamp":
			continue
		}
		keys = append(keys, k)
	}
	sort.Strings(keys)
	if len(keys) != 1 {
		return "", fmt.Errorf("the NRQL query returned the fields %s, want exactly one", strings.Join(keys, ", "))
	}
	return keys[0], nil
}

// number reads a field's value: a number, null (false), or an object of
// one number, as percentile(x, 95) answers ({"95": 0.31}).
func number(key string, v any) (float64, bool, error) {
	switch v := v.(type) {
	case nil:
		return 0, false, nil
	case float64:
		return v, true, nil
	case map[string]any:
		if len(v) == 1 {
			for k, inner := range v {
				return number(key+"."+k, inner)
			}
		}
	}
	return 0, false, fmt.Errorf("the NRQL query returned a %T for %s, want a number", v, key)
}

var _ provider.SeriesProvider = (*NewRelic)(nil)

// Series implements provider.SeriesProvider for compare checks. A query
// with none of SINCE, UNTIL and TIMESERIES gets the window appended,
// " SINCE <start s> UNTIL <end s> TIMESERIES <step s> seconds" (TIMESERIES
// alone without a step); a TIMESERIES query runs as written. Either way the
// values are those of the buckets that overlap the window (New Relic may
// snap the first bucket's start to its step), oldest first, nulls skipped. A FACET query (one series per facet) and a SINCE or
// UNTIL without TIMESERIES (one row) are refused.
func (n *NewRelic) Series(ctx context.Context, query string, start, end time.Time, step time.Duration) ([]float64, error) {
	if !end.After(start) {
		return nil, fmt.Errorf("the series window ends (%s) before it starts (%s)", end, start)
	}
	nrql, err := seriesNRQL(query, start, end, step)
	if err != nil {
		return nil, err
	}
	rows, err := n.run(ctx, nrql)
	if err != nil {
		return nil, err
	}
	return buckets(rows, start, end)
}

// quoted matches NRQL's quoted strings and identifiers, whose words are
// not clauses.
var quoted = regexp.MustCompile("'(?:[^'\\\\]|\\\\.)*'|\"(?:[^\"\\\\]|\\\\.)*\"|`[^`]*`")

// clause matches the NRQL clauses a compare check's query is read for.
var clause = regexp.MustCompile(`(?i)\b(SINCE|UNTIL|TIMESERIES|FACET)\b`)

// seriesNRQL is the NRQL of a compare check's series (see Series).
func seriesNRQL(query string, start, end time.Time, step time.Duration) (string, error) {
	has := map[string]bool{}
	for _, m := range clause.FindAllString(quoted.ReplaceAllString(query, "''"), -1) {
		has[strings.ToUpper(m)] = true
	}
	switch {
	case has["FACET"]:
		return "", errors.New("a compare check's NRQL may not have FACET: it must give one series (filter with WHERE instead)")
	case has["TIMESERIES"]:
		return query, nil
	case has["SINCE"] || has["UNTIL"]:
		return "", errors.New("a compare check's NRQL has SINCE or UNTIL but no TIMESERIES, so it gives one row, not a series: " +
			"drop SINCE and UNTIL (Sluice appends the window and TIMESERIES) or add TIMESERIES")
	}
	nrql := fmt.Sprintf("%s SINCE %d UNTIL %d TIMESERIES", strings.TrimSpace(query), start.Unix(), end.Unix())
	if step > 0 {
		nrql += fmt.Sprintf(" %d seconds", max(1, int(step.Seconds())))
	}
	return nrql, nil
}

// buckets are the values of the TIMESERIES results that overlap
// [start, end], oldest first, nulls skipped.
func buckets(rows []map[string]any, start, end time.Time) ([]float64, error) {
	if len(rows) == 0 {
		return nil, fmt.Errorf("the NRQL query returned no buckets: %w", provider.ErrNoData)
	}
	type point struct {
		at float64
		v  float64
	}
	var points []point
	for _, row := range rows {
		begin, ok1 := row["beginTimeSeconds"].(float64)
		until, ok2 := row["endTimeSeconds"].(float64)
		if !ok1 || !ok2 {
			return nil, errors.New("the NRQL query returned rows without beginTimeSeconds and endTimeSeconds, not TIMESERIES buckets")
		}
		key, err := valueField(row)
		if err != nil {
			return nil, err
		}
		v, ok, err := number(key, row[key])
		if err != nil {
			return nil, err
		}
		if ok && until > float64(start.Unix()) && begin < float64(end.Unix()) {
			points = append(points, point{begin, v})
		}
	}
	sort.SliceStable(points, func(i, j int) bool { return points[i].at < points[j].at })
	out := make([]float64, 0, len(points))
	for _, p := range points {
		out = append(out, p.v)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("the NRQL query has no value between %s and %s: %w",
			start.UTC().Format(time.RFC3339), end.UTC().Format(time.RFC3339), provider.ErrNoData)
	}
	return out, nil
}
