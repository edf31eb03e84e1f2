package statemachine

import (
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	sluicev1 "github.com/sluice-dev/sluice/api/v1alpha1"
	"github.com/sluice-dev/sluice/pkg/steps"
)

// Observation is what the reconciler saw in the cluster this round.
type Observation struct {
	// TargetFound is false when the target Deployment does not exist.
	TargetFound bool
	// Revision identifies the target's pod template and the content of the
	// ConfigMaps and Secrets it uses.
	Revision string
	// CanaryReady is true when the target runs all its replicas at the
	// current template; CanaryMessage says why not otherwise.
	CanaryReady   bool
	CanaryMessage string
	// PrimaryRevision is the revision the primary Deployment was last given
	// ("" when there is no primary); PrimaryReady is true when it runs it.
	PrimaryRevision string
	PrimaryReady    bool
	PrimaryMessage  string
	// CanaryAvailable and PrimaryAvailable are the available replicas of
	// the target and of the primary; PrimaryReplicas is the primary's
	// desired count and TargetReplicas the target's.
	CanaryAvailable  int32
	PrimaryAvailable int32
	PrimaryReplicas  int32
	TargetReplicas   int32
	// AutoscalerMinReplicas is the least replicas the autoscaler of the
	// target keeps (0 without one): a canary never starts below it.
	AutoscalerMinReplicas int32
	// PrimaryRestorable is true when the primary holds the template of the
	// stable revision it ran before a promotion, so an abort can put it back.
	PrimaryRestorable bool
	// RoutedWeight is the canary weight the router read back from the API
	// server; nil when the route does not exist yet.
	RoutedWeight *int32
	// Checks is the result of the metric checks and rollout/rollback hooks,
	// present only when a previous Decision asked for it (Need.Checks).
	Checks *CheckResult
	// Gates are the results of the gates a previous Decision asked for.
	Gates map[sluicev1.HookType]GateResult
	// Action is a runtime action asked for with the action annotation, and
	// ActionBy who asked; the reconciler removes the annotation afterwards.
	Action   sluicev1.Action
	ActionBy string
	// ActionID tells this request from the next (sluice.dev/action-id);
	// empty when the request has none.
	ActionID string
	// Blocked, when set, is why the reconciler cannot act on this Rollout
	// (for example a router whose CRDs are missing); BlockedReason is its
	// CamelCase reason. The Rollout is Stalled and nothing moves.
	Blocked       string
	BlockedReason string
}

// GateResult is the answer of the webhooks of one type.
type GateResult struct {
	// Open is true when every webhook of the type answered 2xx.
	Open bool
	// Message is the failure (hook name and trimmed response body).
	Message string
}

// Outcome of a round of checks.
type Outcome string

// Check outcomes.
const (
	CheckPass Outcome = "Pass"
	CheckFail Outcome = "Fail"
	// CheckHold means no verdict (no data under the hold policy): the step is
	// held for another interval without counting a failure.
	CheckHold Outcome = "Hold"
)

// CheckResult is the verdict of one round of checks after a step's hold.
type CheckResult struct {
	Outcome Outcome
	// Rollback is true when a rollback hook asked to roll back now.
	Rollback bool
	// Message explains a failure or a hold.
	Message string
	// RetryAt, on a hold, is when the checks that hold can answer (a window
	// that still reads the revision before clears), when they say; zero
	// when one holds for no data.
	RetryAt time.Time
	// Metrics are the per-metric results to record on the status.
	Metrics []sluicev1.MetricStatus
}

// Input is everything a decision depends on.
type Input struct {
	Spec       *sluicev1.RolloutSpec
	Generation int64
	Status     *sluicev1.RolloutStatus
	Obs        Observation
	Now        time.Time
}

// Desired is the state the reconciler must bring the cluster to.
type Desired struct {
	// CanaryWeight is the percentage of traffic for the canary (the rest
	// goes to the primary).
	CanaryWeight int32
	// CanaryUp is true when the target must run its replicas, false when it
	// must be scaled to zero.
	CanaryUp bool
	// PrimaryRevision, when set, is the revision the primary must be given:
	// the reconciler copies the target's template and configs into it.
	PrimaryRevision string
	// Experiment is true while the strategy's request rules (A/B matches,
	// mirroring, session affinity) must be in place.
	Experiment bool
	// CanaryMinReplicas, when above zero, is the least number of replicas
	// the target must run: never fewer than its autoscaler's minimum, with
	// scaleWithWeight the share of the primary its step's weight needs, and
	// before it takes all traffic as many as the primary that serves it now.
	CanaryMinReplicas int32
	// PassOwnerReplicas is true when a replica count on the parked target
	// was set by its owner and must be passed on to the primary as it is;
	// otherwise scaling the target down never lowers the primary.
	PassOwnerReplicas bool
}

// Event is a Kubernetes event the reconciler emits.
type Event struct {
	Type    string
	Reason  string
	Message string
}

// Need asks the reconciler to gather more before deciding again.
type Need struct {
	Checks bool
	Gates  []sluicev1.HookType
}

// Decision is the outcome of Decide.
type Decision struct {
	Status  sluicev1.RolloutStatus
	Desired Desired
	Events  []Event
	// RequeueAfter is when to look again (0: only when something changes).
	RequeueAfter time.Duration
	// Need, when set, lists what to gather before calling Decide again.
	Need *Need
}

// maxTransitions bounds the transitions taken in one decision.
const maxTransitions = 12

// Decide computes the next status, the desired cluster state, the events and
// the next wake-up of a Rollout. It is pure: same input, same output.
func Decide(in Input) Decision {
	m := &machine{
		spec:  in.Spec,
		obs:   in.Obs,
		st:    *in.Status.DeepCopy(),
		now:   in.Now,
		gates: map[sluicev1.HookType]GateResult{},
	}
	m.inputPhase = m.st.Phase
	// The API server validates no status field: a weight read from it is
	// a percentage from here on (routedWeight does the same for a route
	// edited by hand, whose weight only confirms what it equals).
	m.st.CanaryWeight = percent(m.st.CanaryWeight)
	// Nor is a step index: a negative one would index the plan (found by
	// FuzzDecide: a panic in progressing).
	m.st.CurrentStepIndex = max(m.st.CurrentStepIndex, 0)
	for k, v := range in.Obs.Gates {
		m.gates[k] = v
	}
	m.checks = in.Obs.Checks
	m.run()
	m.rescueShare()
	desired := m.desired()
	m.keepTrafficOnPods(&desired, in.Status.Message)
	m.st.CanaryShareHeld = m.sheltered && desired.CanaryWeight == 0 && m.st.CanaryWeight > 0
	m.trackTargetScale(desired)
	m.summarize(in.Generation)
	d := Decision{Status: m.st, Desired: desired, Events: m.events, Need: m.need}
	if !m.wake.IsZero() && m.need == nil {
		d.RequeueAfter = max(m.wake.Sub(m.now), time.Second)
	}
	return d
}

