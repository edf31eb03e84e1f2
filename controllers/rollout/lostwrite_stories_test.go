package rollout_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	eventsv1 "k8s.io/api/events/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	sluicev1 "github.com/sluice-dev/sluice/api/v1alpha1"
	"github.com/sluice-dev/sluice/internal/manager"
)

// statusLoser loses the first status write of a Rollout that the manager
// sends after it has moved the route's canary backend to each weight of
// after, in turn: the write never reaches the API server, as when the
// manager dies between the two or the connection drops.
type statusLoser struct {
	next  http.RoundTripper
	ns    string
	after []*regexp.Regexp

	mu      sync.Mutex
	matched int // how many of after the route went through
	armed   bool
	lost    string
	// movedAt is when the last move of after was answered.
	movedAt time.Time
}

// movesTo matches an HTTPRoute write that gives the canary backend weight.
func movesTo(weight string) *regexp.Regexp {
	return regexp.MustCompile(`-canary"[^}]*"weight":` + weight + `}`)
}

var errLostWrite = errors.New("connection reset by peer (the story lost this status write)")

func (l *statusLoser) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Method != http.MethodPatch || !strings.Contains(r.URL.Path, "/namespaces/"+l.ns+"/") {
		return l.next.RoundTrip(r)
	}
	l.mu.Lock()
	if l.armed && strings.HasSuffix(r.URL.Path, "/status") && strings.Contains(r.URL.Path, "/rollouts/") {
		l.armed, l.lost = false, r.URL.Path
		l.mu.Unlock()
		return nil, errLostWrite
	}
	l.mu.Unlock()
	var body []byte
	if r.Body != nil && strings.Contains(r.URL.Path, "/httproutes/") {
		var err error
		if body, err = io.ReadAll(r.Body); err != nil {
			return nil, err
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
	}
	resp, err := l.next.RoundTrip(r)
	if err == nil && resp.StatusCode == http.StatusOK {
		l.mu.Lock()
		if l.matched < len(l.after) && l.after[l.matched].Match(body) {
			l.matched++
			if l.matched == len(l.after) {
				l.armed, l.movedAt = true, time.Now()
			}
		}
		l.mu.Unlock()
	}
	return resp, err
}

func (l *statusLoser) lostWrite() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.lost
}

// weightEvents lists the notes of a Rollout's WeightChanged events, each as
// many times as it was recorded (an Event's series counts its repeats).
func (s *story) weightEvents(name string) []string {
	s.t.Helper()
	var list eventsv1.EventList
	s.must(k8sClient.List(s.ctx, &list, client.InNamespace(s.ns)))
	var out []string
	for _, e := range list.Items {
		if e.Regarding.Kind != "Rollout" || e.Regarding.Name != name || e.Reason != "WeightChanged" {
			continue
		}
		n := 1
		if e.Series != nil {
			n = int(e.Series.Count)
		}
		for range n {
			out = append(out, e.Note)
		}
	}
	slices.Sort(out)
	return out
}

