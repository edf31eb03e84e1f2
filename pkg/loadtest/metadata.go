package loadtest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Metadata keys of a load run, as given in a webhook's metadata.
const (
	KeyURL         = "url"
	KeyMethod      = "method"
	KeyRate        = "rate"
	KeyDuration    = "duration"
	KeyConcurrency = "concurrency"
	KeyTimeout     = "timeout"
	KeyBody        = "body"
	// KeyHeaders is a JSON object of header names to values.
	KeyHeaders = "headers"
	// HeaderPrefix starts a key that sets one header: "header-X-Foo: bar".
	HeaderPrefix = "header-"
	// KeyBlocking, when "true", makes the loadtester answer only after the
	// run, with its result.
	KeyBlocking = "blocking"
	// KeyWhileRunning says what a call does while a run started by an
	// earlier call for the same Rollout and URL still runs: "start" (the
	// default) starts another, "skip" answers 200 "running" without one
	// (Flagger's loadtester skips a command that is still running).
	KeyWhileRunning = "whileRunning"
)

// Values of KeyWhileRunning.
const (
	WhileRunningStart = "start"
	WhileRunningSkip  = "skip"
)

// whileRunning reads KeyWhileRunning.
func whileRunning(md map[string]string) (string, error) {
	switch v := md[KeyWhileRunning]; v {
	case "", WhileRunningStart:
		return WhileRunningStart, nil
	case WhileRunningSkip:
		return v, nil
	default:
		return "", fmt.Errorf("%w: metadata.%s is %q, want %q or %q", ErrBadSpec, KeyWhileRunning, v, WhileRunningStart, WhileRunningSkip)
	}
}

// SpecFromMetadata reads a load spec from a webhook's metadata. Headers come
// from a JSON object under "headers" and from keys "header-<Name>"; the
// latter win. The spec is validated against the limits.
func SpecFromMetadata(md map[string]string) (Spec, error) {
	s := Spec{URL: md[KeyURL], Method: strings.ToUpper(md[KeyMethod]), Header: http.Header{}}
	if s.URL == "" {
		return s, fmt.Errorf("%w: metadata.%s is required", ErrBadSpec, KeyURL)
	}
	var err error
	if s.Rate, err = floatKey(md, KeyRate, 10); err != nil {
		return s, err
	}
	if s.Duration, err = durationKey(md, KeyDuration, time.Minute); err != nil {
		return s, err
	}
	if s.Timeout, err = durationKey(md, KeyTimeout, 10*time.Second); err != nil {
		return s, err
	}
	if v, ok := md[KeyConcurrency]; ok {
		if s.Concurrency, err = strconv.Atoi(v); err != nil {
			return s, fmt.Errorf("%w: metadata.%s: %w", ErrBadSpec, KeyConcurrency, err)
		}
	}
	if v, ok := md[KeyBody]; ok {
		s.Body = []byte(v)
	}
	if v, ok := md[KeyHeaders]; ok && v != "" {
		var hs map[string]string
		if err := json.Unmarshal([]byte(v), &hs); err != nil {
			return s, fmt.Errorf("%w: metadata.%s must be a JSON object of strings: %w", ErrBadSpec, KeyHeaders, err)
		}
		for k, v := range hs {
			s.Header.Set(k, v)
		}
	}
	for k, v := range md {
		if name, ok := strings.CutPrefix(k, HeaderPrefix); ok && name != "" {
			s.Header.Set(name, v)
		}
	}
	if err := s.Validate(); err != nil {
		return s, fmt.Errorf("%w: %w", ErrBadSpec, err)
	}
	return s, nil
}

// Blocking reports whether the metadata asks for a blocking run.
func Blocking(md map[string]string) bool {
	b, _ := strconv.ParseBool(md[KeyBlocking])
	return b
}

func floatKey(md map[string]string, k string, def float64) (float64, error) {
	v, ok := md[k]
	if !ok {
		return def, nil
	}
	f, err := strconv.ParseFloat(v, 64)
	if err != nil {
		return 0, fmt.Errorf("%w: metadata.%s: %w", ErrBadSpec, k, err)
	}
	return f, nil
}

func durationKey(md map[string]string, k string, def time.Duration) (time.Duration, error) {
	v, ok := md[k]
	if !ok {
		return def, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		return 0, fmt.Errorf("%w: metadata.%s: %w", ErrBadSpec, k, err)
	}
	return d, nil
}
