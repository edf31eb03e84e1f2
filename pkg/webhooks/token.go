package webhooks

import (
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"
)

// TokenFile is a bearer token kept in a file, typically a mounted Secret.
// It is read again when the file changes (its modification time or size),
// so a rotated Secret is picked up without a restart, while an unchanged
// file costs one stat per use.
type TokenFile struct {
	Path string

	mu      sync.Mutex
	modTime time.Time
	size    int64
	token   string
}

// Token returns the file's content without surrounding white space. A
// missing, unreadable or empty file is an error: a token that cannot be
// read must not turn into no token.
func (f *TokenFile) Token() (string, error) {
	// Stat follows the symlinks a Secret volume swaps on update.
	fi, err := os.Stat(f.Path)
	if err != nil {
		return "", fmt.Errorf("token file: %w", err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.token != "" && fi.ModTime().Equal(f.modTime) && fi.Size() == f.size {
		return f.token, nil
	}
	raw, err := os.ReadFile(f.Path)
	if err != nil {
		return "", fmt.Errorf("token file: %w", err)
	}
	token := strings.TrimSpace(string(raw))
	if token == "" {
		return "", fmt.Errorf("token file %s is empty", f.Path)
	}
	f.token, f.modTime, f.size = token, fi.ModTime(), fi.Size()
	return token, nil
}

// TokenTransport sends "Authorization: Bearer <token>" with the requests to
// Hosts only. Webhook URLs are written by whoever may write a Rollout; a
// token sent with every call would go to any server they name, and with it
// the right to open every gate of the loadtester. Hosts are host names,
// compared without the port, case and a final dot; every hop of a redirect
// is checked again.
type TokenTransport struct {
	// Base sends the requests (http.DefaultTransport when nil).
	Base  http.RoundTripper
	Token *TokenFile
	Hosts []string
}

// RoundTrip adds the token when the request goes to one of Hosts.
func (t *TokenTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	base := t.Base
	if base == nil {
		base = http.DefaultTransport
	}
	if !t.forHost(req.URL.Hostname()) {
		return base.RoundTrip(req)
	}
	token, err := t.Token.Token()
	if err != nil {
		if req.Body != nil {
			_ = req.Body.Close()
		}
		return nil, fmt.Errorf("webhook token: %w", err)
	}
	// A RoundTripper must not change the request it is given.
	req = req.Clone(req.Context())
	req.Header.Set("Authorization", "Bearer "+token)
	return base.RoundTrip(req)
}

func (t *TokenTransport) forHost(host string) bool {
	host = normalHost(host)
	for _, h := range t.Hosts {
		if normalHost(h) == host {
			return true
		}
	}
	return false
}

func normalHost(h string) string { return strings.ToLower(strings.TrimSuffix(h, ".")) }

// WithToken returns a copy of hc (a new client when nil) that sends the
// token of file to hosts, after checking that the file can be read now: a
// wrong path is an error at start, not a failed gate later.
func WithToken(hc *http.Client, file string, hosts []string) (*http.Client, error) {
	if len(hosts) == 0 {
		return nil, errors.New("a webhook token needs the hosts it is sent to")
	}
	tf := &TokenFile{Path: file}
	if _, err := tf.Token(); err != nil {
		return nil, err
	}
	out := &http.Client{}
	if hc != nil {
		*out = *hc
	}
	out.Transport = &TokenTransport{Base: out.Transport, Token: tf, Hosts: hosts}
	return out, nil
}
