package statemachine

import (
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	sluicev1 "github.com/sluice-dev/sluice/api/v1alpha1"
)

var t0 = time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)

// --- builders ---------------------------------------------------------------

type specOpt func(*sluicev1.RolloutSpec)

func spec(opts ...specOpt) *sluicev1.RolloutSpec {
	s := &sluicev1.RolloutSpec{
		TargetRef: sluicev1.TargetRef{Kind: "Deployment", Name: "app"},
		Strategy:  sluicev1.Strategy{BlueGreen: &sluicev1.BlueGreenStrategy{Iterations: 2}},
		Analysis: &sluicev1.Analysis{
			Interval:  &metav1.Duration{Duration: time.Minute},
			Threshold: 2,
		},
		ProgressDeadlineSeconds: ptr.To[int32](600),
	}
	for _, o := range opts {
		o(s)
	}
	return s
}

func withCanaryWeights(ws ...int32) specOpt {
	return func(s *sluicev1.RolloutSpec) {
		s.Strategy = sluicev1.Strategy{Canary: &sluicev1.CanaryStrategy{StepWeights: ws}}
	}
}

func withoutAnalysis() specOpt { return func(s *sluicev1.RolloutSpec) { s.Analysis = nil } }

func withIterations(n int32) specOpt {
	return func(s *sluicev1.RolloutSpec) {
		s.Strategy = sluicev1.Strategy{BlueGreen: &sluicev1.BlueGreenStrategy{Iterations: n}}
	}
}

func withSteps(steps ...sluicev1.CanaryStep) specOpt {
	return func(s *sluicev1.RolloutSpec) {
		s.Strategy = sluicev1.Strategy{Canary: &sluicev1.CanaryStrategy{Steps: steps}}
	}
}

func withHook(t sluicev1.HookType) specOpt {
	return func(s *sluicev1.RolloutSpec) {
		s.Analysis.Webhooks = append(s.Analysis.Webhooks, sluicev1.Webhook{Name: string(t), Type: t, URL: "http://hooks/"})
	}
}

func withMetric() specOpt {
	return func(s *sluicev1.RolloutSpec) {
		s.Analysis.Metrics = append(s.Analysis.Metrics, sluicev1.MetricCheck{
			Name: sluicev1.MetricRequestSuccessRate, ThresholdRange: &sluicev1.ThresholdRange{Min: ptr.To(99.0)},
		})
	}
}

func suspended(s *sluicev1.RolloutSpec)    { s.Suspend = true }
func skipAnalysis(s *sluicev1.RolloutSpec) { s.SkipAnalysis = true }

type statusOpt func(*sluicev1.RolloutStatus)

func status(phase sluicev1.Phase, opts ...statusOpt) *sluicev1.RolloutStatus {
	st := &sluicev1.RolloutStatus{Phase: phase, StableRevision: "rev1"}
	if phase != sluicev1.PhaseInitialized && phase != sluicev1.PhaseSucceeded &&
		phase != sluicev1.PhaseFailed && phase != sluicev1.PhaseInitializing && phase != "" {
		st.CanaryRevision = "rev2"
	}
	for _, o := range opts {
		o(st)
	}
	return st
}

func atStep(i int32, weight int32) statusOpt {
	return func(st *sluicev1.RolloutStatus) { st.CurrentStepIndex, st.CanaryWeight = i, weight }
}
func stepStarted(ago time.Duration) statusOpt {
	return func(st *sluicev1.RolloutStatus) { st.StepStartedAt = &metav1.Time{Time: t0.Add(-ago)} }
}
func waitingSince(ago time.Duration) statusOpt {
	return func(st *sluicev1.RolloutStatus) { st.WaitingSince = &metav1.Time{Time: t0.Add(-ago)} }
}
func lastCheck(ago time.Duration) statusOpt {
	return func(st *sluicev1.RolloutStatus) { st.LastCheckAt = &metav1.Time{Time: t0.Add(-ago)} }
}
func failedChecks(n int32) statusOpt {
	return func(st *sluicev1.RolloutStatus) { st.FailedChecks = n }
}
func failedRevision(r string) statusOpt {
	return func(st *sluicev1.RolloutStatus) { st.FailedRevision = r }
}
func canaryRevision(r string) statusOpt {
	return func(st *sluicev1.RolloutStatus) { st.CanaryRevision = r }
}
func postRolloutPending(st *sluicev1.RolloutStatus) { st.PostRolloutPending = true }
func preRolloutPassed(st *sluicev1.RolloutStatus)   { st.PreRolloutPassed = true }

type obsOpt func(*Observation)

// observe returns a healthy observation: target at rev, primary ready at
// rev1, canary ready, route at weight 0.
func observe(rev string, opts ...obsOpt) Observation {
	o := Observation{
		TargetFound: true, Revision: rev,
		CanaryReady: true, PrimaryRevision: "rev1", PrimaryReady: true,
		RoutedWeight:    ptr.To[int32](0),
		CanaryAvailable: 2, PrimaryAvailable: 2, PrimaryReplicas: 2, TargetReplicas: 2,
	}
	for _, opt := range opts {
		opt(&o)
	}
	return o
}

