package notify

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/go-logr/logr/funcr"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	sluicev1 "github.com/sluice-dev/sluice/api/v1alpha1"
	"github.com/sluice-dev/sluice/pkg/egress"
	"github.com/sluice-dev/sluice/pkg/webhooks"
)

// receiver records the JSON bodies POSTed to it.
type receiver struct {
	mu     sync.Mutex
	bodies []map[string]any
	raw    []string
	code   int
}

func newReceiver(t *testing.T, code int) (*receiver, string) {
	r := &receiver{code: code}
	srv := httptest.NewServer(r)
	t.Cleanup(srv.Close)
	return r, srv.URL
}

func (rc *receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	raw, _ := io.ReadAll(r.Body)
	var body map[string]any
	_ = json.Unmarshal(raw, &body)
	rc.mu.Lock()
	rc.bodies = append(rc.bodies, body)
	rc.raw = append(rc.raw, string(raw))
	rc.mu.Unlock()
	if r.Header.Get("Content-Type") != "application/json" {
		w.WriteHeader(http.StatusUnsupportedMediaType)
		return
	}
	w.WriteHeader(rc.code)
	_, _ = w.Write([]byte("receiver says no"))
}

func (rc *receiver) last(t *testing.T) (map[string]any, string) {
	t.Helper()
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if len(rc.bodies) == 0 {
		t.Fatal("nothing received")
	}
	return rc.bodies[len(rc.bodies)-1], rc.raw[len(rc.raw)-1]
}

var rolledBack = Message{
	Rollout: "podinfo", Namespace: "shop", Phase: sluicev1.PhaseFailed, Weight: 25,
	Reason: "ThresholdReached", Text: "rolling back revision abc: 2 failed checks", Warning: true, Checksum: "abc",
}

// mustContainAll fails unless raw holds each of the message's parts.
func mustContainAll(t *testing.T, raw string, parts ...string) {
	t.Helper()
	for _, p := range parts {
		if !strings.Contains(raw, p) {
			t.Errorf("body %s lacks %q", raw, p)
		}
	}
}

func TestSlackGetsAnIncomingWebhookMessageWithEveryField(t *testing.T) {
	rc, url := newReceiver(t, http.StatusOK)
	if err := (&Slack{URL: url}).Send(context.Background(), rolledBack); err != nil {
		t.Fatal(err)
	}
	body, raw := rc.last(t)
	if body["text"] != "shop/podinfo: ThresholdReached" {
		t.Errorf("text = %v", body["text"])
	}
	att := body["attachments"].([]any)[0].(map[string]any)
	if att["color"] != "danger" || att["text"] != rolledBack.Text {
		t.Errorf("attachment = %v", att)
	}
	mustContainAll(t, raw, `"title":"Rollout","value":"podinfo"`, `"title":"Namespace","value":"shop"`,
		`"title":"Phase","value":"Failed"`, `"title":"Weight","value":"25%"`, `"title":"Reason","value":"ThresholdReached"`)
}

func TestTeamsGetsAnAdaptiveCardWithEveryField(t *testing.T) {
	rc, url := newReceiver(t, http.StatusAccepted)
	if err := (&Teams{URL: url}).Send(context.Background(), rolledBack); err != nil {
		t.Fatal(err)
	}
	body, raw := rc.last(t)
	att := body["attachments"].([]any)[0].(map[string]any)
	card := att["content"].(map[string]any)
	if body["type"] != "message" || att["contentType"] != "application/vnd.microsoft.card.adaptive" || card["type"] != "AdaptiveCard" {
		t.Errorf("not an adaptive card message: %s", raw)
	}
	mustContainAll(t, raw, `"text":"shop/podinfo: ThresholdReached"`, `"text":"rolling back revision abc: 2 failed checks"`,
		`"title":"Rollout","value":"podinfo"`, `"title":"Namespace","value":"shop"`, `"title":"Phase","value":"Failed"`,
		`"title":"Weight","value":"25%"`, `"title":"Reason","value":"ThresholdReached"`, `"color":"Attention"`)
}

func TestTheGenericWebhookGetsTheMessageAsJSON(t *testing.T) {
	rc, url := newReceiver(t, http.StatusOK)
	if err := (&Webhook{URL: url}).Send(context.Background(), rolledBack); err != nil {
		t.Fatal(err)
	}
	_, raw := rc.last(t)
	var got Message
	if err := json.Unmarshal([]byte(raw), &got); err != nil {
		t.Fatal(err)
	}
	want := rolledBack
	if got.Rollout != want.Rollout || got.Namespace != want.Namespace || got.Phase != want.Phase || got.Weight != want.Weight ||
		got.Reason != want.Reason || got.Text != want.Text || !got.Warning {
		t.Errorf("received %+v, want %+v", got, want)
	}
}

