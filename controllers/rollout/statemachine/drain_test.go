package statemachine

import (
	"encoding/json"
	"slices"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	sluicev1 "github.com/sluice-dev/sluice/api/v1alpha1"
)

// Options for the drain stories.
func scaleDownDelay(seconds int32) specOpt {
	return func(s *sluicev1.RolloutSpec) { s.ScaleDownDelaySeconds = ptr.To(seconds) }
}
func drainingSince(ago time.Duration) statusOpt {
	return func(st *sluicev1.RolloutStatus) { st.CanaryDrainingSince = &metav1.Time{Time: t0.Add(-ago)} }
}

// drainStart says where status.canaryDrainingSince must be after a decision.
type drainStart int

const (
	anyDrainStart  drainStart = iota
	noDrainStart              // nil
	drainStartsNow            // t0
	drainStartKept            // as it was in the input status
)

// TestTheCanaryKeepsItsPodsWhileTheDataPlaneDrains: gateways and meshes
// apply a route change after the API object says it (seen in e2e: 62 x 502
// right after a promotion on a loaded node), so the pods that took traffic
// are kept for spec.scaleDownDelaySeconds after the route sends them none.
func TestTheCanaryKeepsItsPodsWhileTheDataPlaneDrains(t *testing.T) {
	tests := []struct {
		name  string
		spec  *sluicev1.RolloutSpec
		st    *sluicev1.RolloutStatus
		obs   Observation
		want  want
		drain drainStart
		// noDrainEvent: the decision must not tell of a drain.
		noDrainEvent bool
	}{
		// Promotion.
		{
			name: "traffic back on the new primary starts the drain: Finalising keeps the canary and wakes at the drain's end",
			spec: spec(), st: status(sluicev1.PhaseFinalising, atStep(2, 0)),
			obs: observe("rev2", routed(0), primaryAt("rev2", true)),
			want: want{phase: sluicev1.PhaseFinalising, weight: ptr.To[int32](0), canaryUp: ptr.To(true), requeue: 10 * time.Second,
				event: "Draining", reconciling: metav1.ConditionTrue, ready: metav1.ConditionFalse,
				message: "traffic moved to the primary; keeping the canary's pods for 10s while the data plane drains"},
			drain: drainStartsNow,
		},
		{
			name: "mid-drain the canary stays up and the machine wakes exactly at the drain's end",
			spec: spec(), st: status(sluicev1.PhaseFinalising, drainingSince(4*time.Second)),
			obs:   observe("rev2", routed(0), primaryAt("rev2", true)),
			want:  want{phase: sluicev1.PhaseFinalising, canaryUp: ptr.To(true), requeue: 6 * time.Second, noEvents: true, message: "while the data plane drains"},
			drain: drainStartKept,
		},
		{
			name: "at the drain's end the run succeeds and the canary is scaled to zero",
			spec: spec(), st: status(sluicev1.PhaseFinalising, drainingSince(10*time.Second)),
			obs: observe("rev2", routed(0), primaryAt("rev2", true)),
			want: want{phase: sluicev1.PhaseSucceeded, stable: "rev2", canaryRev: ptr.To(""), canaryUp: ptr.To(false), event: "Promoted",
				ready: metav1.ConditionTrue},
			drain: drainStartKept, noDrainEvent: true,
		},
		{
			name: "with scaleDownDelaySeconds 0 the run succeeds and the canary goes as soon as the route holds no canary traffic",
			spec: spec(scaleDownDelay(0)), st: status(sluicev1.PhaseFinalising, atStep(2, 0)),
			obs:          observe("rev2", routed(0), primaryAt("rev2", true)),
			want:         want{phase: sluicev1.PhaseSucceeded, stable: "rev2", canaryUp: ptr.To(false), event: "Promoted", ready: metav1.ConditionTrue},
			noDrainEvent: true,
		},
		{
			name: "a delay shortened mid-drain ends the drain at once",
			spec: spec(scaleDownDelay(5)), st: status(sluicev1.PhaseFinalising, drainingSince(6*time.Second)),
			obs:  observe("rev2", routed(0), primaryAt("rev2", true)),
			want: want{phase: sluicev1.PhaseSucceeded, canaryUp: ptr.To(false), event: "Promoted", ready: metav1.ConditionTrue},
		},
		{
			name: "a delay raised mid-drain keeps the canary longer",
			spec: spec(scaleDownDelay(30)), st: status(sluicev1.PhaseFinalising, drainingSince(12*time.Second)),
			obs:  observe("rev2", routed(0), primaryAt("rev2", true)),
			want: want{phase: sluicev1.PhaseFinalising, canaryUp: ptr.To(true), requeue: 18 * time.Second, message: "for 30s"},
		},
		{
			name: "a drain recorded in the future (an edited status, a clock ahead) starts again now",
			spec: spec(), st: status(sluicev1.PhaseFinalising, drainingSince(-time.Hour)),
			obs:   observe("rev2", routed(0), primaryAt("rev2", true)),
			want:  want{phase: sluicev1.PhaseFinalising, canaryUp: ptr.To(true), requeue: 10 * time.Second},
			drain: drainStartsNow,
		},
		{
			name: "a new revision during the drain starts its run on the same pods: the drained revision is the stable one",
			spec: spec(), st: status(sluicev1.PhaseFinalising, drainingSince(4*time.Second)),
			obs: observe("rev3", routed(0), primaryAt("rev2", true), canaryNotReady),
			want: want{phase: sluicev1.PhaseProgressing, stable: "rev2", canaryRev: ptr.To("rev3"), canaryUp: ptr.To(true),
				event: "Promoted", requeue: 10 * time.Minute},
			drain: noDrainStart,
		},
		{
			name: "suspend holds a drain in Finalising with the canary up",
			spec: spec(suspended), st: status(sluicev1.PhaseFinalising, drainingSince(time.Hour)),
			obs:   observe("rev2", routed(0), primaryAt("rev2", true)),
			want:  want{phase: sluicev1.PhaseFinalising, canaryUp: ptr.To(true), suspendedCon: true, noEvents: true},
			drain: drainStartKept,
		},
		// Rollback.
		{
			name: "a rollback keeps the canary while the route still sends it traffic, without starting the drain",
			spec: spec(withCanaryWeights(10, 50)), st: status(sluicev1.PhaseProgressing, atStep(1, 50), stepStarted(time.Second)),
			obs: observe("rev2", routed(50), action(sluicev1.ActionAbort)),
			want: want{phase: sluicev1.PhaseFailed, weight: ptr.To[int32](0), canaryUp: ptr.To(true), event: "Aborted",
				stalled: metav1.ConditionTrue},
			drain: noDrainStart, noDrainEvent: true,
		},
		{
			name: "after a rollback the route holding no canary traffic starts the drain; the canary keeps its pods",
			spec: spec(), st: status(sluicev1.PhaseFailed, failedRevision("rev2")),
			obs: observe("rev2", routed(0)),
			want: want{phase: sluicev1.PhaseFailed, weight: ptr.To[int32](0), canaryUp: ptr.To(true), requeue: 10 * time.Second,
				event: "Draining", stalled: metav1.ConditionTrue},
			drain: drainStartsNow,
		},
		{
			name: "a rolled-back canary mid-drain stays up until the drain's end",
			spec: spec(), st: status(sluicev1.PhaseFailed, failedRevision("rev2"), drainingSince(3*time.Second)),
			obs:   observe("rev2", routed(0)),
			want:  want{phase: sluicev1.PhaseFailed, canaryUp: ptr.To(true), requeue: 7 * time.Second, noEvents: true, stalled: metav1.ConditionTrue},
			drain: drainStartKept,
		},
		{
			name: "a rolled-back canary is scaled to zero at the drain's end",
			spec: spec(), st: status(sluicev1.PhaseFailed, failedRevision("rev2"), drainingSince(10*time.Second)),
			obs:   observe("rev2", routed(0)),
			want:  want{phase: sluicev1.PhaseFailed, canaryUp: ptr.To(false), noEvents: true, stalled: metav1.ConditionTrue},
			drain: drainStartKept,
		},
		{
			name: "with scaleDownDelaySeconds 0 a rolled-back canary goes as soon as the route holds no canary traffic",
			spec: spec(scaleDownDelay(0)), st: status(sluicev1.PhaseFailed, failedRevision("rev2")),
			obs:  observe("rev2", routed(0)),
			want: want{phase: sluicev1.PhaseFailed, canaryUp: ptr.To(false), noEvents: true, stalled: metav1.ConditionTrue},
		},
		{
			name: "a canary already at zero replicas is never scaled up for a drain",
			spec: spec(withHook(sluicev1.HookConfirmRollout)), st: status(sluicev1.PhaseWaiting),
			obs:          observe("rev2", routed(0), targetReplicas(0), action(sluicev1.ActionAbort)),
			want:         want{phase: sluicev1.PhaseFailed, canaryUp: ptr.To(false), event: "Aborted", stalled: metav1.ConditionTrue},
			noDrainEvent: true,
		},
		{
			name: "a target seen parked since the run ended has nothing to drain: a count on it is its owner's",
			spec: spec(), st: status(sluicev1.PhaseFailed, failedRevision("rev2"), targetScaledDown),
			obs:   observe("rev2", routed(0), targetReplicas(3)),
			want:  want{phase: sluicev1.PhaseFailed, canaryUp: ptr.To(false), noEvents: true, stalled: metav1.ConditionTrue},
			drain: noDrainStart,
		},
		{
			name: "suspend does not hold a rolled-back canary past its drain",
			spec: spec(suspended), st: status(sluicev1.PhaseFailed, failedRevision("rev2"), drainingSince(10*time.Second)),
			obs:  observe("rev2", routed(0)),
			want: want{phase: sluicev1.PhaseFailed, canaryUp: ptr.To(false), suspendedCon: true, stalled: metav1.ConditionTrue},
		},
		{
			name: "a new run clears the drain of the last one",
			spec: spec(), st: status(sluicev1.PhaseFailed, failedRevision("rev2"), drainingSince(3*time.Second)),
			obs:   observe("rev3", routed(0), canaryNotReady),
			want:  want{phase: sluicev1.PhaseProgressing, canaryRev: ptr.To("rev3"), canaryUp: ptr.To(true), event: "NewRevision", requeue: 10 * time.Minute},
			drain: noDrainStart,
		},
		{
			name: "the target set back to the stable revision keeps a rolled-back canary until its drain ends",
			spec: spec(), st: status(sluicev1.PhaseFailed, failedRevision("rev2"), drainingSince(3*time.Second)),
			obs:   observe("rev1", routed(0)),
			want:  want{phase: sluicev1.PhaseInitialized, canaryUp: ptr.To(true), event: "RevertedToStable", requeue: 7 * time.Second, ready: metav1.ConditionTrue},
			drain: drainStartKept,
		},
		// Other ends of serving.
		{
			name: "the stable revision coming back mid-run keeps the canary while the route moves, and drains it",
			spec: spec(withCanaryWeights(10, 50)), st: status(sluicev1.PhaseProgressing, atStep(1, 50)),
			obs: observe("rev1", routed(50)),
			want: want{phase: sluicev1.PhaseInitialized, weight: ptr.To[int32](0), canaryUp: ptr.To(true), event: "Draining",
				requeue: 10 * time.Second, ready: metav1.ConditionTrue},
			drain: drainStartsNow,
		},
		{
			name: "at installation, traffic moved to the primary starts the drain of the target's pods",
			spec: spec(), st: status(sluicev1.PhaseInitializing, atStep(0, 0)),
			obs: observe("rev1", routed(0)),
			want: want{phase: sluicev1.PhaseInitializing, weight: ptr.To[int32](0), canaryUp: ptr.To(true), primaryRev: "rev1", requeue: 10 * time.Second,
				event: "Draining", reconciling: metav1.ConditionTrue, message: "keeping the target's pods for 10s"},
			drain: drainStartsNow,
		},
		{
			name: "at installation, the target is scaled to zero at the drain's end",
			spec: spec(), st: status(sluicev1.PhaseInitializing, drainingSince(10*time.Second)),
			obs:   observe("rev1", routed(0)),
			want:  want{phase: sluicev1.PhaseInitialized, canaryUp: ptr.To(false), event: "Initialized", ready: metav1.ConditionTrue},
			drain: drainStartKept,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := Decide(Input{Spec: tt.spec, Generation: 3, Status: tt.st, Obs: tt.obs, Now: t0})
			checkDecision(t, d, tt.want)
			got := d.Status.CanaryDrainingSince
			switch tt.drain {
			case noDrainStart:
				if got != nil {
					t.Errorf("canaryDrainingSince = %s, want none", got)
				}
			case drainStartsNow:
				if got == nil || !got.Time.Equal(t0) {
					t.Errorf("canaryDrainingSince = %v, want now (%s)", got, t0)
				}
			case drainStartKept:
				if got == nil || !got.Equal(tt.st.CanaryDrainingSince) {
					t.Errorf("canaryDrainingSince = %v, want it kept at %v", got, tt.st.CanaryDrainingSince)
				}
			}
			if tt.noDrainEvent && hasEvent(d.Events, "Draining") {
				t.Errorf("events %v tell of a drain, want none", d.Events)
			}
		})
	}
}

