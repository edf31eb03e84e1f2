// Package notify sends notifications about releases to Slack, Microsoft
// Teams, Discord, Google Chat, generic JSON webhooks and event webhooks,
// through a dispatcher that never blocks the controller.
package notify

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	sluicev1 "github.com/sluice-dev/sluice/api/v1alpha1"
	"github.com/sluice-dev/sluice/pkg/webhooks"
)

// Message is one notification about a Rollout.
type Message struct {
	Rollout   string         `json:"rollout"`
	Namespace string         `json:"namespace"`
	Phase     sluicev1.Phase `json:"phase"`
	Weight    int32          `json:"weight"`
	// Reason is the event's CamelCase reason.
	Reason string `json:"reason"`
	// Text is the event's message.
	Text string `json:"text"`
	// Warning is true for a Warning event.
	Warning bool `json:"warning"`
	// Checksum is the revision under release, if any.
	Checksum string `json:"checksum,omitempty"`
	// Hooks are the Rollout's own event webhooks; only the rollout-event
	// lane of a Dispatcher sends to them.
	Hooks []sluicev1.Webhook `json:"-"`
	// Origin is the recorded state the event was decided from, and Ordinal
	// its place among the events of its reason decided from that state:
	// what the idempotency key of an event webhook derives from, so that an
	// event decided again after a restart carries the same key.
	Origin  webhooks.CallState `json:"-"`
	Ordinal int                `json:"-"`
}

// MessageFor builds the message of an event about ro, taking its phase,
// weight and revision from ro.Status (pass the status after the decision)
// and its event webhooks from the spec.
func MessageFor(ro *sluicev1.Rollout, eventType, reason, text string) Message {
	m := Message{
		Rollout: ro.Name, Namespace: ro.Namespace, Phase: ro.Status.Phase, Weight: ro.Status.CanaryWeight,
		Reason: reason, Text: text, Warning: eventType == corev1.EventTypeWarning, Checksum: ro.Status.CanaryRevision,
	}
	if ro.Spec.Analysis != nil {
		for _, h := range ro.Spec.Analysis.Webhooks {
			if h.Type == sluicev1.HookEvent {
				m.Hooks = append(m.Hooks, h)
			}
		}
	}
	return m
}

// title is the one-line summary of a message.
func (m Message) title() string {
	return fmt.Sprintf("%s/%s: %s", m.Namespace, m.Rollout, m.Reason)
}

// Sender sends a message to one destination.
type Sender interface {
	// Name labels the sender's metrics and logs (slack, teams, webhook, event).
	Name() string
	Send(ctx context.Context, m Message) error
}

// maxErrBody is how much of a failing answer is kept in the error.
const maxErrBody = 256

// postJSON POSTs v as JSON and fails on a non-2xx answer.
func postJSON(ctx context.Context, hc *http.Client, url string, v any) error {
	body, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encoding notification: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer func() { _ = resp.Body.Close() }()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrBody))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("%s: %s", resp.Status, strings.TrimSpace(string(msg)))
	}
	return nil
}

// Slack sends to a Slack incoming webhook.
type Slack struct {
	URL  string
	HTTP *http.Client
	// Channel and Username, when set, override the webhook's own (only
	// legacy Slack webhooks honour them; the others ignore them).
	Channel  string
	Username string
}

// Name implements Sender.
func (*Slack) Name() string { return "slack" }

// Send implements Sender.
func (s *Slack) Send(ctx context.Context, m Message) error {
	color := "good"
	if m.Warning {
		color = "danger"
	}
	short := func(t, v string) map[string]any { return map[string]any{"title": t, "value": v, "short": true} }
	body := map[string]any{
		"text": m.title(),
		"attachments": []map[string]any{{
			"color":    color,
			"fallback": m.title() + ": " + m.Text,
			"text":     m.Text,
			"fields": []map[string]any{
				short("Rollout", m.Rollout), short("Namespace", m.Namespace),
				short("Phase", string(m.Phase)), short("Weight", fmt.Sprintf("%d%%", m.Weight)),
				short("Reason", m.Reason),
			},
		}},
	}
	if s.Channel != "" {
		body["channel"] = s.Channel
	}
	if s.Username != "" {
		body["username"] = s.Username
	}
	return postJSON(ctx, s.HTTP, s.URL, body)
}

