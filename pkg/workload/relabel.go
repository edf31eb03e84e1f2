package workload

import (
	"slices"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Relabel turns label selectors about the target's pods into selectors
// about the primary's: the primary's pods carry the target's selector keys
// with other values (see the kind's Selectors).
type Relabel struct {
	// Target and Primary are the two selectors, with the same keys.
	Target, Primary map[string]string
}

// value returns the primary's value for a label value of the target's pods,
// and any other value unchanged.
func (m Relabel) value(key, v string) string {
	if tv, ok := m.Target[key]; ok && tv == v {
		return m.Primary[key]
	}
	return v
}

// Selector returns a copy of sel in which each value the target's pods
// carry on a key of the target's selector is the primary's value instead:
// in matchLabels, and in the values of In and NotIn expressions. A selector
// about other pods comes back equal; Exists and DoesNotExist name keys only,
// which the primary's pods share. nil stays nil.
func (m Relabel) Selector(sel *metav1.LabelSelector) *metav1.LabelSelector {
	if sel == nil {
		return nil
	}
	out := sel.DeepCopy()
	for k, v := range out.MatchLabels {
		out.MatchLabels[k] = m.value(k, v)
	}
	for i := range out.MatchExpressions {
		e := &out.MatchExpressions[i]
		if e.Operator != metav1.LabelSelectorOpIn && e.Operator != metav1.LabelSelectorOpNotIn {
			continue
		}
		for j, v := range e.Values {
			e.Values[j] = m.value(e.Key, v)
		}
	}
	return out
}

// PodSelectors turns the pod selectors of a pod spec's topology spread
// constraints and pod affinity and anti-affinity terms (required and
// preferred) to the primary's pods, so that the primary spreads over, and
// keeps away from, its own pods as the target does over its own. ns is the
// pod's namespace: an affinity term about other namespaces is left alone.
//
// matchLabelKeys and mismatchLabelKeys name keys, whose values are taken from
// the incoming pod itself; the primary's pods carry the same keys with their
// own values, so those lists are right as they are and kept.
func (m Relabel) PodSelectors(spec *corev1.PodSpec, ns string) {
	for i := range spec.TopologySpreadConstraints {
		c := &spec.TopologySpreadConstraints[i]
		c.LabelSelector = m.Selector(c.LabelSelector)
	}
	if spec.Affinity == nil {
		return
	}
	if a := spec.Affinity.PodAffinity; a != nil {
		m.terms(a.RequiredDuringSchedulingIgnoredDuringExecution, a.PreferredDuringSchedulingIgnoredDuringExecution, ns)
	}
	if a := spec.Affinity.PodAntiAffinity; a != nil {
		m.terms(a.RequiredDuringSchedulingIgnoredDuringExecution, a.PreferredDuringSchedulingIgnoredDuringExecution, ns)
	}
}

// terms relabels the selectors of affinity terms in place.
func (m Relabel) terms(required []corev1.PodAffinityTerm, preferred []corev1.WeightedPodAffinityTerm, ns string) {
	for i := range required {
		m.term(&required[i], ns)
	}
	for i := range preferred {
		m.term(&preferred[i].PodAffinityTerm, ns)
	}
}

// term relabels one affinity term's labelSelector when the term looks at
// the pod's own namespace (no namespaceSelector, and no namespaces or a list
// that holds ns): elsewhere the same labels are other pods.
func (m Relabel) term(t *corev1.PodAffinityTerm, ns string) {
	if t.NamespaceSelector != nil || (len(t.Namespaces) > 0 && !slices.Contains(t.Namespaces, ns)) {
		return
	}
	t.LabelSelector = m.Selector(t.LabelSelector)
}

// Pins reports whether sel requires one of the target's selector labels.
func (m Relabel) Pins(sel *metav1.LabelSelector) bool {
	for k, v := range m.Target {
		if got, ok := sel.MatchLabels[k]; ok && got == v {
			return true
		}
		for _, e := range sel.MatchExpressions {
			if e.Key == k && e.Operator == metav1.LabelSelectorOpIn && slices.Equal(e.Values, []string{v}) {
				return true
			}
		}
	}
	return false
}
