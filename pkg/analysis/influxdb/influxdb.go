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
	"time"

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
		Error  string   `json:"error"`
		Series []series `json:"series"`
	} `json:"results"`
}

// Query implements provider.Provider.
func (i *InfluxDB) Query(ctx context.Context, query string) (float64, error) {
	raw, err := i.run(ctx, query)
	if err != nil {
		return 0, err
	}
	return value(raw)
}

// Series implements provider.SeriesProvider for compare checks. InfluxQL
// carries its time range and step in the query (WHERE time > now() - 5m
// GROUP BY time(10s)), so the query runs as rendered and its one series'
// rows inside [start, end] are the values, oldest first, nulls skipped;
// step is the query's own GROUP BY time().
func (i *InfluxDB) Series(ctx context.Context, query string, start, end time.Time, _ time.Duration) ([]float64, error) {
	raw, err := i.run(ctx, query)
	if err != nil {
		return nil, err
	}
	s, err := oneSeries(raw)
	if err != nil {
		return nil, err
	}
	col := len(s.Columns) - 1
	if len(s.Columns) < 2 || s.Columns[0] != "time" {
		return nil, fmt.Errorf("influxdb series %s has no time and value columns", s.Name)
	}
	var out []float64
	for _, row := range s.Values {
		if col >= len(row) || row[col] == nil {
			continue
		}
		sec, ok := row[0].(float64)
		if !ok {
			return nil, fmt.Errorf("influxdb time column holds a %T, want epoch seconds", row[0])
		}
		if at := time.Unix(int64(sec), 0); at.Before(start.Truncate(time.Second)) || at.After(end) {
			continue
		}
		f, ok := row[col].(float64)
		if !ok {
			return nil, fmt.Errorf("influxdb column %s holds a %T, want a number", s.Columns[col], row[col])
		}
		out = append(out, f)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("influxdb series %s has no value between %s and %s: %w",
			s.Name, start.UTC().Format(time.RFC3339), end.UTC().Format(time.RFC3339), provider.ErrNoData)
	}
	return out, nil
}

// run sends one InfluxQL query to /query and returns the answer's body.
func (i *InfluxDB) run(ctx context.Context, query string) ([]byte, error) {
	v := url.Values{}
	v.Set("db", i.cfg.Spec.Database)
	v.Set("q", query)
	v.Set("epoch", "s")
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, i.address+"/query?"+v.Encode(), nil)
	if err != nil {
		return nil, fmt.Errorf("building the request: %w", err)
	}
	req.Header.Set("Accept", "application/json")
	if i.auth != "" {
		req.Header.Set("Authorization", i.auth)
	}
	// A bad query is a 400 with {"error": "..."}: Do quotes the body.
	return i.cfg.Do(req, "influxdb")
}

// series is one series of a /query answer.
type series struct {
	Name    string            `json:"name"`
	Tags    map[string]string `json:"tags"`
	Columns []string          `json:"columns"`
	Values  [][]any           `json:"values"`
}

// oneSeries is the one series of a /query answer of one statement.
func oneSeries(raw []byte) (*series, error) {
	var a answer
	if err := json.Unmarshal(raw, &a); err != nil {
		return nil, fmt.Errorf("the influxdb answer is not the documented JSON: %w", err)
	}
	if a.Error != "" {
		return nil, fmt.Errorf("influxdb: %s", a.Error)
	}
	if len(a.Results) != 1 {
		return nil, fmt.Errorf("influxdb returned %d statement results, want one (send one statement)", len(a.Results))
	}
	r := a.Results[0]
	if r.Error != "" {
		return nil, fmt.Errorf("influxdb: %s", r.Error)
	}
	switch len(r.Series) {
	case 0:
		return nil, fmt.Errorf("influxdb returned no series: %w", provider.ErrNoData)
	case 1:
		return &r.Series[0], nil
	default:
		return nil, fmt.Errorf("influxdb returned %d series, want one (drop GROUP BY tags)", len(r.Series))
	}
}

// value is the one number of a /query answer.
func value(raw []byte) (float64, error) {
	s, err := oneSeries(raw)
	if err != nil {
		return 0, err
	}
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
