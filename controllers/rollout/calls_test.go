package rollout

import (
	"context"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	sluicev1 "github.com/sluice-dev/sluice/api/v1alpha1"
	"github.com/sluice-dev/sluice/controllers/rollout/statemachine"
)

// fakeCalls answers each round once the test lets it, counting the rounds
// and those in flight at once.
type fakeCalls struct {
	mu               sync.Mutex
	rounds, inFlight int
	most             int
	cancelled        int
	release          chan struct{}
}

func (f *fakeCalls) call(ctx context.Context, _ *sluicev1.Rollout, _ string, need statemachine.Need) answers {
	f.mu.Lock()
	f.rounds++
	f.inFlight++
	f.most = max(f.most, f.inFlight)
	f.mu.Unlock()
	defer func() {
		f.mu.Lock()
		f.inFlight--
		f.mu.Unlock()
	}()
	select {
	case <-f.release:
	case <-ctx.Done():
		f.mu.Lock()
		f.cancelled++
		f.mu.Unlock()
		return answers{}
	}
	var got answers
	if need.Checks {
		got.checks = &statemachine.CheckResult{Outcome: statemachine.CheckPass}
	}
	for _, t := range need.Gates {
		got.add(answers{gates: map[sluicev1.HookType]statemachine.GateResult{t: {Open: true}}})
	}
	return got
}

func (f *fakeCalls) count() (rounds, most, cancelled int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.rounds, f.most, f.cancelled
}

func waitWake(t *testing.T, c *hookCalls) {
	t.Helper()
	select {
	case <-c.wake:
	case <-time.After(5 * time.Second):
		t.Fatal("no wake-up after the round ended")
	}
}

func TestARolloutHasOneRoundOfCallsAtATimeAndItsAnswersLastUntilItMovesOn(t *testing.T) {
	f := &fakeCalls{release: make(chan struct{})}
	c := newHookCalls(f.call)
	defer c.drain(0)
	ro := &sluicev1.Rollout{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "shop", UID: "u1", Generation: 1}}
	checks := statemachine.Need{Checks: true}

	for range 3 {
		if _, ok := c.get(ro, "rev1", checks); ok {
			t.Fatal("answers before any call ended")
		}
	}
	close(f.release)
	waitWake(t, c)
	// A reconcile that could not record its decision asks again: the
	// answers are still there, without another call.
	for range 2 {
		got, ok := c.get(ro, "rev1", checks)
		if !ok || got.checks == nil || got.checks.Outcome != statemachine.CheckPass {
			t.Fatalf("get = %+v, %v: want the round's answers", got, ok)
		}
	}
	if rounds, most, _ := f.count(); rounds != 1 || most != 1 {
		t.Errorf("%d rounds, at most %d at once; want one", rounds, most)
	}

	// Recorded: the next check is asked from another state.
	ro.Status.LastCheckAt = &metav1.Time{Time: time.Now()}
	if _, ok := c.get(ro, "rev1", checks); ok {
		t.Error("answers of the state before were given for the next check")
	}
	waitWake(t, c)
	if rounds, _, _ := f.count(); rounds != 2 {
		t.Errorf("%d rounds, want a second for the next check", rounds)
	}
}

func TestARoundOfAStateLeftBehindIsCancelledBeforeTheNextStarts(t *testing.T) {
	f := &fakeCalls{release: make(chan struct{})}
	c := newHookCalls(f.call)
	defer c.drain(0)
	ro := &sluicev1.Rollout{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "shop", UID: "u1", Generation: 1}}
	gate := statemachine.Need{Gates: []sluicev1.HookType{sluicev1.HookConfirmPromotion}}

	c.get(ro, "rev1", gate)
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if rounds, _, _ := f.count(); rounds == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the gate was never asked")
		}
	}
	// The spec changed while the gate was asked: its answer is of no use.
	ro.Generation = 2
	if _, ok := c.get(ro, "rev1", gate); ok {
		t.Fatal("answers before any call ended")
	}
	waitWake(t, c)
	if rounds, _, cancelled := f.count(); rounds != 1 || cancelled != 1 {
		t.Fatalf("%d rounds, %d cancelled; want the first cancelled and no other started alongside", rounds, cancelled)
	}
	close(f.release)
	if _, ok := c.get(ro, "rev1", gate); ok {
		t.Fatal("the cancelled round's answers were kept")
	}
	waitWake(t, c)
	if got, ok := c.get(ro, "rev1", gate); !ok {
		t.Fatalf("get = %+v, %v: want the new round's answers", got, ok)
	}
	if _, most, _ := f.count(); most != 1 {
		t.Errorf("%d rounds at once, want one", most)
	}
}

func TestARecordedDecisionCancelsTheRoundOfTheStateItLeft(t *testing.T) {
	f := &fakeCalls{release: make(chan struct{})}
	c := newHookCalls(f.call)
	defer c.drain(0)
	ro := &sluicev1.Rollout{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "shop", UID: "u1", Generation: 1}}
	name := client.ObjectKeyFromObject(ro)
	c.get(ro, "rev1", statemachine.Need{Checks: true})
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if rounds, _, _ := f.count(); rounds == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the checks never ran")
		}
	}
	// A decision recorded in the same state keeps the round.
	c.decided(name, 0, callsKey(ro, "rev1"))
	if _, _, cancelled := f.count(); cancelled != 0 {
		t.Fatal("a decision that left the state as it was cancelled its round")
	}
	// Aborted while the checks run: the Rollout left the state they were
	// asked from.
	ro.Status.Phase = sluicev1.PhaseFailed
	c.decided(name, 0, callsKey(ro, "rev1"))
	waitWake(t, c)
	if _, _, cancelled := f.count(); cancelled != 1 {
		t.Errorf("%d rounds cancelled, want the one of the state left", cancelled)
	}
}

func TestADrainWaitsUntilTheAnswersAreDecidedWith(t *testing.T) {
	f := &fakeCalls{release: make(chan struct{})}
	c := newHookCalls(f.call)
	ro := &sluicev1.Rollout{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "shop", UID: "u1", Generation: 1}}
	name := client.ObjectKeyFromObject(ro)
	c.get(ro, "rev1", statemachine.Need{Checks: true})

	drained := make(chan struct{})
	go func() {
		c.drain(time.Minute)
		close(drained)
	}()
	close(f.release)
	waitWake(t, c)
	select {
	case <-drained:
		t.Fatal("the drain ended before a reconcile decided with the answers")
	case <-time.After(200 * time.Millisecond):
	}
	// Stopping: no new round starts.
	other := ro.DeepCopy()
	other.Name = "api"
	if _, ok := c.get(other, "rev1", statemachine.Need{Checks: true}); ok {
		t.Fatal("answers for a Rollout never asked")
	}
	c.decided(name, c.ended(name), callsKey(ro, "rev1"))
	select {
	case <-drained:
	case <-time.After(5 * time.Second):
		t.Fatal("the drain did not end once the answers were decided with")
	}
	if rounds, _, _ := f.count(); rounds != 1 {
		t.Errorf("%d rounds, want none started while draining", rounds)
	}
}
