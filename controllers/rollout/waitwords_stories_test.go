package rollout_test

import (
	"context"
	"strconv"
	"strings"
	"testing"

	"sigs.k8s.io/controller-runtime/pkg/client"

	sluicev1 "github.com/sluice-dev/sluice/api/v1alpha1"
)

// statusView is what one version of a Rollout's status told a user.
type statusView struct {
	phase   sluicev1.Phase
	message string
}

// watchStatuses follows a Rollout's status with a watch (every write is
// seen, however short-lived) from before start until it reaches phase, and
// returns each distinct (phase, message), in order.
func (s *story) watchStatuses(name string, until sluicev1.Phase, start func()) []statusView {
	s.t.Helper()
	wc, err := watchClient()
	s.must(err)
	ctx, cancel := context.WithTimeout(s.ctx, storyTimeout)
	defer cancel()
	w, err := wc.Watch(ctx, &sluicev1.RolloutList{}, client.InNamespace(s.ns))
	s.must(err)
	defer w.Stop()
	var seen []statusView
	var lastRV uint64
	start()
	for {
		select {
		case ev, ok := <-w.ResultChan():
			if !ok {
				s.t.Fatalf("the Rollout watch ended before %s reached %s; statuses %+v", name, until, seen)
			}
			ro, isRollout := ev.Object.(*sluicev1.Rollout)
			if !isRollout || ro.Name != name {
				continue
			}
			// The first event may come from the watch cache, behind a
			// version seen already.
			rv, _ := strconv.ParseUint(ro.ResourceVersion, 10, 64)
			if rv < lastRV {
				continue
			}
			lastRV = rv
			v := statusView{ro.Status.Phase, ro.Status.Message}
			if len(seen) == 0 || seen[len(seen)-1] != v {
				seen = append(seen, v)
			}
			if ro.Status.Phase == until {
				return seen
			}
		case <-ctx.Done():
			s.t.Fatalf("Rollout %s did not reach %s; statuses %+v", name, until, seen)
		}
	}
}

// firstIn is the first status seen in phase.
func firstIn(views []statusView, phase sluicev1.Phase) (statusView, bool) {
	for _, v := range views {
		if v.phase == phase {
			return v, true
		}
	}
	return statusView{}, false
}

// TestTheWaitAfterAScaleOrAPromotionSaysWhatItWaitsFor: the status written
// with a release's start and with its promotion tells the wait as it
// stands once Sluice has scaled the canary up or given the primary the new
// template: the Deployment controller has yet to act on it. It used to tell
// the Deployment as read before that write ("scaled to zero" for a canary
// just scaled up), and the true words cost a status write more a release
// when the Deployment controller was slow to see them (1,000 releases at
// once: 2.9 writes of words only a release, docs/performance.md).
func TestTheWaitAfterAScaleOrAPromotionSaysWhatItWaitsFor(t *testing.T) {
	s := newStory(t)
	s.deploy("podinfo", "podinfo:1.0")
	s.initialized("podinfo", iterations(1))
	views := s.watchStatuses("podinfo", sluicev1.PhaseSucceeded, func() { s.setImage("podinfo", "podinfo:2.0") })
	t.Logf("statuses: %+v", views)
	const notSeen = "the Deployment controller has not observed the latest spec yet"
	ro := s.getRollout("podinfo")
	rev := ro.Status.StableRevision

	first, ok := firstIn(views, sluicev1.PhaseProgressing)
	if !ok {
		t.Fatalf("no status in Progressing among %+v", views)
	}
	if want := "waiting for the canary to be ready: " + notSeen; first.message != want {
		t.Errorf("the release's first status says %q, want %q", first.message, want)
	}
	for _, v := range views {
		if v.phase == sluicev1.PhaseProgressing && strings.Contains(v.message, "scaled to zero") {
			t.Errorf("a status in Progressing says %q: the canary was scaled up in the reconcile that wrote it", v.message)
		}
	}
	first, ok = firstIn(views, sluicev1.PhasePromoting)
	if !ok {
		t.Fatalf("no status in Promoting among %+v", views)
	}
	if want := "waiting for the primary to roll out revision " + rev + ": " + notSeen; first.message != want {
		t.Errorf("the promotion's first status says %q, want %q", first.message, want)
	}
}
