package webhooks

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	sluicev1 "github.com/sluice-dev/sluice/api/v1alpha1"
	"github.com/sluice-dev/sluice/pkg/egress"
)

func TestCallSendsThePayloadAndPassesOn2xx(t *testing.T) {
	var got Payload
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/json" {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		_ = json.NewDecoder(r.Body).Decode(&got)
		w.WriteHeader(http.StatusAccepted)
	}))
	defer srv.Close()
	c := &Client{}
	hook := sluicev1.Webhook{Name: "load", URL: srv.URL, Metadata: map[string]string{"rate": "10"}}
	err := c.Call(context.Background(), hook, Payload{Name: "web", Namespace: "shop", Phase: sluicev1.PhaseProgressing, Checksum: "abc"})
	if err != nil {
		t.Fatalf("Call = %v", err)
	}
	if got.Name != "web" || got.Namespace != "shop" || got.Phase != sluicev1.PhaseProgressing || got.Checksum != "abc" || got.Metadata["rate"] != "10" {
		t.Errorf("payload = %+v", got)
	}
}

// ownPath is a path only the test's own calls use. The tests that count
// calls count only those: under go test ./..., a client of another package
// still calling a server of its own that has closed can reach the port the
// kernel gave this test's server (CI once counted 23 calls for 3).
func ownPath(t *testing.T) string { return "/" + strings.ReplaceAll(t.Name(), "/", "-") }

func TestCallFailsWithTheTrimmedBodyAndRetries(t *testing.T) {
	var calls atomic.Int32
	path := ownPath(t)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != path {
			http.NotFound(w, r)
			return
		}
		calls.Add(1)
		w.WriteHeader(http.StatusForbidden)
		_, _ = w.Write([]byte("  gate closed: " + strings.Repeat("x", 500) + "\n"))
	}))
	defer srv.Close()
	err := (&Client{}).Call(context.Background(), sluicev1.Webhook{Name: "gate", URL: srv.URL + path, Retries: 2}, Payload{})
	if err == nil || !strings.HasPrefix(err.Error(), "403 Forbidden: gate closed: xxx") || len(err.Error()) > 300 {
		t.Errorf("Call = %v, want the status and a trimmed body", err)
	}
	if calls.Load() != 3 {
		t.Errorf("%d calls, want 1 + 2 retries", calls.Load())
	}
}

func TestCallTimesOut(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-release }))
	defer srv.Close()
	defer close(release)
	hook := sluicev1.Webhook{Name: "slow", URL: srv.URL, Timeout: &metav1.Duration{Duration: 50 * time.Millisecond}}
	err := (&Client{}).Call(context.Background(), hook, Payload{})
	if err == nil || !strings.Contains(err.Error(), "deadline exceeded") {
		t.Errorf("Call = %v, want a timeout", err)
	}
}

