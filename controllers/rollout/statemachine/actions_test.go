package statemachine

import (
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	sluicev1 "github.com/sluice-dev/sluice/api/v1alpha1"
)

func action(a sluicev1.Action) obsOpt {
	return func(o *Observation) { o.Action, o.ActionBy = a, "alice" }
}

func paused(st *sluicev1.RolloutStatus) { st.Paused = true }

func TestRuntimeActions(t *testing.T) {
	manualPause := withSteps(sluicev1.CanaryStep{SetWeight: ptr.To[int32](20)}, sluicev1.CanaryStep{Pause: &sluicev1.PauseStep{}}, sluicev1.CanaryStep{SetWeight: ptr.To[int32](50)})
	tests := []struct {
		name string
		spec *sluicev1.RolloutSpec
		st   *sluicev1.RolloutStatus
		obs  Observation
		want want
	}{
		{
			name: "pause holds a run where it is and says so",
			spec: spec(withMetric()), st: status(sluicev1.PhaseProgressing, stepStarted(time.Hour)),
			obs:  observe("rev2", action(sluicev1.ActionPause)),
			want: want{phase: sluicev1.PhaseProgressing, event: "ActionPause", canaryUp: ptr.To(true), message: "paused"},
		},
		{
			name: "a paused Rollout starts no run for a new revision",
			spec: spec(), st: status(sluicev1.PhaseSucceeded, paused),
			obs:  observe("rev2"),
			want: want{phase: sluicev1.PhaseSucceeded, noEvents: true, canaryUp: ptr.To(false)},
		},
		{
			name: "resume carries on",
			spec: spec(), st: status(sluicev1.PhaseSucceeded, paused),
			obs:  observe("rev2", action(sluicev1.ActionResume), canaryNotReady),
			want: want{phase: sluicev1.PhaseProgressing, event: "ActionResume", requeue: 10 * time.Minute},
		},
		{
			name: "promote ends a manual pause",
			spec: spec(manualPause), st: status(sluicev1.PhaseProgressing, atStep(1, 20), stepStarted(time.Hour)),
			obs:  observe("rev2", routed(20), action(sluicev1.ActionPromote)),
			want: want{phase: sluicev1.PhaseProgressing, step: ptr.To[int32](2), weight: ptr.To[int32](50), event: "ActionPromote"},
		},
		{
			name: "promote opens a closed confirm-promotion gate",
			spec: spec(withHook(sluicev1.HookConfirmPromotion)), st: status(sluicev1.PhaseWaitingPromotion),
			obs:  observe("rev2", action(sluicev1.ActionPromote)),
			want: want{phase: sluicev1.PhasePromoting, event: "ActionPromote"},
		},
		{
			name: "promote starts a run held at confirm-rollout",
			spec: spec(withHook(sluicev1.HookConfirmRollout)), st: status(sluicev1.PhaseWaiting),
			obs:  observe("rev2", action(sluicev1.ActionPromote), canaryNotReady),
			want: want{phase: sluicev1.PhaseProgressing, event: "ActionPromote", requeue: 10 * time.Minute},
		},
		{
			name: "promote-full skips the remaining steps once the canary is ready",
			spec: spec(withCanaryWeights(10, 50), withHook(sluicev1.HookConfirmPromotion)), st: status(sluicev1.PhaseProgressing, atStep(0, 10), stepStarted(time.Second)),
			obs:  observe("rev2", routed(10), action(sluicev1.ActionPromoteFull)),
			want: want{phase: sluicev1.PhasePromoting, weight: ptr.To[int32](100), event: "ActionPromoteFull"},
		},
		{
			name: "abort rolls a run back now",
			spec: spec(), st: status(sluicev1.PhaseProgressing, stepStarted(time.Second)),
			obs:  observe("rev2", action(sluicev1.ActionAbort)),
			want: want{phase: sluicev1.PhaseFailed, event: "Aborted", stalled: metav1.ConditionTrue, message: "aborted by alice", requeue: 10 * time.Second},
		},
		{
			name: "abort with no run under way is ignored, with a reason",
			spec: spec(), st: status(sluicev1.PhaseSucceeded),
			obs:  observe("rev1", action(sluicev1.ActionAbort)),
			want: want{phase: sluicev1.PhaseSucceeded, event: "ActionIgnored"},
		},
		{
			name: "retry releases the failed revision again",
			spec: spec(), st: status(sluicev1.PhaseFailed, failedRevision("rev2"), failedChecks(2)),
			obs:  observe("rev2", action(sluicev1.ActionRetry), canaryNotReady),
			want: want{phase: sluicev1.PhaseProgressing, canaryRev: ptr.To("rev2"), failed: ptr.To[int32](0), event: "ActionRetry", requeue: 10 * time.Minute},
		},
		{
			name: "retry without a failure is ignored",
			spec: spec(), st: status(sluicev1.PhaseSucceeded),
			obs:  observe("rev1", action(sluicev1.ActionRetry)),
			want: want{phase: sluicev1.PhaseSucceeded, event: "ActionIgnored"},
		},
		{
			name: "an unknown action is reported",
			spec: spec(), st: status(sluicev1.PhaseSucceeded),
			obs:  observe("rev1", action("skip")),
			want: want{phase: sluicev1.PhaseSucceeded, event: "ActionIgnored"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := Decide(Input{Spec: tt.spec, Generation: 3, Status: tt.st, Obs: tt.obs, Now: t0})
			checkDecision(t, d, tt.want)
		})
	}
}

