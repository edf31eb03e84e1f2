// Package provider is the seam between the analysis of a Rollout and the
// metrics backends a MetricTemplate may name. It holds what every provider
// package (pkg/analysis/<name>) shares: the interfaces, the configuration a
// provider is built from, the no-data error and the HTTP helpers that turn
// an answer's status into a clear error. It imports nothing of
// pkg/analysis, so that the providers stay leaves.
package provider

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"k8s.io/client-go/rest"

	sluicev1 "github.com/sluice-dev/sluice/api/v1alpha1"
)

// ErrNoData is returned (wrapped) by a provider whose query has no result.
// pkg/analysis re-exports it as analysis.ErrNoData.
var ErrNoData = errors.New("no data")

// Provider answers one query with one number, an error wrapping ErrNoData
// when the query has no result, or another error. It never passes a check
// on an answer it did not get: every doubt is an error.
type Provider interface {
	Query(ctx context.Context, query string) (float64, error)
}

// SeriesProvider is implemented by providers that can return a query's
// values over a window (oldest first), for judges that compare windows.
type SeriesProvider interface {
	Series(ctx context.Context, query string, start, end time.Time, step time.Duration) ([]float64, error)
}

// NoSeries is implemented by a provider that cannot return a series by its
// nature, to say why in a compare check's message (e.g. "the external
// metrics API serves only the current value, no history").
type NoSeries interface {
	NoSeries() string
}

// Config is what a provider is built from, for one check. A provider's
// errors do not name the template: the caller prefixes them with it.
type Config struct {
	// Spec is the template's provider section.
	Spec sluicev1.MetricProvider
	// Credentials is the data of the template's credentials Secret, already
	// allowed to be sent (nil without a secretRef).
	Credentials map[string][]byte
	// HTTP is the client to reach the provider with: its transport applies
	// the manager's egress policy, the template's TLS settings and headers;
	// it follows no redirect and has the per-query timeout.
	HTTP *http.Client
	// Timeout bounds one query.
	Timeout time.Duration
	// Window is the check's interval: how far back a provider that reads
	// a time range looks. A provider type that reads it whatever its query
	// says belongs in pkg/analysis's windowProviders, so that its checks
	// wait for the window to clear the revision served before the run.
	Window time.Duration
	// Body is the rendered request body (web with POST), if any.
	Body string
	// Kube is a client for the external metrics API with the manager's
	// identity (type kubernetes), and Namespace the one it may read: the
	// template's, or the Rollout's for a ClusterMetricTemplate.
	Kube      rest.Interface
	Namespace string
}

// Factory builds a provider for one check.
type Factory func(Config) (Provider, error)

// MaxBody bounds the answer a provider reads.
const MaxBody = 4 << 20

// ReadAnswer reads a response body up to MaxBody and turns an unsuccessful
// status into an error: 429 mentions the rate limit and Retry-After, 401
// and 403 say the credentials were refused, a redirect is not followed.
// what names the provider in messages, e.g. "datadog".
func ReadAnswer(resp *http.Response, what string) ([]byte, error) {
	defer func() { _ = resp.Body.Close() }()
	body, err := io.ReadAll(io.LimitReader(resp.Body, MaxBody+1))
	if err != nil {
		return nil, fmt.Errorf("reading the %s answer: %w", what, err)
	}
	if len(body) > MaxBody {
		return nil, fmt.Errorf("the %s answer is larger than %d MiB", what, MaxBody>>20)
	}
	if err := StatusError(resp, what, body); err != nil {
		return nil, err
	}
	return body, nil
}

