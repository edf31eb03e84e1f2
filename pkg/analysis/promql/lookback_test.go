package promql

import (
	"math"
	"strings"
	"testing"
	"time"
)

func TestLookbackIsTheFurthestAQueryReadsBack(t *testing.T) {
	for _, tt := range []struct {
		query string
		want  time.Duration
	}{
		// Instant selectors read the latest sample only.
		{`max(queue_depth{app="shop"})`, 0},
		{`up`, 0},
		{`100`, 0},
		// Range selectors, in every unit PromQL takes.
		{`rate(http_requests_total{app="shop"}[5m])`, 5 * time.Minute},
		{`rate(x[1h30m])`, 90 * time.Minute},
		{`rate(x[500ms])`, 500 * time.Millisecond},
		{`rate(x[2d])`, 48 * time.Hour},
		{`rate(x[ 10s ])`, 10 * time.Second},
		{`rate(x[90])`, 90 * time.Second},
		// Several ranges side by side: the longest.
		{`sum(rate(errors[1m])) / sum(rate(requests[5m]))`, 5 * time.Minute},
		{"100 * (1 - (sum(rate(http_requests_total{namespace=\"shop\",pod=~\"podinfo-[a-z0-9]+-[a-z0-9]+\",code=~\"5..\"}[10s])) or on() vector(0))\n / sum(rate(http_requests_total{namespace=\"shop\"}[10s])))", 10 * time.Second},
		// Brackets in strings and comments are not ranges.
		{`sum(rate(x{path=~"/api/[0-9]+"}[1m]))`, time.Minute},
		{`count(x{path='/v[2]'})`, 0},
		{"count(x{path=~`[a-z]+\\`})", 0},
		{`count(x{path="a\"[1h]"})`, 0},
		{"rate(x[1m]) # was [1h]\n", time.Minute},
		// Offsets push the read back further, on a range or an instant.
		{`rate(x[5m] offset 1h)`, time.Hour + 5*time.Minute},
		{`x offset 10m`, 10 * time.Minute},
		{`x OFFSET 10m`, 10 * time.Minute},
		{`rate(x[5m] offset -1m)`, 5 * time.Minute},
		{`x{offset="a"}`, 0},
		{`rate(my_offset_total[1m])`, time.Minute},
		// A subquery reads its range, plus what the query it evaluates
		// reads at the first of its steps.
		{`max_over_time(rate(x[1m])[5m:30s])`, 6 * time.Minute},
		{`max_over_time(x[5m:])`, 5 * time.Minute},
		{`max_over_time(sum by (pod) (rate(x[2m]))[10m:1m])`, 12 * time.Minute},
		{`max_over_time(rate(x[1m])[5m:] offset 5m)`, 11 * time.Minute},
		{`max_over_time(max_over_time(rate(x[1m])[5m:])[10m:])`, 16 * time.Minute},
		// A range outside the subquery is not added to it.
		{`max_over_time(rate(x[1m])[5m:]) / rate(y[2m])`, 6 * time.Minute},
		{`rate(y[7m]) / max_over_time(rate(x[1m])[5m:])`, 7 * time.Minute},
		// Too far back to count: the longest duration.
		{`max_over_time(max_over_time(x[200y:])[200y:])`, math.MaxInt64},
		// Recording rules' names hold colons.
		{`job:http_requests:rate5m{job="a"}`, 0},
	} {
		got, err := Lookback(tt.query)
		if err != nil || got != tt.want {
			t.Errorf("Lookback(%s) = %v, %v; want %v", tt.query, got, err, tt.want)
		}
	}
}

// TestLookbackSaysWhatItCannotRead: text it cannot read is an error naming
// it, never a guess of 0 (which would let a stale window be read).
func TestLookbackSaysWhatItCannotRead(t *testing.T) {
	for query, want := range map[string]string{
		`rate(x[5q])`:         `range [5q]: "5q" is not a duration`,
		`rate(x[$window])`:    `"$window" is not a duration`,
		`rate(x[5m)`:          "unclosed '['",
		`rate(x[5m]`:          "unclosed '('",
		`rate(x[5m]))`:        "unmatched ')'",
		`x{a="b}`:             "unclosed string",
		`x offset soon`:       `offset soon: "soon" is not a duration`,
		`rate(x[-5m])`:        `"-5m" is not a duration`,
		`rate(x[1e300])`:      `"1e300" is not a duration`,
		`rate(x[5m] offset )`: "offset",
	} {
		_, err := Lookback(query)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Lookback(%s): %v, want an error saying %q", query, err, want)
		}
	}
}

// FuzzLookback: any text is read or refused, never a panic, and a lookback
// is never negative.
func FuzzLookback(f *testing.F) {
	for _, s := range []string{`rate(x[5m] offset 1h)`, `max_over_time(rate(x[1m])[5m:30s])`, `x{a="[)"}`, "#\n(", `)[1m:]`, `offset`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, query string) {
		if d, err := Lookback(query); err == nil && d < 0 {
			t.Errorf("Lookback(%q) = %v", query, d)
		}
	})
}