type machine struct {
	spec   *sluicev1.RolloutSpec
	obs    Observation
	st     sluicev1.RolloutStatus
	now    time.Time
	events []Event
	wake   time.Time
	need   *Need
	// checks and gates are consumed when used, so one observation never
	// decides two steps.
	checks *CheckResult
	gates  map[sluicev1.HookType]GateResult
	// failReason is the reason of a rollback decided in this call.
	failReason string
	// gateHeld names the gate that holds the release, if any; gateAsked is
	// set when a gate answered in this decision.
	gateHeld  string
	gateAsked bool
	// checksRan is set when checks were evaluated in this decision.
	checksRan bool
	// skipStep is set by a promote action: the current step, pause or gate
	// ends now, once.
	skipStep bool
	// inputPhase is the phase the decision started from.
	inputPhase sluicev1.Phase
	// promotePrimary is set once the primary may take the canary's revision.
	promotePrimary bool
	// stalled, when set, is the reason the release cannot go on without a
	// person (stalledMsg says why); the Rollout is Stalled but not Failed.
	stalled, stalledMsg string
	// sheltered is set while the canary's share of the traffic is held on
	// the primary because the canary has no available pod (shelter,
	// rescueShare).
	sheltered bool
}

func (m *machine) run() {
	m.applyAction()
	if !m.obs.TargetFound {
		m.targetMissing()
		return
	}
	if m.obs.Blocked != "" {
		m.st.Message = m.obs.Blocked
		return
	}
	if m.spec.Suspend || m.st.Paused {
		m.suspend()
		return
	}
	for range maxTransitions {
		if !m.transition() || m.need != nil {
			return
		}
	}
}

// transition runs the handler of the current phase; it reports whether the
// status moved on so that the next phase may be evaluated at once.
func (m *machine) transition() bool {
	if m.activeRun() && m.obs.Revision != m.st.CanaryRevision {
		return m.revisionChanged()
	}
	switch m.st.Phase {
	case "", sluicev1.PhaseInitializing:
		return m.initializing()
	case sluicev1.PhaseInitialized, sluicev1.PhaseSucceeded, sluicev1.PhaseFailed:
		return m.idle()
	case sluicev1.PhaseWaiting:
		return m.waiting()
	case sluicev1.PhaseProgressing:
		return m.progressing()
	case sluicev1.PhaseWaitingPromotion:
		return m.waitingPromotion()
	case sluicev1.PhasePromoting:
		return m.promoting()
	case sluicev1.PhaseFinalising:
		return m.finalising()
	default:
		m.st.Message = fmt.Sprintf("unknown phase %q: starting over", m.st.Phase)
		m.st.Phase = sluicev1.PhaseInitializing
		return true
	}
}

// activeRun reports whether a release of CanaryRevision is under way.
func (m *machine) activeRun() bool {
	switch m.st.Phase {
	case sluicev1.PhaseWaiting, sluicev1.PhaseProgressing, sluicev1.PhaseWaitingPromotion,
		sluicev1.PhasePromoting, sluicev1.PhaseFinalising:
		return true
	}
	return false
}

func (m *machine) initializing() bool {
	if m.st.Phase == "" {
		m.st.Phase = sluicev1.PhaseInitializing
		m.event(corev1.EventTypeNormal, "Initializing", "creating the primary Deployment and Services")
		// The target keeps serving until the primary is ready.
		m.st.CanaryWeight = 100
	}
	if m.obs.PrimaryRevision != m.obs.Revision || !m.obs.PrimaryReady {
		m.st.Message = "waiting for the primary Deployment to be ready"
		return false
	}
	m.st.CanaryWeight = 0
	if !m.routed(0) {
		m.st.Message = "moving traffic to the primary"
		return false
	}
	// The target served all traffic until now: its pods outlive the
	// route change by the drain, as a canary's do after a promotion.
	if m.draining("the target's") {
		m.st.Message = m.drainMessage("the target's")
		return false
	}
	m.st.Phase = sluicev1.PhaseInitialized
	m.st.StableRevision = m.obs.Revision
	m.st.Message = "primary serves revision " + m.obs.Revision
	m.event(corev1.EventTypeNormal, "Initialized", fmt.Sprintf("primary ready at revision %s; target scaled to zero", m.obs.Revision))
	return true
}

func (m *machine) idle() bool {
	if m.st.Phase == sluicev1.PhaseFailed && m.st.CanaryWeight > 0 {
		return m.restoringPrimary()
	}
	if m.st.PostRolloutPending {
		res, ok := m.gate(sluicev1.HookPostRollout)
		if !ok {
			return false
		}
		m.st.PostRolloutPending = false
		if res.Open {
			m.event(corev1.EventTypeNormal, "PostRolloutHooks", "post-rollout hooks passed")
		} else {
			m.event(corev1.EventTypeWarning, "PostRolloutHooksFailed", "post-rollout hooks failed: "+res.Message)
		}
	}
	rev := m.obs.Revision
	switch {
	case rev == m.st.StableRevision:
		if m.st.Phase == sluicev1.PhaseFailed {
			m.st.Phase = sluicev1.PhaseInitialized
			m.st.Message = "target is back at the stable revision " + rev
			m.event(corev1.EventTypeNormal, "RevertedToStable", m.st.Message)
			return true
		}
		return false
	case m.st.Phase == sluicev1.PhaseFailed && rev == m.st.FailedRevision:
		return false
	}
	m.startRun(rev)
	return true
}

// restoringPrimary waits, after an abort during a promotion, until the
// primary runs the stable revision again, then moves traffic back to it.
func (m *machine) restoringPrimary() bool {
	if !m.obs.PrimaryRestorable && m.obs.PrimaryRevision != m.st.StableRevision {
		m.stalled = "PrimaryNotRestorable"
		m.stalledMsg = fmt.Sprintf("the primary runs revision %s and holds no copy of the stable revision %s to go back to; traffic stays on the canary: set the target back to the stable version, or promote",
			m.obs.PrimaryRevision, m.st.StableRevision)
		m.st.Message = m.stalledMsg
		return false
	}
	if !m.primaryServesStable() {
		m.st.Message = "restoring the primary to revision " + m.st.StableRevision + " before traffic moves back to it"
		if m.obs.PrimaryMessage != "" {
			m.st.Message += ": " + m.obs.PrimaryMessage
		}
		return false
	}
	m.st.CanaryWeight = 0
	m.st.Message = "rolled back: the primary serves revision " + m.st.StableRevision + " again; traffic moves back to it"
	m.event(corev1.EventTypeNormal, "PrimaryRestored", m.st.Message)
	return true
}

// primaryServesStable reports whether the primary runs the stable revision
// with all its replicas ready.
func (m *machine) primaryServesStable() bool {
	return m.obs.PrimaryRevision == m.st.StableRevision && m.obs.PrimaryReady
}

// routedWeight is the canary weight the router holds (0 when unknown).
// percent brings a weight within 0..100.
func percent(w int32) int32 {
	return min(max(w, 0), 100)
}

func (m *machine) routedWeight() int32 {
	if m.obs.RoutedWeight == nil {
		return 0
	}
	return percent(*m.obs.RoutedWeight)
}

func (m *machine) startRun(rev string) {
	m.st.PreviousCanaryUntil = m.previousCanaryUntil()
	m.st.CanaryRevision = rev
	m.st.FailedChecks = 0
	m.st.CurrentStepIndex = 0
	m.st.CanaryWeight = 0
	m.st.FullPromotion = false
	m.st.RunStartedAt = m.timeNow()
	m.st.WaitingSince = nil
	m.st.StepStartedAt = nil
	m.st.LastCheckAt = nil
	m.st.PreRolloutPassed = false
	m.st.PromotionStartedAt = nil
	m.st.Metrics = nil
	m.event(corev1.EventTypeNormal, "NewRevision", fmt.Sprintf("new revision %s: starting the release", rev))
	if hasHook(m.spec, sluicev1.HookConfirmRollout) && !m.spec.SkipAnalysis && !m.st.FullPromotion {
		m.st.Phase = sluicev1.PhaseWaiting
		return
	}
	m.st.Phase = sluicev1.PhaseProgressing
}