func TestTheEventWebhookGetsTheGatePayloadWithTheEventInMetadata(t *testing.T) {
	rc, url := newReceiver(t, http.StatusOK)
	if err := (&Event{URL: url}).Send(context.Background(), rolledBack); err != nil {
		t.Fatal(err)
	}
	_, raw := rc.last(t)
	var p webhooks.Payload
	if err := json.Unmarshal([]byte(raw), &p); err != nil {
		t.Fatal(err)
	}
	if p.Name != "podinfo" || p.Namespace != "shop" || p.Phase != sluicev1.PhaseFailed || p.Checksum != "abc" {
		t.Errorf("payload = %+v", p)
	}
	want := map[string]string{"eventType": "Warning", "eventReason": "ThresholdReached", "eventMessage": rolledBack.Text, "weight": "25"}
	for k, v := range want {
		if p.Metadata[k] != v {
			t.Errorf("metadata[%s] = %q, want %q (all: %v)", k, p.Metadata[k], v, p.Metadata)
		}
	}
}

func TestAnEventWebhookKeysEachEventByTheStatusItWasDecidedFrom(t *testing.T) {
	rc, url := newReceiver(t, http.StatusOK)
	keyOf := func(m Message) string {
		t.Helper()
		if err := (&Event{URL: url}).Send(context.Background(), m); err != nil {
			t.Fatal(err)
		}
		var p webhooks.Payload
		_, raw := rc.last(t)
		if err := json.Unmarshal([]byte(raw), &p); err != nil {
			t.Fatal(err)
		}
		return p.IdempotencyKey
	}
	m := rolledBack
	m.Origin = webhooks.CallState{UID: "6f1c0a52-uid", Revision: "abc", Step: 2, FailedChecks: 1}
	first := keyOf(m)
	if want := m.Origin.Key(sluicev1.HookEvent, "event", "ThresholdReached", "0"); first != want {
		t.Errorf("key = %q, want %q (the recorded state, the reason and the ordinal)", first, want)
	}
	// Decided again after a restart, from the same recorded status.
	again := m
	again.Text = "rolling back revision abc: 2 failed checks, last: error rate 7%"
	if k := keyOf(again); k != first {
		t.Errorf("the same event decided again has key %q, want %q", k, first)
	}
	second := m
	second.Ordinal = 1
	other := m
	other.Reason = "CheckFailed"
	for name, msg := range map[string]Message{"a second event of the reason": second, "an event of another reason": other} {
		if k := keyOf(msg); k == first {
			t.Errorf("%s has the first event's key %q", name, k)
		}
	}
}

func TestAFailingReceiverIsAnErrorWithItsAnswer(t *testing.T) {
	_, url := newReceiver(t, http.StatusBadGateway)
	for _, s := range []Sender{&Slack{URL: url}, &Teams{URL: url}, &Webhook{URL: url}, &Event{URL: url}} {
		if err := s.Send(context.Background(), rolledBack); err == nil || !strings.Contains(err.Error(), "502") {
			t.Errorf("%s: err = %v, want the 502 answer", s.Name(), err)
		}
	}
}

func TestMessageForTakesTheRolloutsStatusAndEventHooks(t *testing.T) {
	ro := &sluicev1.Rollout{}
	ro.Name, ro.Namespace = "podinfo", "shop"
	ro.Status.Phase, ro.Status.CanaryWeight, ro.Status.CanaryRevision = sluicev1.PhaseProgressing, 10, "abc"
	ro.Spec.Analysis = &sluicev1.Analysis{Webhooks: []sluicev1.Webhook{
		{Name: "load", Type: sluicev1.HookRollout, URL: "http://a"},
		{Name: "audit", Type: sluicev1.HookEvent, URL: "http://b"},
	}}
	m := MessageFor(ro, "Normal", "WeightChanged", "step 1/2: canary weight 10%")
	if m.Rollout != "podinfo" || m.Namespace != "shop" || m.Phase != sluicev1.PhaseProgressing || m.Weight != 10 ||
		m.Warning || m.Checksum != "abc" || len(m.Hooks) != 1 || m.Hooks[0].Name != "audit" {
		t.Errorf("message = %+v", m)
	}
}

