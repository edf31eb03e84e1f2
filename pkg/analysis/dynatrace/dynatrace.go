// Package dynatrace is the Dynatrace metrics provider: the rendered query is
// a metric selector (e.g. builtin:service.errors.total.rate:splitBy():avg)
// run over the check's window with the metrics API v2
// (GET /api/v2/metrics/query, resolution Inf unless the selector folds
// itself); the value is the last non-null value of the one series it
// returns. It also gives a selector's values over a window
// (provider.SeriesProvider), for compare checks.
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
	"time"

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
			Timestamps []int64    `json:"timestamps"`
			Values     []*float64 `json:"values"`
		} `json:"data"`
		Warnings []string `json:"warnings"`
	} `json:"result"`
	Error *struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

var _ provider.SeriesProvider = (*Dynatrace)(nil)

// Query implements provider.Provider.
func (d *Dynatrace) Query(ctx context.Context, query string) (float64, error) {
	v := url.Values{}
	v.Set("metricSelector", query)
	v.Set("from", "now-"+strconv.Itoa(max(1, int(d.cfg.Window.Seconds())))+"s")
	v.Set("resolution", "Inf")
	s, err := d.fetch(ctx, v)
	if err != nil {
		return 0, err
	}
	return provider.Last(s.Values)
}

// Series implements provider.SeriesProvider for compare checks: the
// selector's one series from start to end (from and to in epoch ms), its
// non-null values, oldest first. Dynatrace aligns the timeslots to the
// resolution and answers only those of the timeframe asked, so they are
// not filtered again (an edge slot would be lost). A positive step is the
// resolution, in whole minutes (Dynatrace's finest), rounded up: 30s asks
// for 1m.
func (d *Dynatrace) Series(ctx context.Context, query string, start, end time.Time, step time.Duration) ([]float64, error) {
	if !end.After(start) {
		return nil, fmt.Errorf("the series window ends (%s) before it starts (%s)", end, start)
	}
	v := url.Values{}
	v.Set("metricSelector", query)
	v.Set("from", strconv.FormatInt(start.UnixMilli(), 10))
	v.Set("to", strconv.FormatInt(end.UnixMilli(), 10))
	if step > 0 {
		v.Set("resolution", resolution(step))
	}
	s, err := d.fetch(ctx, v)
	if err != nil {
		return nil, err
	}
	if len(s.Timestamps) != len(s.Values) {
		return nil, fmt.Errorf("dynatrace series %s has %d timestamps for %d values", s.name, len(s.Timestamps), len(s.Values))
	}
	var out []float64
	for _, v := range s.Values {
		if v != nil {
			out = append(out, *v)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("dynatrace series %s has no value between %s and %s: %w",
			s.name, start.UTC().Format(time.RFC3339), end.UTC().Format(time.RFC3339), provider.ErrNoData)
	}
	return out, nil
}

// resolution is a step as a Dynatrace timespan in whole minutes, rounded
// up, at least 1m.
func resolution(step time.Duration) string {
	return strconv.Itoa(max(1, int((step+time.Minute-1)/time.Minute))) + "m"
}

// series is the one series of an answer, named for messages.
type series struct {
	name       string
	Timestamps []int64
	Values     []*float64
}

// fetch sends a metrics query with the parameters v and returns its one
// series.
func (d *Dynatrace) fetch(ctx context.Context, v url.Values) (*series, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, d.address+"/api/v2/metrics/query?"+v.Encode(), nil)
	if err != nil {
		return nil, fmt.Errorf("building the request: %w", err)
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("Authorization", "Api-Token "+d.token)
	raw, err := d.cfg.Do(req, "dynatrace")
	if err != nil {
		return nil, err
	}
	var a answer
	if err := json.Unmarshal(raw, &a); err != nil {
		return nil, fmt.Errorf("the dynatrace answer is not the documented JSON: %w", err)
	}
	if a.Error != nil {
		return nil, fmt.Errorf("dynatrace: %s (code %d)", a.Error.Message, a.Error.Code)
	}
	var all []series
	for _, r := range a.Result {
		for _, s := range r.Data {
			all = append(all, series{name: r.MetricID + "{" + strings.Join(s.Dimensions, ",") + "}", Timestamps: s.Timestamps, Values: s.Values})
		}
	}
	switch len(all) {
	case 0:
		return nil, fmt.Errorf("dynatrace returned no series: %w", provider.ErrNoData)
	case 1:
		return &all[0], nil
	default:
		names := make([]string, 0, 4)
		for _, s := range all[:min(3, len(all))] {
			names = append(names, s.name)
		}
		if len(all) > 3 {
			names = append(names, "...")
		}
		return nil, fmt.Errorf("dynatrace returned %d series (%s), want exactly one (fold them, e.g. :splitBy())",
			len(all), strings.Join(names, ", "))
	}
}
