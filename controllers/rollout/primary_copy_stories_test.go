package rollout_test

import (
	"fmt"
	"maps"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// spreadAndAntiAffinity makes the target spread its own pods over zones,
// keep them off each other's nodes (required) and hosts (preferred), and
// keep them away from the pods of another app.
func spreadAndAntiAffinity(own, other string) deployOpt {
	return func(d *appsv1.Deployment) {
		ownSel := &metav1.LabelSelector{MatchLabels: map[string]string{"app": own}}
		d.Spec.Template.Spec.TopologySpreadConstraints = []corev1.TopologySpreadConstraint{{
			MaxSkew: 1, TopologyKey: "topology.kubernetes.io/zone", WhenUnsatisfiable: corev1.ScheduleAnyway,
			LabelSelector: ownSel, MatchLabelKeys: []string{"pod-template-hash"},
		}}
		d.Spec.Template.Spec.Affinity = &corev1.Affinity{PodAntiAffinity: &corev1.PodAntiAffinity{
			RequiredDuringSchedulingIgnoredDuringExecution: []corev1.PodAffinityTerm{
				{TopologyKey: "kubernetes.io/hostname", LabelSelector: ownSel},
				{TopologyKey: "kubernetes.io/hostname", LabelSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": other}}},
			},
			PreferredDuringSchedulingIgnoredDuringExecution: []corev1.WeightedPodAffinityTerm{{
				Weight: 50, PodAffinityTerm: corev1.PodAffinityTerm{TopologyKey: "rack", LabelSelector: &metav1.LabelSelector{
					MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "app", Operator: metav1.LabelSelectorOpIn, Values: []string{own}}},
				}},
			}},
		}}
	}
}

func TestThePrimarySpreadsAndAvoidsItsOwnPodsNotTheTargets(t *testing.T) {
	s := newStory(t)
	s.deploy("podinfo", "podinfo:1.0", spreadAndAntiAffinity("podinfo", "redis"))

	s.initialized("podinfo")

	spec := s.getDeployment("podinfo-primary").Spec.Template.Spec
	primaryPods := map[string]string{"app": "podinfo-primary"}
	tsc := spec.TopologySpreadConstraints[0]
	if !maps.Equal(tsc.LabelSelector.MatchLabels, primaryPods) {
		t.Errorf("the primary spreads the pods of %v, want its own %v", tsc.LabelSelector.MatchLabels, primaryPods)
	}
	if len(tsc.MatchLabelKeys) != 1 || tsc.MatchLabelKeys[0] != "pod-template-hash" {
		t.Errorf("matchLabelKeys = %v, want them kept", tsc.MatchLabelKeys)
	}
	anti := spec.Affinity.PodAntiAffinity
	if got := anti.RequiredDuringSchedulingIgnoredDuringExecution[0].LabelSelector.MatchLabels; !maps.Equal(got, primaryPods) {
		t.Errorf("required anti-affinity avoids %v, want the primary's own pods", got)
	}
	if got := anti.RequiredDuringSchedulingIgnoredDuringExecution[1].LabelSelector.MatchLabels; got["app"] != "redis" {
		t.Errorf("the anti-affinity to another app became %v, want app=redis kept", got)
	}
	if got := anti.PreferredDuringSchedulingIgnoredDuringExecution[0].PodAffinityTerm.LabelSelector.MatchExpressions[0].Values; len(got) != 1 || got[0] != "podinfo-primary" {
		t.Errorf("preferred anti-affinity avoids app in %v, want [podinfo-primary]", got)
	}
	// The target keeps what its owner wrote.
	if got := s.getDeployment("podinfo").Spec.Template.Spec.TopologySpreadConstraints[0].LabelSelector.MatchLabels; got["app"] != "podinfo" {
		t.Errorf("the target's own constraint was changed to %v", got)
	}
}

// pdb creates a PodDisruptionBudget with minAvailable 1 over app=app.
func (s *story) pdb(name, app string) {
	s.t.Helper()
	s.must(k8sClient.Create(s.ctx, &policyv1.PodDisruptionBudget{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: s.ns},
		Spec: policyv1.PodDisruptionBudgetSpec{
			MinAvailable: ptrTo(intstr.FromInt32(1)),
			Selector:     &metav1.LabelSelector{MatchLabels: map[string]string{"app": app}},
		},
	}))
}

// getPDB returns a PodDisruptionBudget, or nil when there is none.
func (s *story) getPDB(name string) *policyv1.PodDisruptionBudget {
	s.t.Helper()
	p := &policyv1.PodDisruptionBudget{}
	err := k8sClient.Get(s.ctx, client.ObjectKey{Namespace: s.ns, Name: name}, p)
	if apierrors.IsNotFound(err) {
		return nil
	}
	s.must(err)
	return p
}

// waitPDBCopy waits until the primary's copy of a PodDisruptionBudget exists.
func (s *story) waitPDBCopy(name string) *policyv1.PodDisruptionBudget {
	s.t.Helper()
	var p *policyv1.PodDisruptionBudget
	s.eventually(storyTimeout, "PodDisruptionBudget "+name, func() error {
		if p = s.getPDB(name); p == nil {
			return fmt.Errorf("not found")
		}
		return nil
	})
	return p
}

func TestAPodDisruptionBudgetOfTheTargetAlsoGuardsThePrimary(t *testing.T) {
	s := newStory(t)
	s.pdb("podinfo", "podinfo")
	s.pdb("redis", "redis")
	s.deploy("podinfo", "podinfo:1.0")

	ro := s.initialized("podinfo")

	cp := s.waitPDBCopy("podinfo-primary")
	if got := cp.Spec.Selector.MatchLabels; !maps.Equal(got, map[string]string{"app": "podinfo-primary"}) {
		t.Errorf("the copy selects %v, want the primary's pods", got)
	}
	if cp.Spec.MinAvailable == nil || cp.Spec.MinAvailable.IntValue() != 1 || cp.Spec.MaxUnavailable != nil {
		t.Errorf("the copy's budget is minAvailable %v maxUnavailable %v, want the original's minAvailable 1", cp.Spec.MinAvailable, cp.Spec.MaxUnavailable)
	}
	if !metav1.IsControlledBy(cp, ro) {
		t.Errorf("the copy is not owned by the Rollout: %v", cp.OwnerReferences)
	}
	if cp.Labels["sluice.dev/rollout"] != "podinfo" {
		t.Errorf("the copy's labels = %v", cp.Labels)
	}
	if s.getPDB("redis-primary") != nil {
		t.Errorf("another app's PodDisruptionBudget was copied")
	}
	if got := s.getPDB("podinfo").Spec.Selector.MatchLabels; got["app"] != "podinfo" {
		t.Errorf("the original PodDisruptionBudget was changed to select %v", got)
	}
}

func TestAPodDisruptionBudgetWrittenLaterIsCopiedAndItsRemovalRemovesTheCopy(t *testing.T) {
	s := newStory(t)
	s.deploy("podinfo", "podinfo:1.0")
	s.initialized("podinfo")

	s.pdb("podinfo", "podinfo")
	s.waitPDBCopy("podinfo-primary")

	s.must(k8sClient.Delete(s.ctx, s.getPDB("podinfo")))
	s.eventually(storyTimeout, "the copy removed with its original", func() error {
		if p := s.getPDB("podinfo-primary"); p != nil && p.DeletionTimestamp.IsZero() {
			return fmt.Errorf("podinfo-primary still there")
		}
		return nil
	})
}
