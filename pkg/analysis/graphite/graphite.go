// Package graphite is the Graphite metrics provider: the rendered query is a
// render target (e.g. sumSeries(shop.*.errors)) read over the check's window
// from the render API (GET /render?format=json); the value is the last
// non-null datapoint of the one series it returns. It also gives a target's
// values over a window (provider.SeriesProvider).
//
// The credentials Secret's `token` is sent as a bearer token, `username`
// and `password` as basic auth (whatever the server in front of
// graphite-web checks).
package graphite

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

// Graphite queries graphite-web's render API.
type Graphite struct {
	cfg     provider.Config
	address string
	auth    string
}

// New builds the Graphite provider of a template.
func New(cfg provider.Config) (provider.Provider, error) {
	if cfg.Spec.Address == "" {
		return nil, fmt.Errorf("provider type graphite needs provider.address")
	}
	auth, err := cfg.AuthHeader()
	if err != nil {
		return nil, err
	}
	return &Graphite{cfg: cfg, address: strings.TrimSuffix(cfg.Spec.Address, "/"), auth: auth}, nil
}

// series is one target of a format=json render answer.
type series struct {
	Target     string        `json:"target"`
	Datapoints [][2]*float64 `json:"datapoints"`
}

var _ provider.SeriesProvider = (*Graphite)(nil)

// Query implements provider.Provider.
func (g *Graphite) Query(ctx context.Context, query string) (float64, error) {
	window := strconv.Itoa(max(1, int(g.cfg.Window.Seconds())))
	s, err := g.render(ctx, query, "-"+window+"s", "now")
	if err != nil {
		return 0, err
	}
	return provider.Last(s.values())
}

// Series implements provider.SeriesProvider: the target's non-null values
// from start to end, oldest first, averaged into buckets of step
// (graphite's summarize) when step is positive.
func (g *Graphite) Series(ctx context.Context, query string, start, end time.Time, step time.Duration) ([]float64, error) {
	if !end.After(start) {
		return nil, fmt.Errorf("the series window ends (%s) before it starts (%s)", end, start)
	}
	if step > 0 {
		query = fmt.Sprintf("summarize(%s,%q,\"avg\",true)", query, strconv.Itoa(max(1, int(step.Seconds())))+"s")
	}
	s, err := g.render(ctx, query, strconv.FormatInt(start.Unix(), 10), strconv.FormatInt(end.Unix(), 10))
	if err != nil {
		return nil, err
	}
	var out []float64
	for _, v := range s.values() {
		if v != nil {
			out = append(out, *v)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("every point of the series is null: %w", provider.ErrNoData)
	}
	return out, nil
}

// render asks the render API for one series of target between from and
// until (graphite's time formats).
func (g *Graphite) render(ctx context.Context, target, from, until string) (*series, error) {
	v := url.Values{}
	v.Set("target", target)
	v.Set("from", from)
	v.Set("until", until)
	v.Set("format", "json")
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, g.address+"/render?"+v.Encode(), nil)
	if err != nil {
		return nil, fmt.Errorf("building the request: %w", err)
	}
	req.Header.Set("Accept", "application/json")
	if g.auth != "" {
		req.Header.Set("Authorization", g.auth)
	}
	raw, err := g.cfg.Do(req, "graphite")
	if err != nil {
		return nil, err
	}
	var all []series
	if err := json.Unmarshal(raw, &all); err != nil {
		return nil, fmt.Errorf("the graphite answer is not the documented JSON: %w", err)
	}
	switch len(all) {
	case 0:
		return nil, fmt.Errorf("graphite returned no series: %w", provider.ErrNoData)
	case 1:
		return &all[0], nil
	default:
		names := make([]string, 0, 3)
		for _, s := range all[:min(3, len(all))] {
			names = append(names, s.Target)
		}
		return nil, fmt.Errorf("graphite returned %d series (%s...), want one (wrap the target in sumSeries())",
			len(all), strings.Join(names, ", "))
	}
}

// values are the series' values, oldest first, nil where null.
func (s *series) values() []*float64 {
	out := make([]*float64, 0, len(s.Datapoints))
	for _, p := range s.Datapoints {
		out = append(out, p[0])
	}
	return out
}