// TestAStatusWriteLostAfterARouteMoveNeverMovesTrafficBack: the status
// write that follows the route's move to the second step, or to the
// promotion, is lost (the manager dies, the connection drops). Were the
// route ahead of the recorded status, the next reconcile would take it for
// a route to put back: traffic would go back a step, then forward again
// after the step's checks passed once more, and the step be told twice.
// The decision is recorded before the route moves, so traffic only moves
// forward.
func TestAStatusWriteLostAfterARouteMoveNeverMovesTrafficBack(t *testing.T) {
	// The release's moves, in turn: the install moves the route too (to
	// the target, then to the primary), so a move is matched only after
	// those before it in the release.
	moves := []*regexp.Regexp{movesTo("20"), movesTo("60"), movesTo("100")}
	for i, weight := range []string{"60", "100"} {
		t.Run("after the move to "+weight, func(t *testing.T) {
			loser := &statusLoser{after: moves[:i+2]}
			s := newStoryWrapped(t, manager.Options{}, func(rt http.RoundTripper) http.RoundTripper {
				loser.next = rt
				return loser
			})
			loser.ns = s.ns
			s.deploy("podinfo", "podinfo:1.0")
			s.initialized("podinfo", withRouter("gatewayAPI"), withCanaryWeights(20, 60))
			views := s.watchRoute("gatewayAPI", "podinfo", sluicev1.PhaseSucceeded, func() { s.setImage("podinfo", "podinfo:2.0") })
			if loser.lostWrite() == "" {
				t.Fatalf("no status write came after the route moved to %s%%: the story lost nothing", weight)
			}
			if got := canaryWeights(views); !slices.Equal(got, []int32{0, 20, 60, 100, 0}) {
				t.Errorf("canary weights over the release = %v, want [0 20 60 100 0] (a status write to %s was lost)", got, loser.lostWrite())
			}
			want := []string{"step 1/2: canary weight 20%", "step 2/2: canary weight 60%"}
			s.eventually(storyTimeout, "each step told once", func() error {
				if got := s.weightEvents("podinfo"); !slices.Equal(got, want) {
					return fmt.Errorf("WeightChanged events %q, want %q", got, want)
				}
				return nil
			})
		})
	}
}

// TestAStatusWriteLostAfterTheMoveBackToThePrimaryIsDecidedAgainAsItStood:
// at a promotion's end, traffic moves back to the primary, which runs the
// new revision, before the status says so, and the status write that
// records the move and the start of the canary's drain is lost. The next
// reconcile starts from Promoting: it finds the promotion done rather than
// sending all traffic to the canary again, and starts the drain from when
// it saw the route moved, never earlier. The canary keeps its pods until
// the drain's end.
func TestAStatusWriteLostAfterTheMoveBackToThePrimaryIsDecidedAgainAsItStood(t *testing.T) {
	loser := &statusLoser{after: []*regexp.Regexp{movesTo("20"), movesTo("60"), movesTo("100"), movesTo("0")}}
	s := newStoryWrapped(t, manager.Options{}, func(rt http.RoundTripper) http.RoundTripper {
		loser.next = rt
		return loser
	})
	loser.ns = s.ns
	s.deploy("podinfo", "podinfo:1.0")
	s.initialized("podinfo", withRouter("gatewayAPI"), withCanaryWeights(20, 60), scaleDownDelay(3))
	var ro *sluicev1.Rollout
	var end time.Time
	views := s.watchRoute("gatewayAPI", "podinfo", sluicev1.PhaseSucceeded, func() {
		s.setImage("podinfo", "podinfo:2.0")
		ro, end = s.waitDraining("podinfo", sluicev1.PhaseFinalising, 3*time.Second)
		s.expectCanaryKeptUntil("podinfo", sluicev1.PhaseFinalising, 2, end)
	})
	if loser.lostWrite() == "" {
		t.Fatal("no status write came after the route moved back to the primary: the story lost nothing")
	}
	if got := canaryWeights(views); !slices.Equal(got, []int32{0, 20, 60, 100, 0}) {
		t.Errorf("canary weights over the release = %v, want [0 20 60 100 0] (the write after the move back was lost)", got)
	}
	if since := ro.Status.CanaryDrainingSince.Time; since.Before(loser.movedAt.Truncate(time.Second)) {
		t.Errorf("the drain counts from %s, before the route moved back at %s", since.Format(time.StampMilli), loser.movedAt.Format(time.StampMilli))
	}
	want := []string{"step 1/2: canary weight 20%", "step 2/2: canary weight 60%"}
	if got := s.weightEvents("podinfo"); !slices.Equal(got, want) {
		t.Errorf("WeightChanged events %q, want each step told once: %q", got, want)
	}
	s.expectEvents("podinfo", "Promoted", 1)
}