// previousCanaryUntil is, as a run starts, when the target last served
// another revision: now when a run is under way (its canary may have taken
// traffic until this decision moves it), else the end of the last drain,
// whose pods kept serving requests in flight until then. Metrics of the
// target read over a window that reaches back before it would judge that
// revision as this one (pkg/analysis waits for the window to clear it). A
// target never drained has served nothing since it was parked: nil.
func (m *machine) previousCanaryUntil() *metav1.Time {
	now := wholeSecondUp(m.now)
	if m.activeRun() {
		return &metav1.Time{Time: now}
	}
	since := m.st.CanaryDrainingSince
	if since == nil {
		return nil
	}
	end := since.Add(steps.ScaleDownDelay(m.spec))
	if end.After(now) {
		end = now
	}
	return &metav1.Time{Time: end}
}

func (m *machine) revisionChanged() bool {
	old, rev := m.st.CanaryRevision, m.obs.Revision
	// A revision the primary already took is promoted: that release ends as
	// any promotion does, told and followed by its post-rollout hooks.
	if m.st.Phase == sluicev1.PhaseFinalising ||
		(m.st.Phase == sluicev1.PhasePromoting && m.obs.PrimaryRevision == old) {
		return m.promotedUnderANewRevision(old, rev)
	}
	if rev == m.st.StableRevision {
		m.st.Phase = sluicev1.PhaseInitialized
		m.st.CanaryRevision = ""
		m.st.CanaryWeight = 0
		m.st.CurrentStepIndex = 0
		m.st.Message = "target is back at the stable revision " + rev + ": release cancelled"
		m.event(corev1.EventTypeNormal, "RevertedToStable", m.st.Message)
		// The canary's pods, which may have taken traffic, are drained;
		// the drain counts from here (the route moves in this reconcile).
		if m.obs.TargetReplicas > 0 && m.st.CanaryDrainingSince == nil {
			m.draining("the canary's")
		}
		return true
	}
	m.event(corev1.EventTypeNormal, "RevisionChanged",
		fmt.Sprintf("revision changed from %s to %s during the release: starting over", old, rev))
	m.startRun(rev)
	return true
}

func (m *machine) waiting() bool {
	if m.skipStep {
		m.skipStep = false
		m.st.Phase, m.st.LastCheckAt = sluicev1.PhaseProgressing, nil
		return true
	}
	if !m.askGate(sluicev1.HookConfirmRollout) {
		return false
	}
	m.event(corev1.EventTypeNormal, "GateOpened", "confirm-rollout gate opened: starting the canary")
	m.st.Phase = sluicev1.PhaseProgressing
	m.st.LastCheckAt = nil
	return true
}

// canaryReady tracks the canary's readiness and the progress deadline; it
// returns false (after deciding what to do) while the canary is not ready.
func (m *machine) canaryReady() (ready, moved bool) {
	if m.obs.CanaryReady {
		m.st.WaitingSince = nil
		if m.shareReturnGated() {
			return false, false
		}
		return true, false
	}
	// The hold of a step does not count while the canary is not ready.
	m.st.StepStartedAt = nil
	if m.st.WaitingSince == nil {
		m.st.WaitingSince = m.timeNow()
	}
	deadline := m.st.WaitingSince.Add(steps.ProgressDeadline(m.spec))
	if !m.now.Before(deadline) {
		m.rollback("ProgressDeadlineExceeded", fmt.Sprintf("canary not ready within %s: %s",
			steps.ProgressDeadline(m.spec), m.obs.CanaryMessage))
		return false, true
	}
	m.st.Message = "waiting for the canary to be ready: " + m.obs.CanaryMessage
	if m.shelter() {
		return false, true
	}
	m.wakeAt(deadline)
	return false, false
}

// shelter holds the canary's share of the traffic on the primary while a
// run's canary, not ready, has no available pod: every pod of a version that
// crashes after it became ready, or lost to evictions or a node, would
// otherwise leave that share with no endpoint (failed requests) until the
// progress deadline rolls it back. The share stays on the primary until the
// canary is ready again, then goes back to the canary, whose step starts its
// hold again. The recorded weight is left as it is, so the move back needs
// no decision a restart could lose; the route is derived from what is
// observed. Only when the primary has an available pod to take the share,
// ready or not: each of its pods answers, where none of the canary's can. It applies
// until the canary takes all traffic at promotion: the primary serves the
// stable revision until then; rescueShare covers what follows.
//
// Each move of a share to the primary counts as a failed check: a canary
// that crashes each time it has been ready a while would otherwise take its
// share back and lose it again for as long as it keeps becoming ready,
// never reaching the progress deadline. It returns true when that check
// reached the threshold and the run was rolled back.
func (m *machine) shelter() bool {
	switch m.st.Phase {
	case sluicev1.PhaseProgressing, sluicev1.PhaseWaitingPromotion, sluicev1.PhasePromoting:
	default:
		return false
	}
	// Once sheltered, the share comes back only with a ready canary, not
	// with its first pod: one pod would carry the share of all of them
	// (canaryDeserted; the canary is not ready here).
	if m.st.CanaryWeight == 0 || !m.canaryDeserted() {
		return false
	}
	m.sheltered = true
	msg := m.st.Message + fmt.Sprintf("; its %d%% of the traffic is on the primary until it is", m.st.CanaryWeight)
	if m.obs.RoutedWeight != nil && *m.obs.RoutedWeight > 0 {
		if m.failCheckAs("CanaryUnavailable", fmt.Sprintf(
			"the canary has no available pod (%s): its %d%% of the traffic moves to the primary until it is ready again",
			m.obs.CanaryMessage, m.st.CanaryWeight)) {
			return true
		}
	}
	m.st.Message = msg
	return false
}

// shareReturnGated asks the confirm-traffic-increase gate before a share
// held on the primary (shelter) goes back to a canary ready again: for the
// data plane that is a rise of the canary's traffic, from none to its
// weight, and a team that gates each rise (a person watching, a load test
// to run first) means this one too. The canary that lost its pods may be
// the reason they would say no. It reports whether the share stays on the
// primary meanwhile; the step's hold starts again once it is back, as
// after any shelter. A promote action lets it back at once, as it passes
// the gate of a step.
func (m *machine) shareReturnGated() bool {
	switch m.st.Phase {
	case sluicev1.PhaseProgressing, sluicev1.PhaseWaitingPromotion:
	default:
		return false
	}
	// Held as recorded, and held on the route: a share the route still
	// gives the canary is not a rise.
	if !m.st.CanaryShareHeld || m.st.CanaryWeight == 0 || !m.routed(0) ||
		!hasHook(m.spec, sluicev1.HookConfirmTrafficIncrease) || m.takeSkip() {
		return false
	}
	m.sheltered = true
	m.st.Message = fmt.Sprintf("the canary is ready again: its %d%% of the traffic stays on the primary until the confirm-traffic-increase gate opens",
		m.st.CanaryWeight)
	if !m.askGate(sluicev1.HookConfirmTrafficIncrease) {
		if m.gateHeld != "" {
			m.st.Message += fmt.Sprintf("; the canary's %d%% of the traffic stays on the primary until it opens", m.st.CanaryWeight)
		}
		return true
	}
	m.sheltered = false
	m.event(corev1.EventTypeNormal, "GateOpened", fmt.Sprintf(
		"confirm-traffic-increase gate opened: the canary's %d%% of the traffic goes back to it", m.st.CanaryWeight))
	return false
}

