package rollout

import (
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

func cachedDeployment(rv string) *appsv1.Deployment {
	d := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "podinfo", Namespace: "team", ResourceVersion: rv, Generation: 4,
			Labels: map[string]string{"app": "podinfo"}},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To[int32](2),
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "podinfo"}},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "podinfo"}},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "podinfo:1.0"}}},
			},
		},
		Status: appsv1.DeploymentStatus{ObservedGeneration: 4, Replicas: 2, UpdatedReplicas: 2, ReadyReplicas: 2, AvailableReplicas: 2},
	}
	return d
}

func cachedSlice(rv string, gen int64, ready ...bool) *discoveryv1.EndpointSlice {
	sl := &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Name: "podinfo-primary-abcde", Namespace: "team", ResourceVersion: rv, Generation: gen},
		AddressType: discoveryv1.AddressTypeIPv4,
	}
	for _, r := range ready {
		sl.Endpoints = append(sl.Endpoints, discoveryv1.Endpoint{Conditions: discoveryv1.EndpointConditions{Ready: sharedBool(&r)}})
	}
	return sl
}

func TestSameInCacheTellsARewriteOfDroppedPartsFromAChange(t *testing.T) {
	changed := func(edit func(*appsv1.Deployment)) *appsv1.Deployment {
		d := cachedDeployment("11")
		edit(d)
		return d
	}
	trimmedCopy := &appsv1.Deployment{ObjectMeta: trimmedMeta(&cachedDeployment("11").ObjectMeta)}
	daemonSet := func(rv string, available int32) *appsv1.DaemonSet {
		return &appsv1.DaemonSet{ObjectMeta: metav1.ObjectMeta{Name: "agent", ResourceVersion: rv},
			Status: appsv1.DaemonSetStatus{NumberAvailable: available}}
	}
	for _, c := range []struct {
		name     string
		old, cur client.Object
		same     bool
	}{
		{"a Deployment at a new resourceVersion only", cachedDeployment("10"), cachedDeployment("11"), true},
		{"a Deployment with one pod fewer available", cachedDeployment("10"), changed(func(d *appsv1.Deployment) { d.Status.AvailableReplicas = 1 }), false},
		{"a Deployment with a new template", cachedDeployment("10"), changed(func(d *appsv1.Deployment) {
			d.Generation++
			d.Spec.Template.Spec.Containers[0].Image = "podinfo:2.0"
		}), false},
		{"a Deployment with a new annotation", cachedDeployment("10"), changed(func(d *appsv1.Deployment) {
			d.Annotations = map[string]string{"sluice.dev/revision": "abc"}
		}), false},
		{"a Deployment marked for deletion", cachedDeployment("10"), changed(func(d *appsv1.Deployment) { d.DeletionTimestamp = &metav1.Time{} }), false},
		{"a Deployment cached whole after its trimmed copy", trimmedCopy, cachedDeployment("12"), false},
		{"a DaemonSet at a new resourceVersion only", daemonSet("1", 3), daemonSet("2", 3), true},
		{"a DaemonSet with a node fewer available", daemonSet("1", 3), daemonSet("2", 2), false},
		{"a slice whose dropped parts changed", cachedSlice("5", 2, true, true), cachedSlice("6", 3, true, true), true},
		{"a slice with an endpoint no longer ready", cachedSlice("5", 2, true, true), cachedSlice("6", 3, true, false), false},
		{"a slice with an endpoint fewer", cachedSlice("5", 2, true, true), cachedSlice("6", 3, true), false},
		{"a kind it does not know", &corev1.Service{}, &corev1.Service{}, false},
	} {
		if got := sameInCache(c.old, c.cur); got != c.same {
			t.Errorf("%s: sameInCache = %v, want %v", c.name, got, c.same)
		}
	}
}

// BenchmarkSameInCache is what telling an update from a rewrite costs,
// against the reconcile it saves.
func BenchmarkSameInCache(b *testing.B) {
	old, cur := cachedDeployment("10"), cachedDeployment("11")
	b.ReportAllocs()
	for b.Loop() {
		if !sameInCache(old, cur) {
			b.Fatal("not the same")
		}
	}
}
