package promtest

import (
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"sync/atomic"
	"testing"
)

// AuthProxy is a reverse proxy on loopback that lets a request through to
// its backend only with the expected bearer token, as a Prometheus behind an
// authenticating gateway would.
type AuthProxy struct {
	// URL of the proxy.
	URL string
	// Rejected counts the requests turned away.
	Rejected atomic.Int64
	// Passed counts the requests let through.
	Passed atomic.Int64
}

// NewAuthProxy starts a proxy to backend that requires "Bearer <token>",
// closed in the test's cleanup.
func NewAuthProxy(t testing.TB, backend, token string) *AuthProxy {
	t.Helper()
	u, err := url.Parse(backend)
	if err != nil {
		t.Fatal(err)
	}
	p := &AuthProxy{}
	rp := httputil.NewSingleHostReverseProxy(u)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer "+token {
			p.Rejected.Add(1)
			http.Error(w, "missing or wrong bearer token", http.StatusUnauthorized)
			return
		}
		p.Passed.Add(1)
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	p.URL = srv.URL
	return p
}
