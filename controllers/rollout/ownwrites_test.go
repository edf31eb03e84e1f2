package rollout

import (
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	sluicev1 "github.com/sluice-dev/sluice/api/v1alpha1"
)

func TestACachedCopyOlderThanOurOwnWriteIsBehindUntilTheCacheCatchesUp(t *testing.T) {
	o := newOwnWrites()
	key := types.NamespacedName{Namespace: "shop", Name: "podinfo"}
	if o.isBehind(key, "10") {
		t.Fatal("a Rollout never written is behind")
	}
	// One reconcile: the finalizer (10 → 11), the status (11 → 12).
	o.wrote(key, "10", "11")
	o.wrote(key, "11", "12")
	for _, rv := range []string{"10", "11"} {
		if !o.isBehind(key, rv) {
			t.Errorf("the copy at %s, left behind by our writes, is not behind", rv)
		}
	}
	if o.isBehind(key, "12") {
		t.Error("the copy of our last write is behind")
	}
	if !o.hasAll(key, "12") {
		t.Error("the copy of our last write does not hold all our writes")
	}
	if o.hasAll(key, "13") {
		t.Error("a copy someone else wrote after ours is taken for ours")
	}
	// Caught up: the old versions are forgotten.
	if o.isBehind(key, "11") {
		t.Error("after the cache caught up, an old version is still behind")
	}
	// A write that changed nothing leaves nothing behind.
	o.wrote(key, "12", "12")
	if o.isBehind(key, "12") {
		t.Error("a no-op write put the current copy behind")
	}
	other := types.NamespacedName{Namespace: "shop", Name: "other"}
	o.wrote(other, "5", "6")
	o.forget(other)
	if o.isBehind(other, "5") || o.hasAll(other, "6") {
		t.Error("a forgotten Rollout is still known")
	}
}

func TestOnlyMessagesTellsAWaitsNewWordsFromAStateChange(t *testing.T) {
	waiting := func(msg string) *sluicev1.RolloutStatus {
		return &sluicev1.RolloutStatus{Phase: sluicev1.PhaseProgressing, Message: msg, Conditions: []metav1.Condition{
			{Type: "Ready", Status: metav1.ConditionFalse, Reason: "Progressing", Message: msg},
		}}
	}
	a := waiting("waiting for the canary to be ready: scaled to zero")
	b := waiting("waiting for the canary to be ready: 1/1 replicas updated, 0 available")
	if !onlyMessages(a, b) {
		t.Error("two waits that differ in words only are a state change")
	}
	c := b.DeepCopy()
	c.CurrentStepIndex = 1
	if onlyMessages(a, c) {
		t.Error("a new step is taken for words only")
	}
	d := b.DeepCopy()
	d.Conditions[0].Reason = "Stalled"
	if onlyMessages(a, d) {
		t.Error("a new condition reason is taken for words only")
	}
	e := b.DeepCopy()
	e.Conditions = append(e.Conditions, metav1.Condition{Type: "Stalled", Status: metav1.ConditionTrue, Reason: "X"})
	if onlyMessages(a, e) {
		t.Error("a new condition is taken for words only")
	}
}

func TestAStatusWrittenAMomentAgoHoldsBackTheNextWordsOnlyChange(t *testing.T) {
	o := newOwnWrites()
	key := types.NamespacedName{Namespace: "shop", Name: "podinfo"}
	now := time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)
	if o.sinceLast(key, now) < messageHold {
		t.Fatal("a Rollout whose status this manager never wrote holds its messages back")
	}
	o.statusWritten(key, now)
	if got := o.sinceLast(key, now.Add(500*time.Millisecond)); got != 500*time.Millisecond {
		t.Errorf("sinceLast = %s, want 500ms", got)
	}
}

// A reconcile that found the cache behind is woken by the update that
// brings the cache up (status updates wake nothing otherwise), once; an
// update still behind, or one no reconcile awaits, wakes nothing.
func TestTheUpdateThatBringsTheCacheUpWakesTheReconcileThatAwaitsIt(t *testing.T) {
	o := newOwnWrites()
	key := types.NamespacedName{Namespace: "shop", Name: "podinfo"}
	o.wrote(key, "10", "11")
	if o.caughtUp(key, "11") {
		t.Error("an update no reconcile awaits wakes one")
	}
	o.wrote(key, "11", "12")
	o.await(key)
	if o.caughtUp(key, "11") {
		t.Error("an update older than our last write wakes the reconcile that awaits the cache")
	}
	if !o.caughtUp(key, "12") {
		t.Error("the update of our last write does not wake the reconcile that awaits it")
	}
	if o.caughtUp(key, "13") {
		t.Error("a second update wakes it again: once is enough")
	}
	o.await(key)
	o.forget(key)
	if o.caughtUp(key, "14") {
		t.Error("a Rollout gone is still awaited")
	}
}

func TestARolloutFoundBehindAgainAndAgainLooksLessOften(t *testing.T) {
	o := newOwnWrites()
	key := types.NamespacedName{Namespace: "shop", Name: "podinfo"}
	other := types.NamespacedName{Namespace: "shop", Name: "checkout"}
	ms := time.Millisecond
	for i, want := range []time.Duration{200 * ms, 400 * ms, 800 * ms, 1600 * ms, 3200 * ms, 3200 * ms} {
		if got := o.lookAgain(key); got != want {
			t.Errorf("look %d at a cache behind: again after %v, want %v", i+1, got, want)
		}
	}
	if got := o.lookAgain(other); got != 200*ms {
		t.Errorf("another Rollout's first look: again after %v, want 200ms", got)
	}
	o.lookedCurrent(key)
	if got := o.lookAgain(key); got != 200*ms {
		t.Errorf("after a look at a current cache: again after %v, want 200ms", got)
	}
	o.lookAgain(key)
	o.forget(key)
	if got := o.lookAgain(key); got != 200*ms {
		t.Errorf("a Rollout deleted and created again: again after %v, want 200ms", got)
	}
}
