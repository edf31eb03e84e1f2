package rollout_test

import (
	"bytes"
	"io"
	"net/http"
	"strings"
	"sync"
)

// patchRace runs someone else's change, once armed, right before the
// manager's next PATCH of the Rollout podinfo (or of object, "deployments/
// podinfo") whose body matches reaches the API server: the race a user or
// another controller can win.
type patchRace struct {
	next    http.RoundTripper
	ns      string
	object  string // "rollouts/podinfo" when empty
	matches func(body string) bool

	mu     sync.Mutex
	before func() error // nil once run
	err    error
}

func (p *patchRace) arm(before func() error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.before = before
}

// ran returns the change's error once it ran.
func (p *patchRace) ran() (bool, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.before == nil, p.err
}

func (p *patchRace) RoundTrip(r *http.Request) (*http.Response, error) {
	object := p.object
	if object == "" {
		object = "rollouts/podinfo"
	}
	if r.Method == http.MethodPatch && strings.HasSuffix(r.URL.Path, "/namespaces/"+p.ns+"/"+object) && r.Body != nil {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			return nil, err
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		if p.matches(string(body)) {
			p.mu.Lock()
			if p.before != nil {
				p.err, p.before = p.before(), nil
			}
			p.mu.Unlock()
		}
	}
	return p.next.RoundTrip(r)
}
