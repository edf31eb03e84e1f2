package newrelic

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/sluice-dev/sluice/pkg/analysis/provider"
)

// DefaultSince is how far back NRQL reads when a query has no SINCE: New
// Relic's default time range is the last hour.
const DefaultSince = time.Hour

var (
	// since is a relative SINCE (SINCE 5 minutes ago); sinceAny any SINCE.
	since    = regexp.MustCompile(`(?i)\bSINCE\s+(\d+(?:\.\d+)?)\s+(second|minute|hour|day|week)s?\s+AGO\b`)
	sinceAny = regexp.MustCompile(`(?i)\bSINCE\b`)
	// compareWith reads a second range that far back again.
	compareWith    = regexp.MustCompile(`(?i)\bCOMPARE\s+WITH\s+(\d+(?:\.\d+)?)\s+(second|minute|hour|day|week)s?\s+AGO\b`)
	compareWithAny = regexp.MustCompile(`(?i)\bCOMPARE\s+WITH\b`)
	units          = map[string]time.Duration{"second": time.Second, "minute": time.Minute, "hour": time.Hour, "day": 24 * time.Hour, "week": 7 * 24 * time.Hour}
)

// Lookback is how far back an NRQL query reads, from its text: a relative
// SINCE (SINCE 5 minutes ago), the last hour when it has none, plus a
// COMPARE WITH's offset. Other forms of SINCE (an absolute time, "today")
// are an error: the caller cannot tell how far back they read.
func Lookback(nrql string) (time.Duration, error) {
	text := provider.BlankQuoted(nrql, "'`")
	back := DefaultSince
	if sinceAny.MatchString(text) {
		d, err := relative(since, sinceAny, text, "SINCE")
		if err != nil {
			return 0, err
		}
		back = d
	}
	if compareWithAny.MatchString(text) {
		d, err := relative(compareWith, compareWithAny, text, "COMPARE WITH")
		if err != nil {
			return 0, err
		}
		back += d
	}
	return back, nil
}

// relative reads the one clause of the query that anyOf matches, which must
// be of the form re reads.
func relative(re, anyOf *regexp.Regexp, text, clause string) (time.Duration, error) {
	if n := len(anyOf.FindAllStringIndex(text, -1)); n != 1 {
		return 0, fmt.Errorf("the NRQL has %d %s clauses", n, clause)
	}
	m := re.FindStringSubmatch(text)
	if m == nil {
		return 0, fmt.Errorf("the NRQL's %s is not of the form %s <n> <unit> ago", clause, clause)
	}
	n, err := strconv.ParseFloat(m[1], 64)
	if err != nil || n > 1e6 {
		return 0, fmt.Errorf("the NRQL's %s %s is out of range", clause, m[1])
	}
	return time.Duration(n * float64(units[strings.ToLower(m[2])])), nil
}