func TestFromSecretDataBuildsOneSenderPerKey(t *testing.T) {
	senders, err := FromSecretData(map[string][]byte{
		"slack-url": []byte("https://hooks.slack.com/services/x\n"), "teams-url": []byte("https://example.webhook.office.com/y"),
		"webhook-url": []byte("http://receiver.ops/"), "event-url": []byte("http://audit.ops/"), "unused": nil,
	})
	if err == nil {
		t.Fatalf("an unknown key was accepted: %v", senders)
	}
	senders, err = FromSecretData(map[string][]byte{
		"slack-url": []byte("https://hooks.slack.com/services/x\n"), "teams-url": []byte("https://example.webhook.office.com/y"),
		"webhook-url": []byte("http://receiver.ops/"), "event-url": []byte("http://audit.ops/"),
	})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, s := range senders {
		names = append(names, s.Name())
	}
	if fmt.Sprint(names) != "[event slack teams webhook]" {
		t.Errorf("senders = %v", names)
	}
	if senders[1].(*Slack).URL != "https://hooks.slack.com/services/x" {
		t.Errorf("slack url = %q, want it trimmed", senders[1].(*Slack).URL)
	}
	if _, err := FromSecretData(map[string][]byte{"slack-url": []byte("hooks.slack.com/x")}); err == nil {
		t.Errorf("a URL without a scheme was accepted")
	}
}

func TestTheDispatcherDeliversAndCountsPerSender(t *testing.T) {
	ok, okURL := newReceiver(t, http.StatusOK)
	_, badURL := newReceiver(t, http.StatusInternalServerError)
	hook, hookURL := newReceiver(t, http.StatusOK)
	good, bad := &Webhook{URL: okURL}, &named{Sender: &Webhook{URL: badURL}, name: "webhook-bad"}
	sentBefore := counter(t, sentTotal, "webhook")
	failedBefore := counter(t, failedTotal, "webhook-bad")
	hookBefore := counter(t, sentTotal, "rollout-event")

	d := NewDispatcher([]Sender{good, bad}, nil, 10, logr.Discard())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = d.Run(ctx); close(done) }()
	m := rolledBack
	m.Hooks = []sluicev1.Webhook{{Name: "audit", Type: sluicev1.HookEvent, URL: hookURL, Metadata: map[string]string{"team": "shop"}}}
	if n := d.Dispatch(m); n != 3 {
		t.Errorf("Dispatch accepted by %d lanes, want 3 (two senders and the rollout's event hook)", n)
	}
	waitFor(t, func() bool {
		return counter(t, sentTotal, "webhook") == sentBefore+1 &&
			counter(t, failedTotal, "webhook-bad") == failedBefore+1 &&
			counter(t, sentTotal, "rollout-event") == hookBefore+1
	})
	cancel()
	<-done
	if body, _ := ok.last(t); body["reason"] != "ThresholdReached" {
		t.Errorf("generic receiver got %v", body)
	}
	var p webhooks.Payload
	_, raw := hook.last(t)
	_ = json.Unmarshal([]byte(raw), &p)
	if p.Metadata["team"] != "shop" || p.Metadata["eventReason"] != "ThresholdReached" {
		t.Errorf("the rollout's event hook got %s, want its own metadata plus the event", raw)
	}
}

func TestARolloutsEventHookGoesThroughTheHooksClientAndTheOperatorsTargetsDoNot(t *testing.T) {
	ops, opsURL := newReceiver(t, http.StatusOK)
	hook, hookURL := newReceiver(t, http.StatusOK)
	policy, err := egress.New(nil, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var logged []string
	log := funcr.New(func(prefix, args string) {
		mu.Lock()
		defer mu.Unlock()
		logged = append(logged, args)
	}, funcr.Options{})
	sentBefore := counter(t, sentTotal, "webhook")
	failedBefore := counter(t, failedTotal, "rollout-event")

	// The default policy: loopback is denied, and both receivers are on it.
	d := NewDispatcher([]Sender{&Webhook{URL: opsURL}}, &webhooks.Client{HTTP: &http.Client{Transport: policy.Transport(nil)}}, 10, log)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = d.Run(ctx); close(done) }()
	m := rolledBack
	m.Hooks = []sluicev1.Webhook{{Name: "audit", Type: sluicev1.HookEvent, URL: hookURL}}
	d.Dispatch(m)
	waitFor(t, func() bool {
		return counter(t, sentTotal, "webhook") == sentBefore+1 && counter(t, failedTotal, "rollout-event") == failedBefore+1
	})
	cancel()
	<-done
	if _, raw := ops.last(t); !strings.Contains(raw, "ThresholdReached") {
		t.Errorf("the operator's receiver got %s", raw)
	}
	hook.mu.Lock()
	if n := len(hook.raw); n != 0 {
		t.Errorf("the Rollout's hook on loopback got %d calls, want none", n)
	}
	hook.mu.Unlock()
	mu.Lock()
	defer mu.Unlock()
	if all := strings.Join(logged, "\n"); !strings.Contains(all, "audit: egress to "+strings.TrimPrefix(hookURL, "http://")+" refused: loopback addresses are denied") {
		t.Errorf("logs lack the refusal:\n%s", all)
	}
}

