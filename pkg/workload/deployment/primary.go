package deployment

import (
	"fmt"
	"maps"

	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/sluice-dev/sluice/pkg/workload"
)

// Selectors returns the label selectors of the canary (the target's own) and
// of the primary (the same keys, values suffixed with -primary), so that the
// two sets of pods never match each other's Service.
func Selectors(target *appsv1.Deployment) (canary, primary map[string]string, err error) {
	return workload.SplitSelector("deployment", target.Name, target.Spec.Selector)
}

// BuildPrimary returns the primary Deployment for a target: the target's
// spec with primary selector labels, the pod selectors of its spread
// constraints and pod (anti-)affinity turned to the primary's pods, config
// references renamed to the primary's own copies, and the revision it runs.
func BuildPrimary(target *appsv1.Deployment, p workload.Primary) *appsv1.Deployment {
	spec := target.Spec.DeepCopy()
	replicas := p.Replicas
	spec.Replicas = &replicas
	spec.Selector = &metav1.LabelSelector{MatchLabels: maps.Clone(p.Selector)}
	var targetSel map[string]string
	if target.Spec.Selector != nil {
		targetSel = target.Spec.Selector.MatchLabels
	}
	workload.PrimaryTemplate(&spec.Template, targetSel, target.Namespace, p)
	return &appsv1.Deployment{ObjectMeta: workload.PrimaryMeta(&target.ObjectMeta, p.Revision), Spec: *spec}
}

// Ready reports whether a Deployment runs all its replicas at its current
// template with at least percent of them available (100: all), with a
// message for when it does not.
func Ready(d *appsv1.Deployment, percent int32) (bool, string) {
	want := Replicas(d)
	s := d.Status
	// A threshold relaxes how many updated replicas must be available, never
	// that all run the new template and no old one is left (as Flagger's
	// ready thresholds); at least one must be available.
	need := want
	if percent > 0 && percent < 100 {
		need = max((want*percent+99)/100, 1)
	}
	switch {
	case want == 0:
		return false, "scaled to zero"
	case s.ObservedGeneration < d.Generation:
		return false, "the Deployment controller has not observed the latest spec yet"
	case s.UpdatedReplicas < want || s.Replicas > s.UpdatedReplicas || (need == want && s.AvailableReplicas < want):
		return false, fmt.Sprintf("%d/%d replicas updated, %d available", s.UpdatedReplicas, want, s.AvailableReplicas)
	case s.AvailableReplicas < need:
		return false, fmt.Sprintf("%d/%d replicas updated, %d available (%d needed: readiness threshold %d%%)", s.UpdatedReplicas, want, s.AvailableReplicas, need, percent)
	}
	return true, ""
}

// Replicas is how many pods a Deployment asks for (1 when unset, as the
// API server defaults it).
func Replicas(d *appsv1.Deployment) int32 {
	if d.Spec.Replicas == nil {
		return 1
	}
	return *d.Spec.Replicas
}