func routed(w int32) obsOpt  { return func(o *Observation) { o.RoutedWeight = ptr.To(w) } }
func noRoute(o *Observation) { o.RoutedWeight = nil }
func canaryNotReady(o *Observation) {
	o.CanaryReady, o.CanaryMessage = false, "0/3 replicas available"
}
func primaryAt(rev string, ready bool) obsOpt {
	return func(o *Observation) { o.PrimaryRevision, o.PrimaryReady = rev, ready }
}
func targetGone(o *Observation) { o.TargetFound = false }
func checks(outcome Outcome, msg string) obsOpt {
	return func(o *Observation) { o.Checks = &CheckResult{Outcome: outcome, Message: msg} }
}
func checksHeldUntil(t time.Time) obsOpt {
	return func(o *Observation) {
		o.Checks = &CheckResult{Outcome: CheckHold, Message: "latency: waiting until " + t.Format(time.RFC3339), RetryAt: t}
	}
}
func rollbackHookOpen(o *Observation) {
	o.Checks = &CheckResult{Outcome: CheckPass, Rollback: true, Message: "rollback gate open"}
}
func gate(t sluicev1.HookType, open bool) obsOpt {
	return func(o *Observation) {
		if o.Gates == nil {
			o.Gates = map[sluicev1.HookType]GateResult{}
		}
		o.Gates[t] = GateResult{Open: open, Message: "gate said so"}
	}
}
func blocked(o *Observation) {
	o.Blocked, o.BlockedReason = "the gatewayAPI router needs the HTTPRoute CRD", "RouterUnavailable"
}

// --- expectations -----------------------------------------------------------

type want struct {
	phase        sluicev1.Phase
	weight       *int32 // desired canary weight
	recorded     *int32 // canary weight in the status
	held         *bool  // status.canaryShareHeld
	canaryUp     *bool
	primaryRev   string
	step         *int32
	failed       *int32
	stable       string
	canaryRev    *string
	requeue      time.Duration
	needChecks   bool
	needGate     sluicev1.HookType
	event        string // a reason that must be among the events
	noEvents     bool
	ready        metav1.ConditionStatus
	stalled      metav1.ConditionStatus // "" means the condition must be absent
	reconciling  metav1.ConditionStatus
	gateClosed   bool
	suspendedCon bool
	message      string // substring of status.message
}