// StatusError is the error of an unsuccessful answer, nil for a 2xx.
func StatusError(resp *http.Response, what string, body []byte) error {
	code := resp.StatusCode
	switch {
	case code >= 200 && code < 300:
		return nil
	case code == http.StatusTooManyRequests:
		msg := fmt.Sprintf("%s rate limit reached (429 Too Many Requests)", what)
		if ra := resp.Header.Get("Retry-After"); ra != "" {
			msg += "; it asks to retry after " + ra
		}
		return errors.New(msg)
	case code == http.StatusUnauthorized || code == http.StatusForbidden:
		return fmt.Errorf("%s refused the credentials (%s): check the template's secretRef%s", what, resp.Status, excerpt(body))
	case code >= 300 && code < 400:
		return fmt.Errorf("%s answered %s to %s: redirects are not followed; point the address at the final URL",
			what, resp.Status, resp.Header.Get("Location"))
	default:
		return fmt.Errorf("%s answered %s%s", what, resp.Status, excerpt(body))
	}
}

// excerpt is the start of an error body, for a message.
func excerpt(body []byte) string {
	s := strings.Join(strings.Fields(string(body)), " ")
	if s == "" {
		return ""
	}
	if len(s) > 200 {
		s = s[:200] + "..."
	}
	return ": " + s
}

// Do sends a request with the config's client and reads the answer
// (ReadAnswer), saying when the query timed out.
func (c Config) Do(req *http.Request, what string) ([]byte, error) {
	resp, err := c.HTTP.Do(req)
	if err != nil {
		if errors.Is(req.Context().Err(), context.DeadlineExceeded) || isTimeout(err) {
			return nil, fmt.Errorf("%s query timed out after %s: %w", what, c.Timeout, err)
		}
		return nil, fmt.Errorf("querying %s: %w", what, err)
	}
	return ReadAnswer(resp, what)
}

func isTimeout(err error) bool {
	var t interface{ Timeout() bool }
	return errors.As(err, &t) && t.Timeout()
}

// Secret returns a credential key, trimmed, or an error naming it.
func (c Config) Secret(key string) (string, error) {
	v := strings.TrimSpace(string(c.Credentials[key]))
	if v == "" {
		if c.Spec.SecretRef == nil {
			return "", fmt.Errorf("provider type %s needs provider.secretRef with the key %q", c.Spec.Type, key)
		}
		return "", fmt.Errorf("Secret %s has no key %q (provider type %s)", c.Spec.SecretRef.Name, key, c.Spec.Type)
	}
	return v, nil
}

// AuthHeader returns the Authorization header of the generic credentials:
// `token` (bearer) or `username` and `password` (basic); empty without
// them.
func (c Config) AuthHeader() (string, error) {
	token, user, pass := c.Credentials["token"], c.Credentials["username"], c.Credentials["password"]
	switch {
	case len(token) > 0 && (len(user) > 0 || len(pass) > 0):
		return "", errors.New("the Secret has both token and username/password: keep one")
	case len(token) > 0:
		return "Bearer " + strings.TrimSpace(string(token)), nil
	case len(user) > 0 && len(pass) > 0:
		r := &http.Request{Header: http.Header{}}
		r.SetBasicAuth(string(user), string(pass))
		return r.Header.Get("Authorization"), nil
	case len(user) > 0 || len(pass) > 0:
		return "", errors.New("the Secret needs both username and password for basic auth")
	}
	return "", nil
}

// Last returns the last of values that is not nil, or ErrNoData.
func Last(values []*float64) (float64, error) {
	for i := len(values) - 1; i >= 0; i-- {
		if values[i] != nil {
			return *values[i], nil
		}
	}
	return 0, fmt.Errorf("every point of the series is null: %w", ErrNoData)
}

// BlankQuoted blanks the text inside the quoted parts of a query (each
// opened and closed by one of quotes, backslash escapes inside), keeping
// every other byte where it was, so that a keyword in a string or a quoted
// name is not read as part of the query.
func BlankQuoted(query, quotes string) string {
	b := []byte(query)
	var quote byte
	for i := 0; i < len(b); i++ {
		switch {
		case quote == 0 && strings.IndexByte(quotes, b[i]) >= 0:
			quote = b[i]
		case quote != 0 && b[i] == '\\' && i+1 < len(b):
			b[i], b[i+1] = ' ', ' '
			i++
		case quote != 0 && b[i] == quote:
			quote = 0
		case quote != 0:
			b[i] = ' '
		}
	}
	return string(b)
}