func TestDispatchNeverBlocksWhenReceiversHang(t *testing.T) {
	hang := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		select {
		case <-hang:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(hang) })
	slack := &named{Sender: &Slack{URL: srv.URL}, name: "slack-hanging"}
	teams := &named{Sender: &Teams{URL: srv.URL}, name: "teams-hanging"}
	droppedBefore := counter(t, droppedTotal, "slack-hanging")

	const queue, sent = 4, 100
	d := NewDispatcher([]Sender{slack, teams}, nil, queue, logr.Discard())
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = d.Run(ctx) }()
	// Were Dispatch to wait for a receiver, this loop would never end.
	accepted := 0
	for range sent {
		accepted += d.Dispatch(rolledBack)
	}
	dropped := int(counter(t, droppedTotal, "slack-hanging") - droppedBefore)
	// Each lane holds its queue and at most one message in flight.
	if accepted > 2*(queue+1) || dropped < sent-queue-1 {
		t.Errorf("accepted %d, dropped %d for one sender: want at most %d per lane kept, the rest dropped and counted",
			accepted, dropped, queue+1)
	}
}

// named gives a sender another metric label, so tests do not share series.
type named struct {
	Sender
	name string
}

func (n *named) Name() string { return n.name }

// waitFor polls cond until it holds (the test's own timeout bounds it).
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for !cond() {
		select {
		case <-t.Context().Done():
			t.Fatal("condition never held")
		default:
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// counter reads one series of a counter vector.
func counter(t *testing.T, vec *prometheus.CounterVec, sender string) float64 {
	t.Helper()
	var m dto.Metric
	if err := vec.WithLabelValues(sender).Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}

// The manager stops the dispatcher after the reconcilers, and the
// notifications of their last decisions are queued then: a stopping
// dispatcher delivers what it holds, for at most its StopDrain, and counts
// what it could not deliver in that time as dropped.
func TestAStoppingDispatcherDeliversWhatItHoldsThenCountsTheRestDropped(t *testing.T) {
	t.Run("a slow receiver gets every queued message", func(t *testing.T) {
		slow := &named{Sender: &Webhook{URL: newSlowReceiver(t, 100*time.Millisecond, nil)}, name: "webhook-slow"}
		sentBefore := counter(t, sentTotal, "webhook-slow")
		d := NewDispatcher([]Sender{slow}, nil, 10, logr.Discard())
		queueThenStop(d, func() { d.Dispatch(rolledBack) })
		if sent := counter(t, sentTotal, "webhook-slow") - sentBefore; sent != 3 {
			t.Errorf("%v of 3 queued messages delivered once the dispatcher stopped", sent)
		}
	})
	t.Run("an AlertProvider gets every queued alert", func(t *testing.T) {
		url := newSlowReceiver(t, 100*time.Millisecond, nil)
		sentBefore := counter(t, alertsSent, "googlechat")
		d := NewDispatcher(nil, nil, 10, logr.Discard())
		queueThenStop(d, func() { d.Alert("shop/chat", "googlechat", &GoogleChat{URL: url}, rolledBack) })
		if sent := counter(t, alertsSent, "googlechat") - sentBefore; sent != 3 {
			t.Errorf("%v of 3 queued alerts delivered once the dispatcher stopped", sent)
		}
	})
	t.Run("a hanging receiver holds the stop for StopDrain only", func(t *testing.T) {
		hang := make(chan struct{})
		hanging := &named{Sender: &Webhook{URL: newSlowReceiver(t, time.Hour, hang)}, name: "webhook-hanging"}
		t.Cleanup(func() { close(hang) }) // before the receiver's Close, which waits for its handlers
		sentBefore, failedBefore := counter(t, sentTotal, "webhook-hanging"), counter(t, failedTotal, "webhook-hanging")
		droppedBefore := counter(t, droppedTotal, "webhook-hanging")
		d := NewDispatcher([]Sender{hanging}, nil, 10, logr.Discard())
		d.StopDrain = 300 * time.Millisecond
		queueThenStop(d, func() { d.Dispatch(rolledBack) })
		sent := counter(t, sentTotal, "webhook-hanging") - sentBefore
		failed := counter(t, failedTotal, "webhook-hanging") - failedBefore
		dropped := counter(t, droppedTotal, "webhook-hanging") - droppedBefore
		if sent != 0 || failed+dropped != 3 || dropped < 2 {
			t.Errorf("sent %v, failed %v, dropped %v: want the one in flight failed and the two queued counted as dropped", sent, failed, dropped)
		}
	})
}

// queueThenStop runs d, queues three messages with queue, stops d and
// waits for Run to return.
func queueThenStop(d *Dispatcher, queue func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = d.Run(ctx); close(done) }()
	for range 3 {
		queue()
	}
	cancel()
	<-done
}

// newSlowReceiver serves 200 after delay, or once release closes.
func newSlowReceiver(t *testing.T, delay time.Duration, release <-chan struct{}) string {
	srv := httptest.NewServer(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		select {
		case <-time.After(delay):
		case <-release:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}