func TestDecide(t *testing.T) {
	tests := []struct {
		name string
		spec *sluicev1.RolloutSpec
		st   *sluicev1.RolloutStatus
		obs  Observation
		want want
	}{
		// Initialization
		{
			name: "a new Rollout creates the primary while the target keeps all traffic",
			spec: spec(), st: &sluicev1.RolloutStatus{},
			obs: observe("rev1", primaryAt("", false), noRoute),
			want: want{phase: sluicev1.PhaseInitializing, weight: ptr.To[int32](100), canaryUp: ptr.To(true), primaryRev: "rev1",
				event: "Initializing", reconciling: metav1.ConditionTrue, ready: metav1.ConditionFalse},
		},
		{
			name: "once the primary is ready traffic moves to it before the target is scaled down",
			spec: spec(), st: status(sluicev1.PhaseInitializing, atStep(0, 100)),
			obs:  observe("rev1", routed(100)),
			want: want{phase: sluicev1.PhaseInitializing, weight: ptr.To[int32](0), canaryUp: ptr.To(true), primaryRev: "rev1", reconciling: metav1.ConditionTrue},
		},
		{
			name: "with traffic on the primary and the target's pods drained the Rollout is Initialized and the target scaled to zero",
			spec: spec(), st: &sluicev1.RolloutStatus{Phase: sluicev1.PhaseInitializing, CanaryDrainingSince: &metav1.Time{Time: t0.Add(-10 * time.Second)}},
			obs: observe("rev1", routed(0)),
			want: want{phase: sluicev1.PhaseInitialized, weight: ptr.To[int32](0), canaryUp: ptr.To(false), stable: "rev1",
				event: "Initialized", ready: metav1.ConditionTrue},
		},
		// Idle
		{
			name: "a revision equal to the last promoted one does not start a run",
			spec: spec(), st: status(sluicev1.PhaseSucceeded),
			obs:  observe("rev1"),
			want: want{phase: sluicev1.PhaseSucceeded, canaryUp: ptr.To(false), noEvents: true, ready: metav1.ConditionTrue},
		},
		{
			name: "a new revision starts a run and scales the canary up",
			spec: spec(), st: status(sluicev1.PhaseSucceeded),
			obs: observe("rev2", canaryNotReady),
			want: want{phase: sluicev1.PhaseProgressing, canaryUp: ptr.To(true), weight: ptr.To[int32](0), canaryRev: ptr.To("rev2"),
				event: "NewRevision", reconciling: metav1.ConditionTrue, ready: metav1.ConditionFalse, requeue: 10 * time.Minute},
		},
		{
			name: "a failed revision is not released again",
			spec: spec(), st: status(sluicev1.PhaseFailed, failedRevision("rev2"), drainingSince(time.Hour)),
			obs:  observe("rev2"),
			want: want{phase: sluicev1.PhaseFailed, canaryUp: ptr.To(false), noEvents: true, stalled: metav1.ConditionTrue, ready: metav1.ConditionFalse},
		},
		{
			name: "after a failure a newer revision starts a run",
			spec: spec(), st: status(sluicev1.PhaseFailed, failedRevision("rev2"), failedChecks(2)),
			obs:  observe("rev3", canaryNotReady),
			want: want{phase: sluicev1.PhaseProgressing, canaryRev: ptr.To("rev3"), failed: ptr.To[int32](0), event: "NewRevision", requeue: 10 * time.Minute},
		},
		{
			name: "after a failure the target set back to the stable revision clears the failure",
			spec: spec(), st: status(sluicev1.PhaseFailed, failedRevision("rev2")),
			obs:  observe("rev1"),
			want: want{phase: sluicev1.PhaseInitialized, event: "RevertedToStable", ready: metav1.ConditionTrue},
		},
		{
			name: "post-rollout hooks run once after a run",
			spec: spec(withHook(sluicev1.HookPostRollout)), st: status(sluicev1.PhaseSucceeded, postRolloutPending),
			obs:  observe("rev1"),
			want: want{phase: sluicev1.PhaseSucceeded, needGate: sluicev1.HookPostRollout},
		},
		{
			name: "a failing post-rollout hook is only reported",
			spec: spec(withHook(sluicev1.HookPostRollout)), st: status(sluicev1.PhaseSucceeded, postRolloutPending),
			obs:  observe("rev1", gate(sluicev1.HookPostRollout, false)),
			want: want{phase: sluicev1.PhaseSucceeded, event: "PostRolloutHooksFailed", ready: metav1.ConditionTrue},
		},
		// Waiting at confirm-rollout
		{
			name: "a confirm-rollout hook holds the run in Waiting before the canary is scaled up",
			spec: spec(withHook(sluicev1.HookConfirmRollout)), st: status(sluicev1.PhaseSucceeded),
			obs:  observe("rev2"),
			want: want{phase: sluicev1.PhaseWaiting, canaryUp: ptr.To(false), needGate: sluicev1.HookConfirmRollout},
		},
		{
			name: "a closed confirm-rollout gate keeps Waiting and asks again after an interval",
			spec: spec(withHook(sluicev1.HookConfirmRollout)), st: status(sluicev1.PhaseWaiting),
			obs:  observe("rev2", gate(sluicev1.HookConfirmRollout, false)),
			want: want{phase: sluicev1.PhaseWaiting, canaryUp: ptr.To(false), gateClosed: true, requeue: time.Minute, message: "confirm-rollout gate is closed"},
		},
		{
			name: "an open confirm-rollout gate starts the canary",
			spec: spec(withHook(sluicev1.HookConfirmRollout)), st: status(sluicev1.PhaseWaiting),
			obs:  observe("rev2", canaryNotReady, gate(sluicev1.HookConfirmRollout, true)),
			want: want{phase: sluicev1.PhaseProgressing, canaryUp: ptr.To(true), event: "GateOpened", requeue: 10 * time.Minute},
		},
		{
			name: "the gate is not asked again before an interval has passed",
			spec: spec(withHook(sluicev1.HookConfirmRollout)), st: status(sluicev1.PhaseWaiting, lastCheck(20*time.Second)),
			obs:  observe("rev2"),
			want: want{phase: sluicev1.PhaseWaiting, requeue: 40 * time.Second},
		},
		// Progressing: readiness and deadline
		{
			name: "a canary that is not ready is waited for until the progress deadline",
			spec: spec(), st: status(sluicev1.PhaseProgressing, waitingSince(time.Minute)),
			obs:  observe("rev2", canaryNotReady),
			want: want{phase: sluicev1.PhaseProgressing, canaryUp: ptr.To(true), requeue: 9 * time.Minute, message: "0/3 replicas available"},
		},
		{
			name: "the progress deadline passing rolls back and fails the run; the canary's pods drain first",
			spec: spec(), st: status(sluicev1.PhaseProgressing, waitingSince(11*time.Minute)),
			obs: observe("rev2", canaryNotReady),
			want: want{phase: sluicev1.PhaseFailed, weight: ptr.To[int32](0), canaryUp: ptr.To(true), event: "ProgressDeadlineExceeded",
				stalled: metav1.ConditionTrue, ready: metav1.ConditionFalse, canaryRev: ptr.To(""), requeue: 10 * time.Second},
		},
		{
			name: "the canary becoming ready starts the first step's hold",
			spec: spec(), st: status(sluicev1.PhaseProgressing, waitingSince(time.Minute)),
			obs:  observe("rev2"),
			want: want{phase: sluicev1.PhaseProgressing, step: ptr.To[int32](0), requeue: time.Minute},
		},
		// No analysis (Flagger would release without checks; Sluice holds
		// each step its default interval, 1m, and checks nothing).
		{
			name: "without analysis a step is held the default interval",
			spec: spec(withoutAnalysis(), withIterations(1)), st: status(sluicev1.PhaseProgressing, waitingSince(time.Minute)),
			obs:  observe("rev2"),
			want: want{phase: sluicev1.PhaseProgressing, step: ptr.To[int32](0), requeue: time.Minute},
		},
		{
			name: "without analysis the end of the hold promotes, with no checks asked for",
			spec: spec(withoutAnalysis(), withIterations(1)), st: status(sluicev1.PhaseProgressing, atStep(0, 0), stepStarted(time.Minute)),
			obs:  observe("rev2"),
			want: want{phase: sluicev1.PhasePromoting, event: "Promoting"},
		},
		// Progressing: canary steps
		{
			name: "a canary step sets the weight and waits for the router to confirm it",
			spec: spec(withCanaryWeights(10, 50)), st: status(sluicev1.PhaseProgressing),
			obs:  observe("rev2"),
			want: want{phase: sluicev1.PhaseProgressing, weight: ptr.To[int32](10), event: "WeightChanged", requeue: 0, message: "router to confirm"},
		},
		{
			name: "the step's hold starts when the router holds the weight",
			spec: spec(withCanaryWeights(10, 50)), st: status(sluicev1.PhaseProgressing, atStep(0, 10)),
			obs:  observe("rev2", routed(10)),
			want: want{phase: sluicev1.PhaseProgressing, weight: ptr.To[int32](10), requeue: time.Minute},
		},
		{
			name: "at the end of the hold the checks are asked for",
			spec: spec(withCanaryWeights(10, 50), withMetric()), st: status(sluicev1.PhaseProgressing, atStep(0, 10), stepStarted(time.Minute)),
			obs:  observe("rev2", routed(10)),
			want: want{phase: sluicev1.PhaseProgressing, needChecks: true},
		},
		{
			name: "passing checks move to the next weight",
			spec: spec(withCanaryWeights(10, 50), withMetric()), st: status(sluicev1.PhaseProgressing, atStep(0, 10), stepStarted(time.Minute)),
			obs:  observe("rev2", routed(10), checks(CheckPass, "")),
			want: want{phase: sluicev1.PhaseProgressing, step: ptr.To[int32](1), weight: ptr.To[int32](50), event: "WeightChanged"},
		},
		{
			name: "a closed confirm-traffic-increase gate holds the weight",
			spec: spec(withCanaryWeights(10, 50), withHook(sluicev1.HookConfirmTrafficIncrease)), st: status(sluicev1.PhaseProgressing, atStep(1, 10)),
			obs:  observe("rev2", routed(10), gate(sluicev1.HookConfirmTrafficIncrease, false)),
			want: want{phase: sluicev1.PhaseProgressing, weight: ptr.To[int32](10), gateClosed: true, requeue: time.Minute},
		},
		{
			name: "a failed check below the threshold holds the step for another interval",
			spec: spec(withMetric()), st: status(sluicev1.PhaseProgressing, stepStarted(time.Minute)),
			obs:  observe("rev2", checks(CheckFail, "request-success-rate 80 < 99")),
			want: want{phase: sluicev1.PhaseProgressing, failed: ptr.To[int32](1), step: ptr.To[int32](0), event: "CheckFailed", requeue: time.Minute},
		},
		{
			name: "failed checks reaching the threshold roll back",
			spec: spec(withCanaryWeights(10, 50), withMetric()), st: status(sluicev1.PhaseProgressing, atStep(1, 50), stepStarted(time.Minute), failedChecks(1)),
			obs: observe("rev2", routed(50), checks(CheckFail, "request-success-rate 80 < 99")),
			want: want{phase: sluicev1.PhaseFailed, weight: ptr.To[int32](0), canaryUp: ptr.To(true), failed: ptr.To[int32](2), event: "ThresholdReached",
				stalled: metav1.ConditionTrue, message: "rolled back"},
		},
		{
			name: "after a rollback the canary is scaled down once the router holds no canary traffic and its pods drained",
			spec: spec(), st: status(sluicev1.PhaseFailed, failedRevision("rev2"), drainingSince(10*time.Second)),
			obs:  observe("rev2", routed(0)),
			want: want{phase: sluicev1.PhaseFailed, weight: ptr.To[int32](0), canaryUp: ptr.To(false), stalled: metav1.ConditionTrue},
		},
		{
			name: "no data under the hold policy holds without counting a failure",
			spec: spec(withMetric()), st: status(sluicev1.PhaseProgressing, stepStarted(time.Minute)),
			obs:  observe("rev2", checks(CheckHold, "no data")),
			want: want{phase: sluicev1.PhaseProgressing, failed: ptr.To[int32](0), requeue: time.Minute},
		},
		{
			name: "checks that wait for their window to clear are asked again when it does, sooner than an interval",
			spec: spec(withMetric()), st: status(sluicev1.PhaseProgressing, stepStarted(time.Minute)),
			obs:  observe("rev2", checksHeldUntil(t0.Add(15*time.Second))),
			want: want{phase: sluicev1.PhaseProgressing, failed: ptr.To[int32](0), requeue: 15 * time.Second, message: "no verdict, holding the step"},
		},
		{
			name: "a clear time within a second: asked again on the whole second after it, as the status keeps it, never before",
			spec: spec(withMetric()), st: status(sluicev1.PhaseProgressing, stepStarted(time.Minute)),
			obs:  observe("rev2", checksHeldUntil(t0.Add(14*time.Second+300*time.Millisecond))),
			want: want{phase: sluicev1.PhaseProgressing, failed: ptr.To[int32](0), requeue: 15 * time.Second},
		},
		{
			name: "a wait that clears after an interval: asked again after the interval, so the other checks keep watching the canary",
			spec: spec(withMetric()), st: status(sluicev1.PhaseProgressing, stepStarted(time.Minute)),
			obs:  observe("rev2", checksHeldUntil(t0.Add(time.Hour))),
			want: want{phase: sluicev1.PhaseProgressing, failed: ptr.To[int32](0), requeue: time.Minute},
		},
		{
			name: "a clear time not after now: asked again after an interval, never in a loop",
			spec: spec(withMetric()), st: status(sluicev1.PhaseProgressing, stepStarted(time.Minute)),
			obs:  observe("rev2", checksHeldUntil(t0.Add(-time.Second))),
			want: want{phase: sluicev1.PhaseProgressing, failed: ptr.To[int32](0), requeue: time.Minute},
		},
		{
			name: "an open rollback hook rolls back at once",
			spec: spec(withHook(sluicev1.HookRollback)), st: status(sluicev1.PhaseProgressing, stepStarted(time.Minute)),
			obs:  observe("rev2", rollbackHookOpen),
			want: want{phase: sluicev1.PhaseFailed, event: "RollbackRequested", failed: ptr.To[int32](0), stalled: metav1.ConditionTrue, requeue: 10 * time.Second},
		},
		{
			name: "a pre-rollout failure counts as a failed check",
			spec: spec(withHook(sluicev1.HookPreRollout)), st: status(sluicev1.PhaseProgressing),
			obs:  observe("rev2", gate(sluicev1.HookPreRollout, false)),
			want: want{phase: sluicev1.PhaseProgressing, failed: ptr.To[int32](1), event: "CheckFailed", requeue: time.Minute},
		},
		{
			name: "a passing pre-rollout hook starts the steps",
			spec: spec(withHook(sluicev1.HookPreRollout)), st: status(sluicev1.PhaseProgressing),
			obs:  observe("rev2", gate(sluicev1.HookPreRollout, true)),
			want: want{phase: sluicev1.PhaseProgressing, event: "PreRolloutHooks", requeue: time.Minute},
		},
		{
			name: "a pause step without duration holds until promoted",
			spec: spec(withSteps(sluicev1.CanaryStep{SetWeight: ptr.To[int32](20)}, sluicev1.CanaryStep{Pause: &sluicev1.PauseStep{}})),
			st:   status(sluicev1.PhaseProgressing, atStep(1, 20), stepStarted(time.Hour)),
			obs:  observe("rev2", routed(20)),
			want: want{phase: sluicev1.PhaseProgressing, step: ptr.To[int32](1), requeue: 0, message: "paused until promoted"},
		},
		{
			name: "a timed pause step ends after its duration without checks",
			spec: spec(withSteps(sluicev1.CanaryStep{SetWeight: ptr.To[int32](20)}, sluicev1.CanaryStep{Pause: &sluicev1.PauseStep{Duration: &metav1.Duration{Duration: 5 * time.Minute}}}), withMetric()),
			st:   status(sluicev1.PhaseProgressing, atStep(1, 20), stepStarted(5*time.Minute)),
			obs:  observe("rev2", routed(20)),
			want: want{phase: sluicev1.PhasePromoting, weight: ptr.To[int32](100), event: "Promoting"},
		},
		// Promotion
		{
			name: "the last passing step promotes: all traffic to the canary first",
			spec: spec(), st: status(sluicev1.PhaseProgressing, atStep(1, 0), stepStarted(time.Minute)),
			obs:  observe("rev2"),
			want: want{phase: sluicev1.PhasePromoting, weight: ptr.To[int32](100), primaryRev: "", canaryUp: ptr.To(true), event: "Promoting"},
		},
		{
			name: "with the canary holding all traffic the primary takes its revision",
			spec: spec(), st: status(sluicev1.PhasePromoting, atStep(2, 100)),
			obs: observe("rev2", routed(100)),
			want: want{phase: sluicev1.PhasePromoting, primaryRev: "rev2", canaryUp: ptr.To(true), message: "waiting for the primary",
				requeue: 10 * time.Minute},
		},
		{
			name: "a ready primary finalises: traffic back to the primary",
			spec: spec(), st: status(sluicev1.PhasePromoting, atStep(2, 100)),
			obs:  observe("rev2", routed(100), primaryAt("rev2", true)),
			want: want{phase: sluicev1.PhaseFinalising, weight: ptr.To[int32](0), canaryUp: ptr.To(true)},
		},
		{
			// Finalising's move back was made and its status write lost.
			name: "a primary already serving the new revision with the route away from the canary finalises: the drain starts, traffic stays",
			spec: spec(), st: status(sluicev1.PhasePromoting, atStep(2, 100)),
			obs: observe("rev2", routed(0), primaryAt("rev2", true)),
			want: want{phase: sluicev1.PhaseFinalising, weight: ptr.To[int32](0), canaryUp: ptr.To(true), event: "Draining",
				message: "traffic moved to the primary; keeping the canary's pods", requeue: 10 * time.Second},
		},
		{
			name: "a primary at the new revision but smaller than the canary does not take all traffic: the canary takes it first",
			spec: spec(), st: status(sluicev1.PhasePromoting, atStep(2, 100)),
			obs:  observe("rev2", routed(0), primaryAt("rev2", true), func(o *Observation) { o.PrimaryAvailable = 1 }),
			want: want{phase: sluicev1.PhasePromoting, weight: ptr.To[int32](100), canaryUp: ptr.To(true), message: "moving all traffic to the canary"},
		},
		{
			name: "with traffic on the new primary and the canary's pods drained the run succeeds and the canary is scaled to zero",
			spec: spec(), st: status(sluicev1.PhaseFinalising, drainingSince(10*time.Second)),
			obs:  observe("rev2", routed(0), primaryAt("rev2", true)),
			want: want{phase: sluicev1.PhaseSucceeded, stable: "rev2", canaryRev: ptr.To(""), canaryUp: ptr.To(false), event: "Promoted", ready: metav1.ConditionTrue},
		},
		{
			name: "a confirm-promotion gate holds in WaitingPromotion while the checks keep running",
			spec: spec(withMetric(), withHook(sluicev1.HookConfirmPromotion)), st: status(sluicev1.PhaseWaitingPromotion),
			obs:  observe("rev2", checks(CheckPass, ""), gate(sluicev1.HookConfirmPromotion, false)),
			want: want{phase: sluicev1.PhaseWaitingPromotion, gateClosed: true, requeue: time.Minute, canaryUp: ptr.To(true)},
		},
		{
			name: "in WaitingPromotion both the checks and the gate are asked for",
			spec: spec(withMetric(), withHook(sluicev1.HookConfirmPromotion)), st: status(sluicev1.PhaseWaitingPromotion),
			obs:  observe("rev2"),
			want: want{phase: sluicev1.PhaseWaitingPromotion, needChecks: true},
		},
		{
			name: "the last step's checks passing enters WaitingPromotion without asking for checks again",
			spec: spec(withMetric(), withHook(sluicev1.HookConfirmPromotion)), st: status(sluicev1.PhaseProgressing, atStep(1, 0), stepStarted(time.Minute)),
			obs:  observe("rev2", checks(CheckPass, "")),
			want: want{phase: sluicev1.PhaseWaitingPromotion, requeue: time.Minute},
		},
		{
			name: "without checks the confirm-promotion gate is asked as soon as the steps end",
			spec: spec(withHook(sluicev1.HookConfirmPromotion)), st: status(sluicev1.PhaseProgressing, atStep(1, 0), stepStarted(time.Minute)),
			obs:  observe("rev2"),
			want: want{phase: sluicev1.PhaseWaitingPromotion, needGate: sluicev1.HookConfirmPromotion},
		},
		{
			name: "a closed gate stays reported between the calls that ask it",
			spec: spec(withHook(sluicev1.HookConfirmRollout)),
			st: status(sluicev1.PhaseWaiting, lastCheck(20*time.Second), func(st *sluicev1.RolloutStatus) {
				st.Conditions = []metav1.Condition{{Type: sluicev1.ConditionGate, Status: metav1.ConditionTrue, Reason: "GateClosed", Message: "closed"}}
			}),
			obs:  observe("rev2"),
			want: want{phase: sluicev1.PhaseWaiting, gateClosed: true, requeue: 40 * time.Second},
		},
		{
			name: "an open confirm-promotion gate promotes",
			spec: spec(withHook(sluicev1.HookConfirmPromotion)), st: status(sluicev1.PhaseWaitingPromotion),
			obs:  observe("rev2", gate(sluicev1.HookConfirmPromotion, true)),
			want: want{phase: sluicev1.PhasePromoting, event: "Promoting"},
		},
		{
			name: "skipAnalysis promotes as soon as the canary is ready, without steps",
			spec: spec(skipAnalysis, withMetric(), withHook(sluicev1.HookConfirmRollout)), st: status(sluicev1.PhaseSucceeded),
			obs:  observe("rev2"),
			want: want{phase: sluicev1.PhasePromoting, weight: ptr.To[int32](100), event: "SkipAnalysis"},
		},
		// Interruptions
		{
			name: "suspend holds everything, even a new revision",
			spec: spec(suspended), st: status(sluicev1.PhaseSucceeded),
			obs:  observe("rev2"),
			want: want{phase: sluicev1.PhaseSucceeded, noEvents: true, suspendedCon: true, canaryUp: ptr.To(false)},
		},
		{
			name: "suspend holds a run at its step and stops its clocks",
			spec: spec(suspended, withMetric()), st: status(sluicev1.PhaseProgressing, stepStarted(time.Hour)),
			obs:  observe("rev2"),
			want: want{phase: sluicev1.PhaseProgressing, noEvents: true, suspendedCon: true, canaryUp: ptr.To(true), requeue: 0},
		},
		{
			name: "a new revision mid-run restarts the run",
			spec: spec(withCanaryWeights(10, 50)), st: status(sluicev1.PhaseProgressing, atStep(1, 50), failedChecks(1)),
			obs: observe("rev3", routed(50), canaryNotReady),
			want: want{phase: sluicev1.PhaseProgressing, canaryRev: ptr.To("rev3"), step: ptr.To[int32](0), weight: ptr.To[int32](0),
				failed: ptr.To[int32](0), event: "RevisionChanged", requeue: 10 * time.Minute},
		},
		{
			name: "the stable revision coming back mid-run cancels the run",
			spec: spec(withCanaryWeights(10, 50)), st: status(sluicev1.PhaseProgressing, atStep(1, 50)),
			obs:  observe("rev1", routed(50)),
			want: want{phase: sluicev1.PhaseInitialized, weight: ptr.To[int32](0), canaryRev: ptr.To(""), event: "RevertedToStable", requeue: 10 * time.Second},
		},
		{
			name: "the target deleted mid-run rolls back to the primary",
			spec: spec(), st: status(sluicev1.PhaseProgressing, atStep(0, 0)),
			obs: observe("", targetGone),
			want: want{phase: sluicev1.PhaseFailed, weight: ptr.To[int32](0), canaryUp: ptr.To(false), event: "TargetNotFound",
				stalled: metav1.ConditionTrue, message: "not found"},
		},
		{
			name: "the target deleted while idle stalls the Rollout and leaves the primary serving",
			spec: spec(), st: status(sluicev1.PhaseSucceeded),
			obs:  observe("", targetGone),
			want: want{phase: sluicev1.PhaseSucceeded, weight: ptr.To[int32](0), noEvents: true, stalled: metav1.ConditionTrue, ready: metav1.ConditionFalse},
		},
		{
			name: "a blocked router stalls the Rollout where it is",
			spec: spec(), st: status(sluicev1.PhaseProgressing, atStep(0, 0)),
			obs:  observe("rev2", blocked),
			want: want{phase: sluicev1.PhaseProgressing, noEvents: true, stalled: metav1.ConditionTrue, message: "HTTPRoute CRD"},
		},
		{
			name: "an unknown phase starts over from initialization",
			spec: spec(), st: status("Bogus"),
			obs:  observe("rev1", primaryAt("", false)),
			want: want{phase: sluicev1.PhaseInitializing, primaryRev: "rev1"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := tt.st.DeepCopy()
			d := Decide(Input{Spec: tt.spec, Generation: 3, Status: tt.st, Obs: tt.obs, Now: t0})
			checkDecision(t, d, tt.want)
			if !equalStatus(before, tt.st) {
				t.Errorf("Decide modified its input status")
			}
		})
	}
}