// Teams sends an Adaptive Card to a Microsoft Teams incoming webhook
// (a Workflows webhook; the older Office 365 connectors accept it too).
type Teams struct {
	URL  string
	HTTP *http.Client
}

// Name implements Sender.
func (*Teams) Name() string { return "teams" }

// Send implements Sender.
func (t *Teams) Send(ctx context.Context, m Message) error {
	color := "Good"
	if m.Warning {
		color = "Attention"
	}
	fact := func(k, v string) map[string]string { return map[string]string{"title": k, "value": v} }
	card := map[string]any{
		"$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
		"type":    "AdaptiveCard",
		"version": "1.4",
		"body": []map[string]any{
			{"type": "TextBlock", "text": m.title(), "weight": "Bolder", "size": "Medium", "color": color, "wrap": true},
			{"type": "TextBlock", "text": m.Text, "wrap": true},
			{"type": "FactSet", "facts": []map[string]string{
				fact("Rollout", m.Rollout), fact("Namespace", m.Namespace), fact("Phase", string(m.Phase)),
				fact("Weight", fmt.Sprintf("%d%%", m.Weight)), fact("Reason", m.Reason),
			}},
		},
	}
	body := map[string]any{
		"type": "message",
		"attachments": []map[string]any{{
			"contentType": "application/vnd.microsoft.card.adaptive",
			"content":     card,
		}},
	}
	return postJSON(ctx, t.HTTP, t.URL, body)
}

// Webhook POSTs the Message itself as JSON.
type Webhook struct {
	URL  string
	HTTP *http.Client
}

// Name implements Sender.
func (*Webhook) Name() string { return "webhook" }

// Send implements Sender.
func (w *Webhook) Send(ctx context.Context, m Message) error { return postJSON(ctx, w.HTTP, w.URL, m) }

// Event POSTs the gate Payload (name, namespace, phase, checksum) with the
// event in its metadata: eventType (Normal or Warning), eventReason,
// eventMessage and weight. It is the manager-wide event webhook.
type Event struct {
	URL     string
	Timeout time.Duration
	Client  *webhooks.Client
}

// Name implements Sender.
func (*Event) Name() string { return "event" }

// Send implements Sender.
func (e *Event) Send(ctx context.Context, m Message) error {
	return sendEvent(ctx, e.Client, sluicev1.Webhook{Name: "event", Type: sluicev1.HookEvent, URL: e.URL}, e.Timeout, m)
}

// sendEvent calls one event webhook with the message in the metadata, on
// top of the hook's own metadata.
func sendEvent(ctx context.Context, c *webhooks.Client, h sluicev1.Webhook, timeout time.Duration, m Message) error {
	md := make(map[string]string, len(h.Metadata)+4)
	for k, v := range h.Metadata {
		md[k] = v
	}
	eventType := corev1.EventTypeNormal
	if m.Warning {
		eventType = corev1.EventTypeWarning
	}
	md["eventType"], md["eventReason"], md["eventMessage"] = eventType, m.Reason, m.Text
	md["weight"] = fmt.Sprint(m.Weight)
	h.Metadata = md
	if h.Timeout == nil && timeout > 0 {
		h.Timeout = &metav1.Duration{Duration: timeout}
	}
	if c == nil {
		c = &webhooks.Client{}
	}
	return c.Call(ctx, h, webhooks.Payload{Name: m.Rollout, Namespace: m.Namespace, Phase: m.Phase, Checksum: m.Checksum,
		IdempotencyKey: m.Origin.Key(sluicev1.HookEvent, h.Name, m.Reason, strconv.Itoa(m.Ordinal))})
}

// rolloutEvents sends to the event webhooks of the message's own Rollout.
type rolloutEvents struct {
	client *webhooks.Client
}

// Name implements Sender.
func (*rolloutEvents) Name() string { return "rollout-event" }

// Send implements Sender.
func (r *rolloutEvents) Send(ctx context.Context, m Message) error {
	var errs []string
	for _, h := range m.Hooks {
		if err := sendEvent(ctx, r.client, h, 0, m); err != nil {
			errs = append(errs, fmt.Sprintf("%s: %v", h.Name, err))
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("event webhooks failed: %s", strings.Join(errs, "; "))
	}
	return nil
}
