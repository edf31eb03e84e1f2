package statemachine

import (
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	sluicev1 "github.com/sluice-dev/sluice/api/v1alpha1"
	"github.com/sluice-dev/sluice/pkg/steps"
)

// Draining: gateways, meshes and kube-proxy apply a route or endpoint change
// some time after the API object says it (a fraction of a second normally,
// several seconds on a loaded node). Pods that the route stops sending
// traffic to are therefore kept for spec.scaleDownDelaySeconds before they
// are scaled down, so that the requests still sent to them are served:
// the canary's after a promotion (Finalising holds until then) or a
// rollback (Failed keeps it up), and the target's at installation
// (Initializing holds). status.canaryDrainingSince is the drain's clock.

// draining reports whether pods that the route has stopped sending traffic
// to (whose names them) must still be kept: for spec.scaleDownDelaySeconds
// (its value now, so an edit mid-drain takes effect at once) from
// status.canaryDrainingSince, which it sets, with an event, the first time.
// It wakes the machine at the drain's end.
func (m *machine) draining(whose string) bool {
	delay := steps.ScaleDownDelay(m.spec)
	// A drain read back from the API server must not end early. A start
	// in the future (an edited status, another replica's clock ahead)
	// starts again now.
	now := wholeSecondUp(m.now)
	if since := m.st.CanaryDrainingSince; since == nil || since.After(now) {
		m.st.CanaryDrainingSince = &metav1.Time{Time: now}
		if delay > 0 {
			m.event(corev1.EventTypeNormal, "Draining", m.drainMessage(whose))
		}
	}
	if delay == 0 {
		return false
	}
	end := m.st.CanaryDrainingSince.Add(delay)
	if !m.now.Before(end) {
		return false
	}
	m.wakeAt(end)
	return true
}

// drainMessage says why the pods named by whose are kept.
func (m *machine) drainMessage(whose string) string {
	return fmt.Sprintf("traffic moved to the primary; keeping %s pods for %s while the data plane drains",
		whose, steps.ScaleDownDelay(m.spec))
}

// drainsCanary reports whether a canary that the phase no longer needs
// keeps its pods: while the route may still send it traffic, and for a
// drain after it sends none. A rollback starts its drain when the route is
// first seen sending the canary nothing; other phases only carry on a
// drain already recorded (a new revision held at confirm-rollout, the
// target set back to the stable revision). A drain never scales a target
// up from zero: one without replicas, or seen parked since its run ended
// (a count on it is then its owner's), has nothing to drain.
func (m *machine) drainsCanary() bool {
	if !m.obs.TargetFound || m.obs.TargetReplicas == 0 || m.st.TargetScaledDown {
		return false
	}
	if !m.routed(0) {
		return true
	}
	if m.st.CanaryDrainingSince == nil && m.st.Phase != sluicev1.PhaseFailed {
		return false
	}
	return m.draining("the canary's")
}

// wholeSecondUp is t rounded up to a whole second: the API server keeps
// no fraction of a status time, and a time read back from it must not end
// a wait early.
func wholeSecondUp(t time.Time) time.Time {
	up := t.Truncate(time.Second)
	if up.Before(t) {
		up = up.Add(time.Second)
	}
	return up
}
