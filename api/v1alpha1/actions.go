package v1alpha1

// Runtime actions are asked for with an annotation on the Rollout, which the
// controller carries out and then removes. No spec field changes, so a GitOps
// tool sees no drift and reverts nothing.
const (
	// ActionAnnotation holds the action asked for (an Action).
	ActionAnnotation = "sluice.dev/action"
	// ActionByAnnotation names who asked; `kubectl sluice` fills it with the
	// user the API server authenticated (a SelfSubjectReview).
	ActionByAnnotation = "sluice.dev/action-by"
	// ActionIDAnnotation tells one request from the next; `kubectl sluice`
	// sets a new one with each. The controller records the id of the
	// action it carried out (status.lastAction), so the same request is
	// carried out once even if removing its annotations fails.
	ActionIDAnnotation = "sluice.dev/action-id"
)

// ActionRecord is a runtime action carried out, as its annotations asked
// (unbounded: a status field Sluice writes, copied from them).
type ActionRecord struct {
	// Action is the action asked for.
	Action Action `json:"action"`
	// By names who asked, as sluice.dev/action-by did.
	// +optional
	By string `json:"by,omitempty"`
	// ID is the request's sluice.dev/action-id, if it had one.
	// +optional
	ID string `json:"id,omitempty"`
}

// Action is a runtime action on a Rollout.
type Action string

// Runtime actions.
const (
	// ActionPromote ends the current step now: a pause, a hold, or a closed
	// confirm gate of the current step.
	ActionPromote Action = "promote"
	// ActionPromoteFull skips every remaining step and gate and promotes.
	ActionPromoteFull Action = "promote-full"
	// ActionAbort rolls the current run back now.
	ActionAbort Action = "abort"
	// ActionRetry releases the failed revision again.
	ActionRetry Action = "retry"
	// ActionPause holds the Rollout where it is, like spec.suspend.
	ActionPause Action = "pause"
	// ActionResume ends a pause.
	ActionResume Action = "resume"
)

// ConditionPaused is True while a pause action holds the Rollout.
const ConditionPaused = "Paused"

// PendingAction is the request the action annotations hold that the
// controller has not carried out yet, or nil. A request whose id last (the
// Rollout's status.lastAction) records is done: only the removal of its
// annotations is still to come, so it is not shown as pending.
func PendingAction(annotations map[string]string, last *ActionRecord) *ActionRecord {
	a := annotations[ActionAnnotation]
	if a == "" {
		return nil
	}
	asked := &ActionRecord{Action: Action(a), By: annotations[ActionByAnnotation], ID: annotations[ActionIDAnnotation]}
	if asked.ID != "" && last != nil && *last == *asked {
		return nil
	}
	return asked
}