// An action with an id is carried out once: the reconciler may fail to
// remove its annotations after the status recorded it (a crash, an error),
// and the next decision sees it again.
func TestAnActionIsCarriedOutOnceByItsID(t *testing.T) {
	manualPauses := withSteps(sluicev1.CanaryStep{SetWeight: ptr.To[int32](20)}, sluicev1.CanaryStep{Pause: &sluicev1.PauseStep{}},
		sluicev1.CanaryStep{Pause: &sluicev1.PauseStep{}}, sluicev1.CanaryStep{SetWeight: ptr.To[int32](50)})
	withID := func(id string) obsOpt {
		return func(o *Observation) { o.Action, o.ActionBy, o.ActionID = sluicev1.ActionPromote, "alice", id }
	}
	first := Decide(Input{Spec: spec(manualPauses), Generation: 3, Now: t0,
		Status: status(sluicev1.PhaseProgressing, atStep(1, 20), stepStarted(time.Hour)),
		Obs:    observe("rev2", routed(20), withID("a1"))})
	checkDecision(t, first, want{phase: sluicev1.PhaseProgressing, step: ptr.To[int32](2), event: "ActionPromote"})
	if got, want := first.Status.LastAction, (&sluicev1.ActionRecord{Action: sluicev1.ActionPromote, By: "alice", ID: "a1"}); got == nil || *got != *want {
		t.Fatalf("lastAction = %+v, want %+v", got, want)
	}

	again := Decide(Input{Spec: spec(manualPauses), Generation: 3, Now: t0.Add(time.Second), Status: &first.Status,
		Obs: observe("rev2", routed(20), withID("a1"))})
	if again.Status.CurrentStepIndex != 2 || len(again.Events) != 0 {
		t.Errorf("the same request seen again moved to step %d with events %v; want step 2 and nothing told", again.Status.CurrentStepIndex, again.Events)
	}

	next := Decide(Input{Spec: spec(manualPauses), Generation: 3, Now: t0.Add(time.Second), Status: &first.Status,
		Obs: observe("rev2", routed(20), withID("b2"))})
	checkDecision(t, next, want{phase: sluicev1.PhaseProgressing, step: ptr.To[int32](3), event: "ActionPromote"})

	// Without an id, a request cannot be told from the same one asked
	// again: it is carried out each time it is seen.
	noID := Decide(Input{Spec: spec(manualPauses), Generation: 3, Now: t0.Add(time.Second), Status: &first.Status,
		Obs: observe("rev2", routed(20), action(sluicev1.ActionPromote))})
	checkDecision(t, noID, want{phase: sluicev1.PhaseProgressing, step: ptr.To[int32](3), event: "ActionPromote"})
}
