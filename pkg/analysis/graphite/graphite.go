// Package graphite is the Graphite metrics provider: the rendered query is a
// render target (e.g. sumSeries(shop.*.errors)) read over the check's window
// from the render API (GET /render?format=json); the value is the last
// non-null datapoint of the one series it returns.
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

// Query implements provider.Provider.
func (g *Graphite) Query(ctx context.Context, query string) (float64, error) {
	v := url.Values{}
	v.Set("target", query)
	v.Set("from", "-"+strconv.Itoa(max(1, int(g.cfg.Window.Seconds())))+"s")
	v.Set("until", "now")
	v.Set("format", "json")
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, g.address+"/render?"+v.Encode(), nil)
	if err != nil {
		return 0, fmt.Errorf("building the request: %w", err)
	}
	req.Header.Set("Accept", "application/json")
	if g.auth != "" {
		req.Header.Set("Authorization", g.auth)
	}
	raw, err := g.cfg.Do(req, "graphite")
	if err != nil {
		return 0, err
	}
	var all []series
	if err := json.Unmarshal(raw, &all); err != nil {
		return 0, fmt.Errorf("the graphite answer is not the documented JSON: %w", err)
	}
	switch len(all) {
	case 0:
		return 0, fmt.Errorf("graphite returned no series: %w", provider.ErrNoData)
	case 1:
	default:
		names := make([]string, 0, 3)
		for _, s := range all[:min(3, len(all))] {
			names = append(names, s.Target)
		}
		return 0, fmt.Errorf("graphite returned %d series (%s...), want one (wrap the target in sumSeries())",
			len(all), strings.Join(names, ", "))
	}
	values := make([]*float64, 0, len(all[0].Datapoints))
	for _, p := range all[0].Datapoints {
		values = append(values, p[0])
	}
	return provider.Last(values)
}
