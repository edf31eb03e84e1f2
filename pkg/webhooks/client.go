// Package webhooks calls the webhook gates and hooks of a Rollout.
package webhooks

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	sluicev1 "github.com/sluice-dev/sluice/api/v1alpha1"
)

// Payload is the JSON body POSTed to every webhook.
type Payload struct {
	Name      string            `json:"name"`
	Namespace string            `json:"namespace"`
	Phase     sluicev1.Phase    `json:"phase"`
	Checksum  string            `json:"checksum"`
	Metadata  map[string]string `json:"metadata,omitempty"`
}

// DefaultTimeout bounds a call whose webhook sets no timeout.
const DefaultTimeout = 10 * time.Second

// maxBody is how much of a failing response body is kept for the event.
const maxBody = 256

// Client calls webhooks over HTTP.
type Client struct {
	HTTP *http.Client
	// Header is added to every call (for example an Authorization header
	// for a loadtester that requires its token on every endpoint).
	Header http.Header
}

// Call POSTs the payload to the webhook, retrying up to hook.Retries times;
// a 2xx answer is nil, anything else an error that carries the trimmed body.
func (c *Client) Call(ctx context.Context, hook sluicev1.Webhook, p Payload) error {
	p.Metadata = hook.Metadata
	body, err := json.Marshal(p)
	if err != nil {
		return fmt.Errorf("encoding payload: %w", err)
	}
	timeout := DefaultTimeout
	if hook.Timeout != nil && hook.Timeout.Duration > 0 {
		timeout = hook.Timeout.Duration
	}
	for attempt := int32(0); ; attempt++ {
		err = c.once(ctx, hook.URL, body, timeout)
		if err == nil || attempt >= hook.Retries || ctx.Err() != nil {
			return err
		}
	}
}

func (c *Client) once(ctx context.Context, url string, body []byte, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	for k, v := range c.Header {
		req.Header[k] = v
	}
	req.Header.Set("Content-Type", "application/json")
	hc := c.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer func() { _ = resp.Body.Close() }()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, maxBody+1))
	if resp.StatusCode/100 == 2 {
		return nil
	}
	text := strings.TrimSpace(string(msg))
	if len(text) > maxBody {
		text = text[:maxBody] + "…"
	}
	if text == "" {
		return fmt.Errorf("%s", resp.Status)
	}
	return fmt.Errorf("%s: %s", resp.Status, text)
}

// Result is the combined answer of the webhooks of one type.
type Result struct {
	// AllPassed is true when every webhook answered 2xx (true when there are none).
	AllPassed bool
	// AnyPassed is true when at least one webhook answered 2xx.
	AnyPassed bool
	// Message names each failing webhook with its error.
	Message string
}

// CallAll calls every webhook of the given type, in order.
func (c *Client) CallAll(ctx context.Context, ro *sluicev1.Rollout, t sluicev1.HookType, checksum string) Result {
	res := Result{AllPassed: true}
	if ro.Spec.Analysis == nil {
		return res
	}
	var failures []string
	for _, h := range ro.Spec.Analysis.Webhooks {
		if h.Type != t {
			continue
		}
		start := time.Now()
		err := c.Call(ctx, h, Payload{Name: ro.Name, Namespace: ro.Namespace, Phase: ro.Status.Phase, Checksum: checksum})
		callDuration.WithLabelValues(string(t)).Observe(time.Since(start).Seconds())
		if err != nil {
			callFailures.WithLabelValues(string(t)).Inc()
			res.AllPassed = false
			failures = append(failures, fmt.Sprintf("%s: %v", h.Name, err))
			continue
		}
		res.AnyPassed = true
	}
	res.Message = strings.Join(failures, "; ")
	return res
}