func (m *machine) progressing() bool {
	// The canary serves this run from here: the drain of the last run's
	// pods, which goes on while a confirm-rollout gate holds this one, is
	// over; this run's end starts its own.
	m.st.CanaryDrainingSince = nil
	if ready, moved := m.canaryReady(); !ready {
		return moved
	}
	if m.spec.SkipAnalysis || m.st.FullPromotion {
		if m.spec.SkipAnalysis {
			m.event(corev1.EventTypeNormal, "SkipAnalysis", "skipAnalysis is set: promoting without steps")
		}
		m.st.Phase = sluicev1.PhasePromoting
		return true
	}
	if !m.st.PreRolloutPassed && hasHook(m.spec, sluicev1.HookPreRollout) {
		return m.preRollout()
	}
	plan := steps.Plan(m.spec)
	idx := int(m.st.CurrentStepIndex)
	if len(plan) == 0 {
		m.enterPromotion()
		return true
	}
	if idx >= len(plan) {
		// The spec lost steps mid-run (the last step's checks move straight
		// on to promotion): hold and check the last step that still exists
		// for a full interval, never promote on what the old steps saw.
		idx = len(plan) - 1
		m.st.CurrentStepIndex = int32(idx)
		m.st.StepStartedAt = nil
		m.event(corev1.EventTypeNormal, "StepsChanged", fmt.Sprintf("the strategy now has %d steps: checking step %d/%d again before promotion", len(plan), idx+1, len(plan)))
	}
	step := plan[idx]
	if m.st.CanaryWeight != step.Weight {
		if step.Weight > m.st.CanaryWeight && !m.scaledFor(step.Weight) {
			// desired asks for the replicas of this step's weight: once
			// they run (and, above, are ready), the weight moves.
			m.st.Message = fmt.Sprintf("step %d/%d: scaling the canary to %d replicas before it takes %d%% of the traffic",
				idx+1, len(plan), m.weightedReplicas(step.Weight), step.Weight)
			// Told once: after this decision's scale the target runs them,
			// and only someone scaling it down again brings this back.
			m.event(corev1.EventTypeNormal, "CanaryScaled", fmt.Sprintf("step %d/%d: scaling the canary from %d to %d replicas before it takes %d%% of the traffic",
				idx+1, len(plan), m.obs.TargetReplicas, m.weightedReplicas(step.Weight), step.Weight))
			return false
		}
		if step.Weight > m.st.CanaryWeight && hasHook(m.spec, sluicev1.HookConfirmTrafficIncrease) && !m.takeSkip() &&
			!m.askGate(sluicev1.HookConfirmTrafficIncrease) {
			return false
		}
		m.st.CanaryWeight = step.Weight
		m.st.StepStartedAt = nil
		m.event(corev1.EventTypeNormal, "WeightChanged", fmt.Sprintf("step %d/%d: canary weight %d%%", idx+1, len(plan), step.Weight))
	}
	if !m.routed(m.st.CanaryWeight) {
		// A step is held only while the router holds its weight: a status
		// recorded before the route moved (or a route changed behind
		// Sluice's back) starts the hold again once it does.
		m.st.StepStartedAt = nil
		m.st.Message = fmt.Sprintf("waiting for the router to confirm a canary weight of %d%%", m.st.CanaryWeight)
		return false
	}
	if m.st.StepStartedAt == nil {
		m.st.StepStartedAt = m.timeNow()
	}
	skip := m.takeSkip()
	if step.ManualPause && !skip {
		m.st.Message = fmt.Sprintf("step %d/%d: paused until promoted", idx+1, len(plan))
		return false
	}
	hold := steps.Interval(m.spec)
	if step.Pause != nil {
		hold = *step.Pause
	}
	if skip {
		return m.nextStep(len(plan))
	}
	if until := m.st.StepStartedAt.Add(hold); m.now.Before(until) {
		m.st.Message = fmt.Sprintf("step %d/%d: holding a canary weight of %d%%", idx+1, len(plan), m.st.CanaryWeight)
		m.wakeAt(until)
		return false
	}
	if step.Check {
		passed, moved := m.runChecks()
		if !passed {
			return moved
		}
	}
	return m.nextStep(len(plan))
}

// nextStep ends the current step; after the last one the promotion starts
// in the same decision, so a status never holds an index past the plan
// unless the spec lost steps.
func (m *machine) nextStep(steps int) bool {
	m.st.CurrentStepIndex++
	m.st.StepStartedAt = nil
	if int(m.st.CurrentStepIndex) >= steps {
		m.enterPromotion()
	}
	return true
}

func (m *machine) preRollout() bool {
	if !m.due() {
		return false
	}
	res, ok := m.gate(sluicev1.HookPreRollout)
	if !ok {
		return false
	}
	m.st.LastCheckAt = m.timeNow()
	if !res.Open {
		if m.failCheck("pre-rollout hook failed: " + res.Message) {
			return true
		}
		m.wakeAt(m.now.Add(steps.Interval(m.spec)))
		return false
	}
	m.st.PreRolloutPassed = true
	m.st.LastCheckAt = nil
	m.event(corev1.EventTypeNormal, "PreRolloutHooks", "pre-rollout hooks passed")
	return true
}

// runChecks evaluates the checks at the end of a step's hold; it returns
// passed=true when the step may end.
func (m *machine) runChecks() (passed, moved bool) {
	res, ok := m.takeChecks()
	if !ok {
		return false, false
	}
	m.checksRan = m.hasChecks()
	m.st.LastCheckAt = m.timeNow()
	m.st.Metrics = res.Metrics
	switch {
	case res.Rollback:
		m.rollback("RollbackRequested", "a rollback hook asked to roll back: "+res.Message)
		return false, true
	case res.Outcome == CheckFail:
		if m.failCheck(res.Message) {
			return false, true
		}
	case res.Outcome == CheckHold:
		m.st.Message = "no verdict, holding the step: " + res.Message
	default:
		return true, false
	}
	// Hold the step for another interval and check again; sooner when the
	// checks that hold said when they can answer. The hold is set to end
	// then (on a whole second, as the API server keeps it, and not before),
	// so a restarted manager or a new leader asks them then too. Never later
	// than an interval: the other checks keep watching the canary.
	interval := steps.Interval(m.spec)
	again := m.now.Add(interval)
	if retry := wholeSecondUp(res.RetryAt); res.Outcome == CheckHold && retry.After(m.now) && retry.Before(again) {
		again = retry
	}
	m.st.StepStartedAt = &metav1.Time{Time: again.Add(-interval)}
	m.wakeAt(again)
	return false, false
}

func (m *machine) enterPromotion() {
	m.st.StepStartedAt = nil
	// The last step's checks just ran: those of WaitingPromotion start one
	// interval later, while a gate without checks is asked at once.
	m.st.LastCheckAt = nil
	if m.checksRan {
		m.st.LastCheckAt = m.timeNow()
	}
	if hasHook(m.spec, sluicev1.HookConfirmPromotion) {
		m.st.Phase = sluicev1.PhaseWaitingPromotion
		m.st.Message = "waiting for the confirm-promotion gate"
		return
	}
	m.st.Phase = sluicev1.PhasePromoting
	m.event(corev1.EventTypeNormal, "Promoting", "all steps passed: promoting revision "+m.st.CanaryRevision)
}