func checkDecision(t *testing.T, d Decision, w want) {
	t.Helper()
	st := d.Status
	if st.Phase != w.phase {
		t.Errorf("phase = %q, want %q (message %q)", st.Phase, w.phase, st.Message)
	}
	if w.held != nil && d.Status.CanaryShareHeld != *w.held {
		t.Errorf("status canaryShareHeld = %t, want %t", d.Status.CanaryShareHeld, *w.held)
	}
	if w.recorded != nil && d.Status.CanaryWeight != *w.recorded {
		t.Errorf("status canary weight = %d, want %d", d.Status.CanaryWeight, *w.recorded)
	}
	if w.weight != nil && d.Desired.CanaryWeight != *w.weight {
		t.Errorf("desired canary weight = %d, want %d", d.Desired.CanaryWeight, *w.weight)
	}
	if w.canaryUp != nil && d.Desired.CanaryUp != *w.canaryUp {
		t.Errorf("desired canaryUp = %v, want %v", d.Desired.CanaryUp, *w.canaryUp)
	}
	if d.Desired.PrimaryRevision != w.primaryRev {
		t.Errorf("desired primary revision = %q, want %q", d.Desired.PrimaryRevision, w.primaryRev)
	}
	if w.step != nil && st.CurrentStepIndex != *w.step {
		t.Errorf("step = %d, want %d", st.CurrentStepIndex, *w.step)
	}
	if w.failed != nil && st.FailedChecks != *w.failed {
		t.Errorf("failedChecks = %d, want %d", st.FailedChecks, *w.failed)
	}
	if w.stable != "" && st.StableRevision != w.stable {
		t.Errorf("stableRevision = %q, want %q", st.StableRevision, w.stable)
	}
	if w.canaryRev != nil && st.CanaryRevision != *w.canaryRev {
		t.Errorf("canaryRevision = %q, want %q", st.CanaryRevision, *w.canaryRev)
	}
	if d.RequeueAfter != w.requeue {
		t.Errorf("requeueAfter = %s, want %s", d.RequeueAfter, w.requeue)
	}
	gotChecks := d.Need != nil && d.Need.Checks
	if gotChecks != w.needChecks {
		t.Errorf("need checks = %v, want %v", gotChecks, w.needChecks)
	}
	var gotGate sluicev1.HookType
	if d.Need != nil && len(d.Need.Gates) > 0 {
		gotGate = d.Need.Gates[0]
	}
	if !w.needChecks && gotGate != w.needGate {
		t.Errorf("need gate = %q, want %q", gotGate, w.needGate)
	}
	if w.event != "" && !hasEvent(d.Events, w.event) {
		t.Errorf("events %v lack reason %q", d.Events, w.event)
	}
	if w.noEvents && len(d.Events) > 0 {
		t.Errorf("unexpected events %v", d.Events)
	}
	checkCondition(t, st.Conditions, sluicev1.ConditionStalled, w.stalled)
	if w.ready != "" {
		checkCondition(t, st.Conditions, sluicev1.ConditionReady, w.ready)
	}
	if w.reconciling != "" {
		checkCondition(t, st.Conditions, sluicev1.ConditionReconciling, w.reconciling)
	}
	if got := meta.IsStatusConditionTrue(st.Conditions, sluicev1.ConditionGate); got != w.gateClosed {
		t.Errorf("GateClosed condition = %v, want %v", got, w.gateClosed)
	}
	if got := meta.IsStatusConditionTrue(st.Conditions, sluicev1.ConditionSuspended); got != w.suspendedCon {
		t.Errorf("Suspended condition = %v, want %v", got, w.suspendedCon)
	}
	if w.message != "" && !strings.Contains(st.Message, w.message) {
		t.Errorf("message = %q, want it to contain %q", st.Message, w.message)
	}
	for _, c := range st.Conditions {
		if c.ObservedGeneration != 3 {
			t.Errorf("condition %s observedGeneration = %d, want 3", c.Type, c.ObservedGeneration)
		}
	}
}

