package statemachine

import (
	"fmt"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	sluicev1 "github.com/sluice-dev/sluice/api/v1alpha1"
	"github.com/sluice-dev/sluice/pkg/steps"
)

// summarize sets the conditions from the phase, in one place, following the
// conventions kstatus reads: Reconciling=True while a release runs (InProgress),
// Stalled=True when it needs the user (Failed), and neither when done (Current).
func (m *machine) summarize(generation int64) {
	st := &m.st
	set := func(t string, status metav1.ConditionStatus, reason, msg string) {
		meta.SetStatusCondition(&st.Conditions, metav1.Condition{
			Type: t, Status: status, Reason: reason, Message: msg,
			ObservedGeneration: generation, LastTransitionTime: metav1.NewTime(m.now),
		})
	}
	stalledReason := ""
	switch {
	case !m.obs.TargetFound:
		stalledReason = "TargetNotFound"
	case m.obs.Blocked != "":
		stalledReason = m.obs.BlockedReason
		if stalledReason == "" {
			stalledReason = "Blocked"
		}
	case m.stalled != "":
		stalledReason = m.stalled
	case st.Phase == sluicev1.PhaseFailed:
		stalledReason = m.failReason
		if stalledReason == "" {
			if c := meta.FindStatusCondition(st.Conditions, sluicev1.ConditionStalled); c != nil && c.Status == metav1.ConditionTrue {
				stalledReason = c.Reason
			} else {
				stalledReason = "RolledBack"
			}
		}
	}
	phaseReason := string(st.Phase)
	if phaseReason == "" {
		phaseReason = string(sluicev1.PhaseInitializing)
	}

	if m.stalled != "" {
		// Told once, when the release stops; the condition keeps saying it.
		if c := meta.FindStatusCondition(st.Conditions, sluicev1.ConditionStalled); c == nil || c.Status != metav1.ConditionTrue || c.Reason != m.stalled {
			m.event("Warning", m.stalled, m.stalledMsg)
		}
	}
	if stalledReason != "" {
		set(sluicev1.ConditionStalled, metav1.ConditionTrue, stalledReason, st.Message)
	} else {
		meta.RemoveStatusCondition(&st.Conditions, sluicev1.ConditionStalled)
	}

	running := m.activeRun() || st.Phase == sluicev1.PhaseInitializing || st.Phase == ""
	if running && stalledReason == "" {
		set(sluicev1.ConditionReconciling, metav1.ConditionTrue, phaseReason, st.Message)
	} else {
		meta.RemoveStatusCondition(&st.Conditions, sluicev1.ConditionReconciling)
	}

	done := st.Phase == sluicev1.PhaseInitialized || st.Phase == sluicev1.PhaseSucceeded
	switch {
	case done && stalledReason == "":
		set(sluicev1.ConditionReady, metav1.ConditionTrue, phaseReason, st.Message)
	case stalledReason != "":
		set(sluicev1.ConditionReady, metav1.ConditionFalse, stalledReason, st.Message)
	default:
		set(sluicev1.ConditionReady, metav1.ConditionFalse, phaseReason, st.Message)
	}

	if m.spec.Suspend {
		set(sluicev1.ConditionSuspended, metav1.ConditionTrue, "SuspendedBySpec", "spec.suspend is true")
	} else {
		meta.RemoveStatusCondition(&st.Conditions, sluicev1.ConditionSuspended)
	}
	if st.Paused {
		set(sluicev1.ConditionPaused, metav1.ConditionTrue, "PausedByAction", "paused by a pause action; resume to carry on")
	} else {
		meta.RemoveStatusCondition(&st.Conditions, sluicev1.ConditionPaused)
	}
	// A closed gate stays reported between the calls that ask it again; it
	// clears when a gate answers open or the release moves on.
	switch {
	case m.gateHeld != "":
		set(sluicev1.ConditionGate, metav1.ConditionTrue, "GateClosed", m.gateHeld)
	case m.need != nil || m.spec.Suspend || st.Paused:
		keepGeneration(st.Conditions, sluicev1.ConditionGate, generation)
	case !m.gateAsked && st.Phase == m.inputPhase && m.activeRun():
		keepGeneration(st.Conditions, sluicev1.ConditionGate, generation)
	case m.gateAsked || st.Phase != m.inputPhase || !m.activeRun():
		meta.RemoveStatusCondition(&st.Conditions, sluicev1.ConditionGate)
	}

	st.StepProgress = ""
	if m.activeRun() {
		if n := len(steps.Plan(m.spec)); n > 0 {
			st.StepProgress = fmt.Sprintf("%d/%d", min(int(st.CurrentStepIndex)+1, n), n)
		}
	}
}

// keepGeneration marks a condition kept as it was as current for generation.
func keepGeneration(conds []metav1.Condition, t string, generation int64) {
	if c := meta.FindStatusCondition(conds, t); c != nil {
		c.ObservedGeneration = generation
	}
}
