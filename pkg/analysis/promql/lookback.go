// Package promql reads how far back in time a PromQL query looks, from its
// text alone: the range selectors ([5m]), subqueries ([30m:1m]) and offset
// modifiers it holds, nested as written. It is no PromQL parser: it scans
// tokens (skipping strings and comments, matching parentheses) and lets
// Prometheus judge the rest of the grammar when the query runs.
package promql

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/common/model"
)

// span is one read back in time: a range selector or a subquery (at the
// index of its '['), or an instant selector's offset (at the index of the
// keyword). A subquery also names the text it evaluates: from the '(' of
// the group just before its '[' (-1 when it applies to a bare selector).
type span struct {
	at, from int
	length   time.Duration
	offset   time.Duration
	subquery bool
}

// Lookback is how far before the evaluation time the query reads samples:
// the longest range or offset, plus those of the subqueries it sits in.
// A query of instant selectors only (the latest value of a gauge) looks
// back 0. An @ modifier is not followed. The error names what could not be
// read; the caller cannot tell how far the query looks then.
func Lookback(query string) (time.Duration, error) {
	var (
		spans   []span
		opens   []int           // indexes of unmatched '('
		matched = map[int]int{} // index of ')' -> index of its '('
		last    = -1            // index of the last token's end, -1 at the start
		lastEnd byte            // that token's last character
		matcher bool            // inside a selector's {...}: names, no keywords
	)
	for i := 0; i < len(query); {
		c := query[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			i++
			continue
		case c == '#':
			for i < len(query) && query[i] != '\n' {
				i++
			}
			continue
		case c == '"' || c == '\'' || c == '`':
			end, err := skipString(query, i)
			if err != nil {
				return 0, err
			}
			i = end
		case c == '{' || c == '}':
			matcher = c == '{'
			i++
		case c == '(':
			opens = append(opens, i)
			i++
		case c == ')':
			if len(opens) == 0 {
				return 0, fmt.Errorf("unmatched ')' at %d", i)
			}
			matched[i] = opens[len(opens)-1]
			opens = opens[:len(opens)-1]
			i++
		case c == '[':
			end := strings.IndexByte(query[i:], ']')
			if end < 0 {
				return 0, fmt.Errorf("unclosed '[' at %d", i)
			}
			s, err := readRange(query[i+1 : i+end])
			if err != nil {
				return 0, err
			}
			s.at, s.from = i, -1
			if s.subquery && lastEnd == ')' {
				s.from = matched[last]
			}
			spans = append(spans, s)
			i += end + 1
		case isIdentStart(c):
			j := i
			for j < len(query) && isIdentPart(query[j]) {
				j++
			}
			if matcher || !strings.EqualFold(query[i:j], "offset") {
				i = j
				break
			}
			d, end, err := readOffset(query, j)
			if err != nil {
				return 0, err
			}
			if len(spans) > 0 && lastEnd == ']' {
				// x[5m] offset 1h: the range ends an hour back.
				spans[len(spans)-1].offset = d
			} else {
				spans = append(spans, span{at: i, from: -1, offset: d})
			}
			i = end
		default:
			i++
		}
		last, lastEnd = i-1, query[i-1]
	}
	if len(opens) > 0 {
		return 0, fmt.Errorf("unclosed '(' at %d", opens[len(opens)-1])
	}
	var longest time.Duration
	for _, s := range spans {
		total := s.back()
		for _, outer := range spans {
			if outer.subquery && outer.from >= 0 && outer.from < s.at && s.at < outer.at {
				total = add(total, outer.back())
			}
		}
		longest = max(longest, total)
	}
	return longest, nil
}

// back is how far before its own evaluation time a span reads; an offset
// into the future (negative) reads no further back than none.
func (s span) back() time.Duration { return add(s.length, max(s.offset, 0)) }

// add adds two lookbacks of at least 0, at most the longest duration.
func add(a, b time.Duration) time.Duration {
	if a > math.MaxInt64-b {
		return math.MaxInt64
	}
	return a + b
}

// readRange reads the text between '[' and ']': a duration, or a
// subquery's duration, ':' and an optional resolution.
func readRange(text string) (span, error) {
	length, _, sub := strings.Cut(text, ":")
	d, err := duration(strings.TrimSpace(length))
	if err != nil {
		return span{}, fmt.Errorf("range [%s]: %w", text, err)
	}
	return span{length: d, subquery: sub}, nil
}

// readOffset reads the duration after an offset keyword that ends at i,
// signed; it returns the index after it.
func readOffset(query string, i int) (time.Duration, int, error) {
	for i < len(query) && (query[i] == ' ' || query[i] == '\t' || query[i] == '\n' || query[i] == '\r') {
		i++
	}
	sign := time.Duration(1)
	if i < len(query) && (query[i] == '-' || query[i] == '+') {
		if query[i] == '-' {
			sign = -1
		}
		i++
	}
	j := i
	for j < len(query) && (isIdentPart(query[j]) || query[j] == '.') {
		j++
	}
	d, err := duration(query[i:j])
	if err != nil {
		return 0, 0, fmt.Errorf("offset %s: %w", query[i:j], err)
	}
	return sign * d, j, nil
}

// duration reads a PromQL duration: units (1h30m, 500ms, 2d), or a number
// of seconds.
func duration(s string) (time.Duration, error) {
	if d, err := model.ParseDuration(s); err == nil {
		return time.Duration(d), nil
	}
	secs, err := strconv.ParseFloat(s, 64)
	if err != nil || secs < 0 || secs > float64(1<<62)/float64(time.Second) {
		return 0, fmt.Errorf("%q is not a duration", s)
	}
	return time.Duration(secs * float64(time.Second)), nil
}

// skipString returns the index after the string literal starting at i.
// Double- and single-quoted strings take backslash escapes; backquoted
// ones are raw.
func skipString(query string, i int) (int, error) {
	quote := query[i]
	for j := i + 1; j < len(query); j++ {
		switch query[j] {
		case '\\':
			if quote != '`' {
				j++
			}
		case quote:
			return j + 1, nil
		}
	}
	return 0, fmt.Errorf("unclosed string at %d", i)
}

func isIdentStart(c byte) bool {
	return c == '_' || c == ':' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z'
}

func isIdentPart(c byte) bool { return isIdentStart(c) || '0' <= c && c <= '9' }
