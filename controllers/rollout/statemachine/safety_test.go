package statemachine

import (
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	sluicev1 "github.com/sluice-dev/sluice/api/v1alpha1"
)

// Options for the safety stories: replica counts and what the primary holds.
func canaryAvailable(n int32) obsOpt { return func(o *Observation) { o.CanaryAvailable = n } }
func primaryReplicas(spec, available int32) obsOpt {
	return func(o *Observation) { o.PrimaryReplicas, o.PrimaryAvailable = spec, available }
}
func targetReplicas(n int32) obsOpt { return func(o *Observation) { o.TargetReplicas = n } }
func autoscalerMin(n int32) obsOpt  { return func(o *Observation) { o.AutoscalerMinReplicas = n } }
func restorable(o *Observation)     { o.PrimaryRestorable = true }
func promotionStarted(ago time.Duration) statusOpt {
	return func(st *sluicev1.RolloutStatus) { st.PromotionStartedAt = &metav1.Time{Time: t0.Add(-ago)} }
}
func targetScaledDown(st *sluicev1.RolloutStatus) { st.TargetScaledDown = true }
func shareHeld(st *sluicev1.RolloutStatus)        { st.CanaryShareHeld = true }
func scaledWithWeight(s *sluicev1.RolloutSpec)    { s.Strategy.Canary.ScaleWithWeight = true }
func canaryFloor(n int32) specOpt {
	return func(s *sluicev1.RolloutSpec) { s.Strategy.Canary.MinReplicas = ptr.To(n) }
}

