// Package datadog is the Datadog metrics provider: the rendered query is a
// Datadog metric query (e.g. sum:trace.http.request.errors{service:shop}.as_count())
// run over the check's window with the v1 timeseries API
// (GET /api/v1/query); the value is the last non-null point of the one
// series it returns. It also gives a query's points over a window
// (provider.SeriesProvider), for compare checks.
//
// The credentials Secret holds `api-key` (sent as DD-API-KEY) and `app-key`
// (DD-APPLICATION-KEY). provider.address is the site's API,
// https://api.datadoghq.com by default (https://api.datadoghq.eu, ...).
package datadog

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/sluice-dev/sluice/pkg/analysis/provider"
)

// DefaultAddress is Datadog's US1 API.
const DefaultAddress = "https://api.datadoghq.com"

// Datadog queries the Datadog v1 timeseries API.
type Datadog struct {
	cfg            provider.Config
	address        string
	apiKey, appKey string
	now            func() time.Time
}

// New builds the Datadog provider of a template.
func New(cfg provider.Config) (provider.Provider, error) {
	apiKey, err := cfg.Secret("api-key")
	if err != nil {
		return nil, err
	}
	appKey, err := cfg.Secret("app-key")
	if err != nil {
		return nil, err
	}
	addr := cfg.Spec.Address
	if addr == "" {
		addr = DefaultAddress
	}
	return &Datadog{cfg: cfg, address: strings.TrimSuffix(addr, "/"), apiKey: apiKey, appKey: appKey, now: time.Now}, nil
}

// answer is the documented shape of a /api/v1/query answer (the fields
// Sluice reads) and of Datadog's error bodies.
type answer struct {
	Status string   `json:"status"`
	Error  string   `json:"error"`
	Series []series `json:"series"`
	Errors []string `json:"errors"`
}

var _ provider.SeriesProvider = (*Datadog)(nil)

// series is one series of a /api/v1/query answer.
type series struct {
	Metric    string        `json:"metric"`
	Scope     string        `json:"scope"`
	Pointlist [][2]*float64 `json:"pointlist"`
}

// Query implements provider.Provider.
func (d *Datadog) Query(ctx context.Context, query string) (float64, error) {
	to := d.now()
	s, err := d.fetch(ctx, query, to.Add(-d.cfg.Window), to)
	if err != nil {
		return 0, err
	}
	values := make([]*float64, 0, len(s.Pointlist))
	for _, p := range s.Pointlist {
		values = append(values, p[1])
	}
	return provider.Last(values)
}

// Series implements provider.SeriesProvider for compare checks: the one
// series of the query from start to end, its non-null points inside the
// window, oldest first. With a positive step the query is rolled up to it
// (.rollup(avg, <step s>)) unless it has its own .rollup(), so that both
// sides' samples are spaced alike whatever interval Datadog would pick.
func (d *Datadog) Series(ctx context.Context, query string, start, end time.Time, step time.Duration) ([]float64, error) {
	if !end.After(start) {
		return nil, fmt.Errorf("the series window ends (%s) before it starts (%s)", end, start)
	}
	s, err := d.fetch(ctx, withRollup(query, step), start, end)
	if err != nil {
		return nil, err
	}
	from, to := start.Truncate(time.Second).UnixMilli(), end.UnixMilli()
	var out []float64
	for _, p := range s.Pointlist {
		if p[0] == nil || p[1] == nil {
			continue
		}
		if at := int64(*p[0]); at < from || at > to {
			continue
		}
		out = append(out, *p[1])
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("datadog series %s has no non-null point between %s and %s: %w",
			s.Scope, start.UTC().Format(time.RFC3339), end.UTC().Format(time.RFC3339), provider.ErrNoData)
	}
	return out, nil
}

// withRollup appends .rollup(avg, <step s>) to a plain metric query
// (aggregator:metric{scope}..., see plain) without a rollup of its own,
// for a positive step (at least one second). Other queries are left as
// written: on a / b the rollup would apply to b only, and a function's
// result may not take one.
func withRollup(query string, step time.Duration) string {
	if step <= 0 || strings.Contains(strings.ToLower(query), ".rollup(") || !plain(query) {
		return query
	}
	return fmt.Sprintf("%s.rollup(avg, %d)", strings.TrimSpace(query), max(1, int(step.Seconds())))
}

// metricQuery is the start of a plain metric query: aggregator:metric{.
var metricQuery = regexp.MustCompile(`^\s*[a-z]+:[A-Za-z0-9_.]+\{`)

// plain says whether a query is one metric query: it starts as one and
// has no operator outside braces (tags) and parentheses.
func plain(query string) bool {
	if !metricQuery.MatchString(query) {
		return false
	}
	depth := 0
	for _, r := range query {
		switch r {
		case '{', '(':
			depth++
		case '}', ')':
			depth--
		case '+', '-', '*', '/':
			if depth == 0 {
				return false
			}
		}
	}
	return true
}

// fetch runs a query between from and to and returns its one series.
func (d *Datadog) fetch(ctx context.Context, query string, from, to time.Time) (*series, error) {
	v := url.Values{}
	v.Set("query", query)
	v.Set("from", strconv.FormatInt(from.Unix(), 10))
	v.Set("to", strconv.FormatInt(to.Unix(), 10))
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, d.address+"/api/v1/query?"+v.Encode(), nil)
	if err != nil {
		return nil, fmt.Errorf("building the request: %w", err)
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("DD-API-KEY", d.apiKey)
	req.Header.Set("DD-APPLICATION-KEY", d.appKey)
	raw, err := d.cfg.Do(req, "datadog")
	if err != nil {
		return nil, err
	}
	var a answer
	if err := json.Unmarshal(raw, &a); err != nil {
		return nil, fmt.Errorf("the datadog answer is not the documented JSON: %w", err)
	}
	switch {
	case len(a.Errors) > 0:
		return nil, fmt.Errorf("datadog: %s", strings.Join(a.Errors, "; "))
	case a.Status == "error" || a.Error != "":
		return nil, fmt.Errorf("datadog: %s", a.Error)
	}
	switch len(a.Series) {
	case 0:
		return nil, fmt.Errorf("datadog returned no series: %w", provider.ErrNoData)
	case 1:
		return &a.Series[0], nil
	default:
		scopes := make([]string, 0, len(a.Series))
		for _, s := range a.Series {
			scopes = append(scopes, s.Scope)
		}
		return nil, fmt.Errorf("datadog returned %d series (%s), want exactly one (aggregate it, e.g. sum:...{...})",
			len(a.Series), strings.Join(scopes, ", "))
	}
}
