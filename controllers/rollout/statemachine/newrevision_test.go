package statemachine

import (
	"testing"
	"time"

	"k8s.io/utils/ptr"

	sluicev1 "github.com/sluice-dev/sluice/api/v1alpha1"
)

// TestAReleasePromotedWhileANewRevisionArrivesEndsAsAnyPromotion: a new
// revision during Finalising (or once the primary took the canary's revision
// in Promoting) finishes the promotion under way. That release is promoted
// like any other: it is told (Promoted) and its post-rollout hooks run,
// before the new revision's run starts. Before, the new run started at once
// and the promoted release had neither.
func TestAReleasePromotedWhileANewRevisionArrivesEndsAsAnyPromotion(t *testing.T) {
	tests := []struct {
		name   string
		spec   *sluicev1.RolloutSpec
		st     *sluicev1.RolloutStatus
		obs    Observation
		want   want
		events []string
	}{
		{
			name: "during the drain, without post-rollout hooks: promoted, then the new run starts",
			spec: spec(), st: status(sluicev1.PhaseFinalising, drainingSince(4*time.Second)),
			obs: observe("rev3", routed(0), primaryAt("rev2", true), canaryNotReady),
			want: want{phase: sluicev1.PhaseProgressing, stable: "rev2", canaryRev: ptr.To("rev3"), canaryUp: ptr.To(true),
				requeue: 10 * time.Minute},
			events: []string{"Promoted", "NewRevision"},
		},
		{
			name: "during the drain, with a post-rollout hook: promoted, and the hook is asked before the new run",
			spec: spec(withHook(sluicev1.HookPostRollout)), st: status(sluicev1.PhaseFinalising, drainingSince(4*time.Second)),
			obs: observe("rev3", routed(0), primaryAt("rev2", true), canaryNotReady),
			want: want{phase: sluicev1.PhaseSucceeded, stable: "rev2", canaryRev: ptr.To(""), canaryUp: ptr.To(true),
				needGate: sluicev1.HookPostRollout, ready: "True"},
			events: []string{"Promoted"},
		},
		{
			name: "the post-rollout hook answered: the new revision's run starts",
			spec: spec(withHook(sluicev1.HookPostRollout)), st: status(sluicev1.PhaseSucceeded, postRolloutPending, func(st *sluicev1.RolloutStatus) { st.StableRevision = "rev2" }),
			obs: observe("rev3", routed(0), primaryAt("rev2", true), canaryNotReady, gate(sluicev1.HookPostRollout, true)),
			want: want{phase: sluicev1.PhaseProgressing, stable: "rev2", canaryRev: ptr.To("rev3"), canaryUp: ptr.To(true),
				requeue: 10 * time.Minute},
			events: []string{"PostRolloutHooks", "NewRevision"},
		},
		{
			name: "in Promoting once the primary runs the canary's revision: promoted, then the new run starts",
			spec: spec(), st: status(sluicev1.PhasePromoting, atStep(2, 100)),
			obs: observe("rev3", routed(100), primaryAt("rev2", true), canaryNotReady),
			want: want{phase: sluicev1.PhaseProgressing, stable: "rev2", canaryRev: ptr.To("rev3"), weight: ptr.To[int32](0),
				canaryUp: ptr.To(true), requeue: 10 * time.Minute},
			events: []string{"Promoted", "NewRevision"},
		},
		{
			name: "in Promoting before the primary took the canary's revision: nothing was promoted",
			spec: spec(), st: status(sluicev1.PhasePromoting, atStep(2, 100)),
			obs: observe("rev3", routed(100), canaryNotReady),
			want: want{phase: sluicev1.PhaseProgressing, stable: "rev1", canaryRev: ptr.To("rev3"), canaryUp: ptr.To(true),
				requeue: 10 * time.Minute},
			events: []string{"RevisionChanged", "NewRevision"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := Decide(Input{Spec: tt.spec, Generation: 3, Status: tt.st, Obs: tt.obs, Now: t0})
			checkDecision(t, d, tt.want)
			for _, reason := range tt.events {
				if !hasEvent(d.Events, reason) {
					t.Errorf("events %v lack %s", d.Events, reason)
				}
			}
			if hasEvent(d.Events, "Promoted") != contains(tt.events, "Promoted") {
				t.Errorf("events %v: Promoted told %v, want %v", d.Events, hasEvent(d.Events, "Promoted"), contains(tt.events, "Promoted"))
			}
		})
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// TestARunRecordsWhenTheTargetLastServedAnotherRevision: a run's metric
// checks must not read the target's metrics from before it served this
// revision, so a run records, as it starts, when the target last served
// another: the end of the last drain (its pods served requests in flight
// until then), or now when a run under way is replaced (its canary may
// have taken traffic until this decision moves it).
func TestARunRecordsWhenTheTargetLastServedAnotherRevision(t *testing.T) {
	at := func(d time.Duration) *time.Time { x := t0.Add(d); return &x }
	tests := []struct {
		name string
		st   *sluicev1.RolloutStatus
		obs  Observation
		now  time.Time
		want *time.Time
	}{
		{name: "after a promotion whose drain ended 30s ago: the drain's end",
			st: status(sluicev1.PhaseSucceeded, drainingSince(40*time.Second)), obs: observe("rev2", canaryNotReady), want: at(-30 * time.Second)},
		{name: "after a rollback whose drain is still under way: now",
			st: status(sluicev1.PhaseFailed, failedRevision("rev2"), drainingSince(4*time.Second)), obs: observe("rev3", canaryNotReady), want: at(0)},
		{name: "a target that was never drained has served nothing: none",
			st: status(sluicev1.PhaseInitialized), obs: observe("rev2", canaryNotReady)},
		{name: "a run under way replaced by a new revision: now",
			st: status(sluicev1.PhaseProgressing, atStep(1, 50), stepStarted(time.Second)), obs: observe("rev3", routed(50)), want: at(0)},
		{name: "a promotion ended by a new revision: now",
			st: status(sluicev1.PhaseFinalising, drainingSince(4*time.Second)), obs: observe("rev3", routed(0), primaryAt("rev2", true), canaryNotReady), want: at(0)},
		{name: "now with a fraction of a second is rounded up, as the API server keeps whole seconds",
			st: status(sluicev1.PhaseProgressing, atStep(1, 50), stepStarted(time.Second)), obs: observe("rev3", routed(50)),
			now: t0.Add(-300 * time.Millisecond), want: at(0)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			now := tt.now
			if now.IsZero() {
				now = t0
			}
			d := Decide(Input{Spec: spec(), Generation: 3, Status: tt.st, Obs: tt.obs, Now: now})
			if !hasEvent(d.Events, "NewRevision") {
				t.Fatalf("events %v: no run started", d.Events)
			}
			got := d.Status.PreviousCanaryUntil
			switch {
			case tt.want == nil && got != nil:
				t.Errorf("previousCanaryUntil = %v, want none", got)
			case tt.want != nil && (got == nil || !got.Time.Equal(*tt.want)):
				t.Errorf("previousCanaryUntil = %v, want %v", got, *tt.want)
			}
		})
	}
}
