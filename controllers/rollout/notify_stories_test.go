package rollout_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	sluicev1 "github.com/sluice-dev/sluice/api/v1alpha1"
	"github.com/sluice-dev/sluice/internal/manager"
	"github.com/sluice-dev/sluice/pkg/notify"
	"github.com/sluice-dev/sluice/pkg/webhooks"
)

// receiver records what notification targets are sent.
type receiver struct {
	mu       sync.Mutex
	messages []notify.Message
	events   []webhooks.Payload
	slack    int
}

func (rc *receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	switch r.URL.Path {
	case "/generic":
		var m notify.Message
		_ = json.NewDecoder(r.Body).Decode(&m)
		rc.messages = append(rc.messages, m)
	case "/event":
		var p webhooks.Payload
		_ = json.NewDecoder(r.Body).Decode(&p)
		rc.events = append(rc.events, p)
	case "/slack":
		rc.slack++
		http.Error(w, "slack is down", http.StatusInternalServerError)
	}
}

func TestEveryEventReachesTheNotificationTargetsAndAFailingOneBlocksNothing(t *testing.T) {
	rc := &receiver{}
	srv := httptest.NewServer(rc)
	t.Cleanup(srv.Close)
	secret := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("notify-%d", time.Now().UnixNano()), Namespace: "default"},
		Data:       map[string][]byte{"webhook-url": []byte(srv.URL + "/generic"), "slack-url": []byte(srv.URL + "/slack")},
	}
	if err := k8sClient.Create(t.Context(), secret); err != nil {
		t.Fatal(err)
	}
	s := newStoryWith(t, manager.Options{NotifySecret: "default/" + secret.Name, EventWebhookURL: srv.URL + "/event"})
	s.deploy("podinfo", "podinfo:1.0")
	s.initialized("podinfo")
	s.setImage("podinfo", "podinfo:2.0")
	s.waitPhase("podinfo", sluicev1.PhaseSucceeded, storyTimeout)

	s.eventually(storyTimeout, "the Promoted notification", func() error {
		rc.mu.Lock()
		defer rc.mu.Unlock()
		var generic, event bool
		for _, m := range rc.messages {
			if m.Reason == "Promoted" && m.Rollout == "podinfo" && m.Namespace == s.ns && m.Phase == sluicev1.PhaseSucceeded &&
				strings.Contains(m.Text, "promoted") {
				generic = true
			}
		}
		for _, p := range rc.events {
			if p.Name == "podinfo" && p.Namespace == s.ns && p.Metadata["eventReason"] == "Promoted" {
				event = true
			}
		}
		if !generic || !event || rc.slack == 0 {
			return fmt.Errorf("generic %v, event webhook %v, slack attempts %d; messages %+v", generic, event, rc.slack, rc.messages)
		}
		return nil
	})
	rc.mu.Lock()
	defer rc.mu.Unlock()
	reasons := map[string]bool{}
	for _, m := range rc.messages {
		reasons[m.Reason] = true
	}
	for _, want := range []string{"Initialized", "NewRevision", "Promoting", "Promoted"} {
		if !reasons[want] {
			t.Errorf("no %s notification; got %v", want, reasons)
		}
	}
}
