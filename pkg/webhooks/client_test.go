package webhooks

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	sluicev1 "github.com/sluice-dev/sluice/api/v1alpha1"
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

func TestCallFailsWithTheTrimmedBodyAndRetries(t *testing.T) {
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		w.WriteHeader(http.StatusForbidden)
		_, _ = w.Write([]byte("  gate closed: " + strings.Repeat("x", 500) + "\n"))
	}))
	defer srv.Close()
	err := (&Client{}).Call(context.Background(), sluicev1.Webhook{Name: "gate", URL: srv.URL, Retries: 2}, Payload{})
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
