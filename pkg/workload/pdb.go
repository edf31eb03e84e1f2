package workload

import (
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/sluice-dev/sluice/pkg/traffic"
)

// A PodDisruptionBudget written for the target covers the target's pods
// only; the primary's pods, which serve, carry other label values. Sluice
// gives each such budget a "-primary" copy over the primary's pods.

// PrimaryPDB returns the copy for the primary of a PodDisruptionBudget, or
// nil when src is not about the target's pods, whose template carries
// podLabels. src is about them when
//   - its selector matches podLabels, and
//   - it pins a key of the target's selector to the target's value, in
//     matchLabels or in an In expression with that one value.
//
// The pin keeps the copy and src apart: the copy requires the primary's
// value on that key, src the target's, so no pod falls under both (the
// eviction API refuses pods under two budgets). A budget over many apps
// (tier=web, say) is not copied: it covers the primary's pods already.
// Sluice's own copies are never copied again.
func PrimaryPDB(src *policyv1.PodDisruptionBudget, podLabels map[string]string, m Relabel, rollout string) *policyv1.PodDisruptionBudget {
	sel := src.Spec.Selector
	if sel == nil || src.Labels[traffic.ManagedByLabel] == traffic.ManagedByValue || !src.DeletionTimestamp.IsZero() {
		return nil
	}
	s, err := metav1.LabelSelectorAsSelector(sel)
	if err != nil || !s.Matches(labels.Set(podLabels)) || !m.Pins(sel) {
		return nil
	}
	// The same budget (minAvailable or maxUnavailable, and the unhealthy
	// pod eviction policy) over the primary's pods.
	spec := src.Spec.DeepCopy()
	spec.Selector = m.Selector(sel)
	return &policyv1.PodDisruptionBudget{
		ObjectMeta: metav1.ObjectMeta{
			Name: PrimaryName(src.Name), Namespace: src.Namespace,
			Labels: map[string]string{RolloutLabel: rollout, traffic.ManagedByLabel: traffic.ManagedByValue},
		},
		Spec: *spec,
	}
}
