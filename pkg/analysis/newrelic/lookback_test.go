package newrelic

import (
	"strings"
	"testing"
	"time"
)

func TestLookbackReadsHowFarBackAnNRQLQueryReads(t *testing.T) {
	for _, tt := range []struct {
		nrql string
		want time.Duration
	}{
		{"SELECT percentage(count(*), WHERE error IS true) FROM Transaction WHERE appName = 'shop' SINCE 5 minutes ago", 5 * time.Minute},
		{"SELECT count(*) FROM Transaction since 1 minute AGO", time.Minute},
		{"SELECT count(*) FROM Transaction SINCE 30 seconds ago UNTIL 10 seconds ago", 30 * time.Second},
		{"SELECT count(*) FROM Transaction SINCE 1.5 hours ago", 90 * time.Minute},
		// No SINCE: New Relic reads the last hour.
		{"SELECT count(*) FROM Transaction WHERE appName = 'shop'", time.Hour},
		// A clause word in a string is not a clause.
		{"SELECT count(*) FROM Transaction WHERE name = 'since 1 week ago' SINCE 2 minutes ago", 2 * time.Minute},
		{"SELECT count(*) FROM Transaction WHERE name = 'since'", time.Hour},
		// COMPARE WITH reads as far back again.
		{"SELECT count(*) FROM Transaction SINCE 5 minutes ago COMPARE WITH 1 week ago", 7*24*time.Hour + 5*time.Minute},
	} {
		got, err := Lookback(tt.nrql)
		if err != nil || got != tt.want {
			t.Errorf("Lookback(%s) = %v, %v; want %v", tt.nrql, got, err, tt.want)
		}
	}
	for nrql, want := range map[string]string{
		"SELECT count(*) FROM Transaction SINCE today":                            "not of the form SINCE <n> <unit> ago",
		"SELECT count(*) FROM Transaction SINCE 1700000000000":                    "not of the form",
		"SELECT count(*) FROM Transaction SINCE 1m ago":                           "not of the form",
		"SELECT count(*) FROM Transaction SINCE 5 minutes ago SINCE 1 minute ago": "2 SINCE clauses",
		"SELECT count(*) FROM Transaction COMPARE WITH yesterday":                 "COMPARE WITH",
	} {
		if _, err := Lookback(nrql); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Lookback(%s): %v, want an error saying %q", nrql, err, want)
		}
	}
}
