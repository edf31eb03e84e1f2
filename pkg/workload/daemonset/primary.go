package daemonset

import (
	"fmt"
	"maps"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/sluice-dev/sluice/pkg/workload"
)

// Selectors returns the label selectors of the canary (the target's own) and
// of the primary (the same keys, values suffixed with -primary), or an error
// saying why Sluice cannot run the target's pods beside the primary's.
func Selectors(target *appsv1.DaemonSet) (canary, primary map[string]string, err error) {
	if err := CanSplit(target); err != nil {
		return nil, nil, err
	}
	return workload.SplitSelector("daemonset", target.Name, target.Spec.Selector)
}

// CanSplit returns why the pods of a DaemonSet cannot run as a primary and a
// canary side by side, nil when they can. During a run both run on the same
// nodes, one pod each per node, and each set must be reachable through its
// own Service:
//   - on the host's network or on a host port, the second pod on a node
//     could not bind its port (and a Service could not tell the two apart):
//     it would never start, and at installation the primary never would;
//   - with updateStrategy OnDelete, a new revision never replaces the
//     primary's pods at promotion, nor the canary's during a run.
func CanSplit(d *appsv1.DaemonSet) error {
	spec := &d.Spec.Template.Spec
	if spec.HostNetwork {
		return fmt.Errorf("daemonset %s runs on the host's network (hostNetwork: true): its primary and canary pods would share each node's ports, so Sluice cannot run them side by side", d.Name)
	}
	for _, c := range append(append([]corev1.Container{}, spec.InitContainers...), spec.Containers...) {
		for _, p := range c.Ports {
			if p.HostPort != 0 {
				return fmt.Errorf("daemonset %s binds host port %d (container %s): its primary and canary pods cannot both bind it on a node, so Sluice cannot run them side by side", d.Name, p.HostPort, c.Name)
			}
		}
	}
	if d.Spec.UpdateStrategy.Type == appsv1.OnDeleteDaemonSetStrategyType {
		return fmt.Errorf("daemonset %s has updateStrategy OnDelete: a new revision would never replace the primary's pods; use RollingUpdate", d.Name)
	}
	return nil
}

// BuildPrimary returns the primary DaemonSet for a target: the target's
// spec, never parked (the user's nodeSelector and affinity as written),
// with primary selector labels, the pod selectors of its spread constraints
// and pod (anti-)affinity turned to the primary's pods, config references
// renamed to the primary's own copies, and the revision it runs. It runs on
// the nodes the target's spec selects; p.Replicas does not apply.
func BuildPrimary(target *appsv1.DaemonSet, p workload.Primary) *appsv1.DaemonSet {
	spec := target.Spec.DeepCopy()
	workload.Unpark(&spec.Template.Spec)
	spec.Selector = &metav1.LabelSelector{MatchLabels: maps.Clone(p.Selector)}
	var targetSel map[string]string
	if target.Spec.Selector != nil {
		targetSel = target.Spec.Selector.MatchLabels
	}
	workload.PrimaryTemplate(&spec.Template, targetSel, target.Namespace, p)
	return &appsv1.DaemonSet{ObjectMeta: workload.PrimaryMeta(&target.ObjectMeta, p.Revision), Spec: *spec}
}

// Parked reports whether a DaemonSet is parked (runs on no node).
func Parked(d *appsv1.DaemonSet) bool { return workload.IsParked(&d.Spec.Template.Spec) }

// Replicas is how many pods a DaemonSet asks for: 0 while parked, else the
// nodes its controller schedules it on, at least 1.
func Replicas(d *appsv1.DaemonSet) int32 {
	if Parked(d) {
		return 0
	}
	return max(d.Status.DesiredNumberScheduled, 1)
}

// Ready reports whether a DaemonSet runs its current spec on every node it
// selects with at least percent of those pods available (100: all), with a
// message for when it does not.
func Ready(d *appsv1.DaemonSet, percent int32) (bool, string) {
	s := d.Status
	want := s.DesiredNumberScheduled
	// As for a Deployment, a threshold relaxes how many updated pods must be
	// available, never that every node runs the current spec; at least one
	// must be available.
	need := want
	if percent > 0 && percent < 100 {
		need = max((want*percent+99)/100, 1)
	}
	switch {
	case Parked(d):
		return false, fmt.Sprintf("parked: its pods require the node label %s, which no node carries", workload.ParkedNodeLabel)
	case s.ObservedGeneration < d.Generation:
		return false, "the DaemonSet controller has not observed the latest spec yet"
	case want == 0:
		return false, "no node to run on: its nodeSelector, affinity and tolerations select none"
	case s.UpdatedNumberScheduled < want || (need == want && s.NumberAvailable < want):
		return false, fmt.Sprintf("%d/%d nodes run the current spec, %d available", s.UpdatedNumberScheduled, want, s.NumberAvailable)
	case s.NumberAvailable < need:
		return false, fmt.Sprintf("%d/%d nodes run the current spec, %d available (%d needed: readiness threshold %d%%)", s.UpdatedNumberScheduled, want, s.NumberAvailable, need, percent)
	}
	return true, ""
}
