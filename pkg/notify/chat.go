package notify

import (
	"context"
	"fmt"
	"net/http"
	"strings"
)

// Discord sends to a Discord channel webhook: the title as the message's
// content, and an embed with the event's text and the Rollout's state.
type Discord struct {
	URL  string
	HTTP *http.Client
	// Username, when set, overrides the webhook's own name.
	Username string
}

// Name implements Sender.
func (*Discord) Name() string { return "discord" }

// Discord embed colours (decimal RGB).
const (
	discordGreen = 0x2EB67D
	discordRed   = 0xE01E5A
)

// Discord's limits on an embed's description and a field's value.
const (
	discordMaxDescription = 4096
	discordMaxField       = 1024
)

// Send implements Sender.
func (d *Discord) Send(ctx context.Context, m Message) error {
	color := discordGreen
	if m.Warning {
		color = discordRed
	}
	field := func(k, v string) map[string]any {
		return map[string]any{"name": k, "value": truncate(v, discordMaxField), "inline": true}
	}
	body := map[string]any{
		"content": m.title(),
		"embeds": []map[string]any{{
			"description": truncate(m.Text, discordMaxDescription),
			"color":       color,
			"fields": []map[string]any{
				field("Rollout", m.Rollout), field("Namespace", m.Namespace),
				field("Phase", string(m.Phase)), field("Weight", fmt.Sprintf("%d%%", m.Weight)),
				field("Reason", m.Reason),
			},
		}},
		// Mentions in an event's text (a user's "@everyone" in a hook's
		// answer) never ping anyone.
		"allowed_mentions": map[string]any{"parse": []string{}},
	}
	if d.Username != "" {
		body["username"] = d.Username
	}
	return postJSON(ctx, d.HTTP, d.URL, body)
}

// GoogleChat sends a text message to a Google Chat space's incoming webhook.
type GoogleChat struct {
	URL  string
	HTTP *http.Client
}

// Name implements Sender.
func (*GoogleChat) Name() string { return "googlechat" }

// Send implements Sender.
func (g *GoogleChat) Send(ctx context.Context, m Message) error {
	var b strings.Builder
	fmt.Fprintf(&b, "*%s*\n%s\n", m.title(), m.Text)
	fmt.Fprintf(&b, "Rollout: %s · Namespace: %s · Phase: %s · Weight: %d%% · Reason: %s",
		m.Rollout, m.Namespace, m.Phase, m.Weight, m.Reason)
	return postJSON(ctx, g.HTTP, g.URL, map[string]any{"text": b.String()})
}

// truncate cuts s to at most n runes, marking the cut with an ellipsis.
func truncate(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}