func TestRetriesPauseAndEndWithTheirContext(t *testing.T) {
	var mu sync.Mutex
	var at []time.Time
	path := ownPath(t)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != path {
			http.NotFound(w, r)
			return
		}
		mu.Lock()
		at = append(at, time.Now())
		mu.Unlock()
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	defer srv.Close()
	c := &Client{}
	err := c.Call(context.Background(), sluicev1.Webhook{Name: "busy", URL: srv.URL + path, Retries: 2}, Payload{})
	if err == nil || !strings.HasPrefix(err.Error(), "503") {
		t.Fatalf("Call = %v, want the last attempt's 503", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(at) != 3 {
		t.Fatalf("%d attempts, want 3", len(at))
	}
	if gap := at[2].Sub(at[1]); gap < retryPause(1) {
		t.Errorf("the second retry came %s after the first, want a pause of at least %s", gap, retryPause(1))
	}
	if retryPause(0) != 500*time.Millisecond || retryPause(1) != time.Second || retryPause(9) != 5*time.Second {
		t.Errorf("pauses %s, %s, %s: want 500ms doubling up to 5s", retryPause(0), retryPause(1), retryPause(9))
	}

	// A call whose context ends during a pause ends at once.
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	_ = c.Call(ctx, sluicev1.Webhook{Name: "busy", URL: srv.URL + path, Retries: 10}, Payload{})
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("a cancelled call took %s, want it to end with its context", d)
	}
}

func TestCallAllCombinesTheHooksOfOneType(t *testing.T) {
	ok := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	defer ok.Close()
	bad := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { http.Error(w, "nope", http.StatusServiceUnavailable) }))
	defer bad.Close()
	ro := &sluicev1.Rollout{Spec: sluicev1.RolloutSpec{Analysis: &sluicev1.Analysis{Webhooks: []sluicev1.Webhook{
		{Name: "a", Type: sluicev1.HookRollout, URL: ok.URL},
		{Name: "b", Type: sluicev1.HookRollout, URL: bad.URL},
		{Name: "c", Type: sluicev1.HookConfirmRollout, URL: bad.URL},
	}}}}
	res := (&Client{}).CallAll(context.Background(), ro, sluicev1.HookRollout, "rev")
	if res.AllPassed || !res.AnyPassed || res.Message != "b: 503 Service Unavailable: nope" {
		t.Errorf("CallAll = %+v", res)
	}
	if res := (&Client{}).CallAll(context.Background(), ro, sluicev1.HookPreRollout, "rev"); !res.AllPassed || res.AnyPassed {
		t.Errorf("a type without hooks = %+v, want open and none passed", res)
	}
}

// released is a Rollout at step 2 of a run, checked at least once, with one
// failed check.
func released() *sluicev1.Rollout {
	return &sluicev1.Rollout{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "shop", UID: "6f1c0a52-uid"},
		Status: sluicev1.RolloutStatus{
			Phase: sluicev1.PhaseProgressing, CurrentStepIndex: 2, FailedChecks: 1, CanaryWeight: 20,
			RunStartedAt: &metav1.Time{Time: time.Date(2026, 12, 1, 9, 58, 0, 0, time.UTC)},
			LastCheckAt:  &metav1.Time{Time: time.Date(2026, 12, 1, 10, 0, 30, 0, time.UTC)},
		},
	}
}

func TestTheIdempotencyKeyOfARepeatedCallIsTheSame(t *testing.T) {
	first := StateOf(released(), "rev1").Key(sluicev1.HookRollout, "load")
	// A restarted manager reads the same status back from the API server;
	// fields the key does not use may differ (they are decided, not acted on).
	again := released()
	again.Status.Message, again.Status.CanaryWeight = "holding", 30
	if repeat := StateOf(again, "rev1").Key(sluicev1.HookRollout, "load"); repeat != first {
		t.Errorf("key of the repeated call = %s, want the first call's %s", repeat, first)
	}
	if len(first) != 32 || strings.Trim(first, "0123456789abcdef") != "" {
		t.Errorf("key %q, want 32 hex digits", first)
	}
}

