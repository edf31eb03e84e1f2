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