func (m *machine) waitingPromotion() bool {
	if ready, moved := m.canaryReady(); !ready {
		return moved
	}
	if m.st.FullPromotion || m.takeSkip() {
		m.st.Phase = sluicev1.PhasePromoting
		m.event(corev1.EventTypeNormal, "Promoting", "promoted by hand: promoting revision "+m.st.CanaryRevision)
		return true
	}
	if !m.due() {
		return false
	}
	// Metrics and rollout hooks keep running while the gate is closed.
	if m.hasChecks() {
		if passed, moved := m.runChecks(); !passed {
			return moved
		}
	}
	res, ok := m.gate(sluicev1.HookConfirmPromotion)
	if !ok {
		return false
	}
	m.st.LastCheckAt = m.timeNow()
	if !res.Open {
		m.holdAtGate(sluicev1.HookConfirmPromotion, res.Message)
		return false
	}
	m.st.Phase = sluicev1.PhasePromoting
	m.event(corev1.EventTypeNormal, "GateOpened", "confirm-promotion gate opened")
	m.event(corev1.EventTypeNormal, "Promoting", "confirm-promotion gate opened: promoting revision "+m.st.CanaryRevision)
	return true
}

// promoting moves all traffic to the canary, gives the primary the canary's
// revision and waits until the primary runs it with at least as many
// available replicas as serve now. Traffic goes back to the primary only in
// Finalising, so no request ever reaches a primary pod that is not ready.
func (m *machine) promoting() bool {
	if m.st.PromotionStartedAt == nil {
		m.st.PromotionStartedAt = m.timeNow()
	}
	// Once the primary has the canary's revision, a canary with nothing
	// to serve with does not hold the promotion back: the traffic is on
	// the primary's available pods (rescueShare), and the promotion waits
	// for the primary's rollout as it would with the traffic on the canary.
	rescued := m.obs.PrimaryRevision == m.st.CanaryRevision && m.canaryDeserted()
	if !m.routed(100) && !m.primaryTookOver() && !rescued {
		// Until the canary takes all traffic the primary still serves the
		// stable revision: a canary that stops being ready is rolled back.
		if ready, moved := m.canaryReady(); !ready {
			return moved
		}
		if need := m.primaryServing(); m.obs.CanaryAvailable < need {
			return m.promotionWait(fmt.Sprintf("waiting for the canary to run %d available replicas, as many as the primary serves with, before it takes all traffic (%d available)",
				need, m.obs.CanaryAvailable))
		}
		m.st.CanaryWeight = 100
		if !m.routed(100) {
			m.st.Message = "moving all traffic to the canary"
			return false
		}
	}
	m.promotePrimary = true
	if m.obs.PrimaryRevision != m.st.CanaryRevision || !m.obs.PrimaryReady {
		msg := "waiting for the primary to roll out revision " + m.st.CanaryRevision
		if m.obs.PrimaryMessage != "" {
			msg += ": " + m.obs.PrimaryMessage
		}
		return m.promotionWait(msg)
	}
	if serving := m.canaryServing(); m.obs.PrimaryAvailable < serving {
		return m.promotionWait(fmt.Sprintf("waiting for the primary to run %d available replicas, as many as the canary serves with (%d available)",
			serving, m.obs.PrimaryAvailable))
	}
	m.st.Phase = sluicev1.PhaseFinalising
	return true
}

// primaryTookOver reports whether the primary already runs the canary's
// revision, ready and as large as the canary serves with, while the route
// sends the canary less than all traffic: Finalising's move back to it was
// made and its status write lost (reachedFromRecord counts on this), or someone
// moved the route. The promotion is then done; sending all traffic to the
// canary first would only move it twice.
func (m *machine) primaryTookOver() bool {
	return m.obs.RoutedWeight != nil && m.obs.PrimaryRevision == m.st.CanaryRevision && m.obs.PrimaryReady &&
		m.obs.PrimaryAvailable >= m.canaryServing()
}

// canaryServing is how many replicas serve the canary's share: its
// available ones, but surge pods of a rolling canary do not count (it
// serves with its desired replicas). The primary must run as many before
// all traffic moves back to it.
func (m *machine) canaryServing() int32 {
	return min(m.obs.CanaryAvailable, m.obs.TargetReplicas)
}

// canaryDeserted reports whether the route should send the canary
// nothing though its recorded weight says otherwise: the canary has no
// available pod, so each request sent to it fails, while the primary has
// some. Once the share is on the primary it stays there until the canary
// is ready, not back with its first pod, which would carry the share of
// all of them.
func (m *machine) canaryDeserted() bool {
	if m.obs.PrimaryAvailable == 0 {
		return false
	}
	return m.obs.CanaryAvailable == 0 || (m.routed(0) && !m.obs.CanaryReady)
}

// rescueShare moves the canary's share of the traffic to the primary
// where shelter does not apply: once the canary took all traffic at
// promotion (the primary rolls out the canary's revision), in Finalising,
// and while an abort during a promotion gives the primary its stable
// revision back. A canary with no available pod there (its pods evicted or
// lost with a node) would otherwise fail every request for as long as the
// primary's rollout takes. The primary is not ready then, as it rolls from
// one revision to the other, but each of its available pods answers; with
// none, nothing moves. Unlike shelter's, the move counts no failed check:
// the checks are over, and the promotion's own deadline bounds the wait.
// The recorded weight stays, so the share goes back to a canary ready
// again, derived from what is observed, as shelter's does.
func (m *machine) rescueShare() {
	switch m.st.Phase {
	case sluicev1.PhasePromoting, sluicev1.PhaseFinalising, sluicev1.PhaseFailed:
	default:
		return
	}
	// A suspended or paused Rollout holds the route where it is, as it
	// does in every phase: someone froze it on purpose.
	if m.sheltered || m.st.CanaryWeight == 0 || !m.obs.TargetFound || m.obs.Blocked != "" ||
		m.spec.Suspend || m.st.Paused || !m.canaryDeserted() {
		return
	}
	m.sheltered = true
	if m.routedWeight() > 0 {
		m.event(corev1.EventTypeWarning, "CanaryUnavailable", fmt.Sprintf(
			"the canary has no available pod (%s): its %d%% of the traffic moves to the primary's %d available pods until it is ready again",
			m.obs.CanaryMessage, m.st.CanaryWeight, m.obs.PrimaryAvailable))
	}
	m.st.Message += fmt.Sprintf("; the canary has no available pod: its %d%% of the traffic is on the primary's %d available pods until it is ready",
		m.st.CanaryWeight, m.obs.PrimaryAvailable)
}