func checkCondition(t *testing.T, conds []metav1.Condition, typ string, want metav1.ConditionStatus) {
	t.Helper()
	c := meta.FindStatusCondition(conds, typ)
	switch {
	case want == "" && c != nil:
		t.Errorf("condition %s = %s (%s), want it absent", typ, c.Status, c.Reason)
	case want != "" && c == nil:
		t.Errorf("condition %s absent, want %s", typ, want)
	case want != "" && c.Status != want:
		t.Errorf("condition %s = %s (%s: %s), want %s", typ, c.Status, c.Reason, c.Message, want)
	}
}

func hasEvent(events []Event, reason string) bool {
	for _, e := range events {
		if e.Reason == reason {
			return true
		}
	}
	return false
}

func equalStatus(a, b *sluicev1.RolloutStatus) bool {
	return a.Phase == b.Phase && a.CurrentStepIndex == b.CurrentStepIndex && a.FailedChecks == b.FailedChecks &&
		a.CanaryWeight == b.CanaryWeight && len(a.Conditions) == len(b.Conditions)
}

// TestDecideWalksABlueGreenReleaseToTheEnd drives one release through every
// phase by feeding each decision's desired state back as the next observation.
func TestDecideWalksABlueGreenReleaseToTheEnd(t *testing.T) {
	s := spec(withMetric())
	st := status(sluicev1.PhaseSucceeded)
	obs := observe("rev2", canaryNotReady)
	now := t0
	var phases []sluicev1.Phase
	for i := 0; i < 30 && (len(phases) == 0 || st.Phase != sluicev1.PhaseSucceeded); i++ {
		d := Decide(Input{Spec: s, Status: st, Obs: obs, Now: now})
		if d.Need != nil && d.Need.Checks {
			obs.Checks = &CheckResult{Outcome: CheckPass}
			continue
		}
		obs.Checks = nil
		st = &d.Status
		if len(phases) == 0 || phases[len(phases)-1] != st.Phase {
			phases = append(phases, st.Phase)
		}
		// The cluster converges to what was asked.
		obs.RoutedWeight = ptr.To(d.Desired.CanaryWeight)
		obs.CanaryReady = d.Desired.CanaryUp
		if d.Desired.PrimaryRevision != "" {
			obs.PrimaryRevision, obs.PrimaryReady = d.Desired.PrimaryRevision, true
		}
		now = now.Add(max(d.RequeueAfter, time.Second))
	}
	want := []sluicev1.Phase{sluicev1.PhaseProgressing, sluicev1.PhasePromoting, sluicev1.PhaseFinalising, sluicev1.PhaseSucceeded}
	if strings.Join(phaseStrings(phases), ",") != strings.Join(phaseStrings(want), ",") {
		t.Fatalf("phases = %v, want %v", phases, want)
	}
	if st.StableRevision != "rev2" || st.FailedChecks != 0 {
		t.Errorf("stable = %q failed = %d, want rev2 and 0", st.StableRevision, st.FailedChecks)
	}
}

