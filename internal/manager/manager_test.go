package manager

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	sluicev1 "github.com/sluice-dev/sluice/api/v1alpha1"
	"github.com/sluice-dev/sluice/pkg/egress"
	"github.com/sluice-dev/sluice/pkg/notify"
)

// A client-wide timeout would cut every webhook call at it, whatever the
// webhook's own timeout says: the calls are bounded by their webhooks'.
func TestTheWebhookClientHasNoTimeoutOfItsOwn(t *testing.T) {
	policy, err := egress.New(nil, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	hc, err := webhookClient(Options{}, policy)
	if err != nil {
		t.Fatal(err)
	}
	if hc.Timeout != 0 {
		t.Errorf("the webhook client's timeout is %s, want none: each call has its webhook's", hc.Timeout)
	}
	if hc.Transport == nil {
		t.Errorf("the webhook client has no transport of its own: its connections would skip the egress policy")
	}
}

// Alert URLs are their AlertProviders' authors' choice: the client checks
// every connection with the egress policy and follows no redirect, which
// could lead past it (a 3xx is a failed delivery).
func TestTheAlertClientFollowsNoRedirectAndChecksEveryConnection(t *testing.T) {
	var reached atomic.Int32
	target := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { reached.Add(1) }))
	t.Cleanup(target.Close)
	redirect := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, target.URL, http.StatusFound)
	}))
	t.Cleanup(redirect.Close)

	allowLoopback, err := egress.New([]string{"127.0.0.1/32"}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	s, err := notify.AlertSender(sluicev1.AlertWebhook, redirect.URL, "", "", alertClient(allowLoopback))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Send(context.Background(), notify.Message{Rollout: "podinfo"}); err == nil || !strings.Contains(err.Error(), "302") {
		t.Errorf("err = %v, want the 302 as a failed delivery", err)
	}
	if n := reached.Load(); n != 0 {
		t.Errorf("the redirect was followed (%d calls)", n)
	}

	defaults, err := egress.New(nil, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	s, err = notify.AlertSender(sluicev1.AlertWebhook, target.URL, "", "", alertClient(defaults))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Send(context.Background(), notify.Message{Rollout: "podinfo"}); err == nil || !strings.Contains(err.Error(), "loopback addresses are denied") {
		t.Errorf("err = %v, want the egress policy's refusal", err)
	}
	if n := reached.Load(); n != 0 {
		t.Errorf("a denied address was reached (%d calls)", n)
	}
}