// keepTrafficOnPods keeps the route where it is when the decision would
// move traffic from a side with available pods to a side with none: every
// request of the share moved would fail, where those left where they are
// are answered. shelter and rescueShare move a share off an empty canary;
// this holds what they do not cover. A primary emptied by evictions, a
// lost node or a crash loop meets a decision that lowers the canary's
// weight in a run restarted by a new revision or in steps edited to lower
// weights; a canary with no pod meets one that raises it in a paused or
// suspended Rollout (it carries out a recorded weight the route never
// took) or in a status that lost its phase. The decision itself is
// recorded and carried out once the side it moves traffic to has a pod.
// The canary keeps its pods while it takes traffic (the drains count from
// the route seen sending it nothing). It is told once, when the status
// first says it (previous is the status's message before this decision).
func (m *machine) keepTrafficOnPods(d *Desired, previous string) {
	if m.obs.RoutedWeight == nil {
		return
	}
	routed := m.routedWeight()
	var reason, empty, hold string
	switch {
	case d.CanaryWeight < routed && m.obs.PrimaryAvailable <= 0 && m.obs.CanaryAvailable > 0:
		reason, empty = "PrimaryUnavailable", "the primary has no available pod"
		hold = fmt.Sprintf("%s: %d%% of the traffic stays on the canary's %d available pods until it has",
			empty, routed, m.obs.CanaryAvailable)
		d.CanaryUp = true
	case d.CanaryWeight > routed && m.obs.CanaryAvailable <= 0 && m.obs.PrimaryAvailable > 0:
		reason, empty = "CanaryUnavailable", "the canary has no available pod"
		hold = fmt.Sprintf("%s: its weight stays at %d%%, not %d%%, until it has", empty, routed, d.CanaryWeight)
	default:
		return
	}
	d.CanaryWeight = routed
	if !strings.Contains(previous, empty) {
		m.event(corev1.EventTypeWarning, reason, hold)
	}
	if m.st.Message != "" {
		hold = m.st.Message + "; " + hold
	}
	m.st.Message = hold
}

// ScalesWithWeight reports whether the canary is sized by its weight
// (strategy.canary.scaleWithWeight) rather than run at the primary's size.
func ScalesWithWeight(spec *sluicev1.RolloutSpec) bool {
	return spec.Strategy.Canary != nil && spec.Strategy.Canary.ScaleWithWeight
}

// defaultMinWeightedReplicas is the fewest replicas a canary sized by its
// weight runs when its spec does not say (strategy.canary.minReplicas), if
// the primary runs as many: one pod lost to an eviction, a crash or a node
// would otherwise leave the canary's share of the traffic with no ready
// endpoint until its replacement is ready (seen on the real node: an
// evicted lone canary pod failed requests for seconds).
const defaultMinWeightedReplicas = 2

// minWeightedReplicas is the floor of a canary sized by its weight: the
// spec's minReplicas, or defaultMinWeightedReplicas.
func (m *machine) minWeightedReplicas() int64 {
	if c := m.spec.Strategy.Canary; c != nil && c.MinReplicas != nil {
		return int64(*c.MinReplicas)
	}
	return defaultMinWeightedReplicas
}

// weightedReplicas is the canary's size for a weight of w percent with
// scaleWithWeight: the primary's count times w, rounded up so that no
// canary pod carries more than a primary pod, and never fewer than
// minWeightedReplicas nor than one, nor more than the primary.
func (m *machine) weightedReplicas(w int32) int32 {
	primary := int64(m.primaryServing())
	n := (primary*int64(w) + 99) / 100
	return int32(max(n, min(primary, m.minWeightedReplicas()), 1))
}

// scaledFor reports whether the canary runs the replicas a weight of w
// needs: always, unless it is sized by its weight. Its readiness is
// canaryReady's to tell.
func (m *machine) scaledFor(w int32) bool {
	return !ScalesWithWeight(m.spec) || m.obs.TargetReplicas >= m.weightedReplicas(w)
}

// stepWeight is the weight the current step holds or moves to: the canary
// is sized for it before it moves.
func (m *machine) stepWeight() int32 {
	w := m.st.CanaryWeight
	if plan := steps.Plan(m.spec); len(plan) > 0 {
		idx := min(int(m.st.CurrentStepIndex), len(plan)-1)
		w = max(w, plan[idx].Weight)
	}
	return w
}

// primaryServing is how many replicas serve the primary's share: its
// desired count (its available replicas may run above it only while it rolls
// out, and sizing the canary by those surge pods would in turn grow the
// primary at promotion, and so on). The canary must run as many before it
// takes all of the traffic.
func (m *machine) primaryServing() int32 {
	return max(m.obs.PrimaryReplicas, 1)
}

// promotionWait holds the promotion with msg; past the progress deadline the
// Rollout is Stalled: traffic stays on the ready pods where it is, and a
// person fixes the Deployment or aborts.
func (m *machine) promotionWait(msg string) bool {
	deadline := m.st.PromotionStartedAt.Add(steps.ProgressDeadline(m.spec))
	if m.now.Before(deadline) {
		m.st.Message = msg
		m.wakeAt(deadline)
		return false
	}
	m.stalled = "PromotionStalled"
	m.stalledMsg = fmt.Sprintf("promotion of revision %s not done within %s: %s; traffic stays on ready pods: fix the Deployment, or abort to return to revision %s",
		m.st.CanaryRevision, steps.ProgressDeadline(m.spec), msg, m.st.StableRevision)
	m.st.Message = m.stalledMsg
	return false
}

func (m *machine) finalising() bool {
	if m.obs.PrimaryRevision != m.st.CanaryRevision || !m.obs.PrimaryReady {
		// The primary lost ready replicas since Promoting: keep traffic on
		// the canary until it has them again.
		m.st.Message = "waiting for the primary to be ready again before traffic moves back to it"
		if m.obs.PrimaryMessage != "" {
			m.st.Message += ": " + m.obs.PrimaryMessage
		}
		return false
	}
	// A primaryReadyThreshold below 100 counts a primary with missing
	// replicas as ready; Promoting saw it as large as the canary, but it may
	// have lost pods since. The first move back goes only to as many
	// available replicas as the canary serves with, as at the end of
	// Promoting. Later steps back (stepWeightPromotion) hold the primary to
	// its threshold only: it carries traffic by then, and an autoscaler of
	// the primary may size it for its share.
	if serving := m.canaryServing(); m.routed(100) && m.obs.PrimaryAvailable < serving {
		m.st.Message = fmt.Sprintf("waiting for the primary to run %d available replicas again, as many as the canary serves with (%d available), before traffic moves back to it",
			serving, m.obs.PrimaryAvailable)
		return false
	}
	if m.obs.CanaryAvailable == 0 && !m.routed(0) {
		// No step back to a canary with no pod to serve with: every
		// request still sent to it fails.
		m.event(corev1.EventTypeWarning, "CanaryUnavailable", fmt.Sprintf(
			"the canary has no available pod (%s): all of the traffic moves back to the primary at once", m.obs.CanaryMessage))
	} else if !m.routed(0) && m.stepBack() {
		return false
	}
	m.st.CanaryWeight = 0
	if !m.routed(0) {
		m.st.Message = "moving all traffic back to the primary"
		return false
	}
	// Gateways and meshes apply the route some time after its object says
	// it: the canary's pods outlive it by the drain, so that requests still
	// sent to them are served. A new revision during the drain starts its
	// run at once (revisionChanged): the target rolls its pods over to the
	// new template, as any update of a Deployment does, and the new pods
	// take no traffic before the run's first step. Deleting the Rollout
	// during the drain hands traffic to the target, whose pods are up.
	if m.draining("the canary's") {
		m.st.Message = m.drainMessage("the canary's")
		return false
	}
	rev := m.st.CanaryRevision
	m.promoted(rev)
	m.event(corev1.EventTypeNormal, "Promoted", fmt.Sprintf("revision %s promoted to primary; canary scaled to zero", rev))
	return true
}

