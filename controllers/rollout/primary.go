package rollout

import (
	"fmt"
	"maps"
	"slices"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// primarySuffix names the primary's Deployment, Service and config copies.
const primarySuffix = "-primary"

// RolloutLabel on Sluice's objects names the Rollout they belong to.
const RolloutLabel = "sluice.dev/rollout"

// selectors returns the label selectors of the canary (the target's own) and
// of the primary (the same keys, values suffixed with -primary), so that the
// two sets of pods never match each other's Service.
func selectors(target *appsv1.Deployment) (canary, primary map[string]string, err error) {
	sel := target.Spec.Selector
	if sel == nil || len(sel.MatchLabels) == 0 {
		return nil, nil, fmt.Errorf("deployment %s has no spec.selector.matchLabels: Sluice needs them to tell primary and canary pods apart", target.Name)
	}
	if len(sel.MatchExpressions) > 0 {
		return nil, nil, fmt.Errorf("deployment %s selects pods with matchExpressions: Sluice supports matchLabels only", target.Name)
	}
	canary = maps.Clone(sel.MatchLabels)
	primary = make(map[string]string, len(canary))
	for k, v := range canary {
		primary[k] = primaryName(v)
	}
	return canary, primary, nil
}

func primaryName(name string) string { return name + primarySuffix }

// buildPrimary returns the primary Deployment for a target: the target's
// spec with primary selector labels, the pod selectors of its spread
// constraints and pod (anti-)affinity turned to the primary's pods, config
// references renamed to the primary's own copies, and the revision it runs.
func buildPrimary(target *appsv1.Deployment, primarySelector map[string]string, copied map[string]bool, rev string, replicas int32) *appsv1.Deployment {
	spec := target.Spec.DeepCopy()
	spec.Replicas = &replicas
	spec.Selector = &metav1.LabelSelector{MatchLabels: maps.Clone(primarySelector)}
	if spec.Template.Labels == nil {
		spec.Template.Labels = map[string]string{}
	}
	// The revision on the pod template too: a release of configuration only
	// leaves the template otherwise unchanged, and the primary's pods must
	// restart to read their new -primary copies.
	if spec.Template.Annotations == nil {
		spec.Template.Annotations = map[string]string{}
	}
	spec.Template.Annotations[RevisionAnnotation] = rev
	maps.Copy(spec.Template.Labels, primarySelector)
	renameConfigRefs(&spec.Template.Spec, copied)
	if target.Spec.Selector != nil {
		relabel{target: target.Spec.Selector.MatchLabels, primary: primarySelector}.podSelectors(&spec.Template.Spec, target.Namespace)
	}

	labels := maps.Clone(target.Labels)
	if labels == nil {
		labels = map[string]string{}
	}
	labels[RolloutLabel] = target.Name
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{
			Name:        primaryName(target.Name),
			Namespace:   target.Namespace,
			Labels:      labels,
			Annotations: map[string]string{RevisionAnnotation: rev},
		},
		Spec: *spec,
	}
}

// renameConfigRefs points every reference to a copied ConfigMap or Secret
// at its -primary copy; copied holds configRef keys.
func renameConfigRefs(spec *corev1.PodSpec, copied map[string]bool) {
	rename := func(kind configKind, name *string) {
		if copied[configRef{Kind: kind, Name: *name}.key()] {
			*name = primaryName(*name)
		}
	}
	for i := range spec.Volumes {
		v := &spec.Volumes[i]
		if v.ConfigMap != nil {
			rename(kindConfigMap, &v.ConfigMap.Name)
		}
		if v.Secret != nil {
			rename(kindSecret, &v.Secret.SecretName)
		}
		if v.Projected != nil {
			for j := range v.Projected.Sources {
				s := &v.Projected.Sources[j]
				if s.ConfigMap != nil {
					rename(kindConfigMap, &s.ConfigMap.Name)
				}
				if s.Secret != nil {
					rename(kindSecret, &s.Secret.Name)
				}
			}
		}
	}
	for _, c := range allContainers(spec) {
		for i := range c.EnvFrom {
			if r := c.EnvFrom[i].ConfigMapRef; r != nil {
				rename(kindConfigMap, &r.Name)
			}
			if r := c.EnvFrom[i].SecretRef; r != nil {
				rename(kindSecret, &r.Name)
			}
		}
		for i := range c.Env {
			vf := c.Env[i].ValueFrom
			if vf == nil {
				continue
			}
			if k := vf.ConfigMapKeyRef; k != nil {
				rename(kindConfigMap, &k.Name)
			}
			if k := vf.SecretKeyRef; k != nil {
				rename(kindSecret, &k.Name)
			}
		}
	}
}

// deploymentReady reports whether a Deployment runs all its replicas at its
// current template, with a message for when it does not.
func deploymentReady(d *appsv1.Deployment) (bool, string) {
	want := int32(1)
	if d.Spec.Replicas != nil {
		want = *d.Spec.Replicas
	}
	s := d.Status
	switch {
	case want == 0:
		return false, "scaled to zero"
	case s.ObservedGeneration < d.Generation:
		return false, "the Deployment controller has not observed the latest spec yet"
	case s.UpdatedReplicas < want || s.AvailableReplicas < want || s.Replicas > s.UpdatedReplicas:
		return false, fmt.Sprintf("%d/%d replicas updated, %d available", s.UpdatedReplicas, want, s.AvailableReplicas)
	}
	return true, ""
}

// relabel turns label selectors about the target's pods into selectors
// about the primary's: the primary's pods carry the target's selector keys
// with other values (see selectors).
type relabel struct {
	// target and primary are the two selectors, with the same keys.
	target, primary map[string]string
}

// value returns the primary's value for a label value of the target's pods,
// and any other value unchanged.
func (m relabel) value(key, v string) string {
	if tv, ok := m.target[key]; ok && tv == v {
		return m.primary[key]
	}
	return v
}

// selector returns a copy of sel in which each value the target's pods
// carry on a key of the target's selector is the primary's value instead:
// in matchLabels, and in the values of In and NotIn expressions. A selector
// about other pods comes back equal; Exists and DoesNotExist name keys only,
// which the primary's pods share. nil stays nil.
func (m relabel) selector(sel *metav1.LabelSelector) *metav1.LabelSelector {
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

// podSelectors turns the pod selectors of a pod spec's topology spread
// constraints and pod affinity and anti-affinity terms (required and
// preferred) to the primary's pods, so that the primary spreads over, and
// keeps away from, its own pods as the target does over its own. ns is the
// pod's namespace: an affinity term about other namespaces is left alone.
//
// matchLabelKeys and mismatchLabelKeys name keys, whose values are taken from
// the incoming pod itself; the primary's pods carry the same keys with their
// own values, so those lists are right as they are and kept.
func (m relabel) podSelectors(spec *corev1.PodSpec, ns string) {
	for i := range spec.TopologySpreadConstraints {
		c := &spec.TopologySpreadConstraints[i]
		c.LabelSelector = m.selector(c.LabelSelector)
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
func (m relabel) terms(required []corev1.PodAffinityTerm, preferred []corev1.WeightedPodAffinityTerm, ns string) {
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
func (m relabel) term(t *corev1.PodAffinityTerm, ns string) {
	if t.NamespaceSelector != nil || (len(t.Namespaces) > 0 && !slices.Contains(t.Namespaces, ns)) {
		return
	}
	t.LabelSelector = m.selector(t.LabelSelector)
}