// stored is a status as the API server keeps it: through JSON, where times
// have whole seconds.
func stored(t *testing.T, st sluicev1.RolloutStatus) *sluicev1.RolloutStatus {
	t.Helper()
	raw, err := json.Marshal(st)
	if err != nil {
		t.Fatal(err)
	}
	out := &sluicev1.RolloutStatus{}
	if err := json.Unmarshal(raw, out); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestAManagerRestartedMidDrainResumesItFromTheStatus: all the drain's state
// is in the status, so a new leader neither cuts the drain short nor starts
// it over; and a drain that starts within a second is recorded rounded up,
// since the API server keeps whole seconds.
func TestAManagerRestartedMidDrainResumesItFromTheStatus(t *testing.T) {
	s := spec()
	obs := observe("rev2", routed(0), primaryAt("rev2", true))
	start := t0.Add(300 * time.Millisecond)
	d := Decide(Input{Spec: s, Generation: 1, Status: status(sluicev1.PhaseFinalising), Obs: obs, Now: start})
	if d.Status.Phase != sluicev1.PhaseFinalising || !d.Desired.CanaryUp {
		t.Fatalf("phase %s, canary up %v, want Finalising with the canary up (%s)", d.Status.Phase, d.Desired.CanaryUp, d.Status.Message)
	}
	end := start.Add(d.RequeueAfter)
	if end.Before(start.Add(10 * time.Second)) {
		t.Errorf("wakes at %s, before the 10s drain ends (%s)", end, start.Add(10*time.Second))
	}

	// A new leader reads the status from the API server 4 seconds later.
	st := stored(t, d.Status)
	d = Decide(Input{Spec: s, Generation: 1, Status: st, Obs: obs, Now: start.Add(4 * time.Second)})
	if d.Status.Phase != sluicev1.PhaseFinalising || !d.Desired.CanaryUp || hasEvent(d.Events, "Draining") {
		t.Fatalf("after the restart: phase %s, canary up %v, events %v; want the same drain held", d.Status.Phase, d.Desired.CanaryUp, d.Events)
	}
	if got := start.Add(4 * time.Second).Add(d.RequeueAfter); !got.Equal(end) {
		t.Errorf("after the restart it wakes at %s, want the drain's end %s", got, end)
	}

	// Just before the end the canary is still kept; at the end it goes.
	st = stored(t, d.Status)
	d = Decide(Input{Spec: s, Generation: 1, Status: st, Obs: obs, Now: start.Add(10 * time.Second)})
	if d.Status.Phase != sluicev1.PhaseFinalising || !d.Desired.CanaryUp {
		t.Errorf("10s after the route confirmed, phase %s, canary up %v: the drain was cut short by the stored second", d.Status.Phase, d.Desired.CanaryUp)
	}
	d = Decide(Input{Spec: s, Generation: 1, Status: stored(t, d.Status), Obs: obs, Now: end})
	if d.Status.Phase != sluicev1.PhaseSucceeded || d.Desired.CanaryUp || !hasEvent(d.Events, "Promoted") {
		t.Errorf("at the drain's end: phase %s, canary up %v, events %v; want Succeeded, the canary down and Promoted", d.Status.Phase, d.Desired.CanaryUp, d.Events)
	}
}

// TestAnAbortMidRunDrainsTheCanaryBeforeScalingItDown walks an abort at 50%:
// the canary keeps its pods while the route moves and for the drain after.
func TestAnAbortMidRunDrainsTheCanaryBeforeScalingItDown(t *testing.T) {
	s := spec(withCanaryWeights(10, 50))
	st := status(sluicev1.PhaseProgressing, atStep(1, 50), stepStarted(time.Second))
	obs := observe("rev2", routed(50), action(sluicev1.ActionAbort))
	now := t0
	var movedAt, downAt time.Time
	for i := 0; i < 10 && downAt.IsZero(); i++ {
		d := Decide(Input{Spec: s, Generation: 1, Status: st, Obs: obs, Now: now})
		st = stored(t, d.Status)
		if movedAt.IsZero() && d.Desired.CanaryWeight == 0 && obs.RoutedWeight != nil && *obs.RoutedWeight == 0 {
			movedAt = now
		}
		if !d.Desired.CanaryUp {
			downAt = now
		}
		// The route takes a second to follow; nothing else changes.
		obs.Action = ""
		obs.RoutedWeight = ptr.To(d.Desired.CanaryWeight)
		now = now.Add(max(d.RequeueAfter, time.Second))
	}
	if st.Phase != sluicev1.PhaseFailed || movedAt.IsZero() || downAt.IsZero() {
		t.Fatalf("phase %s, route moved at %s, canary down at %s; want Failed, the route moved and the canary down", st.Phase, movedAt, downAt)
	}
	if downAt.Sub(movedAt) < 10*time.Second {
		t.Errorf("canary scaled down %s after the route held no canary traffic, want at least the 10s drain", downAt.Sub(movedAt))
	}
}

// TestAPromotionScalesTheCanaryDownOnlyAfterTheDrain walks a promotion from
// Promoting, the cluster following each decision a second later: the
// canary keeps its pods for the whole drain after the route holds no canary
// traffic, the Rollout says why, and Promoted is told once, at the end.
func TestAPromotionScalesTheCanaryDownOnlyAfterTheDrain(t *testing.T) {
	s := spec(scaleDownDelay(7))
	st := status(sluicev1.PhasePromoting, atStep(2, 0), promotionStarted(time.Second))
	obs := observe("rev2")
	now := t0
	var movedAt, downAt time.Time
	var messages []string
	promoted := 0
	for i := 0; i < 20 && downAt.IsZero(); i++ {
		d := Decide(Input{Spec: s, Generation: 1, Status: st, Obs: obs, Now: now})
		st = stored(t, d.Status)
		if st.Phase == sluicev1.PhaseFinalising && movedAt.IsZero() && obs.RoutedWeight != nil && *obs.RoutedWeight == 0 {
			movedAt = now
		}
		if !d.Desired.CanaryUp {
			downAt = now
			if st.Phase != sluicev1.PhaseSucceeded {
				t.Errorf("canary scaled down in phase %s, want it only once Succeeded", st.Phase)
			}
		}
		for _, e := range d.Events {
			if e.Reason == "Promoted" {
				promoted++
			}
		}
		messages = append(messages, st.Message)
		obs.RoutedWeight = ptr.To(d.Desired.CanaryWeight)
		if d.Desired.PrimaryRevision != "" {
			obs.PrimaryRevision, obs.PrimaryReady = d.Desired.PrimaryRevision, true
		}
		now = now.Add(max(d.RequeueAfter, time.Second))
	}
	if movedAt.IsZero() || downAt.IsZero() {
		t.Fatalf("route back on the primary at %s, canary down at %s; messages %q", movedAt, downAt, messages)
	}
	if got := downAt.Sub(movedAt); got < 7*time.Second {
		t.Errorf("canary scaled down %s after the route held no canary traffic, want at least the 7s drain", got)
	}
	if promoted != 1 {
		t.Errorf("Promoted told %d times, want once", promoted)
	}
	if !slices.Contains(messages, "traffic moved to the primary; keeping the canary's pods for 7s while the data plane drains") {
		t.Errorf("no message told of the drain: %q", messages)
	}
}
