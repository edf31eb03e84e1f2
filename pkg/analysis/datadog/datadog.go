// Package datadog is the Datadog metrics provider: the rendered query is a
// Datadog metric query (e.g. sum:trace.http.request.errors{service:shop}.as_count())
// run over the check's window with the v1 timeseries API
// (GET /api/v1/query); the value is the last non-null point of the one
// series it returns.
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
	Status string `json:"status"`
	Error  string `json:"error"`
	Series []struct {
		Metric    string        `json:"metric"`
		Scope     string        `json:"scope"`
		Pointlist [][2]*float64 `json:"pointlist"`
	} `json:"series"`
	Errors []string `json:"errors"`
}

// Query implements provider.Provider.
func (d *Datadog) Query(ctx context.Context, query string) (float64, error) {
	to := d.now()
	from := to.Add(-d.cfg.Window)
	v := url.Values{}
	v.Set("query", query)
	v.Set("from", strconv.FormatInt(from.Unix(), 10))
	v.Set("to", strconv.FormatInt(to.Unix(), 10))
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, d.address+"/api/v1/query?"+v.Encode(), nil)
	if err != nil {
		return 0, fmt.Errorf("building the request: %w", err)
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("DD-API-KEY", d.apiKey)
	req.Header.Set("DD-APPLICATION-KEY", d.appKey)
	raw, err := d.cfg.Do(req, "datadog")
	if err != nil {
		return 0, err
	}
	var a answer
	if err := json.Unmarshal(raw, &a); err != nil {
		return 0, fmt.Errorf("the datadog answer is not the documented JSON: %w", err)
	}
	switch {
	case len(a.Errors) > 0:
		return 0, fmt.Errorf("datadog: %s", strings.Join(a.Errors, "; "))
	case a.Status == "error" || a.Error != "":
		return 0, fmt.Errorf("datadog: %s", a.Error)
	}
	switch len(a.Series) {
	case 0:
		return 0, fmt.Errorf("datadog returned no series: %w", provider.ErrNoData)
	case 1:
	default:
		scopes := make([]string, 0, len(a.Series))
		for _, s := range a.Series {
			scopes = append(scopes, s.Scope)
		}
		return 0, fmt.Errorf("datadog returned %d series (%s), want exactly one (aggregate it, e.g. sum:...{...})",
			len(a.Series), strings.Join(scopes, ", "))
	}
	values := make([]*float64, 0, len(a.Series[0].Pointlist))
	for _, p := range a.Series[0].Pointlist {
		values = append(values, p[1])
	}
	return provider.Last(values)
}
