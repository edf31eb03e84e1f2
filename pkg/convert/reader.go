package convert

import (
	"fmt"
	"math"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// tracker remembers which fields of one input object the converter read
// (or reported), so that every other field can be reported as not carried
// over: a conversion never drops a field without saying so.
type tracker struct {
	used  map[string]bool // full paths, e.g. spec.analysis.metrics[0].name
	known map[string]bool // normalised paths, e.g. analysis.metrics[].name
	notes []Note
}

// reader reads fields of a map inside an unstructured object; every read
// marks the field as used.
type reader struct {
	t      *tracker
	prefix string // full path of m, e.g. "spec" or "spec.analysis.metrics[0]"
	m      map[string]any
}

func newReader(obj map[string]any) *reader {
	return &reader{t: &tracker{used: map[string]bool{}, known: map[string]bool{}}, m: obj}
}

// path is the full path of key under r.
func (r *reader) path(key string) string {
	if r.prefix == "" {
		return key
	}
	return r.prefix + "." + key
}

var indexRE = regexp.MustCompile(`\[[0-9]+\]`)

// fieldName is a full path as the field table names it: without the
// leading "spec." and with list indices as [].
func fieldName(full string) string {
	return indexRE.ReplaceAllString(strings.TrimPrefix(full, "spec."), "[]")
}

// lookup finds key (dotted, relative to r) without marking it.
func (r *reader) lookup(key string) (any, bool) {
	var cur any = r.m
	for _, k := range strings.Split(key, ".") {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil, false
		}
		if cur, ok = m[k]; !ok {
			return nil, false
		}
	}
	return cur, cur != nil
}

// has says whether key is set, without marking it.
func (r *reader) has(key string) bool {
	_, ok := r.lookup(key)
	return ok
}

// get finds key and marks it (and everything under it) as used.
func (r *reader) get(key string) (any, bool) {
	v, ok := r.lookup(key)
	if ok {
		r.use(key)
	}
	return v, ok
}

// use marks key and everything under it as read.
func (r *reader) use(key string) {
	full := r.path(key)
	r.t.used[full] = true
	r.t.known[fieldName(full)] = true
}

// note records a finding about key (relative to r) and marks it as used.
func (r *reader) note(key string, kind NoteKind, format string, args ...any) {
	field := r.path(key)
	if key == "" {
		field = r.prefix
		r.t.used[field] = true
		r.t.known[fieldName(field)] = true
	} else {
		r.use(key)
	}
	r.t.notes = append(r.t.notes, Note{Field: field, Kind: kind, Reason: fmt.Sprintf(format, args...)})
}

// invalid reports a field whose value has an unexpected type.
func (r *reader) invalid(key string, v any, want string) {
	r.note(key, NotCarried, "expected %s, found %v", want, v)
}

func (r *reader) str(key string) (string, bool) {
	v, ok := r.get(key)
	if !ok {
		return "", false
	}
	s, isStr := v.(string)
	if !isStr {
		r.invalid(key, v, "a string")
		return "", false
	}
	return s, true
}

// int reads an integer; YAML and JSON decoders give int64 or float64.
func (r *reader) int(key string) (int64, bool) {
	v, ok := r.get(key)
	if !ok {
		return 0, false
	}
	switch n := v.(type) {
	case int64:
		return n, true
	case int:
		return int64(n), true
	case float64:
		if n == math.Trunc(n) {
			return int64(n), true
		}
	}
	r.invalid(key, v, "an integer")
	return 0, false
}

func (r *reader) float(key string) (float64, bool) {
	v, ok := r.get(key)
	if !ok {
		return 0, false
	}
	switch n := v.(type) {
	case int64:
		return float64(n), true
	case int:
		return float64(n), true
	case float64:
		return n, true
	case string:
		if f, err := strconv.ParseFloat(n, 64); err == nil {
			return f, true
		}
	}
	r.invalid(key, v, "a number")
	return 0, false
}

func (r *reader) bool(key string) (bool, bool) {
	v, ok := r.get(key)
	if !ok {
		return false, false
	}
	b, isBool := v.(bool)
	if !isBool {
		r.invalid(key, v, "true or false")
		return false, false
	}
	return b, true
}

// strMap reads a map of strings; values of other types are reported.
func (r *reader) strMap(key string) map[string]string {
	v, ok := r.get(key)
	if !ok {
		return nil
	}
	m, isMap := v.(map[string]any)
	if !isMap {
		r.invalid(key, v, "a map")
		return nil
	}
	out := make(map[string]string, len(m))
	for k, x := range m {
		switch s := x.(type) {
		case string:
			out[k] = s
		case int64, float64, bool:
			out[k] = fmt.Sprint(s)
		default:
			r.invalid(key+"."+k, x, "a string")
		}
	}
	return out
}

// strList reads a list of strings.
func (r *reader) strList(key string) []string {
	v, ok := r.get(key)
	if !ok {
		return nil
	}
	l, isList := v.([]any)
	if !isList {
		r.invalid(key, v, "a list")
		return nil
	}
	var out []string
	for i, x := range l {
		s, isStr := x.(string)
		if !isStr {
			r.invalid(fmt.Sprintf("%s[%d]", key, i), x, "a string")
			continue
		}
		out = append(out, s)
	}
	return out
}

// obj is a reader of the map at key, or nil when key is not a map. It marks
// nothing itself: the fields read through it are marked.
func (r *reader) obj(key string) *reader {
	v, ok := r.lookup(key)
	if !ok {
		return nil
	}
	m, isMap := v.(map[string]any)
	if !isMap {
		r.invalid(key, v, "an object")
		return nil
	}
	return &reader{t: r.t, prefix: r.path(key), m: m}
}

// items are readers of the maps in the list at key.
func (r *reader) items(key string) []*reader {
	v, ok := r.lookup(key)
	if !ok {
		return nil
	}
	l, isList := v.([]any)
	if !isList {
		r.invalid(key, v, "a list")
		return nil
	}
	var out []*reader
	for i, x := range l {
		ik := fmt.Sprintf("%s[%d]", key, i)
		m, isMap := x.(map[string]any)
		if !isMap {
			r.invalid(ik, x, "an object")
			continue
		}
		out = append(out, &reader{t: r.t, prefix: r.path(ik), m: m})
	}
	if len(l) == 0 {
		r.use(key)
	}
	return out
}

// unread lists the leaf fields under m that nothing read, sorted.
func (t *tracker) unread(prefix string, v any) []string {
	if t.covered(prefix) {
		return nil
	}
	var out []string
	switch x := v.(type) {
	case map[string]any:
		if len(x) == 0 {
			return nil
		}
		for k, y := range x {
			p := k
			if prefix != "" {
				p = prefix + "." + k
			}
			out = append(out, t.unread(p, y)...)
		}
	case []any:
		for i, y := range x {
			out = append(out, t.unread(fmt.Sprintf("%s[%d]", prefix, i), y)...)
		}
	case nil:
	default:
		out = append(out, prefix)
	}
	sort.Strings(out)
	return out
}

// covered says whether full or one of its parents was read.
func (t *tracker) covered(full string) bool {
	for p := full; p != ""; {
		if t.used[p] {
			return true
		}
		i := strings.LastIndexAny(p, ".[")
		if i < 0 {
			return false
		}
		p = p[:i]
	}
	return false
}
