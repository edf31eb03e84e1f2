package webhooks

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	sluicev1 "github.com/sluice-dev/sluice/api/v1alpha1"
)

func writeToken(t *testing.T, path, token string, mtime time.Time) {
	t.Helper()
	if err := os.WriteFile(path, []byte(token), 0o600); err != nil {
		t.Fatal(err)
	}
	// Set the time: two writes within the file system's clock tick would
	// otherwise look alike.
	if err := os.Chtimes(path, mtime, mtime); err != nil {
		t.Fatal(err)
	}
}

func TestATokenFileIsReadAgainWhenItChanges(t *testing.T) {
	path := filepath.Join(t.TempDir(), "token")
	t0 := time.Now().Add(-time.Hour)
	writeToken(t, path, "first\n", t0)
	tf := &TokenFile{Path: path}
	if got, err := tf.Token(); err != nil || got != "first" {
		t.Fatalf("Token() = %q, %v; want first, trimmed", got, err)
	}
	writeToken(t, path, "second", t0.Add(time.Minute))
	if got, err := tf.Token(); err != nil || got != "second" {
		t.Errorf("Token() after a rotation = %q, %v; want second", got, err)
	}
	writeToken(t, path, "  \n", t0.Add(2*time.Minute))
	if _, err := tf.Token(); err == nil || !strings.Contains(err.Error(), "empty") {
		t.Errorf("Token() of an empty file = %v, want an error: no token must not mean no check", err)
	}
	if _, err := (&TokenFile{Path: filepath.Join(t.TempDir(), "missing")}).Token(); err == nil {
		t.Errorf("Token() of a missing file gave no error")
	}
}

// recordingTransport answers 200 and keeps the requests it was given.
type recordingTransport struct{ reqs []*http.Request }

func (r *recordingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	r.reqs = append(r.reqs, req)
	return &http.Response{StatusCode: http.StatusOK, Body: http.NoBody, Request: req}, nil
}

func TestTheTokenGoesOnlyToTheListedHosts(t *testing.T) {
	path := filepath.Join(t.TempDir(), "token")
	writeToken(t, path, "s3cret", time.Now())
	rec := &recordingTransport{}
	hc, err := WithToken(&http.Client{Transport: rec}, path, []string{"sluice-loadtester.sluice-system.svc.cluster.local"})
	if err != nil {
		t.Fatal(err)
	}
	for url, want := range map[string]string{
		"http://sluice-loadtester.sluice-system.svc.cluster.local:80/gate/check": "Bearer s3cret",
		"http://SLUICE-LOADTESTER.sluice-system.svc.cluster.local./":             "Bearer s3cret",
		// A Rollout's author chooses webhook URLs: the token must not
		// follow them anywhere else.
		"https://hooks.example.com/gate/check":                               "",
		"http://sluice-loadtester.sluice-system.svc.cluster.local.example/x": "",
	} {
		rec.reqs = nil
		req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader("{}"))
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatalf("%s: %v", url, err)
		}
		_ = resp.Body.Close()
		if got := rec.reqs[0].Header.Get("Authorization"); got != want {
			t.Errorf("%s got Authorization %q, want %q", url, got, want)
		}
		if req.Header.Get("Authorization") != "" {
			t.Errorf("%s: the caller's request was changed", url)
		}
	}
}

func TestWithTokenRefusesAFileItCannotReadOrNoHosts(t *testing.T) {
	if _, err := WithToken(nil, filepath.Join(t.TempDir(), "missing"), []string{"lt"}); err == nil {
		t.Errorf("WithToken with a missing file gave no error")
	}
	path := filepath.Join(t.TempDir(), "token")
	writeToken(t, path, "s3cret", time.Now())
	if _, err := WithToken(nil, path, nil); err == nil || !strings.Contains(err.Error(), "hosts") {
		t.Errorf("WithToken without hosts = %v, want an error naming the hosts", err)
	}
}

func TestAClientWithTheTokenFilePassesALoadtesterThatRequiresIt(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "token")
	writeToken(t, path, "s3cret", time.Now().Add(-time.Hour))
	// The loadtester reads the same file, as both pods mount one Secret.
	gs, err := NewGateServer(ServerOptions{TokenFile: &TokenFile{Path: path}, TokenForHooks: true})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(gs)
	t.Cleanup(srv.Close)
	ro := &sluicev1.Rollout{}
	ro.Name, ro.Namespace = "web", "shop"
	ro.Spec.Analysis = &sluicev1.Analysis{Webhooks: []sluicev1.Webhook{
		{Name: "smoke", Type: sluicev1.HookPreRollout, URL: srv.URL + "/gate/approve"},
	}}

	res := (&Client{}).CallAll(context.Background(), ro, sluicev1.HookPreRollout, "abc")
	if res.AllPassed || !strings.Contains(res.Message, "401") {
		t.Errorf("a client without the token: %+v, want 401", res)
	}
	hc, err := WithToken(&http.Client{Timeout: time.Minute}, path, []string{"127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	if res := (&Client{HTTP: hc}).CallAll(context.Background(), ro, sluicev1.HookPreRollout, "abc"); !res.AllPassed {
		t.Errorf("a client with the token file: %+v", res)
	}
	// A rotated Secret reaches both sides without a restart.
	writeToken(t, path, "rotated", time.Now())
	if res := (&Client{HTTP: hc}).CallAll(context.Background(), ro, sluicev1.HookPreRollout, "abc"); !res.AllPassed {
		t.Errorf("after the token was rotated: %+v", res)
	}
	if hc.Timeout != time.Minute {
		t.Errorf("WithToken dropped the client's timeout")
	}
}

func TestAnUnreadableTokenFileLetsNoOneIn(t *testing.T) {
	path := filepath.Join(t.TempDir(), "token")
	writeToken(t, path, "s3cret", time.Now())
	_, c := serve(t, ServerOptions{TokenFile: &TokenFile{Path: path}})
	c.token = "s3cret"
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if code, msg := c.postRelease("/gate/open", "shop", "web", "r1"); code != http.StatusServiceUnavailable || !strings.Contains(msg, "token") {
		t.Errorf("/gate/open with the token file gone = %d %q, want 503 naming the token", code, msg)
	}
}
