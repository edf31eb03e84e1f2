// Package providertest helps the provider packages' tests: a Config for a
// local server and a handler answering documented bodies.
package providertest

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	sluicev1 "github.com/sluice-dev/sluice/api/v1alpha1"
	"github.com/sluice-dev/sluice/pkg/analysis/provider"
)

// Config is a provider configuration with a client like the manager's: no
// redirects followed, a 2s timeout; a 5m window. With creds, the template
// names the Secret "creds" holding them.
func Config(spec sluicev1.MetricProvider, creds map[string]string) provider.Config {
	cfg := provider.Config{
		Spec: spec, Timeout: 2 * time.Second, Window: 5 * time.Minute,
		HTTP: &http.Client{Timeout: 2 * time.Second,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }},
	}
	if creds != nil {
		cfg.Spec.SecretRef = &sluicev1.LocalObjectReference{Name: "creds"}
		cfg.Credentials = map[string][]byte{}
		for k, v := range creds {
			cfg.Credentials[k] = []byte(v)
		}
	}
	return cfg
}

// Answer is one canned answer of a test server.
type Answer struct {
	Status  int
	Headers map[string]string
	Body    string
}

// Server answers every request with *answer (read at each request, so a
// test may change it) after passing the request to seen, if set.
func Server(t testing.TB, answer *Answer, seen func(*http.Request)) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if seen != nil {
			seen(r)
		}
		for k, v := range answer.Headers {
			w.Header().Set(k, v)
		}
		if w.Header().Get("Content-Type") == "" {
			w.Header().Set("Content-Type", "application/json")
		}
		status := answer.Status
		if status == 0 {
			status = http.StatusOK
		}
		w.WriteHeader(status)
		_, _ = w.Write([]byte(answer.Body))
	}))
	t.Cleanup(srv.Close)
	return srv
}

// RateLimited and Unauthorized are the answers every provider's tests
// check: a 429 with Retry-After and a 403.
var (
	RateLimited  = Answer{Status: http.StatusTooManyRequests, Headers: map[string]string{"Retry-After": "30"}, Body: `{"errors":["Too many requests"]}`}
	Unauthorized = Answer{Status: http.StatusForbidden, Body: `{"errors":["Forbidden"]}`}
)

// Case is one answer of a provider's server and what the provider makes of
// it: Want, or an error containing Err (wrapping ErrNoData when NoData).
type Case struct {
	Name   string
	Answer Answer
	Want   float64
	Err    string
	NoData bool
}

// Run queries a provider built by build against a server giving each case's
// answer.
func Run(t *testing.T, cases []Case, query string, build func(url string) (provider.Provider, error)) {
	t.Helper()
	for _, c := range cases {
		t.Run(c.Name, func(t *testing.T) {
			answer := c.Answer
			srv := Server(t, &answer, nil)
			p, err := build(srv.URL)
			if err != nil {
				t.Fatal(err)
			}
			v, err := p.Query(t.Context(), query)
			switch {
			case c.Err == "" && err != nil:
				t.Fatalf("got error %v, want %v", err, c.Want)
			case c.Err == "" && v != c.Want:
				t.Fatalf("got %v, want %v", v, c.Want)
			case c.Err != "" && (err == nil || !contains(err.Error(), c.Err)):
				t.Fatalf("got %v, %v; want an error containing %q", v, err, c.Err)
			case c.NoData != errors.Is(err, provider.ErrNoData):
				t.Fatalf("got %v: no data is %v, want %v", err, errors.Is(err, provider.ErrNoData), c.NoData)
			}
		})
	}
}

// SeriesCase is one answer of a provider's server and what its Series
// makes of it: Want (oldest first), or an error containing Err (wrapping
// ErrNoData when NoData).
type SeriesCase struct {
	Name   string
	Answer Answer
	Want   []float64
	Err    string
	NoData bool
}

// Window is the window RunSeries asks for.
type Window struct {
	Start, End time.Time
	Step       time.Duration
}

// RunSeries asks a provider built by build for the series of query over w,
// against a server giving each case's answer.
func RunSeries(t *testing.T, cases []SeriesCase, query string, w Window, build func(url string) (provider.Provider, error)) {
	t.Helper()
	for _, c := range cases {
		t.Run(c.Name, func(t *testing.T) {
			answer := c.Answer
			srv := Server(t, &answer, nil)
			p, err := build(srv.URL)
			if err != nil {
				t.Fatal(err)
			}
			sp, ok := p.(provider.SeriesProvider)
			if !ok {
				t.Fatalf("%T cannot return a series", p)
			}
			got, err := sp.Series(t.Context(), query, w.Start, w.End, w.Step)
			switch {
			case c.Err == "" && err != nil:
				t.Fatalf("got error %v, want %v", err, c.Want)
			case c.Err == "" && !slices.Equal(got, c.Want):
				t.Fatalf("got %v, want %v", got, c.Want)
			case c.Err != "" && (err == nil || !contains(err.Error(), c.Err)):
				t.Fatalf("got %v, %v; want an error containing %q", got, err, c.Err)
			case c.NoData != errors.Is(err, provider.ErrNoData):
				t.Fatalf("got %v: no data is %v, want %v", err, errors.Is(err, provider.ErrNoData), c.NoData)
			}
		})
	}
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }
