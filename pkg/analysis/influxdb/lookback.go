package influxdb

import (
	"errors"
	"regexp"
	"time"

	"github.com/prometheus/common/model"
)

// nowMinus is a time relative to now in InfluxQL: now() - 5m.
var nowMinus = regexp.MustCompile(`(?i)\bnow\(\)\s*-\s*([0-9]+[a-zµ]+)`)

// Lookback is how far back an InfluxQL query reads, from its text: the
// furthest now() - <duration> in it (WHERE time > now() - 5m). A query
// with none (all of history, or an absolute time) is an error: the caller
// cannot tell how far back it reads.
func Lookback(query string) (time.Duration, error) {
	var back time.Duration
	found := false
	for _, m := range nowMinus.FindAllStringSubmatch(withoutStrings(query), -1) {
		d, err := model.ParseDuration(m[1])
		if err != nil {
			return 0, errors.New("the query's now() - " + m[1] + " is not a duration Sluice reads (ms, s, m, h, d, w)")
		}
		back, found = max(back, time.Duration(d)), true
	}
	if !found {
		return 0, errors.New("the query has no time > now() - <duration>, so how far back it reads is not known")
	}
	return back, nil
}

// withoutStrings blanks InfluxQL's quoted strings ('...') and identifiers
// ("..."), so that text in them is not read as a condition.
func withoutStrings(query string) string {
	b := []byte(query)
	var quote byte
	for i := 0; i < len(b); i++ {
		switch {
		case quote == 0 && (b[i] == '\'' || b[i] == '"'):
			quote = b[i]
		case quote != 0 && b[i] == '\\' && i+1 < len(b):
			b[i], b[i+1] = ' ', ' '
			i++
		case quote != 0 && b[i] == quote:
			quote = 0
		case quote != 0:
			b[i] = ' '
		}
	}
	return string(b)
}
