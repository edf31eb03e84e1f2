package rollout_test

import (
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/sluice-dev/sluice/internal/manager"
)

// requestLog records the requests a manager sends for one namespace, with
// the status of each answer.
type requestLog struct {
	next http.RoundTripper
	ns   string

	mu   sync.Mutex
	reqs []string // "METHOD path code"
}

func (l *requestLog) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := l.next.RoundTrip(r)
	if strings.Contains(r.URL.Path, "/namespaces/"+l.ns+"/") {
		code := 0
		if resp != nil {
			code = resp.StatusCode
		}
		l.mu.Lock()
		l.reqs = append(l.reqs, fmt.Sprintf("%s %s %d", r.Method, r.URL.Path, code))
		l.mu.Unlock()
	}
	return resp, err
}

func (l *requestLog) since(i int) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.reqs[i:]...)
}

// newLoggedStory starts a story whose manager's requests for the story's
// namespace are logged.
func newLoggedStory(t *testing.T) (*story, *requestLog) {
	log := &requestLog{}
	s := newStoryWrapped(t, manager.Options{}, func(rt http.RoundTripper) http.RoundTripper {
		log.next = rt
		return log
	})
	log.ns = s.ns
	return s, log
}

func (l *requestLog) len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.reqs)
}

// A release is a handful of status writes; each one the API server refuses
// as written from a stale copy is a request, and a reconcile, for nothing.
// The manager does not act on a cached Rollout that it knows its own last
// status write has left behind.
func TestAReleaseWritesItsStatusWithoutConflicts(t *testing.T) {
	s, log := newLoggedStory(t)
	s.deploy("podinfo", "podinfo:1.0")
	s.initialized("podinfo", iterations(3))

	start := log.len()
	s.setImage("podinfo", "podinfo:2.0")
	s.waitPhase("podinfo", "Succeeded", storyTimeout)

	var conflicts []string
	reqs := log.since(start)
	for _, r := range reqs {
		if strings.HasSuffix(r, " 409") {
			conflicts = append(conflicts, r)
		}
	}
	if len(conflicts) > 0 {
		t.Errorf("%d of the release's %d requests were refused with 409 Conflict:\n%s", len(conflicts), len(reqs), strings.Join(conflicts, "\n"))
	}
	t.Logf("FIGURE requests of a 3-iteration blue/green release: %d\n%s", len(reqs), strings.Join(reqs, "\n"))
}
