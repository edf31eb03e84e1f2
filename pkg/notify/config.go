package notify

import (
	"fmt"
	"net/url"
	"slices"
	"strings"
)

// Keys of the notification Secret.
const (
	KeySlackURL   = "slack-url"
	KeyTeamsURL   = "teams-url"
	KeyWebhookURL = "webhook-url"
	KeyEventURL   = "event-url"
)

// FromSecretData builds the senders configured by a Secret's data: one per
// key present among slack-url, teams-url, webhook-url and event-url. Other
// keys are an error, so a typo is not silently ignored.
func FromSecretData(data map[string][]byte) ([]Sender, error) {
	var out []Sender
	keys := make([]string, 0, len(data))
	for k := range data {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		if !slices.Contains([]string{KeySlackURL, KeyTeamsURL, KeyWebhookURL, KeyEventURL}, k) {
			return nil, fmt.Errorf("notification secret has unknown key %q (want %s, %s, %s or %s)",
				k, KeySlackURL, KeyTeamsURL, KeyWebhookURL, KeyEventURL)
		}
		u := strings.TrimSpace(string(data[k]))
		if u == "" {
			continue
		}
		if err := checkURL(u); err != nil {
			return nil, fmt.Errorf("notification secret key %s: %w", k, err)
		}
		switch k {
		case KeySlackURL:
			out = append(out, &Slack{URL: u})
		case KeyTeamsURL:
			out = append(out, &Teams{URL: u})
		case KeyWebhookURL:
			out = append(out, &Webhook{URL: u})
		case KeyEventURL:
			out = append(out, &Event{URL: u})
		}
	}
	return out, nil
}

// EventSender returns the sender of the manager-wide event webhook
// (--event-webhook-url), or an error when the URL is not http(s).
func EventSender(rawURL string) (Sender, error) {
	if err := checkURL(rawURL); err != nil {
		return nil, fmt.Errorf("event webhook url: %w", err)
	}
	return &Event{URL: rawURL}, nil
}

func checkURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return err
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("%q is not an absolute http or https URL", raw)
	}
	return nil
}
