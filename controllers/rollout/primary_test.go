package rollout

import (
	"maps"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

// target builds a Deployment that uses one ConfigMap or Secret in each way a
// pod template can.
func target() *appsv1.Deployment {
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "ns", Labels: map[string]string{"team": "a"}},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To[int32](3),
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "web", "tier": "front"}},
				Spec: corev1.PodSpec{
					Volumes: []corev1.Volume{
						{Name: "a", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: "cm-vol"}}}},
						{Name: "b", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: "sec-vol", Optional: ptr.To(true)}}},
						{Name: "c", VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{Sources: []corev1.VolumeProjection{
							{ConfigMap: &corev1.ConfigMapProjection{LocalObjectReference: corev1.LocalObjectReference{Name: "cm-proj"}}},
						}}}},
					},
					InitContainers: []corev1.Container{{Name: "init", EnvFrom: []corev1.EnvFromSource{
						{SecretRef: &corev1.SecretEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "sec-envfrom"}}},
					}}},
					Containers: []corev1.Container{{Name: "app", Env: []corev1.EnvVar{
						{Name: "X", ValueFrom: &corev1.EnvVarSource{ConfigMapKeyRef: &corev1.ConfigMapKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "cm-vol"}, Key: "x"}}},
						{Name: "PLAIN", Value: "1"},
					}}},
				},
			},
		},
	}
}

func TestConfigRefsFindsEveryWayAPodTemplateUsesConfiguration(t *testing.T) {
	got := map[string]bool{}
	for _, r := range configRefs(&target().Spec.Template.Spec) {
		got[r.key()] = r.Optional
	}
	want := map[string]bool{"configmap/cm-vol": false, "secret/sec-vol": true, "configmap/cm-proj": false, "secret/sec-envfrom": false}
	if !maps.Equal(got, want) {
		t.Errorf("configRefs = %v, want %v", got, want)
	}
}

func TestRevisionChangesWithTheTemplateAndWithConfigContentOnly(t *testing.T) {
	d := target()
	configs := map[string]string{"configmap/cm-vol": "aaa"}
	base, _ := revision(&d.Spec.Template, configs)
	again, _ := revision(&target().Spec.Template, map[string]string{"configmap/cm-vol": "aaa"})
	if base != again {
		t.Errorf("the same template and configs gave %s and %s", base, again)
	}
	d.Spec.Template.Spec.Containers[0].Image = "web:2"
	if r, _ := revision(&d.Spec.Template, configs); r == base {
		t.Errorf("an image change kept the revision %s", r)
	}
	if r, _ := revision(&target().Spec.Template, map[string]string{"configmap/cm-vol": "bbb"}); r == base {
		t.Errorf("a config content change kept the revision %s", r)
	}
	d = target()
	d.Spec.Replicas = ptr.To[int32](9)
	if r, _ := revision(&d.Spec.Template, configs); r != base {
		t.Errorf("a replica change moved the revision to %s", r)
	}
}

func TestBuildPrimaryGivesThePrimaryItsOwnSelectorAndConfigCopies(t *testing.T) {
	d := target()
	canary, primarySel, err := selectors(d)
	if err != nil {
		t.Fatal(err)
	}
	if canary["app"] != "web" || primarySel["app"] != "web-primary" {
		t.Fatalf("selectors = %v / %v", canary, primarySel)
	}
	copied := map[string]bool{"configmap/cm-vol": true, "configmap/cm-proj": true, "secret/sec-envfrom": true}
	p := buildPrimary(d, primarySel, copied, "rev1", 3)

	if p.Name != "web-primary" || p.Annotations[RevisionAnnotation] != "rev1" || *p.Spec.Replicas != 3 {
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
	if spec.InitContainers[0].EnvFrom[0].SecretRef.Name != "sec-envfrom-primary" {
		t.Errorf("envFrom not renamed")
	}
	if spec.Containers[0].Env[0].ValueFrom.ConfigMapKeyRef.Name != "cm-vol-primary" {
		t.Errorf("env valueFrom not renamed")
	}
	if d.Spec.Template.Spec.Volumes[0].ConfigMap.Name != "cm-vol" || d.Spec.Template.Labels["app"] != "web" {
		t.Errorf("buildPrimary modified the target")
	}
}

func TestSelectorsRefuseTargetsSluiceCannotSplit(t *testing.T) {
	d := target()
	d.Spec.Selector.MatchExpressions = []metav1.LabelSelectorRequirement{{Key: "app", Operator: metav1.LabelSelectorOpExists}}
	if _, _, err := selectors(d); err == nil {
		t.Error("a matchExpressions selector was accepted")
	}
	d.Spec.Selector = &metav1.LabelSelector{}
	if _, _, err := selectors(d); err == nil {
		t.Error("an empty selector was accepted")
	}
}

func TestStripConfigDataKeepsOnlyAChecksumOfTheData(t *testing.T) {
	a := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "c"}, Data: map[string]string{"k": "v1"}}
	b := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "c"}, Data: map[string]string{"k": "v2"}}
	oa, _ := StripConfigData(a)
	ob, _ := StripConfigData(b)
	ca, cb := oa.(*corev1.ConfigMap), ob.(*corev1.ConfigMap)
	if ca.Data != nil {
		t.Errorf("data kept in the cache: %v", ca.Data)
	}
	if ca.Annotations[ChecksumAnnotation] == "" || ca.Annotations[ChecksumAnnotation] == cb.Annotations[ChecksumAnnotation] {
		t.Errorf("checksums %q and %q do not tell different data apart", ca.Annotations[ChecksumAnnotation], cb.Annotations[ChecksumAnnotation])
	}
	s := &corev1.Secret{Data: map[string][]byte{"token": []byte("x")}}
	stripped, _ := StripConfigData(s)
	if stripped.(*corev1.Secret).Data != nil {
		t.Errorf("secret data kept in the cache")
	}
}

func TestDeploymentReadyNeedsEveryReplicaUpdatedAndAvailable(t *testing.T) {
	d := target()
	d.Generation = 2
	d.Status = appsv1.DeploymentStatus{ObservedGeneration: 2, Replicas: 3, UpdatedReplicas: 3, AvailableReplicas: 3}
	if ok, msg := deploymentReady(d); !ok {
		t.Errorf("a rolled-out Deployment is not ready: %s", msg)
	}
	d.Status.AvailableReplicas = 2
	if ok, msg := deploymentReady(d); ok || msg != "3/3 replicas updated, 2 available" {
		t.Errorf("ready=%v msg=%q with 2 of 3 available", ok, msg)
	}
	d.Status.AvailableReplicas, d.Status.ObservedGeneration = 3, 1
	if ok, _ := deploymentReady(d); ok {
		t.Error("ready before the Deployment controller observed the spec")
	}
	d.Spec.Replicas = ptr.To[int32](0)
	if ok, _ := deploymentReady(d); ok {
		t.Error("a Deployment scaled to zero counts as ready")
	}
}
