package influxdb

import (
	"errors"
	"regexp"
	"time"

	"github.com/prometheus/common/model"

	"github.com/sluice-dev/sluice/pkg/analysis/provider"
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
	for _, m := range nowMinus.FindAllStringSubmatch(provider.BlankQuoted(query, `'"`), -1) {
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