// TestDecideNeverCausesAnOutage holds the safety invariants of DESIGN.md in
// the situations that broke them: autoscaled canaries, promotions that cannot
// finish, aborts during a promotion, specs edited mid-run.
func TestDecideNeverCausesAnOutage(t *testing.T) {
	tests := []struct {
		name string
		spec *sluicev1.RolloutSpec
		st   *sluicev1.RolloutStatus
		obs  Observation
		want want
		// minCanary is the least number of replicas the canary must be given.
		minCanary *int32
		// passOwner is whether the target's count is the owner's wish.
		passOwner *bool
	}{
		// Promotion never overloads the canary.
		{
			name: "a canary smaller than the primary is scaled up before it takes all traffic",
			spec: spec(), st: status(sluicev1.PhasePromoting, atStep(2, 0)),
			obs:       observe("rev2", canaryAvailable(1), primaryReplicas(4, 4)),
			want:      want{phase: sluicev1.PhasePromoting, weight: ptr.To[int32](0), canaryUp: ptr.To(true), message: "4 available replicas", requeue: 10 * time.Minute},
			minCanary: ptr.To[int32](4),
		},
		{
			name: "a canary as large as the primary takes all traffic",
			spec: spec(), st: status(sluicev1.PhasePromoting, atStep(2, 0)),
			obs:       observe("rev2", canaryAvailable(4), primaryReplicas(4, 4)),
			want:      want{phase: sluicev1.PhasePromoting, weight: ptr.To[int32](100), canaryUp: ptr.To(true)},
			minCanary: ptr.To[int32](4),
		},
		{
			name: "a canary that stops being ready before it takes all traffic is rolled back at the deadline",
			spec: spec(), st: status(sluicev1.PhasePromoting, atStep(2, 20), waitingSince(11*time.Minute)),
			obs:  observe("rev2", routed(20), canaryNotReady),
			want: want{phase: sluicev1.PhaseFailed, weight: ptr.To[int32](0), canaryUp: ptr.To(true), event: "ProgressDeadlineExceeded", stalled: metav1.ConditionTrue},
		},
		// Traffic returns to the primary only when it can carry it.
		{
			name: "the primary at the new revision with fewer available replicas than the canary gets no traffic yet",
			spec: spec(), st: status(sluicev1.PhasePromoting, atStep(2, 100), promotionStarted(time.Minute)),
			obs:  observe("rev2", routed(100), primaryAt("rev2", true), canaryAvailable(4), targetReplicas(4), primaryReplicas(4, 2)),
			want: want{phase: sluicev1.PhasePromoting, weight: ptr.To[int32](100), primaryRev: "rev2", canaryUp: ptr.To(true), message: "as many as the canary", requeue: 9 * time.Minute},
		},
		{
			name: "a primary that cannot roll out the new revision stalls the Rollout with traffic on the canary",
			spec: spec(), st: status(sluicev1.PhasePromoting, atStep(2, 100), promotionStarted(11*time.Minute)),
			obs: observe("rev2", routed(100), primaryAt("rev2", false), func(o *Observation) {
				o.PrimaryMessage = "1/2 replicas updated, 0 available"
			}),
			want: want{phase: sluicev1.PhasePromoting, weight: ptr.To[int32](100), primaryRev: "rev2", canaryUp: ptr.To(true),
				event: "PromotionStalled", stalled: metav1.ConditionTrue, ready: metav1.ConditionFalse, message: "0 available"},
		},
		{
			name: "a primary that loses ready replicas in Finalising keeps traffic on the canary",
			spec: spec(), st: status(sluicev1.PhaseFinalising, atStep(2, 100)),
			obs:  observe("rev2", routed(100), primaryAt("rev2", false)),
			want: want{phase: sluicev1.PhaseFinalising, weight: ptr.To[int32](100), canaryUp: ptr.To(true), message: "ready again"},
		},
		{
			// primaryReadyThreshold below 100 lets a primary count as ready
			// with some replicas missing; the traffic still goes back only
			// to as many available replicas as the canary serves with.
			name: "a primary ready by its threshold but with fewer available replicas than the canary keeps traffic on the canary in Finalising",
			spec: spec(), st: status(sluicev1.PhaseFinalising, atStep(2, 100)),
			obs:  observe("rev2", routed(100), primaryAt("rev2", true), canaryAvailable(4), targetReplicas(4), primaryReplicas(4, 3)),
			want: want{phase: sluicev1.PhaseFinalising, weight: ptr.To[int32](100), canaryUp: ptr.To(true), message: "as many as the canary"},
		},
		{
			name: "a primary back to as many available replicas as the canary takes the traffic back",
			spec: spec(), st: status(sluicev1.PhaseFinalising, atStep(2, 100)),
			obs:  observe("rev2", routed(100), primaryAt("rev2", true), canaryAvailable(4), targetReplicas(4), primaryReplicas(4, 4)),
			want: want{phase: sluicev1.PhaseFinalising, weight: ptr.To[int32](0), canaryUp: ptr.To(true)},
		},
		// Abort during a promotion.
		{
			name: "abort during a promotion gives the primary its stable revision back while the canary serves",
			spec: spec(), st: status(sluicev1.PhasePromoting, atStep(2, 100), promotionStarted(11*time.Minute)),
			obs: observe("rev2", routed(100), primaryAt("rev2", false), restorable, action(sluicev1.ActionAbort)),
			want: want{phase: sluicev1.PhaseFailed, weight: ptr.To[int32](100), primaryRev: "rev1", canaryUp: ptr.To(true),
				event: "Aborted", stalled: metav1.ConditionTrue, message: "restoring the primary"},
		},
		{
			name: "after an abort traffic stays on the canary until the primary is ready at the stable revision",
			spec: spec(), st: status(sluicev1.PhaseFailed, atStep(0, 100), failedRevision("rev2")),
			obs:  observe("rev2", routed(100), primaryAt("rev1", false), restorable),
			want: want{phase: sluicev1.PhaseFailed, weight: ptr.To[int32](100), canaryUp: ptr.To(true), stalled: metav1.ConditionTrue, message: "restoring the primary"},
		},
		{
			name: "a restored primary takes the traffic back, then the canary goes",
			spec: spec(), st: status(sluicev1.PhaseFailed, atStep(0, 100), failedRevision("rev2")),
			obs:  observe("rev2", routed(100), restorable),
			want: want{phase: sluicev1.PhaseFailed, weight: ptr.To[int32](0), canaryUp: ptr.To(true), event: "PrimaryRestored", stalled: metav1.ConditionTrue},
		},
		{
			name: "with traffic back on the restored primary the canary is scaled down once its pods drained",
			spec: spec(), st: status(sluicev1.PhaseFailed, atStep(0, 0), failedRevision("rev2"), drainingSince(10*time.Second)),
			obs:  observe("rev2", routed(0), restorable),
			want: want{phase: sluicev1.PhaseFailed, weight: ptr.To[int32](0), canaryUp: ptr.To(false), noEvents: true, stalled: metav1.ConditionTrue},
		},
		{
			name: "a primary with nothing to restore stalls with traffic on the canary",
			spec: spec(), st: status(sluicev1.PhaseFailed, atStep(0, 100), failedRevision("rev2")),
			obs:  observe("rev2", routed(100), primaryAt("rev2", false)),
			want: want{phase: sluicev1.PhaseFailed, weight: ptr.To[int32](100), canaryUp: ptr.To(true), event: "PrimaryNotRestorable", stalled: metav1.ConditionTrue},
		},
		{
			name: "abort in Finalising is refused: the primary already runs the new revision",
			spec: spec(), st: status(sluicev1.PhaseFinalising, atStep(2, 100)),
			obs:  observe("rev2", routed(100), primaryAt("rev2", true), action(sluicev1.ActionAbort)),
			want: want{phase: sluicev1.PhaseFinalising, weight: ptr.To[int32](0), event: "ActionIgnored"},
		},
		// Spec edits mid-run.
		{
			name: "steps removed under the current index re-check the last step instead of promoting",
			spec: spec(withCanaryWeights(10, 20)), st: status(sluicev1.PhaseProgressing, atStep(3, 40), stepStarted(time.Hour)),
			obs:  observe("rev2", routed(40)),
			want: want{phase: sluicev1.PhaseProgressing, weight: ptr.To[int32](20), step: ptr.To[int32](1), event: "StepsChanged", requeue: 0},
		},
		{
			name: "the re-checked last step promotes after a full interval and its checks",
			spec: spec(withCanaryWeights(10, 20), withMetric()), st: status(sluicev1.PhaseProgressing, atStep(1, 20), stepStarted(time.Minute)),
			obs:  observe("rev2", routed(20), checks(CheckPass, "")),
			want: want{phase: sluicev1.PhasePromoting, weight: ptr.To[int32](100), step: ptr.To[int32](2), event: "Promoting"},
		},
		// The target's autoscaler.
		{
			name: "a canary starts no smaller than its autoscaler's minimum",
			spec: spec(), st: status(sluicev1.PhaseProgressing, atStep(0, 0)),
			obs:       observe("rev2", autoscalerMin(3)),
			want:      want{phase: sluicev1.PhaseProgressing, canaryUp: ptr.To(true), requeue: time.Minute},
			minCanary: ptr.To[int32](3),
		},
		{
			name: "a canary sized for promotion takes the larger of the primary's size and the autoscaler's minimum",
			spec: spec(), st: status(sluicev1.PhasePromoting, atStep(2, 0)),
			obs:       observe("rev2", canaryAvailable(6), primaryReplicas(4, 4), autoscalerMin(6)),
			want:      want{phase: sluicev1.PhasePromoting, weight: ptr.To[int32](100), canaryUp: ptr.To(true)},
			minCanary: ptr.To[int32](6),
		},
		{
			name: "a parked target is not sized by its autoscaler's minimum",
			spec: spec(), st: status(sluicev1.PhaseSucceeded, targetScaledDown),
			obs:       observe("rev1", autoscalerMin(3)),
			want:      want{phase: sluicev1.PhaseSucceeded, canaryUp: ptr.To(false)},
			minCanary: ptr.To[int32](0),
		},
		// strategy.canary.scaleWithWeight: a canary of a primary of 10
		// replicas, at 10 % then 50 %, runs 2 replicas (never one alone
		// that a lost pod would leave with no endpoint), then 5, then 10
		// before it takes all traffic at promotion; the weight moves only
		// once the replicas for it run and are ready, so no canary pod
		// carries more than a primary pod.
		{
			name: "a run starts with the replicas of the first step's weight",
			spec: spec(withCanaryWeights(10, 50), scaledWithWeight), st: status(sluicev1.PhaseProgressing, atStep(0, 0)),
			obs:       observe("rev2", primaryReplicas(10, 10), targetReplicas(0), canaryAvailable(0), canaryNotReady),
			want:      want{phase: sluicev1.PhaseProgressing, weight: ptr.To[int32](0), canaryUp: ptr.To(true), message: "waiting for the canary to be ready", requeue: 10 * time.Minute},
			minCanary: ptr.To[int32](2),
		},
		{
			name: "one replica, though ready, does not take 10 %: the canary is scaled to two first",
			spec: spec(withCanaryWeights(10, 50), scaledWithWeight), st: status(sluicev1.PhaseProgressing, atStep(0, 0)),
			obs:       observe("rev2", primaryReplicas(10, 10), targetReplicas(1), canaryAvailable(1)),
			want:      want{phase: sluicev1.PhaseProgressing, weight: ptr.To[int32](0), canaryUp: ptr.To(true), message: "scaling the canary to 2 replicas before it takes 10% of the traffic", event: "CanaryScaled"},
			minCanary: ptr.To[int32](2),
		},
		{
			name: "two ready replicas take 10 %",
			spec: spec(withCanaryWeights(10, 50), scaledWithWeight), st: status(sluicev1.PhaseProgressing, atStep(0, 0)),
			obs:       observe("rev2", primaryReplicas(10, 10), targetReplicas(2), canaryAvailable(2)),
			want:      want{phase: sluicev1.PhaseProgressing, weight: ptr.To[int32](10), canaryUp: ptr.To(true), event: "WeightChanged", message: "confirm a canary weight of 10%"},
			minCanary: ptr.To[int32](2),
		},
		{
			name: "the next step scales the canary to 5 and holds 10 %",
			spec: spec(withCanaryWeights(10, 50), scaledWithWeight), st: status(sluicev1.PhaseProgressing, atStep(1, 10)),
			obs:       observe("rev2", primaryReplicas(10, 10), routed(10), targetReplicas(2), canaryAvailable(2)),
			want:      want{phase: sluicev1.PhaseProgressing, weight: ptr.To[int32](10), canaryUp: ptr.To(true), message: "scaling the canary to 5 replicas before it takes 50% of the traffic", event: "CanaryScaled"},
			minCanary: ptr.To[int32](5),
		},
		{
			name: "5 replicas not ready yet: still 10 %",
			spec: spec(withCanaryWeights(10, 50), scaledWithWeight), st: status(sluicev1.PhaseProgressing, atStep(1, 10)),
			obs:       observe("rev2", primaryReplicas(10, 10), routed(10), targetReplicas(5), canaryAvailable(2), canaryNotReady),
			want:      want{phase: sluicev1.PhaseProgressing, weight: ptr.To[int32](10), canaryUp: ptr.To(true), message: "waiting for the canary to be ready", requeue: 10 * time.Minute, noEvents: true},
			minCanary: ptr.To[int32](5),
		},
		{
			name: "5 ready replicas take 50 %",
			spec: spec(withCanaryWeights(10, 50), scaledWithWeight), st: status(sluicev1.PhaseProgressing, atStep(1, 10)),
			obs:       observe("rev2", primaryReplicas(10, 10), routed(10), targetReplicas(5), canaryAvailable(5)),
			want:      want{phase: sluicev1.PhaseProgressing, weight: ptr.To[int32](50), canaryUp: ptr.To(true), event: "WeightChanged", message: "confirm a canary weight of 50%"},
			minCanary: ptr.To[int32](5),
		},
		{
			name: "at promotion the canary grows to the primary's 10 before it takes all traffic",
			spec: spec(withCanaryWeights(10, 50), scaledWithWeight), st: status(sluicev1.PhasePromoting, atStep(2, 50)),
			obs:       observe("rev2", primaryReplicas(10, 10), routed(50), targetReplicas(5), canaryAvailable(5)),
			want:      want{phase: sluicev1.PhasePromoting, weight: ptr.To[int32](50), canaryUp: ptr.To(true), message: "10 available replicas", requeue: 10 * time.Minute},
			minCanary: ptr.To[int32](10),
		},
		{
			name: "rounded up: 5 primary replicas need 3 canary replicas at 50 %",
			spec: spec(withCanaryWeights(5, 50), scaledWithWeight), st: status(sluicev1.PhaseProgressing, atStep(1, 5)),
			obs:       observe("rev2", primaryReplicas(5, 5), routed(5), targetReplicas(2), canaryAvailable(2)),
			want:      want{phase: sluicev1.PhaseProgressing, weight: ptr.To[int32](5), canaryUp: ptr.To(true), message: "scaling the canary to 3 replicas"},
			minCanary: ptr.To[int32](3),
		},
		{
			name: "a primary of one replica: its canary runs one, not the floor of two",
			spec: spec(withCanaryWeights(10, 50), scaledWithWeight), st: status(sluicev1.PhaseProgressing, atStep(0, 0)),
			obs:       observe("rev2", primaryReplicas(1, 1), targetReplicas(1), canaryAvailable(1)),
			want:      want{phase: sluicev1.PhaseProgressing, weight: ptr.To[int32](10), canaryUp: ptr.To(true), event: "WeightChanged"},
			minCanary: ptr.To[int32](1),
		},
		// strategy.canary.minReplicas moves the floor of two, either way,
		// and never above the primary's size.
		{
			name: "minReplicas: 1 lets one ready replica take 10 %",
			spec: spec(withCanaryWeights(10, 50), scaledWithWeight, canaryFloor(1)), st: status(sluicev1.PhaseProgressing, atStep(0, 0)),
			obs:       observe("rev2", primaryReplicas(10, 10), targetReplicas(1), canaryAvailable(1)),
			want:      want{phase: sluicev1.PhaseProgressing, weight: ptr.To[int32](10), canaryUp: ptr.To(true), event: "WeightChanged", message: "confirm a canary weight of 10%"},
			minCanary: ptr.To[int32](1),
		},
		{
			name: "minReplicas: 3 holds the weight until a third replica runs",
			spec: spec(withCanaryWeights(10, 50), scaledWithWeight, canaryFloor(3)), st: status(sluicev1.PhaseProgressing, atStep(0, 0)),
			obs:       observe("rev2", primaryReplicas(10, 10), targetReplicas(2), canaryAvailable(2)),
			want:      want{phase: sluicev1.PhaseProgressing, weight: ptr.To[int32](0), canaryUp: ptr.To(true), message: "scaling the canary to 3 replicas before it takes 10% of the traffic"},
			minCanary: ptr.To[int32](3),
		},
		{
			name: "minReplicas above the primary's size: the canary runs the primary's 2",
			spec: spec(withCanaryWeights(10, 50), scaledWithWeight, canaryFloor(5)), st: status(sluicev1.PhaseProgressing, atStep(0, 0)),
			obs:       observe("rev2", primaryReplicas(2, 2), targetReplicas(2), canaryAvailable(2)),
			want:      want{phase: sluicev1.PhaseProgressing, weight: ptr.To[int32](10), canaryUp: ptr.To(true), event: "WeightChanged"},
			minCanary: ptr.To[int32](2),
		},
		{
			name: "minReplicas below the weight's need: 50 % of 10 still needs 5",
			spec: spec(withCanaryWeights(10, 50), scaledWithWeight, canaryFloor(1)), st: status(sluicev1.PhaseProgressing, atStep(1, 10)),
			obs:       observe("rev2", primaryReplicas(10, 10), routed(10), targetReplicas(1), canaryAvailable(1)),
			want:      want{phase: sluicev1.PhaseProgressing, weight: ptr.To[int32](10), canaryUp: ptr.To(true), message: "scaling the canary to 5 replicas before it takes 50% of the traffic"},
			minCanary: ptr.To[int32](5),
		},
		{
			name: "without scaleWithWeight the canary runs the primary's size from the start: the weight moves at once",
			spec: spec(withCanaryWeights(10, 50)), st: status(sluicev1.PhaseProgressing, atStep(1, 10)),
			obs:       observe("rev2", primaryReplicas(10, 10), routed(10), targetReplicas(10), canaryAvailable(10)),
			want:      want{phase: sluicev1.PhaseProgressing, weight: ptr.To[int32](50), canaryUp: ptr.To(true), event: "WeightChanged"},
			minCanary: ptr.To[int32](0),
		},
		// A canary with no available pod mid-run (a version that crashes
		// once ready, its pods evicted or lost with a node) has its share
		// of the traffic held on the ready primary until it is ready
		// again; its step and recorded weight are kept, and each move to
		// the primary is a failed check.
		{
			name: "a canary left with no available pod has its share moved to the primary",
			spec: spec(withCanaryWeights(20, 50)), st: status(sluicev1.PhaseProgressing, atStep(0, 20), stepStarted(time.Second)),
			obs: observe("rev2", routed(20), canaryNotReady, canaryAvailable(0)),
			want: want{phase: sluicev1.PhaseProgressing, weight: ptr.To[int32](0), recorded: ptr.To[int32](20), held: ptr.To(true), step: ptr.To[int32](0), failed: ptr.To[int32](1),
				canaryUp: ptr.To(true), event: "CanaryUnavailable", message: "its 20% of the traffic is on the primary until it is", requeue: 10 * time.Minute},
		},
		{
			name: "a canary that keeps losing its pods is rolled back at the threshold, not left to flap until the deadline",
			spec: spec(withCanaryWeights(20, 50)), st: status(sluicev1.PhaseProgressing, atStep(0, 20), failedChecks(1)),
			obs:  observe("rev2", routed(20), canaryNotReady, canaryAvailable(0)),
			want: want{phase: sluicev1.PhaseFailed, weight: ptr.To[int32](0), held: ptr.To(false), failed: ptr.To[int32](2), event: "ThresholdReached", stalled: metav1.ConditionTrue},
		},
		{
			name: "a sheltered share stays on the primary while the canary's first pods come back",
			spec: spec(withCanaryWeights(20, 50)), st: status(sluicev1.PhaseProgressing, atStep(0, 20), waitingSince(time.Minute)),
			obs:  observe("rev2", routed(0), canaryNotReady, canaryAvailable(1)),
			want: want{phase: sluicev1.PhaseProgressing, weight: ptr.To[int32](0), recorded: ptr.To[int32](20), held: ptr.To(true), failed: ptr.To[int32](0), noEvents: true, requeue: 9 * time.Minute},
		},
		{
			name: "a canary ready again takes its share back and holds its step anew",
			spec: spec(withCanaryWeights(20, 50)), st: status(sluicev1.PhaseProgressing, atStep(0, 20), waitingSince(time.Minute)),
			obs:  observe("rev2", routed(0)),
			want: want{phase: sluicev1.PhaseProgressing, weight: ptr.To[int32](20), recorded: ptr.To[int32](20), held: ptr.To(false), message: "waiting for the router to confirm a canary weight of 20%"},
		},
		// Giving a held share back raises the canary's traffic from none:
		// a confirm-traffic-increase gate is asked first, as for a step.
		{
			name: "a canary ready again asks the confirm-traffic-increase gate before its share goes back",
			spec: spec(withCanaryWeights(20, 50), withHook(sluicev1.HookConfirmTrafficIncrease)), st: status(sluicev1.PhaseProgressing, atStep(0, 20), shareHeld),
			obs: observe("rev2", routed(0)),
			want: want{phase: sluicev1.PhaseProgressing, weight: ptr.To[int32](0), recorded: ptr.To[int32](20), held: ptr.To(true), needGate: sluicev1.HookConfirmTrafficIncrease,
				message: "stays on the primary until the confirm-traffic-increase gate opens"},
		},
		{
			name: "a closed confirm-traffic-increase gate keeps the share on the primary",
			spec: spec(withCanaryWeights(20, 50), withHook(sluicev1.HookConfirmTrafficIncrease)), st: status(sluicev1.PhaseProgressing, atStep(0, 20), shareHeld),
			obs: observe("rev2", routed(0), gate(sluicev1.HookConfirmTrafficIncrease, false)),
			want: want{phase: sluicev1.PhaseProgressing, weight: ptr.To[int32](0), recorded: ptr.To[int32](20), held: ptr.To(true), gateClosed: true,
				message: "stays on the primary until it opens", requeue: time.Minute},
		},
		{
			name: "an open confirm-traffic-increase gate gives the share back",
			spec: spec(withCanaryWeights(20, 50), withHook(sluicev1.HookConfirmTrafficIncrease)), st: status(sluicev1.PhaseProgressing, atStep(0, 20), shareHeld),
			obs:  observe("rev2", routed(0), gate(sluicev1.HookConfirmTrafficIncrease, true)),
			want: want{phase: sluicev1.PhaseProgressing, weight: ptr.To[int32](20), recorded: ptr.To[int32](20), held: ptr.To(false), event: "GateOpened"},
		},
		{
			name: "a canary waiting for promotion asks the gate too, and keeps its share on the primary while it is closed",
			spec: spec(withCanaryWeights(20, 50), withHook(sluicev1.HookConfirmTrafficIncrease), withHook(sluicev1.HookConfirmPromotion)),
			st:   status(sluicev1.PhaseWaitingPromotion, atStep(2, 50), shareHeld),
			obs:  observe("rev2", routed(0), gate(sluicev1.HookConfirmTrafficIncrease, false)),
			want: want{phase: sluicev1.PhaseWaitingPromotion, weight: ptr.To[int32](0), recorded: ptr.To[int32](50), held: ptr.To(true), gateClosed: true,
				message: "stays on the primary until it opens", requeue: time.Minute},
		},
		{
			name: "a promote action gives a held share back without asking the gate",
			spec: spec(withCanaryWeights(20, 50), withHook(sluicev1.HookConfirmTrafficIncrease)), st: status(sluicev1.PhaseProgressing, atStep(0, 20), shareHeld),
			obs:  observe("rev2", routed(0), action(sluicev1.ActionPromote)),
			want: want{phase: sluicev1.PhaseProgressing, weight: ptr.To[int32](20), held: ptr.To(false), event: "ActionPromote"},
		},
		{
			name: "without a confirm-traffic-increase gate a held share goes back at once",
			spec: spec(withCanaryWeights(20, 50)), st: status(sluicev1.PhaseProgressing, atStep(0, 20), shareHeld),
			obs:  observe("rev2", routed(0)),
			want: want{phase: sluicev1.PhaseProgressing, weight: ptr.To[int32](20), held: ptr.To(false), noEvents: true},
		},
		{
			name: "a canary that lost some of its pods keeps its share on those left",
			spec: spec(withCanaryWeights(20, 50)), st: status(sluicev1.PhaseProgressing, atStep(0, 20)),
			obs:  observe("rev2", routed(20), canaryNotReady, canaryAvailable(1)),
			want: want{phase: sluicev1.PhaseProgressing, weight: ptr.To[int32](20), failed: ptr.To[int32](0), noEvents: true, requeue: 10 * time.Minute},
		},
		{
			name: "the share stays where it is when the primary has no available pod either",
			spec: spec(withCanaryWeights(20, 50)), st: status(sluicev1.PhaseProgressing, atStep(0, 20)),
			obs:  observe("rev2", routed(20), canaryNotReady, canaryAvailable(0), primaryAt("rev1", false), primaryReplicas(2, 0)),
			want: want{phase: sluicev1.PhaseProgressing, weight: ptr.To[int32](20), noEvents: true, requeue: 10 * time.Minute},
		},
		{
			name: "a primary not ready but with an available pod takes the share: that pod answers, the canary's none",
			spec: spec(withCanaryWeights(20, 50)), st: status(sluicev1.PhaseProgressing, atStep(0, 20)),
			obs:  observe("rev2", routed(20), canaryNotReady, canaryAvailable(0), primaryAt("rev1", false), primaryReplicas(2, 1)),
			want: want{phase: sluicev1.PhaseProgressing, weight: ptr.To[int32](0), held: ptr.To(true), failed: ptr.To[int32](1), event: "CanaryUnavailable", requeue: 10 * time.Minute},
		},
		{
			name: "a canary waiting for promotion with no available pod has its share moved to the primary",
			spec: spec(withCanaryWeights(20, 50), withHook(sluicev1.HookConfirmPromotion)), st: status(sluicev1.PhaseWaitingPromotion, atStep(2, 50)),
			obs:  observe("rev2", routed(50), canaryNotReady, canaryAvailable(0)),
			want: want{phase: sluicev1.PhaseWaitingPromotion, weight: ptr.To[int32](0), recorded: ptr.To[int32](50), held: ptr.To(true), failed: ptr.To[int32](1), event: "CanaryUnavailable", requeue: 10 * time.Minute},
		},
		{
			name: "a canary still with no available pod at the progress deadline is rolled back",
			spec: spec(withCanaryWeights(20, 50)), st: status(sluicev1.PhaseProgressing, atStep(0, 20), waitingSince(11*time.Minute)),
			obs:  observe("rev2", routed(0), canaryNotReady, canaryAvailable(0)),
			want: want{phase: sluicev1.PhaseFailed, weight: ptr.To[int32](0), event: "ProgressDeadlineExceeded", stalled: metav1.ConditionTrue, requeue: 10 * time.Second},
		},
		// The same in a promotion, and while an abort restores the primary:
		// a canary with no available pod has its share moved to the
		// primary's available pods, though the primary is not ready (it
		// rolls from one revision to the other): each of them answers,
		// where every request sent to the canary fails.
		{
			name: "a promoting canary with no available pod, before it takes all traffic, has its share moved to the ready primary",
			spec: spec(withCanaryWeights(20, 50)), st: status(sluicev1.PhasePromoting, atStep(2, 50), promotionStarted(time.Second)),
			obs: observe("rev2", routed(50), canaryNotReady, canaryAvailable(0)),
			want: want{phase: sluicev1.PhasePromoting, weight: ptr.To[int32](0), recorded: ptr.To[int32](50), held: ptr.To(true), failed: ptr.To[int32](1),
				canaryUp: ptr.To(true), event: "CanaryUnavailable", message: "its 50% of the traffic is on the primary until it is", requeue: 10 * time.Minute},
		},
		{
			name: "a canary with all traffic and no available pod, while the primary rolls out its revision, has the traffic moved to the primary's available pods",
			spec: spec(), st: status(sluicev1.PhasePromoting, atStep(2, 100), promotionStarted(time.Minute)),
			obs: observe("rev2", routed(100), primaryAt("rev2", false), primaryReplicas(4, 2), canaryNotReady, canaryAvailable(0), targetReplicas(4)),
			want: want{phase: sluicev1.PhasePromoting, weight: ptr.To[int32](0), recorded: ptr.To[int32](100), held: ptr.To(true), failed: ptr.To[int32](0),
				primaryRev: "rev2", canaryUp: ptr.To(true), event: "CanaryUnavailable", message: "on the primary's 2 available pods", requeue: 9 * time.Minute},
		},
		{
			name: "the moved traffic stays on the rolling primary while the canary's first pods come back",
			spec: spec(), st: status(sluicev1.PhasePromoting, atStep(2, 100), promotionStarted(time.Minute), waitingSince(time.Minute)),
			obs:  observe("rev2", routed(0), primaryAt("rev2", false), primaryReplicas(4, 3), canaryNotReady, canaryAvailable(1), targetReplicas(4)),
			want: want{phase: sluicev1.PhasePromoting, weight: ptr.To[int32](0), held: ptr.To(true), primaryRev: "rev2", canaryUp: ptr.To(true), noEvents: true, requeue: 9 * time.Minute},
		},
		{
			name: "a ready canary takes all traffic back while the primary still rolls out",
			spec: spec(), st: status(sluicev1.PhasePromoting, atStep(2, 100), promotionStarted(time.Minute), waitingSince(time.Minute)),
			obs:  observe("rev2", routed(0), primaryAt("rev2", false), primaryReplicas(4, 3), canaryAvailable(4), targetReplicas(4)),
			want: want{phase: sluicev1.PhasePromoting, weight: ptr.To[int32](100), held: ptr.To(false), canaryUp: ptr.To(true)},
		},
		{
			name: "the primary done rolling out with the traffic on it ends the promotion",
			spec: spec(), st: status(sluicev1.PhasePromoting, atStep(2, 100), promotionStarted(time.Minute), waitingSince(time.Minute)),
			obs:  observe("rev2", routed(0), primaryAt("rev2", true), primaryReplicas(4, 4), canaryNotReady, canaryAvailable(0), targetReplicas(4)),
			want: want{phase: sluicev1.PhaseFinalising, weight: ptr.To[int32](0), held: ptr.To(false), canaryUp: ptr.To(true), message: "drains", requeue: 10 * time.Second},
		},
		{
			name: "nothing moves to a rolling primary with no available pod either",
			spec: spec(), st: status(sluicev1.PhasePromoting, atStep(2, 100), promotionStarted(time.Minute)),
			obs:  observe("rev2", routed(100), primaryAt("rev2", false), primaryReplicas(4, 0), canaryNotReady, canaryAvailable(0), targetReplicas(4)),
			want: want{phase: sluicev1.PhasePromoting, weight: ptr.To[int32](100), held: ptr.To(false), primaryRev: "rev2", canaryUp: ptr.To(true), noEvents: true, requeue: 9 * time.Minute},
		},
		{
			name: "a suspended Rollout holds the route where it is, even on a canary with no available pod",
			spec: spec(suspended), st: status(sluicev1.PhasePromoting, atStep(2, 100), promotionStarted(time.Minute)),
			obs:  observe("rev2", routed(100), primaryAt("rev2", false), primaryReplicas(4, 2), canaryNotReady, canaryAvailable(0), targetReplicas(4)),
			want: want{phase: sluicev1.PhasePromoting, weight: ptr.To[int32](100), held: ptr.To(false), canaryUp: ptr.To(true), noEvents: true, suspendedCon: true},
		},
		{
			name: "a canary with no available pod while traffic steps back to the primary gives it all the rest at once",
			spec: spec(withStepWeightPromotion(30)), st: status(sluicev1.PhaseFinalising, atStep(2, 70), stepStarted(10*time.Second)),
			obs:  observe("rev2", routed(70), primaryAt("rev2", true), canaryNotReady, canaryAvailable(0)),
			want: want{phase: sluicev1.PhaseFinalising, weight: ptr.To[int32](0), canaryUp: ptr.To(true), event: "CanaryUnavailable"},
		},
		{
			name: "a canary with no available pod while an abort restores the primary has the traffic moved to the primary's available pods",
			spec: spec(), st: status(sluicev1.PhaseFailed, atStep(0, 100), failedRevision("rev2")),
			obs: observe("rev2", routed(100), primaryAt("rev2", false), primaryReplicas(4, 3), restorable, canaryNotReady, canaryAvailable(0)),
			want: want{phase: sluicev1.PhaseFailed, weight: ptr.To[int32](0), recorded: ptr.To[int32](100), held: ptr.To(true), primaryRev: "rev1",
				canaryUp: ptr.To(true), event: "CanaryUnavailable", stalled: metav1.ConditionTrue, message: "restoring the primary"},
		},
		// Nor does a decision move a share to a side with no available pod
		// from one with some, whatever moves it (keepTrafficOnPods; found
		// by FuzzDecide): the route stays, the decision is recorded and
		// carried out once that side has a pod.
		{
			name: "a new revision mid-run keeps the old canary's share on it while the primary has no available pod",
			spec: spec(withCanaryWeights(20, 50)), st: status(sluicev1.PhaseProgressing, atStep(0, 20), stepStarted(time.Second)),
			obs: observe("rev3", routed(20), primaryAt("rev1", false), primaryReplicas(4, 0), canaryNotReady),
			want: want{phase: sluicev1.PhaseProgressing, weight: ptr.To[int32](20), recorded: ptr.To[int32](0), canaryRev: ptr.To("rev3"), canaryUp: ptr.To(true),
				requeue: 10 * time.Minute, event: "PrimaryUnavailable", message: "the primary has no available pod: 20% of the traffic stays on the canary's 2 available pods until it has"},
		},
		{
			name: "steps edited to a lower weight keep the canary's share while the primary has no available pod",
			spec: spec(withCanaryWeights(10, 30)), st: status(sluicev1.PhaseProgressing, atStep(1, 50), stepStarted(time.Second)),
			obs: observe("rev2", routed(50), primaryAt("rev1", false), primaryReplicas(4, 0)),
			want: want{phase: sluicev1.PhaseProgressing, weight: ptr.To[int32](50), recorded: ptr.To[int32](30), canaryUp: ptr.To(true),
				event: "PrimaryUnavailable", message: "50% of the traffic stays on the canary's 2 available pods"},
		},
		{
			name: "the hold is told once",
			spec: spec(withCanaryWeights(10, 30)), st: status(sluicev1.PhaseProgressing, atStep(1, 30), func(st *sluicev1.RolloutStatus) {
				st.Message = "waiting for the router to confirm a canary weight of 30%; the primary has no available pod: 50% of the traffic stays on the canary's 2 available pods until it has"
			}),
			obs:  observe("rev2", routed(50), primaryAt("rev1", false), primaryReplicas(4, 0)),
			want: want{phase: sluicev1.PhaseProgressing, weight: ptr.To[int32](50), recorded: ptr.To[int32](30), canaryUp: ptr.To(true), noEvents: true, message: "the primary has no available pod"},
		},
		{
			name: "the lower weight is routed once the primary has an available pod",
			spec: spec(withCanaryWeights(10, 30)), st: status(sluicev1.PhaseProgressing, atStep(1, 30)),
			obs:  observe("rev2", routed(50), primaryAt("rev1", false), primaryReplicas(4, 1)),
			want: want{phase: sluicev1.PhaseProgressing, weight: ptr.To[int32](30), recorded: ptr.To[int32](30), canaryUp: ptr.To(true), message: "confirm a canary weight of 30%"},
		},
		{
			name: "a paused Rollout does not raise a canary with no available pod to the weight it recorded",
			spec: spec(withCanaryWeights(20, 50)), st: status(sluicev1.PhaseProgressing, atStep(1, 50), paused),
			obs: observe("rev2", routed(20), canaryNotReady, canaryAvailable(0)),
			want: want{phase: sluicev1.PhaseProgressing, weight: ptr.To[int32](20), recorded: ptr.To[int32](50), canaryUp: ptr.To(true),
				event: "CanaryUnavailable", message: "the canary has no available pod: its weight stays at 20%, not 50%, until it has"},
		},
		// Replicas of the primary are never lowered by a run's leftovers.
		{
			name: "a canary left at a small size after a run never shrinks the primary",
			spec: spec(), st: status(sluicev1.PhaseSucceeded),
			obs:       observe("rev1", targetReplicas(1)),
			want:      want{phase: sluicev1.PhaseSucceeded, canaryUp: ptr.To(false)},
			passOwner: ptr.To(false),
		},
		{
			name: "a count the owner sets on the parked target is passed on to the primary",
			spec: spec(), st: status(sluicev1.PhaseSucceeded, targetScaledDown),
			obs:       observe("rev1", targetReplicas(6)),
			want:      want{phase: sluicev1.PhaseSucceeded, canaryUp: ptr.To(false)},
			passOwner: ptr.To(true),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := Decide(Input{Spec: tt.spec, Generation: 3, Status: tt.st, Obs: tt.obs, Now: t0})
			checkDecision(t, d, tt.want)
			if tt.minCanary != nil && d.Desired.CanaryMinReplicas != *tt.minCanary {
				t.Errorf("desired canary min replicas = %d, want %d", d.Desired.CanaryMinReplicas, *tt.minCanary)
			}
			if tt.passOwner != nil && d.Desired.PassOwnerReplicas != *tt.passOwner {
				t.Errorf("pass owner replicas = %v, want %v", d.Desired.PassOwnerReplicas, *tt.passOwner)
			}
		})
	}
}