func TestEveryLaterCallHasAnotherIdempotencyKey(t *testing.T) {
	key := func(change func(ro *sluicev1.Rollout), rev string, typ sluicev1.HookType, name string) string {
		ro := released()
		change(ro)
		return StateOf(ro, rev).Key(typ, name)
	}
	same := func(*sluicev1.Rollout) {}
	seen := map[string]string{key(same, "rev1", sluicev1.HookRollout, "load"): "the first call"}
	for _, tc := range []struct {
		name   string
		change func(*sluicev1.Rollout)
		rev    string
		typ    sluicev1.HookType
		hook   string
	}{
		{"the next check of the step", func(ro *sluicev1.Rollout) { ro.Status.LastCheckAt.Time = ro.Status.LastCheckAt.Add(30 * time.Second) }, "rev1", sluicev1.HookRollout, "load"},
		{"the first check of a phase", func(ro *sluicev1.Rollout) { ro.Status.LastCheckAt = nil }, "rev1", sluicev1.HookRollout, "load"},
		{"the next step", func(ro *sluicev1.Rollout) { ro.Status.CurrentStepIndex++ }, "rev1", sluicev1.HookRollout, "load"},
		{"a check after one more failure", func(ro *sluicev1.Rollout) { ro.Status.FailedChecks++ }, "rev1", sluicev1.HookRollout, "load"},
		{"the next phase", func(ro *sluicev1.Rollout) { ro.Status.Phase = sluicev1.PhaseWaitingPromotion }, "rev1", sluicev1.HookRollout, "load"},
		{"another run of the revision", func(ro *sluicev1.Rollout) { ro.Status.RunStartedAt.Time = ro.Status.RunStartedAt.Add(time.Hour) }, "rev1", sluicev1.HookRollout, "load"},
		{"another revision", same, "rev2", sluicev1.HookRollout, "load"},
		{"a Rollout of the same name created again", func(ro *sluicev1.Rollout) { ro.UID = "0b9e7c31-uid" }, "rev1", sluicev1.HookRollout, "load"},
		{"another webhook of the type", same, "rev1", sluicev1.HookRollout, "smoke"},
		{"a webhook of the same name and another type", same, "rev1", sluicev1.HookRollback, "load"},
	} {
		k := key(tc.change, tc.rev, tc.typ, tc.hook)
		if prev, ok := seen[k]; ok {
			t.Errorf("%s has the key of %s (%s)", tc.name, prev, k)
		}
		seen[k] = tc.name
	}
}

func TestTheEventsDecidedFromOneStatusHaveTheirOwnKeys(t *testing.T) {
	st := StateOf(released(), "rev1")
	keys := map[string]bool{}
	for _, ev := range [][]string{{"GateOpened", "0"}, {"Promoting", "0"}, {"WeightChanged", "0"}, {"WeightChanged", "1"}} {
		keys[st.Key(sluicev1.HookEvent, "audit", ev...)] = true
	}
	if len(keys) != 4 {
		t.Errorf("%d distinct keys for 4 events decided from one status, want 4", len(keys))
	}
}

func TestTheIdempotencyKeyTravelsInTheHeaderAndThePayloadAndSurvivesRetries(t *testing.T) {
	type call struct{ header, payload, hook string }
	var mu sync.Mutex
	var calls []call
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var p Payload
		_ = json.NewDecoder(r.Body).Decode(&p)
		mu.Lock()
		calls = append(calls, call{r.Header.Get("Idempotency-Key"), p.IdempotencyKey, p.Metadata["hook"]})
		first := len(calls) == 1
		mu.Unlock()
		if first {
			http.Error(w, "try again", http.StatusServiceUnavailable)
		}
	}))
	defer srv.Close()
	ro := released()
	ro.Spec.Analysis = &sluicev1.Analysis{Webhooks: []sluicev1.Webhook{
		{Name: "flaky", Type: sluicev1.HookRollout, URL: srv.URL, Retries: 1, Metadata: map[string]string{"hook": "flaky"}},
		{Name: "load", Type: sluicev1.HookRollout, URL: srv.URL, Metadata: map[string]string{"hook": "load"}},
	}}
	if res := (&Client{}).CallAll(context.Background(), ro, sluicev1.HookRollout, "rev1"); !res.AllPassed {
		t.Fatalf("CallAll = %+v", res)
	}
	want := map[string]string{
		"flaky": StateOf(ro, "rev1").Key(sluicev1.HookRollout, "flaky"),
		"load":  StateOf(ro, "rev1").Key(sluicev1.HookRollout, "load"),
	}
	if len(calls) != 3 {
		t.Fatalf("%d calls, want flaky twice (one retry) and load once: %+v", len(calls), calls)
	}
	for i, c := range calls {
		if c.header != c.payload || c.payload != want[c.hook] {
			t.Errorf("call %d to %s: header %q, payload %q; want both %q", i, c.hook, c.header, c.payload, want[c.hook])
		}
	}
}

