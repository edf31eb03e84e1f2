package workload

import (
	"fmt"
	"maps"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// SplitSelector returns the label selectors of the canary (a target's own,
// sel) and of the primary (the same keys, values suffixed with -primary), so
// that the two sets of pods never match each other's Service; or an error
// saying why Sluice cannot split the pods of the target, a kind (lower
// case, for the message) named name.
func SplitSelector(kind, name string, sel *metav1.LabelSelector) (canary, primary map[string]string, err error) {
	if sel == nil || len(sel.MatchLabels) == 0 {
		return nil, nil, fmt.Errorf("%s %s has no spec.selector.matchLabels: Sluice needs them to tell primary and canary pods apart", kind, name)
	}
	if len(sel.MatchExpressions) > 0 {
		return nil, nil, fmt.Errorf("%s %s selects pods with matchExpressions: Sluice supports matchLabels only", kind, name)
	}
	canary = maps.Clone(sel.MatchLabels)
	primary = make(map[string]string, len(canary))
	for k, v := range canary {
		primary[k] = PrimaryName(v)
	}
	return canary, primary, nil
}

// PrimaryTemplate turns tmpl, a copy of a target's pod template, into the
// primary's: the primary's selector labels, config references renamed to
// the primary's own copies, the pod selectors of its spread constraints and
// pod (anti-)affinity turned to the primary's pods (targetSel is the
// target's matchLabels, ns its namespace), and the revision it runs.
func PrimaryTemplate(tmpl *corev1.PodTemplateSpec, targetSel map[string]string, ns string, p Primary) {
	if tmpl.Labels == nil {
		tmpl.Labels = map[string]string{}
	}
	// The revision on the pod template too: a release of configuration only
	// leaves the template otherwise unchanged, and the primary's pods must
	// restart to read their new -primary copies.
	if tmpl.Annotations == nil {
		tmpl.Annotations = map[string]string{}
	}
	tmpl.Annotations[RevisionAnnotation] = p.Revision
	maps.Copy(tmpl.Labels, p.Selector)
	RenameConfigRefs(&tmpl.Spec, p.Copied)
	if targetSel != nil {
		Relabel{Target: targetSel, Primary: p.Selector}.PodSelectors(&tmpl.Spec, ns)
	}
}

// PrimaryMeta is the metadata of a target's primary at revision rev: named
// PrimaryName of the target, with the target's labels and RolloutLabel.
func PrimaryMeta(target *metav1.ObjectMeta, rev string) metav1.ObjectMeta {
	labels := maps.Clone(target.Labels)
	if labels == nil {
		labels = map[string]string{}
	}
	labels[RolloutLabel] = target.Name
	return metav1.ObjectMeta{
		Name:        PrimaryName(target.Name),
		Namespace:   target.Namespace,
		Labels:      labels,
		Annotations: map[string]string{RevisionAnnotation: rev},
	}
}
