package influxdb

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	sluicev1 "github.com/sluice-dev/sluice/api/v1alpha1"
	"github.com/sluice-dev/sluice/internal/metricservers"
	"github.com/sluice-dev/sluice/pkg/analysis/provider"
	"github.com/sluice-dev/sluice/pkg/analysis/provider/providertest"
)

// TestInfluxDBAnswersAgainstARealServer runs InfluxQL queries against
// Debian's influxd 1.6 with HTTP auth on.
func TestInfluxDBAnswersAgainstARealServer(t *testing.T) {
	srv := metricservers.StartInfluxDB(t, "shop", true)
	now := time.Now().Unix()
	srv.Write(t, "shop", fmt.Sprintf("errors,service=shop value=0.5 %d\nerrors,service=shop value=1.5 %d\nerrors,service=cart value=9 %d\n",
		(now-20)*1e9, (now-10)*1e9, (now-10)*1e9))
	creds := map[string]string{"username": srv.Username, "password": srv.Password}
	build := func(db string, creds map[string]string) provider.Provider {
		p, err := New(providertest.Config(sluicev1.MetricProvider{Type: "influxdb", Address: srv.URL, Database: db}, creds))
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	for _, tc := range []struct {
		name, query string
		creds       map[string]string
		want        float64
		err         string
		noData      bool
	}{
		{name: "a mean over the window", query: `SELECT mean("value") FROM "errors" WHERE "service" = 'shop' AND time > now() - 5m`, creds: creds, want: 1},
		{name: "the last point of a series", query: `SELECT "value" FROM "errors" WHERE "service" = 'shop'`, creds: creds, want: 1.5},
		{name: "a measurement without points is no data", query: `SELECT mean("value") FROM "latency" WHERE time > now() - 5m`, creds: creds,
			err: "no series", noData: true},
		{name: "one series per tag is an error", query: `SELECT mean("value") FROM "errors" GROUP BY "service"`, creds: creds,
			err: "2 series, want one"},
		{name: "a syntax error is an error", query: `SELEC "value" FROM "errors"`, creds: creds,
			err: "influxdb answered 400 Bad Request: {\"error\":\"error parsing query: found SELEC"},
		{name: "a wrong password is refused credentials", query: `SELECT "value" FROM "errors"`,
			creds: map[string]string{"username": srv.Username, "password": "wrong"},
			err:   "influxdb refused the credentials (401 Unauthorized): check the template's secretRef: {\"error\":\"authorization failed\"}"},
		{name: "no credentials are refused", query: `SELECT "value" FROM "errors"`,
			err: "influxdb refused the credentials (401 Unauthorized)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v, err := build("shop", tc.creds).Query(t.Context(), tc.query)
			switch {
			case tc.err == "" && (err != nil || v != tc.want):
				t.Fatalf("got %v, %v; want %v", v, err, tc.want)
			case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
				t.Fatalf("got %v, %v; want an error containing %q", v, err, tc.err)
			case tc.noData != (err != nil && strings.Contains(err.Error(), provider.ErrNoData.Error())):
				t.Fatalf("got %v, want no data %v", err, tc.noData)
			}
		})
	}
	t.Run("a missing database is an error", func(t *testing.T) {
		_, err := build("nope", creds).Query(t.Context(), `SELECT "value" FROM "errors"`)
		if err == nil || !strings.Contains(err.Error(), "database not found: nope") {
			t.Errorf("got %v", err)
		}
	})
}

func TestInfluxDBErrorShapes(t *testing.T) {
	providertest.Run(t, []providertest.Case{
		{Name: "a statement error in a 200 is an error", Answer: providertest.Answer{Body: `{"results":[{"statement_id":0,"error":"database not found: shop"}]}`},
			Err: "influxdb: database not found: shop"},
		{Name: "a 429 is the rate limit, never a pass", Answer: providertest.RateLimited, Err: "influxdb rate limit reached (429 Too Many Requests); it asks to retry after 30"},
		{Name: "only nulls are no data", Answer: providertest.Answer{Body: `{"results":[{"statement_id":0,"series":[{"name":"e","columns":["time","mean"],"values":[[1,null]]}]}]}`},
			Err: "null", NoData: true},
	}, `SELECT mean("value") FROM "e"`, func(url string) (provider.Provider, error) {
		return New(providertest.Config(sluicev1.MetricProvider{Type: "influxdb", Address: url, Database: "shop"}, nil))
	})
}

