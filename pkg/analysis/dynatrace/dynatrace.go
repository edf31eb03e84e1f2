// Package dynatrace is the Dynatrace metrics provider: the rendered query is
// a metric selector (e.g. builtin:service.errors.total.rate:splitBy():avg)
// run over the check's window with the metrics API v2
// (GET /api/v2/metrics/query, resolution Inf unless the selector folds
// itself); the value is the last non-null value of the one series it
// returns.
//
// provider.address is the environment URL, e.g.
// https://abc12345.live.dynatrace.com; the credentials Secret holds
// `api-token` (a token with the metrics.read scope, sent as
// Authorization: Api-Token <token>).
package dynatrace

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/sluice-dev/sluice/pkg/analysis/provider"
)

// Dynatrace queries the Dynatrace metrics API v2.
type Dynatrace struct {
	cfg     provider.Config
	address string
	token   string
}

// New builds the Dynatrace provider of a template.
func New(cfg provider.Config) (provider.Provider, error) {
	if cfg.Spec.Address == "" {
		return nil, fmt.Errorf("provider type dynatrace needs provider.address, the environment URL")
	}
	token, err := cfg.Secret("api-token")
	if err != nil {
		return nil, err
	}
	return &Dynatrace{cfg: cfg, address: strings.TrimSuffix(cfg.Spec.Address, "/"), token: token}, nil
}

// answer is the documented MetricData shape (the fields Sluice reads) and
// the error envelope.
type answer struct {
	TotalCount int `json:"totalCount"`
	Result     []struct {
		MetricID string `json:"metricId"`
		Data     []struct {
			Dimensions []string   `json:"dimensions"`
			Values     []*float64 `json:"values"`
		} `json:"data"`
		Warnings []string `json:"warnings"`
	} `json:"result"`
	Error *struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

// Query implements provider.Provider.
func (d *Dynatrace) Query(ctx context.Context, query string) (float64, error) {
	v := url.Values{}
	v.Set("metricSelector", query)
	v.Set("from", "now-"+strconv.Itoa(max(1, int(d.cfg.Window.Seconds())))+"s")
	v.Set("resolution", "Inf")
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, d.address+"/api/v2/metrics/query?"+v.Encode(), nil)
	if err != nil {
		return 0, fmt.Errorf("building the request: %w", err)
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("Authorization", "Api-Token "+d.token)
	raw, err := d.cfg.Do(req, "dynatrace")
	if err != nil {
		return 0, err
	}
	var a answer
	if err := json.Unmarshal(raw, &a); err != nil {
		return 0, fmt.Errorf("the dynatrace answer is not the documented JSON: %w", err)
	}
	if a.Error != nil {
		return 0, fmt.Errorf("dynatrace: %s (code %d)", a.Error.Message, a.Error.Code)
	}
	var series [][]*float64
	var names []string
	for _, r := range a.Result {
		for _, s := range r.Data {
			series = append(series, s.Values)
			names = append(names, r.MetricID+"{"+strings.Join(s.Dimensions, ",")+"}")
		}
	}
	switch len(series) {
	case 0:
		return 0, fmt.Errorf("dynatrace returned no series: %w", provider.ErrNoData)
	case 1:
		return provider.Last(series[0])
	default:
		if len(names) > 3 {
			names = append(names[:3], "...")
		}
		return 0, fmt.Errorf("dynatrace returned %d series (%s), want exactly one (fold them, e.g. :splitBy())",
			len(series), strings.Join(names, ", "))
	}
}