// checked is an HTTP client whose connections pass the egress policy of
// the allow entries, as the manager builds it.
func checked(t *testing.T, allow ...string) *http.Client {
	t.Helper()
	p, err := egress.New(allow, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	return &http.Client{Transport: p.Transport(nil)}
}

func TestAHookOnLoopbackIsRefusedByTheDefaultPolicyAndPassesOnceAllowed(t *testing.T) {
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { calls.Add(1) }))
	defer srv.Close()
	hostPort := strings.TrimPrefix(srv.URL, "http://")
	ro := &sluicev1.Rollout{Spec: sluicev1.RolloutSpec{Analysis: &sluicev1.Analysis{Webhooks: []sluicev1.Webhook{
		{Name: "gate", Type: sluicev1.HookConfirmRollout, URL: srv.URL + "/gate/check", Retries: 3},
	}}}}

	res := (&Client{HTTP: checked(t)}).CallAll(context.Background(), ro, sluicev1.HookConfirmRollout, "rev")
	want := "gate: egress to " + hostPort + " refused: loopback addresses are denied (--webhook-egress-allow to permit)"
	if res.AllPassed || res.Message != want {
		t.Errorf("default policy: %+v\nwant the message %s", res, want)
	}
	if n := calls.Load(); n != 0 {
		t.Errorf("the refused hook was called %d times", n)
	}

	res = (&Client{HTTP: checked(t, "127.0.0.1/32")}).CallAll(context.Background(), ro, sluicev1.HookConfirmRollout, "rev")
	if !res.AllPassed || calls.Load() != 1 {
		t.Errorf("with 127.0.0.1/32 allowed: %+v after %d calls, want passed after 1", res, calls.Load())
	}
}

func TestARedirectIsAFailureAndIsNotFollowed(t *testing.T) {
	var followed atomic.Int32
	mux := http.NewServeMux()
	mux.HandleFunc("/moved", func(w http.ResponseWriter, r *http.Request) { followed.Add(1) })
	srv := httptest.NewServer(mux)
	defer srv.Close()
	for _, code := range []int{http.StatusFound, http.StatusTemporaryRedirect, http.StatusPermanentRedirect} {
		mux.HandleFunc(fmt.Sprintf("/hook-%d", code), func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, srv.URL+"/moved", code)
		})
		// The metadata server too: not followed, so not even dialled.
		mux.HandleFunc(fmt.Sprintf("/metadata-%d", code), func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, "http://169.254.169.254/latest/meta-data/", code)
		})
	}
	for _, code := range []int{http.StatusFound, http.StatusTemporaryRedirect, http.StatusPermanentRedirect} {
		for _, c := range []*Client{{}, {HTTP: checked(t, "127.0.0.1/32")}} {
			err := c.Call(context.Background(), sluicev1.Webhook{Name: "gate", URL: fmt.Sprintf("%s/hook-%d", srv.URL, code)}, Payload{})
			want := fmt.Sprintf("%d %s: redirects are not followed (Location %q)", code, http.StatusText(code), srv.URL+"/moved")
			if err == nil || !strings.HasPrefix(err.Error(), want) {
				t.Errorf("a %d answer: %v, want a failure starting %s", code, err, want)
			}
			err = c.Call(context.Background(), sluicev1.Webhook{Name: "gate", URL: fmt.Sprintf("%s/metadata-%d", srv.URL, code)}, Payload{})
			if err == nil || !strings.Contains(err.Error(), "redirects are not followed") {
				t.Errorf("a %d answer to the metadata server: %v, want a failure", code, err)
			}
		}
	}
	if n := followed.Load(); n != 0 {
		t.Errorf("a redirect was followed %d times", n)
	}
}