// TestSurgePodsNeverFeedBackIntoTheSizes: while the primary rolls out the
// new revision it runs surge pods; they must not size the canary, or the
// canary's extra pods would in turn be asked of the primary (seen in e2e: a
// promotion waiting forever for 3 primary replicas of 2).
func TestSurgePodsNeverFeedBackIntoTheSizes(t *testing.T) {
	st := status(sluicev1.PhasePromoting, atStep(2, 100), promotionStarted(time.Second))
	rolling := observe("rev2", routed(100), primaryAt("rev2", false), primaryReplicas(2, 3), canaryAvailable(2), targetReplicas(2))
	d := Decide(Input{Spec: spec(), Generation: 1, Status: st, Obs: rolling, Now: t0})
	if d.Desired.CanaryMinReplicas != 2 {
		t.Errorf("canary min replicas = %d while the primary surges to 3 of 2, want 2", d.Desired.CanaryMinReplicas)
	}
	// The canary surging (its own rollout) asks no more of the primary.
	done := observe("rev2", routed(100), primaryAt("rev2", true), primaryReplicas(2, 2), canaryAvailable(3), targetReplicas(2))
	d = Decide(Input{Spec: spec(), Generation: 1, Status: st, Obs: done, Now: t0})
	if d.Status.Phase != sluicev1.PhaseFinalising {
		t.Errorf("phase = %s (%s), want Finalising: the primary runs all 2 replicas the canary serves with", d.Status.Phase, d.Status.Message)
	}
}

