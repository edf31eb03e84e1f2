package influxdb

import (
	"strings"
	"testing"
	"time"
)

func TestLookbackReadsHowFarBackAnInfluxQLQueryReads(t *testing.T) {
	for _, tt := range []struct {
		query string
		want  time.Duration
	}{
		{`SELECT mean("value") FROM "errors" WHERE time > now() - 5m`, 5 * time.Minute},
		{`SELECT mean("value") FROM "errors" WHERE time >= NOW()-30s AND "app" = 'shop'`, 30 * time.Second},
		{`SELECT mean("value") FROM "errors" WHERE time > now() - 1h AND time < now() - 10m`, time.Hour},
		{`SELECT mean("value") FROM "errors" WHERE "path" = 'now() - 1w' AND time > now() - 2m`, 2 * time.Minute},
	} {
		got, err := Lookback(tt.query)
		if err != nil || got != tt.want {
			t.Errorf("Lookback(%s) = %v, %v; want %v", tt.query, got, err, tt.want)
		}
	}
	for query, want := range map[string]string{
		`SELECT mean("value") FROM "errors"`:                                     "has no time > now() - <duration>",
		`SELECT mean("value") FROM "errors" WHERE time > '2026-12-06T10:00:00Z'`: "has no time",
		`SELECT mean("value") FROM "errors" WHERE time > now() - 10u`:            "not a duration Sluice reads",
	} {
		if _, err := Lookback(query); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Lookback(%s): %v, want an error saying %q", query, err, want)
		}
	}
}
