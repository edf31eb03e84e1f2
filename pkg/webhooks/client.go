// Package webhooks calls the webhook gates and hooks of a Rollout.
package webhooks

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	sluicev1 "github.com/sluice-dev/sluice/api/v1alpha1"
	"github.com/sluice-dev/sluice/pkg/egress"
)

// Payload is the JSON body POSTed to every webhook.
type Payload struct {
	Name      string            `json:"name"`
	Namespace string            `json:"namespace"`
	Phase     sluicev1.Phase    `json:"phase"`
	Checksum  string            `json:"checksum"`
	Metadata  map[string]string `json:"metadata,omitempty"`
	// IdempotencyKey is the same for every repetition of one call and
	// differs between calls (CallState.Key); it is also sent as the
	// Idempotency-Key header.
	IdempotencyKey string `json:"idempotencyKey"`
}

// IdempotencyHeader is the HTTP header that carries a call's idempotency key.
const IdempotencyHeader = "Idempotency-Key"

// CallState is the persisted state a call is made from, which its
// idempotency key derives from. A hook is called before its result is
// recorded in the Rollout's status, so a manager killed (or losing its
// Lease) after the call but before its status patch calls again after the
// restart, from the same status: that repetition gets the same key. A later
// call comes after a recorded one, which moved lastCheckAt (at least a
// second later: the interval is at least 1s), the step, the failed checks
// or the phase, and so gets another key; the run's start tells apart two
// runs of one revision (a retry).
type CallState struct {
	UID types.UID
	// Revision is the revision under release, the payload's checksum.
	Revision     string
	Phase        sluicev1.Phase
	RunStartedAt *metav1.Time
	Step         int32
	LastCheckAt  *metav1.Time
	FailedChecks int32
}

// StateOf returns the call state of ro at revision. ro must carry its
// status as the API server holds it (the reconciler's copy before its
// status patch), never a status decided but not yet recorded.
func StateOf(ro *sluicev1.Rollout, revision string) CallState {
	st := &ro.Status
	return CallState{
		UID: ro.UID, Revision: revision, Phase: st.Phase, RunStartedAt: st.RunStartedAt,
		Step: st.CurrentStepIndex, LastCheckAt: st.LastCheckAt, FailedChecks: st.FailedChecks,
	}
}

// Key returns the idempotency key of a call of the named webhook of type t
// from this state: 32 hex digits of a SHA-256 over the state, the type and
// the name. Event webhooks add what tells apart the events decided from one
// state (their reason and ordinal).
func (s CallState) Key(t sluicev1.HookType, hook string, event ...string) string {
	h := sha256.New()
	for _, part := range append([]string{string(s.UID), s.Revision, string(t), hook, string(s.Phase),
		rfc3339(s.RunStartedAt), strconv.Itoa(int(s.Step)), rfc3339(s.LastCheckAt), strconv.Itoa(int(s.FailedChecks))}, event...) {
		// A separator, so that ("ab", "c") and ("a", "bc") differ.
		h.Write([]byte(part))
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil))[:32]
}

// rfc3339 formats a time to the second, as the API server keeps it; "" when nil.
func rfc3339(t *metav1.Time) string {
	if t == nil {
		return ""
	}
	return t.UTC().Format(time.RFC3339)
}

// DefaultTimeout bounds a call whose webhook sets no timeout.
const DefaultTimeout = 10 * time.Second

// maxBody is how many bytes of a failing response body's text are kept for
// the status and the event (see cleanBody).
const maxBody = 256

// Client calls webhooks over HTTP. It never follows a redirect: a webhook
// answering 3xx has failed, like any answer but 2xx.
type Client struct {
	// HTTP makes the calls (http.DefaultClient when nil). The manager's
	// checks every connection against its egress policy: whoever writes a
	// Rollout chooses its webhooks' URLs.
	HTTP *http.Client
	// Header is added to every call (for example an Authorization header
	// for a loadtester that requires its token on every endpoint).
	Header http.Header
}

// Call POSTs the payload to the webhook, retrying up to hook.Retries times
// with the same idempotency key after a short pause (retryPause); a 2xx
// answer is nil, anything else an error that carries the trimmed body. Each
// attempt has the webhook's timeout. A call the egress policy refuses is not
// retried: it would be refused again.
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
		err = c.once(ctx, hook.URL, body, p.IdempotencyKey, timeout)
		var refused *egress.RefusedError
		if errors.As(err, &refused) {
			// Only the refusal: the URL's POST and dial wrappers add
			// nothing to what it names.
			return refused
		}
		if err == nil || attempt >= hook.Retries || ctx.Err() != nil {
			return err
		}
		pause := time.NewTimer(retryPause(attempt))
		select {
		case <-pause.C:
		case <-ctx.Done():
			pause.Stop()
			return err
		}
	}
}

// retryPause is the pause after failed attempt n (from 0): 500ms, doubling
// up to 5s. A webhook that just failed, often for being overloaded or
// restarting, is given a moment rather than called again at once.
func retryPause(n int32) time.Duration {
	return min(500*time.Millisecond<<min(n, 4), 5*time.Second)
}

func (c *Client) once(ctx context.Context, url string, body []byte, key string, timeout time.Duration) error {
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
	if key != "" {
		req.Header.Set(IdempotencyHeader, key)
	}
	hc := http.DefaultClient
	if c.HTTP != nil {
		hc = c.HTTP
	}
	// A copy that stops at the first answer: a redirect would send the
	// payload somewhere the Rollout does not name (a 307 re-POSTs it), and
	// 301-303 would turn a gate's POST into a GET.
	noFollow := *hc
	noFollow.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, err := noFollow.Do(req)
	if err != nil {
		return err
	}
	defer func() { _ = resp.Body.Close() }()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, maxRead+1))
	if resp.StatusCode/100 == 2 {
		return nil
	}
	if resp.StatusCode/100 == 3 {
		where := "no Location"
		if loc := resp.Header.Get("Location"); loc != "" {
			where = fmt.Sprintf("Location %q", loc)
		}
		return fmt.Errorf("%s: redirects are not followed (%s); point the webhook at the final URL", resp.Status, where)
	}
	text := cleanBody(msg[:min(len(msg), maxRead)], len(msg) > maxRead)
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

// CallAll calls every webhook of the given type, in order. ro's status must
// be the one the API server holds (see StateOf): the idempotency keys derive
// from it.
func (c *Client) CallAll(ctx context.Context, ro *sluicev1.Rollout, t sluicev1.HookType, checksum string) Result {
	res := Result{AllPassed: true}
	if ro.Spec.Analysis == nil {
		return res
	}
	state := StateOf(ro, checksum)
	var failures []string
	for _, h := range ro.Spec.Analysis.Webhooks {
		if h.Type != t {
			continue
		}
		start := time.Now()
		err := c.Call(ctx, h, Payload{Name: ro.Name, Namespace: ro.Namespace, Phase: ro.Status.Phase, Checksum: checksum,
			IdempotencyKey: state.Key(t, h.Name)})
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