// TestAStalledPromotionIsToldOnce: the event says it when the release stops,
// the condition keeps saying it, and no event repeats on every reconcile.
func TestAStalledPromotionIsToldOnce(t *testing.T) {
	st := status(sluicev1.PhasePromoting, atStep(2, 100), promotionStarted(11*time.Minute))
	obs := observe("rev2", routed(100), primaryAt("rev2", false))
	d := Decide(Input{Spec: spec(), Generation: 1, Status: st, Obs: obs, Now: t0})
	if !hasEvent(d.Events, "PromotionStalled") {
		t.Fatalf("first decision: events %v lack PromotionStalled", d.Events)
	}
	d = Decide(Input{Spec: spec(), Generation: 1, Status: &d.Status, Obs: obs, Now: t0.Add(time.Second)})
	if hasEvent(d.Events, "PromotionStalled") {
		t.Errorf("second decision repeated the event: %v", d.Events)
	}
}

// TestRequestRulesWaitForAReadyCanary: an A/B rule sends its cohort (all of
// it) to the canary, so it must not be in place while the canary has no
// ready pods: the cohort would get 503s (seen in e2e: insiders answered 503
// for 30s while the canary's pods started on a loaded node).
func TestRequestRulesWaitForAReadyCanary(t *testing.T) {
	ab := func(s *sluicev1.RolloutSpec) {
		s.Strategy = sluicev1.Strategy{ABTesting: &sluicev1.ABTestingStrategy{Iterations: 2}}
	}
	for _, tt := range []struct {
		name string
		obs  Observation
		want bool
	}{
		{"the canary is not ready yet: no rule", observe("rev2", canaryNotReady), false},
		{"the canary is ready: the rule is in place", observe("rev2"), true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			d := Decide(Input{Spec: spec(ab), Generation: 3, Status: status(sluicev1.PhaseProgressing, atStep(0, 0)), Obs: tt.obs, Now: t0})
			if d.Desired.Experiment != tt.want {
				t.Errorf("request rules in place = %v, want %v (phase %s: %s)", d.Desired.Experiment, tt.want, d.Status.Phase, d.Status.Message)
			}
		})
	}
}