// stepBack moves traffic back to the primary in steps of
// strategy.canary.stepWeightPromotion, each held one interval, the first at
// once; it reports whether it holds the current step (false: the last step,
// to 0, is for the caller). The hold counts from stepStartedAt, set when the
// router holds the step's weight.
func (m *machine) stepBack() bool {
	c := m.spec.Strategy.Canary
	if c == nil || c.StepWeightPromotion == nil || *c.StepWeightPromotion <= 0 {
		return false
	}
	step := *c.StepWeightPromotion
	cur := m.routedWeight()
	if m.st.CanaryWeight < cur {
		// A step back the router does not hold yet: its hold starts then.
		m.st.StepStartedAt = m.timeNow()
		m.st.Message = fmt.Sprintf("moving traffic back to the primary in steps of %d%%: %d%% on the canary", step, m.st.CanaryWeight)
		return true
	}
	if m.st.StepStartedAt != nil && cur < 100 {
		if due := m.st.StepStartedAt.Add(steps.Interval(m.spec)); m.now.Before(due) {
			m.st.Message = fmt.Sprintf("moving traffic back to the primary in steps of %d%%: %d%% on the canary", step, cur)
			m.wakeAt(due)
			return true
		}
	}
	next := max(cur-step, 0)
	if next == 0 {
		return false
	}
	m.st.CanaryWeight = next
	m.st.StepStartedAt = m.timeNow()
	m.st.Message = fmt.Sprintf("moving traffic back to the primary in steps of %d%%: %d%% on the canary", step, next)
	m.wakeAt(m.now.Add(steps.Interval(m.spec)))
	return true
}

// promoted records the end of the release of rev, promoted: it is the
// stable revision, and the post-rollout hooks are due.
func (m *machine) promoted(rev string) {
	m.st.Phase = sluicev1.PhaseSucceeded
	m.st.StableRevision = rev
	m.st.CanaryRevision = ""
	m.st.CurrentStepIndex = 0
	m.st.StepStartedAt = nil
	m.st.LastCheckAt = nil
	m.st.PromotionStartedAt = nil
	m.st.PostRolloutPending = hasHook(m.spec, sluicev1.HookPostRollout)
	m.st.Message = "revision " + rev + " promoted"
}

// promotedUnderANewRevision ends the release of old, which the primary runs
// already, when the target moved on to rev during its promotion. Once the
// route sends the canary nothing (Finalising's drain), the release ends as
// any promotion does and the post-rollout hooks run before rev's run
// starts: the target's new pods take no traffic meanwhile. While the canary
// still takes traffic its pods are turning into rev's, untested: rev's run
// starts at once, and its first decision moves traffic back to the primary;
// old's post-rollout hooks are not called then, and an event says so.
func (m *machine) promotedUnderANewRevision(old, rev string) bool {
	routedAway := m.routed(0)
	m.promoted(old)
	if routedAway {
		m.event(corev1.EventTypeNormal, "Promoted", fmt.Sprintf(
			"revision %s promoted to primary; the target moved on to revision %s, released next", old, rev))
		return true
	}
	m.st.PostRolloutPending = false
	m.event(corev1.EventTypeNormal, "Promoted", fmt.Sprintf(
		"revision %s promoted to primary; the target moved on to revision %s while the canary took traffic: its run starts now and moves traffic back to the primary", old, rev))
	if hasHook(m.spec, sluicev1.HookPostRollout) {
		m.event(corev1.EventTypeWarning, "PostRolloutHooksSkipped", fmt.Sprintf(
			"post-rollout hooks of revision %s not called: revision %s arrived while the canary took traffic, and moving it back could not wait for them", old, rev))
	}
	m.startRun(rev)
	return true
}

// rollback ends the run: all traffic to the primary, canary scaled to zero.
func (m *machine) rollback(reason, msg string) {
	m.st.FailedRevision = m.st.CanaryRevision
	m.st.Phase = sluicev1.PhaseFailed
	m.st.CanaryRevision = ""
	m.st.PromotionStartedAt = nil
	m.st.CanaryWeight = 0
	if !m.primaryServesStable() {
		// Aborted during a promotion: the primary is being given the
		// stable template back; traffic stays on the canary until then.
		m.st.CanaryWeight = m.routedWeight()
	}
	m.st.StepStartedAt = nil
	m.st.WaitingSince = nil
	m.st.LastCheckAt = nil
	m.st.PostRolloutPending = hasHook(m.spec, sluicev1.HookPostRollout)
	m.st.Message = "rolled back: " + msg
	if m.st.CanaryWeight > 0 {
		m.st.Message += "; restoring the primary to revision " + m.st.StableRevision + " before traffic moves back to it"
	}
	m.failReason = reason
	m.event(corev1.EventTypeWarning, reason, fmt.Sprintf("rolling back revision %s: %s", m.st.FailedRevision, msg))
}

// failCheck counts a failed check; it returns true when the threshold is
// reached and the run was rolled back.
func (m *machine) failCheck(msg string) bool {
	return m.failCheckAs("CheckFailed", msg)
}

// failCheckAs is failCheck told with an event of reason.
func (m *machine) failCheckAs(reason, msg string) bool {
	m.st.FailedChecks++
	limit := steps.Threshold(m.spec)
	m.event(corev1.EventTypeWarning, reason, fmt.Sprintf("%s (%d/%d)", msg, m.st.FailedChecks, limit))
	if m.st.FailedChecks >= limit {
		m.rollback("ThresholdReached", fmt.Sprintf("%d failed checks, last: %s", m.st.FailedChecks, msg))
		return true
	}
	m.st.Message = fmt.Sprintf("check failed (%d/%d): %s", m.st.FailedChecks, limit, msg)
	return false
}

func (m *machine) targetMissing() {
	msg := "target Deployment " + m.spec.TargetRef.Name + " not found"
	if m.activeRun() {
		m.rollback("TargetNotFound", msg)
	}
	m.st.Message = msg
}

func (m *machine) suspend() {
	// Timers restart on resume, so a suspension never expires a deadline.
	m.st.StepStartedAt = nil
	m.st.WaitingSince = nil
	if m.spec.Suspend {
		m.st.Message = "suspended: spec.suspend is true"
	} else {
		m.st.Message = "paused: resume with `kubectl sluice resume`"
	}
}

// askGate asks the gate of type t, at most once an interval, and reports
// whether it answered open now. Otherwise the decision waits: for the
// interval to pass, for the answer (need), or at a closed gate, which
// holdAtGate tells in the status.
func (m *machine) askGate(t sluicev1.HookType) (open bool) {
	if !m.due() {
		return false
	}
	res, ok := m.gate(t)
	if !ok {
		return false
	}
	m.st.LastCheckAt = m.timeNow()
	if !res.Open {
		m.holdAtGate(t, res.Message)
		return false
	}
	return true
}

func (m *machine) holdAtGate(t sluicev1.HookType, msg string) {
	m.gateHeld = fmt.Sprintf("%s gate is closed: %s", t, msg)
	m.st.Message = m.gateHeld
	m.wakeAt(m.now.Add(steps.Interval(m.spec)))
}

// hasChecks reports whether the spec has anything to check after a step.
func (m *machine) hasChecks() bool {
	a := m.spec.Analysis
	return a != nil && (len(a.Metrics) > 0 || hasHook(m.spec, sluicev1.HookRollout) || hasHook(m.spec, sluicev1.HookRollback))
}

// takeChecks returns the check results, or asks for them.
func (m *machine) takeChecks() (CheckResult, bool) {
	if !m.hasChecks() {
		return CheckResult{Outcome: CheckPass}, true
	}
	if m.checks == nil {
		m.ask(true)
		return CheckResult{}, false
	}
	res := *m.checks
	m.checks = nil
	return res, true
}

