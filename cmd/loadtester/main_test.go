package main

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-logr/logr"
)

// serveFlags starts the loadtester's handler from a command line.
func serveFlags(t *testing.T, args ...string) *httptest.Server {
	t.Helper()
	c, err := parseFlags(append([]string{"-state-file="}, args...))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	h, launcher, err := newHandler(ctx, c, logr.Discard())
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(func() {
		srv.Close()
		cancel()
		launcher.Wait()
	})
	return srv
}

// post sends body to path with the token (none when empty).
func post(t *testing.T, url, token, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	msg, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, strings.TrimSpace(string(msg))
}

func TestTheTokenFileIsReadAgainWhenTheSecretIsRotated(t *testing.T) {
	path := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(path, []byte("first\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	old := time.Now().Add(-time.Hour)
	if err := os.Chtimes(path, old, old); err != nil {
		t.Fatal(err)
	}
	srv := serveFlags(t, "-token-file="+path)
	const open = `{"name":"web","namespace":"shop","checksum":"r1"}`
	if code, _ := post(t, srv.URL+"/gate/open", "", open); code != http.StatusUnauthorized {
		t.Errorf("/gate/open without the token = %d, want 401", code)
	}
	if code, _ := post(t, srv.URL+"/gate/open", "first", open); code != http.StatusOK {
		t.Errorf("/gate/open with the token = %d, want 200", code)
	}
	if err := os.WriteFile(path, []byte("second\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, _ := post(t, srv.URL+"/gate/close", "first", open); code != http.StatusUnauthorized {
		t.Errorf("/gate/close with the old token after a rotation = %d, want 401", code)
	}
	if code, _ := post(t, srv.URL+"/gate/close", "second", open); code != http.StatusOK {
		t.Errorf("/gate/close with the new token = %d, want 200", code)
	}
}

func TestBadTokenFlagsAreRefusedAtStart(t *testing.T) {
	if _, err := parseFlags([]string{"-token-file=" + filepath.Join(t.TempDir(), "missing")}); err == nil || !strings.Contains(err.Error(), "-token-file") {
		t.Errorf("a missing token file = %v, want an error naming -token-file", err)
	}
	if _, err := parseFlags([]string{"-token-for-hooks"}); err == nil {
		t.Errorf("-token-for-hooks without a token gave no error")
	}
}

func TestLoadRunsAboveTheCapsAreRefusedWithA400SayingWhy(t *testing.T) {
	srv := serveFlags(t, "-token=s3cret", "-max-rate=20", "-max-duration=10s")
	for _, tc := range []struct{ md, want string }{
		{`{"url":"http://127.0.0.1:1/","rate":"21","duration":"5s"}`, "rate 21 is above this loadtester's cap of 20 requests per second (--max-rate)"},
		{`{"url":"http://127.0.0.1:1/","rate":"5","duration":"11s"}`, "duration 11s is above this loadtester's cap of 10s (--max-duration)"},
	} {
		code, msg := post(t, srv.URL+"/", "s3cret", `{"name":"web","namespace":"shop","metadata":`+tc.md+`}`)
		if code != http.StatusBadRequest || !strings.Contains(msg, tc.want) {
			t.Errorf("load run %s = %d %s, want 400 saying %q", tc.md, code, msg, tc.want)
		}
	}
}

func TestTheCapsCannotBeRaisedAboveTheBuiltInLimits(t *testing.T) {
	for _, args := range [][]string{{"-max-rate=5001"}, {"-max-rate=0"}, {"-max-duration=31m"}, {"-max-duration=0s"}} {
		if _, err := parseFlags(args); err == nil {
			t.Errorf("%v accepted", args)
		}
	}
}

func TestTheNamespaceAllowListHoldsOnEveryEndpoint(t *testing.T) {
	srv := serveFlags(t, "-token=s3cret", "-allowed-namespaces=shop, payments")
	const other = `{"name":"web","namespace":"elsewhere","checksum":"r1","metadata":{"url":"http://127.0.0.1:1/","rate":"1","duration":"1s"}}`
	for _, path := range []string{"/", "/gate/approve", "/gate/halt", "/gate/check", "/gate/open", "/gate/close",
		"/rollback/check", "/rollback/open", "/rollback/close"} {
		code, msg := post(t, srv.URL+path, "s3cret", other)
		if code != http.StatusForbidden || !strings.Contains(msg, `namespace "elsewhere" is not allowed`) {
			t.Errorf("%s for another namespace = %d %q, want 403 saying why", path, code, msg)
		}
	}
	if code, _ := post(t, srv.URL+"/gate/approve", "", `{"name":"web","namespace":"payments"}`); code != http.StatusOK {
		t.Errorf("/gate/approve for an allowed namespace = %d, want 200", code)
	}
}

// TestLoadRunsPassTheEgressPolicy: a load run's URL is chosen by whoever
// writes a Rollout; aimed at a loopback service (here the test's own), the
// loadtester sends it nothing by default, and reaches it once the operator
// allows it with -egress-allow.
func TestLoadRunsPassTheEgressPolicy(t *testing.T) {
	var hits atomic.Int64
	target := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { hits.Add(1) }))
	t.Cleanup(target.Close)
	run := `{"name":"web","namespace":"shop","metadata":{"url":"` + target.URL + `/","rate":"20","duration":"200ms","blocking":"true"}}`

	code, msg := post(t, serveFlags(t, "-token=s3cret").URL+"/", "s3cret", run)
	if hits.Load() != 0 {
		t.Fatalf("a load run reached a loopback target %d times with the default policy (answer %d %s)", hits.Load(), code, msg)
	}
	if !strings.Contains(msg, "refused") && !strings.Contains(msg, `"errors"`) {
		t.Errorf("the refused run answered %d %s: want the errors counted", code, msg)
	}

	code, msg = post(t, serveFlags(t, "-token=s3cret", "-egress-allow=127.0.0.1/32").URL+"/", "s3cret", run)
	if code != http.StatusOK || hits.Load() == 0 {
		t.Errorf("with -egress-allow=127.0.0.1/32 the run answered %d %s and the target got %d requests", code, msg, hits.Load())
	}
}
