package rollout_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"

	sluicev1 "github.com/sluice-dev/sluice/api/v1alpha1"
	"github.com/sluice-dev/sluice/internal/manager"
)

// requestLog records the requests a manager sends for one namespace, with
// the status of each answer.
type requestLog struct {
	next http.RoundTripper
	ns   string

	mu   sync.Mutex
	reqs []string // "METHOD path code"
	// statusAnswers are the kinds of object the answers to status writes
	// carried: "PartialObjectMetadata" or "Rollout".
	statusAnswers []string
	// statusFields lists, for each status write the API server took, the
	// status fields it changed, sorted and joined with commas.
	statusFields []string
	// phasesWritten are the phases those writes set.
	phasesWritten []string
}

func (l *requestLog) RoundTrip(r *http.Request) (*http.Response, error) {
	isStatusWrite := r.Method == http.MethodPatch && strings.HasSuffix(r.URL.Path, "/status") && strings.Contains(r.URL.Path, "/namespaces/"+l.ns+"/")
	fields, phase := "", ""
	if isStatusWrite && r.Body != nil {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			return nil, err
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		var patch struct {
			Status map[string]json.RawMessage `json:"status"`
		}
		if err := json.Unmarshal(body, &patch); err != nil {
			return nil, fmt.Errorf("a status write that is no JSON merge patch: %w", err)
		}
		fields = strings.Join(slices.Sorted(maps.Keys(patch.Status)), ",")
		_ = json.Unmarshal(patch.Status["phase"], &phase)
	}
	resp, err := l.next.RoundTrip(r)
	answered := ""
	if err == nil && isStatusWrite {
		body, rerr := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		if rerr != nil {
			return nil, rerr
		}
		resp.Body = io.NopCloser(bytes.NewReader(body))
		answered = "Rollout"
		if bytes.Contains(body, []byte("PartialObjectMetadata")) {
			answered = "PartialObjectMetadata"
		}
	}
	if strings.Contains(r.URL.Path, "/namespaces/"+l.ns+"/") {
		code := 0
		if resp != nil {
			code = resp.StatusCode
		}
		l.mu.Lock()
		l.reqs = append(l.reqs, fmt.Sprintf("%s %s %d", r.Method, r.URL.Path, code))
		if answered != "" {
			l.statusAnswers = append(l.statusAnswers, answered)
		}
		if isStatusWrite && code == http.StatusOK {
			l.statusFields = append(l.statusFields, fields)
			if phase != "" {
				l.phasesWritten = append(l.phasesWritten, phase)
			}
		}
		l.mu.Unlock()
	}
	return resp, err
}

// wrote reports whether a status write that set phase has been logged. The
// API server stores a write before it answers, and the log has it once the
// answer is read: a story that saw the phase can be a moment ahead of it.
func (l *requestLog) wrote(phase sluicev1.Phase) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !slices.Contains(l.phasesWritten, string(phase)) {
		return fmt.Errorf("no logged status write set phase %s yet", phase)
	}
	return nil
}

// initialized creates the Rollout name and waits until it is Initialized
// and the log holds the status write that said so: requests logged from
// here on are the ones made after the initialization.
func (l *requestLog) initialized(s *story, name string, opts ...rolloutOpt) {
	s.t.Helper()
	s.initialized(name, opts...)
	s.eventually(storyTimeout, "the write of Initialized in the log", func() error { return l.wrote(sluicev1.PhaseInitialized) })
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
// status write has left behind, and asks for the Rollout's metadata only in
// the answer to a status write.
func TestAReleaseWritesItsStatusWithoutConflicts(t *testing.T) {
	s, log := newLoggedStory(t)
	s.deploy("podinfo", "podinfo:1.0")
	log.initialized(s, "podinfo", iterations(3))

	start := log.len()
	log.mu.Lock()
	statusWritesBefore := len(log.statusFields)
	log.mu.Unlock()
	s.setImage("podinfo", "podinfo:2.0")
	s.waitPhase("podinfo", "Succeeded", storyTimeout)
	s.eventually(storyTimeout, "the write of Succeeded in the log", func() error { return log.wrote(sluicev1.PhaseSucceeded) })

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
	// The manager holds the status it sent: an answer with the whole
	// Rollout would only be decoded to learn its new resourceVersion.
	log.mu.Lock()
	answers := append([]string(nil), log.statusAnswers...)
	log.mu.Unlock()
	if len(answers) == 0 {
		t.Error("the release wrote no status")
	}
	for _, a := range answers {
		if a != "PartialObjectMetadata" {
			t.Errorf("a status write was answered with the whole %s, not its metadata only", a)
			break
		}
	}
	t.Logf("FIGURE requests of a 3-iteration blue/green release: %d\n%s", len(reqs), strings.Join(reqs, "\n"))

	// Each status write costs the API server more than any other write of
	// a release (docs/performance.md). Those that record a step of the
	// state machine, not only a wait's words (written at most every 5 s,
	// so their number depends on the machine's pace), are seven: the run's
	// start, the hold of each of the 3 iterations, the promotion, traffic
	// back on the primary with the canary's drain, and Succeeded. The move
	// back is recorded with the drain in one write: were the write lost,
	// the next reconcile decides it again from Promoting as it stood
	// (TestAStatusWriteLostAfterTheMoveBackToThePrimaryIsDecidedAgainAsItStood).
	log.mu.Lock()
	written := append([]string(nil), log.statusFields[statusWritesBefore:]...)
	log.mu.Unlock()
	var steps []string
	for _, f := range written {
		if f != "message" && f != "conditions,message" {
			steps = append(steps, f)
		}
	}
	if len(steps) != 7 {
		t.Errorf("the release recorded %d steps in its status writes, want 7; the status fields each changed:\n%s", len(steps), strings.Join(steps, "\n"))
	}
}
