package deployment_test

import (
	"maps"
	"slices"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/sluice-dev/sluice/pkg/workload"
	"github.com/sluice-dev/sluice/pkg/workload/deployment"
	"github.com/sluice-dev/sluice/pkg/workload/workloadtest"
)

func TestBuildPrimaryGivesThePrimaryItsOwnSelectorAndConfigCopies(t *testing.T) {
	d := workloadtest.Target()
	canary, primarySel, err := deployment.Selectors(d)
	if err != nil {
		t.Fatal(err)
	}
	if canary["app"] != "web" || primarySel["app"] != "web-primary" {
		t.Fatalf("selectors = %v / %v", canary, primarySel)
	}
	// sec-envfrom-primary is someone else's: its copy has the Rollout's name in it.
	copied := map[string]string{"configmap/cm-vol": "cm-vol-primary", "configmap/cm-proj": "cm-proj-primary", "secret/sec-envfrom": "sec-envfrom-web-primary"}
	p := deployment.BuildPrimary(d, workload.Primary{Selector: primarySel, Copied: copied, Revision: "rev1", Replicas: 3})

	if p.Name != "web-primary" || p.Annotations[workload.RevisionAnnotation] != "rev1" || *p.Spec.Replicas != 3 {
		t.Errorf("primary meta = %s %v replicas %d", p.Name, p.Annotations, *p.Spec.Replicas)
	}
	if got := p.Spec.Template.Labels; got["app"] != "web-primary" || got["tier"] != "front" {
		t.Errorf("primary pod labels = %v, want app=web-primary and the target's other labels", got)
	}
	if got := p.Spec.Selector.MatchLabels; !maps.Equal(got, primarySel) {
		t.Errorf("primary selector = %v", got)
	}
	spec := p.Spec.Template.Spec
	if spec.Volumes[0].ConfigMap.Name != "cm-vol-primary" || spec.Volumes[2].Projected.Sources[0].ConfigMap.Name != "cm-proj-primary" {
		t.Errorf("volumes not renamed: %+v", spec.Volumes)
	}
	if spec.Volumes[1].Secret.SecretName != "sec-vol" {
		t.Errorf("an optional, absent (not copied) secret was renamed to %s", spec.Volumes[1].Secret.SecretName)
	}
	if spec.InitContainers[0].EnvFrom[0].SecretRef.Name != "sec-envfrom-web-primary" {
		t.Errorf("envFrom not renamed")
	}
	if spec.Containers[0].Env[0].ValueFrom.ConfigMapKeyRef.Name != "cm-vol-primary" {
		t.Errorf("env valueFrom not renamed")
	}
	if d.Spec.Template.Spec.Volumes[0].ConfigMap.Name != "cm-vol" || d.Spec.Template.Labels["app"] != "web" {
		t.Errorf("BuildPrimary modified the target")
	}
}

func TestSelectorsRefuseTargetsSluiceCannotSplit(t *testing.T) {
	d := workloadtest.Target()
	d.Spec.Selector.MatchExpressions = []metav1.LabelSelectorRequirement{{Key: "app", Operator: metav1.LabelSelectorOpExists}}
	if _, _, err := deployment.Selectors(d); err == nil {
		t.Error("a matchExpressions selector was accepted")
	}
	d.Spec.Selector = &metav1.LabelSelector{}
	if _, _, err := deployment.Selectors(d); err == nil {
		t.Error("an empty selector was accepted")
	}
}

func TestDeploymentReadyNeedsEveryReplicaUpdatedAndAvailable(t *testing.T) {
	d := workloadtest.Target()
	d.Generation = 2
	d.Status = appsv1.DeploymentStatus{ObservedGeneration: 2, Replicas: 3, UpdatedReplicas: 3, AvailableReplicas: 3}
	if ok, msg := deployment.Ready(d, 100); !ok {
		t.Errorf("a rolled-out Deployment is not ready: %s", msg)
	}
	d.Status.AvailableReplicas = 2
	if ok, msg := deployment.Ready(d, 100); ok || msg != "3/3 replicas updated, 2 available" {
		t.Errorf("ready=%v msg=%q with 2 of 3 available", ok, msg)
	}
	d.Status.AvailableReplicas, d.Status.ObservedGeneration = 3, 1
	if ok, _ := deployment.Ready(d, 100); ok {
		t.Error("ready before the Deployment controller observed the spec")
	}
	d.Spec.Replicas = ptr.To[int32](0)
	if ok, _ := deployment.Ready(d, 100); ok {
		t.Error("a Deployment scaled to zero counts as ready")
	}
}

