package rollout_test

import (
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"
	"time"

	sluicev1 "github.com/sluice-dev/sluice/api/v1alpha1"
)

// A manager asked to stop while a hook is in flight waits for the hook's
// answer and records the decision made with it (the calls' drain), so that
// the next leader does not call the hook again. That decision's events
// must be written too. The recorder ran as a runnable that needs no leader,
// and controller-runtime stops those before the reconcilers: the decision
// was recorded in the status and its event told to a recorder that had
// stopped, so `kubectl events` never showed it.
func TestAManagerStoppingWithAHookInFlightWritesTheEventsOfTheDecisionItRecords(t *testing.T) {
	s := newStory(t)
	called, answer := make(chan struct{}, 1), make(chan struct{})
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case called <- struct{}{}:
		default:
		}
		<-answer
	}))
	answered := false
	t.Cleanup(func() {
		if !answered {
			close(answer)
		}
		hook.Close()
	})
	s.deploy("podinfo", "podinfo:1.0")
	s.initialized("podinfo", iterations(100), webhook("smoke", sluicev1.HookPreRollout, hook.URL))
	s.setImage("podinfo", "podinfo:2.0")
	select {
	case <-called:
	case <-time.After(storyTimeout):
		t.Fatal("the pre-rollout hook was never called")
	}

	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		s.stopManager()
	}()
	// The stop is under way, waiting for the hook: what it stops before
	// the reconcilers has stopped by now.
	time.Sleep(time.Second)
	close(answer)
	answered = true
	<-stopped

	if ro := s.getRollout("podinfo"); !ro.Status.PreRolloutPassed {
		t.Fatalf("the stopping manager did not record the answer of the hook in flight: phase %s, %q", ro.Status.Phase, ro.Status.Message)
	}
	if got := s.eventReasons("podinfo"); !slices.Contains(got, "PreRolloutHooks") {
		t.Errorf("the manager stopped having recorded that the pre-rollout hooks passed, and its events %v do not say so", got)
	}
}