// gate returns the result of the webhooks of type t, or asks for it.
// A type without webhooks is open.
func (m *machine) gate(t sluicev1.HookType) (GateResult, bool) {
	if !hasHook(m.spec, t) {
		return GateResult{Open: true}, true
	}
	res, ok := m.gates[t]
	if !ok {
		m.ask(false, t)
		return GateResult{}, false
	}
	delete(m.gates, t)
	m.gateAsked = true
	return res, true
}

func (m *machine) ask(checks bool, gates ...sluicev1.HookType) {
	if m.need == nil {
		m.need = &Need{}
	}
	m.need.Checks = m.need.Checks || checks
	m.need.Gates = append(m.need.Gates, gates...)
}

// due reports whether a gate or check may be called again (one interval
// after the last call); otherwise it schedules the wake-up.
func (m *machine) due() bool {
	if m.st.LastCheckAt == nil {
		return true
	}
	next := m.st.LastCheckAt.Add(steps.Interval(m.spec))
	if m.now.Before(next) {
		m.wakeAt(next)
		return false
	}
	return true
}

func (m *machine) routed(w int32) bool {
	return m.obs.RoutedWeight != nil && *m.obs.RoutedWeight == w
}

func (m *machine) wakeAt(t time.Time) {
	if m.wake.IsZero() || t.Before(m.wake) {
		m.wake = t
	}
}

func (m *machine) timeNow() *metav1.Time {
	t := metav1.NewTime(m.now)
	return &t
}

func (m *machine) event(eventType, reason, msg string) {
	m.events = append(m.events, Event{Type: eventType, Reason: reason, Message: msg})
}

// desired derives the cluster state from the phase the machine ended in.
func (m *machine) desired() Desired {
	d := Desired{CanaryWeight: m.st.CanaryWeight}
	switch m.st.Phase {
	case "", sluicev1.PhaseInitializing:
		d.CanaryUp = true
		d.PrimaryRevision = m.obs.Revision
	case sluicev1.PhaseProgressing, sluicev1.PhaseWaitingPromotion:
		d.CanaryUp = true
		// A request rule sends all of its requests to the canary: never
		// while the canary is not ready (its cohort would get errors); the
		// weights wait for readiness the same way.
		d.Experiment = hasExperiment(m.spec) && !m.spec.SkipAnalysis && m.obs.CanaryReady
		if ScalesWithWeight(m.spec) {
			d.CanaryMinReplicas = m.weightedReplicas(m.stepWeight())
		}
	case sluicev1.PhaseFinalising:
		d.CanaryUp = true
		d.CanaryMinReplicas = m.primaryServing()
	case sluicev1.PhasePromoting:
		d.CanaryUp = true
		// Sized to take all traffic before it gets it.
		d.CanaryMinReplicas = m.primaryServing()
		if m.promotePrimary {
			d.PrimaryRevision = m.st.CanaryRevision
		}
	case sluicev1.PhaseFailed:
		// After an abort during a promotion the canary serves while the
		// primary is given its stable revision back.
		d.CanaryUp = m.st.CanaryWeight > 0
		if m.st.CanaryWeight > 0 && m.obs.PrimaryRevision != m.st.StableRevision && m.obs.PrimaryRestorable {
			d.PrimaryRevision = m.st.StableRevision
		}
	default:
		// Idle or waiting at confirm-rollout: no traffic, no canary.
		d.CanaryWeight = 0
	}
	if m.sheltered {
		// Its share is held on the primary (shelter, rescueShare).
		d.CanaryWeight = 0
	}
	if !d.CanaryUp && m.drainsCanary() {
		// No traffic is meant for the canary, but the data plane may
		// still send some: its pods go only after the drain.
		d.CanaryUp = true
	}
	if d.CanaryUp {
		// The target's autoscaler would raise a smaller canary anyway.
		d.CanaryMinReplicas = max(d.CanaryMinReplicas, m.obs.AutoscalerMinReplicas)
	} else {
		d.PassOwnerReplicas = m.st.TargetScaledDown
	}
	if !m.obs.TargetFound {
		d.CanaryUp = false
		d.PrimaryRevision = ""
	}
	return d
}

// trackTargetScale records whether the target is parked at zero replicas
// outside a run, so that a count its owner sets later can be told from one
// left over from a run.
func (m *machine) trackTargetScale(d Desired) {
	switch {
	case d.CanaryUp:
		m.st.TargetScaledDown = false
	case m.obs.TargetFound && m.obs.TargetReplicas == 0:
		m.st.TargetScaledDown = true
	}
}

// takeSkip consumes a promote action's skip of the current step.
func (m *machine) takeSkip() bool {
	skip := m.skipStep
	m.skipStep = false
	return skip
}

// applyAction carries out a runtime action asked for with the annotation.
func (m *machine) applyAction() {
	a := m.obs.Action
	if a == "" {
		return
	}
	asked := sluicev1.ActionRecord{Action: a, By: m.obs.ActionBy, ID: m.obs.ActionID}
	if asked.ID != "" && m.st.LastAction != nil && *m.st.LastAction == asked {
		// Carried out already: only the removal of its annotations was
		// lost, which the reconciler does again.
		return
	}
	by := m.obs.ActionBy
	if by == "" {
		by = "an unnamed user"
	}
	done := func(msg string) {
		m.st.LastAction = &asked
		m.event(corev1.EventTypeNormal, "Action"+actionReason(a), fmt.Sprintf("%s asked by %s: %s", a, by, msg))
	}
	ignored := func(why string) {
		m.event(corev1.EventTypeWarning, "ActionIgnored", fmt.Sprintf("%s asked by %s was ignored: %s", a, by, why))
	}
	running := m.activeRun()
	switch a {
	case sluicev1.ActionPause:
		m.st.Paused = true
		done("the Rollout holds where it is until resumed")
	case sluicev1.ActionResume:
		if !m.st.Paused {
			ignored("the Rollout is not paused")
			return
		}
		m.st.Paused = false
		done("the Rollout carries on")
	case sluicev1.ActionAbort:
		if !running || m.st.Phase == sluicev1.PhaseFinalising {
			ignored("no run that can be rolled back is under way (in Finalising the primary already runs the new revision)")
			return
		}
		done("rolling back")
		m.rollback("Aborted", "aborted by "+by)
	case sluicev1.ActionRetry:
		if m.st.Phase != sluicev1.PhaseFailed || m.obs.Revision != m.st.FailedRevision {
			ignored("there is no failed revision to release again")
			return
		}
		m.st.FailedRevision = ""
		done("releasing revision " + m.obs.Revision + " again")
		m.startRun(m.obs.Revision)
	case sluicev1.ActionPromote:
		if !running {
			ignored("no run is under way")
			return
		}
		m.skipStep = true
		done("ending the current step")
	case sluicev1.ActionPromoteFull:
		if !running {
			ignored("no run is under way")
			return
		}
		m.st.FullPromotion = true
		done("skipping the remaining steps and gates")
	default:
		ignored("unknown action; use promote, promote-full, abort, retry, pause or resume")
	}
}

func actionReason(a sluicev1.Action) string {
	switch a {
	case sluicev1.ActionPromoteFull:
		return "PromoteFull"
	case "":
		return ""
	}
	return strings.ToUpper(string(a[:1])) + string(a[1:])
}