func phaseStrings(ps []sluicev1.Phase) []string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = string(p)
	}
	return out
}

// TestAStepIsHeldOnlyWhileTheRouterHoldsItsWeight: the reconciler records a
// step's start before it moves the route, as the router's answer will have
// it; when the route does not hold the step's weight after all (the write
// failed, or someone changed the route), the hold starts again once it does,
// so a step's checks never count time at another weight.
func TestAStepIsHeldOnlyWhileTheRouterHoldsItsWeight(t *testing.T) {
	s := spec(withCanaryWeights(20, 60))
	st := status(sluicev1.PhaseProgressing, atStep(1, 60), stepStarted(45*time.Second))
	d := Decide(Input{Spec: s, Status: st, Obs: observe("rev2", routed(20)), Now: t0})
	if d.Status.StepStartedAt != nil {
		t.Errorf("router at 20%%, step at 60%%: stepStartedAt = %v, want none until the router holds 60%%", d.Status.StepStartedAt)
	}
	if d.Desired.CanaryWeight != 60 || len(d.Events) != 0 {
		t.Errorf("desired weight %d with events %v, want 60 and no event (the step's weight was told already)", d.Desired.CanaryWeight, d.Events)
	}
	later := t0.Add(5 * time.Second)
	d = Decide(Input{Spec: s, Status: &d.Status, Obs: observe("rev2", routed(60)), Now: later})
	if d.Status.StepStartedAt == nil || !d.Status.StepStartedAt.Time.Equal(later) {
		t.Errorf("router at 60%%: stepStartedAt = %v, want %v", d.Status.StepStartedAt, later)
	}
	if d.Need != nil || d.RequeueAfter != time.Minute {
		t.Errorf("router at 60%%: need %+v, requeue %s; want the step held a whole interval (1m)", d.Need, d.RequeueAfter)
	}
}

