package rollout

import (
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	sluicev1 "github.com/sluice-dev/sluice/api/v1alpha1"
)

func TestTheCachedWorkloadKeepsWhatSluiceCopiesAndWritesBack(t *testing.T) {
	d := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "shop", Labels: map[string]string{"app": "web"},
			Annotations: map[string]string{
				corev1.LastAppliedConfigAnnotation:  `{"kind":"Deployment","spec":{"template":{}}}`,
				"deployment.kubernetes.io/revision": "3", "team": "payments",
			},
			ManagedFields: []metav1.ManagedFieldsEntry{{Manager: "kubectl"}}},
		Spec: appsv1.DeploymentSpec{Replicas: ptr.To[int32](4), Template: corev1.PodTemplateSpec{
			ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "web"}},
			Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "web:2"}}}}},
		Status: appsv1.DeploymentStatus{ObservedGeneration: 7, Replicas: 4, ReadyReplicas: 4, UpdatedReplicas: 4, AvailableReplicas: 4,
			Conditions: []appsv1.DeploymentCondition{{Type: appsv1.DeploymentAvailable, Status: corev1.ConditionTrue, Message: "Deployment has minimum availability."}}},
	}
	want := d.DeepCopy()
	out, err := StripWorkload(d)
	if err != nil {
		t.Fatal(err)
	}
	got := out.(*appsv1.Deployment)
	if _, ok := got.Annotations[corev1.LastAppliedConfigAnnotation]; ok || got.ManagedFields != nil || got.Status.Conditions != nil {
		t.Errorf("the cached Deployment keeps what Sluice never reads: %+v", got.ObjectMeta)
	}
	// Everything else as it was: Sluice copies the template, reads the
	// replicas and status, and writes a primary back from its cached copy.
	want.ManagedFields, want.Status.Conditions = nil, nil
	delete(want.Annotations, corev1.LastAppliedConfigAnnotation)
	if !equality.Semantic.DeepEqual(got, want) {
		t.Errorf("the transform changed more than it should:\n got %+v\nwant %+v", got, want)
	}
	ds := &appsv1.DaemonSet{Status: appsv1.DaemonSetStatus{NumberReady: 2, Conditions: []appsv1.DaemonSetCondition{{Type: "x"}}}}
	if o, _ := StripWorkload(ds); o.(*appsv1.DaemonSet).Status.Conditions != nil || o.(*appsv1.DaemonSet).Status.NumberReady != 2 {
		t.Errorf("DaemonSet status after the transform: %+v", o.(*appsv1.DaemonSet).Status)
	}
}

func TestTheCachedRolloutDropsOnlyKubectlsCopyAndTheManagedFields(t *testing.T) {
	ro := &sluicev1.Rollout{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "shop",
			Annotations: map[string]string{
				corev1.LastAppliedConfigAnnotation: `{"kind":"Rollout","spec":{}}`,
				sluicev1.ActionAnnotation:          "promote",
			},
			Finalizers:    []string{"sluice.dev/finalizer"},
			ManagedFields: []metav1.ManagedFieldsEntry{{Manager: "kubectl"}}},
		Spec:   sluicev1.RolloutSpec{TargetRef: sluicev1.TargetRef{Kind: "Deployment", Name: "web"}},
		Status: sluicev1.RolloutStatus{Phase: sluicev1.PhaseProgressing, CanaryWeight: 20},
	}
	want := ro.DeepCopy()
	out, err := StripRollout(ro)
	if err != nil {
		t.Fatal(err)
	}
	want.ManagedFields = nil
	delete(want.Annotations, corev1.LastAppliedConfigAnnotation)
	if got := out.(*sluicev1.Rollout); !equality.Semantic.DeepEqual(got, want) {
		t.Errorf("the transform changed more than it should:\n got %+v\nwant %+v", got, want)
	}
	if o, _ := StripRollout(&appsv1.Deployment{}); o == nil {
		t.Error("a Deployment did not pass through")
	}
}