// TestInfluxDBSeriesReadsTheRowsOfTheWindow: for a compare check the query
// returns one series of rows (its own GROUP BY time() sets the step); the
// values of the rows inside the window come back oldest first, nulls
// skipped.
func TestInfluxDBSeriesReadsTheRowsOfTheWindow(t *testing.T) {
	srv := metricservers.StartInfluxDB(t, "shop", false)
	// On a 10s boundary, so that GROUP BY time(10s) buckets start at the points.
	now := time.Now().Truncate(10 * time.Second)
	var lines strings.Builder
	for i, v := range []float64{7, 1, 2, 3, 4} {
		// 7 is older than the window; the others one per 10s.
		at := now.Add(-time.Duration(50-10*i) * time.Second)
		fmt.Fprintf(&lines, "latency,service=shop value=%v %d\n", v, at.UnixNano())
	}
	srv.Write(t, "shop", lines.String())
	p, err := New(providertest.Config(sluicev1.MetricProvider{Type: "influxdb", Address: srv.URL, Database: "shop"}, nil))
	if err != nil {
		t.Fatal(err)
	}
	sp, ok := p.(provider.SeriesProvider)
	if !ok {
		t.Fatal("the influxdb provider cannot return a series")
	}
	start, end := now.Add(-45*time.Second), now
	got, err := sp.Series(t.Context(), `SELECT "value" FROM "latency" WHERE "service" = 'shop' AND time > now() - 5m`, start, end, 10*time.Second)
	if err != nil || fmt.Sprint(got) != "[1 2 3 4]" {
		t.Errorf("series = %v, %v; want [1 2 3 4] (the point before the window left out)", got, err)
	}
	got, err = sp.Series(t.Context(), `SELECT mean("value") FROM "latency" WHERE time > now() - 5m GROUP BY time(10s) fill(null)`, start, end, 0)
	if err != nil || fmt.Sprint(got) != "[1 2 3 4]" {
		t.Errorf("a GROUP BY time() query = %v, %v; want its buckets inside the window [1 2 3 4], empty ones skipped", got, err)
	}
	_, err = sp.Series(t.Context(), `SELECT "value" FROM "nothing"`, start, end, 0)
	if !errors.Is(err, provider.ErrNoData) {
		t.Errorf("an empty measurement = %v, want no data", err)
	}
	_, err = sp.Series(t.Context(), `SELECT mean("value") FROM "latency" GROUP BY "service", time(10s)`, start, end, 0)
	if err != nil {
		t.Errorf("one service, grouped by tag: %v, want its one series", err)
	}
}

// TestLookbackIsWhatARealServerReads: Debian's influxd reads a point
// inside the lookback Sluice reads from the query, and none before it.
func TestLookbackIsWhatARealServerReads(t *testing.T) {
	srv := metricservers.StartInfluxDB(t, "shop", false)
	now := time.Now()
	srv.Write(t, "shop", fmt.Sprintf("latency value=100 %d\nlatency value=1 %d\n",
		now.Add(-3*time.Minute).UnixNano(), now.Add(-20*time.Second).UnixNano()))
	p, err := New(providertest.Config(sluicev1.MetricProvider{Type: "influxdb", Address: srv.URL, Database: "shop"}, nil))
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		query    string
		lookback time.Duration
		max      float64
	}{
		{`SELECT max("value") FROM "latency" WHERE time > now() - 1m`, time.Minute, 1},
		{`SELECT max("value") FROM "latency" WHERE time > now() - 5m`, 5 * time.Minute, 100},
	} {
		back, err := Lookback(tt.query)
		if err != nil || back != tt.lookback {
			t.Errorf("Lookback(%s) = %v, %v; want %v", tt.query, back, err, tt.lookback)
		}
		if v, err := p.Query(t.Context(), tt.query); err != nil || v != tt.max {
			t.Errorf("%s = %v, %v; want %v: the point 3m back is read only by the 5m query", tt.query, v, err, tt.max)
		}
	}
}