// TestAHeldStepIsCheckedAgainWhenItsChecksCanAnswer: the time a waiting
// check clears is kept in status (the step's hold is set to end then), so
// a manager that restarts in between, or a new leader, asks the checks at
// that time too, and not before.
func TestAHeldStepIsCheckedAgainWhenItsChecksCanAnswer(t *testing.T) {
	s := spec(withMetric())
	retry := t0.Add(20 * time.Second)
	d := Decide(Input{Spec: s, Status: status(sluicev1.PhaseProgressing, stepStarted(time.Minute)), Obs: observe("rev2", checksHeldUntil(retry)), Now: t0})
	if d.RequeueAfter != 20*time.Second {
		t.Fatalf("requeue after %s, want 20s", d.RequeueAfter)
	}
	st := d.Status.DeepCopy() // what a new leader reads
	for _, at := range []time.Duration{time.Second, 19 * time.Second} {
		d := Decide(Input{Spec: s, Status: st, Obs: observe("rev2"), Now: t0.Add(at)})
		if d.Need != nil {
			t.Errorf("at +%s the checks were asked (%+v), want them asked at +20s", at, *d.Need)
		}
		if want := 20*time.Second - at; d.RequeueAfter != want {
			t.Errorf("at +%s requeue after %s, want %s", at, d.RequeueAfter, want)
		}
	}
	d = Decide(Input{Spec: s, Status: st, Obs: observe("rev2"), Now: retry})
	if d.Need == nil || !d.Need.Checks {
		t.Fatalf("at +20s need %+v, want the checks asked", d.Need)
	}
}