// TestDeploymentReadyAtAThresholdNeedsEveryReplicaUpdatedAndThatShareAvailable:
// a ready threshold (Flagger's primaryReadyThreshold/canaryReadyThreshold)
// relaxes only how many updated replicas must be available; every replica
// must still run the new template, and no old one may be left.
func TestDeploymentReadyAtAThresholdNeedsEveryReplicaUpdatedAndThatShareAvailable(t *testing.T) {
	d := workloadtest.Target()
	d.Spec.Replicas = ptr.To[int32](10)
	d.Generation = 2
	d.Status = appsv1.DeploymentStatus{ObservedGeneration: 2, Replicas: 10, UpdatedReplicas: 10, AvailableReplicas: 8}
	if ok, msg := deployment.Ready(d, 80); !ok {
		t.Errorf("8 of 10 available at a threshold of 80%%: not ready (%s)", msg)
	}
	if ok, msg := deployment.Ready(d, 81); ok || msg != "10/10 replicas updated, 8 available (9 needed: readiness threshold 81%)" {
		t.Errorf("8 of 10 available at 81%%: ready=%v %q", ok, msg)
	}
	d.Status.UpdatedReplicas, d.Status.Replicas = 9, 11
	if ok, _ := deployment.Ready(d, 50); ok {
		t.Error("ready at 50% with a replica not updated and an old one left")
	}
	d.Status = appsv1.DeploymentStatus{ObservedGeneration: 2, Replicas: 10, UpdatedReplicas: 10, AvailableReplicas: 0}
	if ok, _ := deployment.Ready(d, 1); ok {
		t.Error("ready at 1% with no replica available: at least one must be")
	}
}

// withSpreadAndAffinity gives a target a spread constraint and pod affinity
// and anti-affinity terms about its own pods and about another app's.
func withSpreadAndAffinity(d *appsv1.Deployment) *appsv1.Deployment {
	own := func() *metav1.LabelSelector {
		return &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}}
	}
	cache := &metav1.LabelSelector{MatchLabels: map[string]string{"app": "cache"}}
	d.Spec.Template.Spec.TopologySpreadConstraints = []corev1.TopologySpreadConstraint{{
		MaxSkew: 1, TopologyKey: "zone", LabelSelector: own(), MatchLabelKeys: []string{"pod-template-hash"},
	}}
	d.Spec.Template.Spec.Affinity = &corev1.Affinity{
		PodAffinity: &corev1.PodAffinity{
			RequiredDuringSchedulingIgnoredDuringExecution: []corev1.PodAffinityTerm{{TopologyKey: "zone", LabelSelector: cache}},
			PreferredDuringSchedulingIgnoredDuringExecution: []corev1.WeightedPodAffinityTerm{{
				Weight: 10, PodAffinityTerm: corev1.PodAffinityTerm{TopologyKey: "zone", LabelSelector: own()},
			}},
		},
		PodAntiAffinity: &corev1.PodAntiAffinity{
			RequiredDuringSchedulingIgnoredDuringExecution: []corev1.PodAffinityTerm{{
				TopologyKey: "host", LabelSelector: own(), MismatchLabelKeys: []string{"tenant"},
			}},
			PreferredDuringSchedulingIgnoredDuringExecution: []corev1.WeightedPodAffinityTerm{{
				Weight: 50, PodAffinityTerm: corev1.PodAffinityTerm{TopologyKey: "rack", LabelSelector: own()},
			}},
		},
	}
	return d
}

func TestBuildPrimarySpreadsAndAvoidsThePrimarysOwnPods(t *testing.T) {
	d := withSpreadAndAffinity(workloadtest.Target())
	_, primarySel, _ := deployment.Selectors(d)
	spec := deployment.BuildPrimary(d, workload.Primary{Selector: primarySel, Copied: nil, Revision: "rev1", Replicas: 3}).Spec.Template.Spec

	tsc := spec.TopologySpreadConstraints[0]
	if got := tsc.LabelSelector.MatchLabels["app"]; got != "web-primary" {
		t.Errorf("topology spread selects app=%s, want web-primary", got)
	}
	if !slices.Equal(tsc.MatchLabelKeys, []string{"pod-template-hash"}) {
		t.Errorf("topology spread matchLabelKeys = %v, want them kept", tsc.MatchLabelKeys)
	}
	aff, anti := spec.Affinity.PodAffinity, spec.Affinity.PodAntiAffinity
	if got := aff.RequiredDuringSchedulingIgnoredDuringExecution[0].LabelSelector.MatchLabels["app"]; got != "cache" {
		t.Errorf("affinity to another app became app=%s, want cache", got)
	}
	if got := aff.PreferredDuringSchedulingIgnoredDuringExecution[0].PodAffinityTerm.LabelSelector.MatchLabels["app"]; got != "web-primary" {
		t.Errorf("preferred affinity selects app=%s, want web-primary", got)
	}
	req := anti.RequiredDuringSchedulingIgnoredDuringExecution[0]
	if got := req.LabelSelector.MatchLabels["app"]; got != "web-primary" {
		t.Errorf("required anti-affinity selects app=%s, want web-primary", got)
	}
	if !slices.Equal(req.MismatchLabelKeys, []string{"tenant"}) {
		t.Errorf("anti-affinity mismatchLabelKeys = %v, want them kept", req.MismatchLabelKeys)
	}
	if got := anti.PreferredDuringSchedulingIgnoredDuringExecution[0].PodAffinityTerm.LabelSelector.MatchLabels["app"]; got != "web-primary" {
		t.Errorf("preferred anti-affinity selects app=%s, want web-primary", got)
	}
	if got := d.Spec.Template.Spec.TopologySpreadConstraints[0].LabelSelector.MatchLabels["app"]; got != "web" {
		t.Errorf("BuildPrimary changed the target's constraint to app=%s", got)
	}
}
