// Package influxdb is the InfluxDB 1.x metrics provider: the rendered query
// is an InfluxQL query (e.g. SELECT mean("value") FROM "errors" WHERE time >
// now() - 5m) run in provider.database through the /query endpoint; the
// answer must be one statement with one series, and the value is the last
// non-null number of its last column.
//
// The credentials Secret's `username` and `password` are sent as basic
// auth (InfluxDB 1.x accepts it as well as u/p parameters), `token` as a
// bearer token (InfluxDB's JWT auth).
package influxdb

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/sluice-dev/sluice/pkg/analysis/provider"
)

// InfluxDB queries an InfluxDB 1.x server.
type InfluxDB struct {
	cfg     provider.Config
	address string
	auth    string
}

// New builds the InfluxDB provider of a template.
func New(cfg provider.Config) (provider.Provider, error) {
	if cfg.Spec.Address == "" || cfg.Spec.Database == "" {
		return nil, fmt.Errorf("provider type influxdb needs provider.address and provider.database")
	}
	auth, err := cfg.AuthHeader()
	if err != nil {
		return nil, err
	}
	return &InfluxDB{cfg: cfg, address: strings.TrimSuffix(cfg.Spec.Address, "/"), auth: auth}, nil
}

// answer is the documented /query answer.
type answer struct {
	Error   string `json:"error"`
	Results []struct {
		Error  string `json:"error"`
		Series []struct {
			Name    string            `json:"name"`
			Tags    map[string]string `json:"tags"`
			Columns []string          `json:"columns"`
			Values  [][]any           `json:"values"`
		} `json:"series"`
	} `json:"results"`
}

// Query implements provider.Provider.
func (i *InfluxDB) Query(ctx context.Context, query string) (float64, error) {
	v := url.Values{}
	v.Set("db", i.cfg.Spec.Database)
	v.Set("q", query)
	v.Set("epoch", "s")
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, i.address+"/query?"+v.Encode(), nil)
	if err != nil {
		return 0, fmt.Errorf("building the request: %w", err)
	}
	req.Header.Set("Accept", "application/json")
	if i.auth != "" {
		req.Header.Set("Authorization", i.auth)
	}
	// A bad query is a 400 with {"error": "..."}: Do quotes the body.
	raw, err := i.cfg.Do(req, "influxdb")
	if err != nil {
		return 0, err
	}
	return value(raw)
}

// value is the one number of a /query answer.
func value(raw []byte) (float64, error) {
	var a answer
	if err := json.Unmarshal(raw, &a); err != nil {
		return 0, fmt.Errorf("the influxdb answer is not the documented JSON: %w", err)
	}
	if a.Error != "" {
		return 0, fmt.Errorf("influxdb: %s", a.Error)
	}
	if len(a.Results) != 1 {
		return 0, fmt.Errorf("influxdb returned %d statement results, want one (send one statement)", len(a.Results))
	}
	r := a.Results[0]
	if r.Error != "" {
		return 0, fmt.Errorf("influxdb: %s", r.Error)
	}
	switch len(r.Series) {
	case 0:
		return 0, fmt.Errorf("influxdb returned no series: %w", provider.ErrNoData)
	case 1:
	default:
		return 0, fmt.Errorf("influxdb returned %d series, want one (drop GROUP BY tags)", len(r.Series))
	}
	s := r.Series[0]
	col := len(s.Columns) - 1
	if col < 0 || s.Columns[col] == "time" {
		return 0, fmt.Errorf("influxdb series %s has no value column", s.Name)
	}
	for row := len(s.Values) - 1; row >= 0; row-- {
		if col >= len(s.Values[row]) || s.Values[row][col] == nil {
			continue
		}
		f, ok := s.Values[row][col].(float64)
		if !ok {
			return 0, fmt.Errorf("influxdb column %s holds a %T, want a number", s.Columns[col], s.Values[row][col])
		}
		return f, nil
	}
	return 0, fmt.Errorf("every value of influxdb column %s is null: %w", s.Columns[col], provider.ErrNoData)
}
