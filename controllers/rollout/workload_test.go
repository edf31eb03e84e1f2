package rollout

import (
	"context"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	sluicev1 "github.com/sluice-dev/sluice/api/v1alpha1"
	"github.com/sluice-dev/sluice/pkg/workload"
	"github.com/sluice-dev/sluice/pkg/workload/daemonset"
	"github.com/sluice-dev/sluice/pkg/workload/deployment"
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

// The cache keeps whole only the workloads Rollouts target or own; every
// other one is kept as its identity and owners, without a pod template.
func TestTheCacheTrimsTheWorkloadsNoRolloutTargetsOrOwns(t *testing.T) {
	sch := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(sch); err != nil {
		t.Fatal(err)
	}
	if err := sluicev1.AddToScheme(sch); err != nil {
		t.Fatal(err)
	}
	rollouts := fake.NewClientBuilder().WithScheme(sch).
		WithIndex(&sluicev1.Rollout{}, targetIndex, func(o client.Object) []string { return []string{o.(*sluicev1.Rollout).Spec.TargetRef.Name} }).
		WithObjects(&sluicev1.Rollout{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "shop"},
			Spec: sluicev1.RolloutSpec{TargetRef: sluicev1.TargetRef{Kind: "Deployment", Name: "web"}}}).
		Build()
	cached := &CachedWorkloads{Rollouts: rollouts}
	deploy := func(ns, name string, owner *metav1.OwnerReference, ann map[string]string) *appsv1.Deployment {
		d := &appsv1.Deployment{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, UID: "u-" + types.UID(name), ResourceVersion: "7", Generation: 3,
				Labels: map[string]string{"app": name}, Annotations: ann},
			Spec: appsv1.DeploymentSpec{Replicas: ptr.To[int32](2), Template: corev1.PodTemplateSpec{
				Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: name + ":1"}}}}},
			Status: appsv1.DeploymentStatus{ReadyReplicas: 2},
		}
		if owner != nil {
			d.OwnerReferences = []metav1.OwnerReference{*owner}
		}
		return d
	}
	transform := func(d *appsv1.Deployment) *appsv1.Deployment {
		out, err := cached.Transform(d)
		if err != nil {
			t.Fatal(err)
		}
		return out.(*appsv1.Deployment)
	}
	whole := func(d *appsv1.Deployment) bool {
		return len(d.Spec.Template.Spec.Containers) == 1 && d.Status.ReadyReplicas == 2
	}

	// A target.
	if d := transform(deploy("shop", "web", nil, map[string]string{"team": "a"})); !whole(d) || trimmed(d) || d.Annotations["team"] != "a" {
		t.Errorf("the target was not kept whole: %+v", d)
	}
	// A primary, owned by a Rollout.
	owner := metav1.OwnerReference{APIVersion: sluicev1.GroupVersion.String(), Kind: "Rollout", Name: "web", UID: "r", Controller: ptr.To(true)}
	if d := transform(deploy("shop", "web-primary", &owner, nil)); !whole(d) || trimmed(d) {
		t.Errorf("the primary was not kept whole: %+v", d)
	}
	// Same name in another namespace, and an unrelated one owned by
	// something else: trimmed to identity and owners.
	other := metav1.OwnerReference{APIVersion: "example.com/v1", Kind: "App", Name: "x", UID: "x", Controller: ptr.To(true)}
	for _, d := range []*appsv1.Deployment{deploy("other", "web", nil, nil), deploy("shop", "cache", &other, map[string]string{"team": "a"})} {
		name, ns, owners := d.Name, d.Namespace, d.OwnerReferences
		got := transform(d)
		if whole(got) || !trimmed(got) || got.Labels != nil || got.Annotations != nil || got.Spec.Replicas != nil {
			t.Errorf("%s/%s was not trimmed: %+v", ns, name, got)
		}
		if got.Name != name || got.Namespace != ns || got.UID != types.UID("u-"+name) || got.ResourceVersion != "7" || got.Generation != 3 || !equality.Semantic.DeepEqual(got.OwnerReferences, owners) {
			t.Errorf("%s/%s lost what identifies it: %+v", ns, name, got.ObjectMeta)
		}
	}
	// A DaemonSet no Rollout has.
	ds := &appsv1.DaemonSet{ObjectMeta: metav1.ObjectMeta{Name: "agent", Namespace: "shop"}, Status: appsv1.DaemonSetStatus{NumberReady: 2}}
	if o, _ := cached.Transform(ds); !trimmed(o.(*appsv1.DaemonSet)) || o.(*appsv1.DaemonSet).Status.NumberReady != 0 {
		t.Errorf("the DaemonSet was not trimmed: %+v", o)
	}
	// When the Rollouts cannot be read, everything is kept whole.
	broken := &CachedWorkloads{Rollouts: fake.NewClientBuilder().WithScheme(sch).Build()} // no index: every read fails
	if out, _ := broken.Transform(deploy("other", "web", nil, nil)); !whole(out.(*appsv1.Deployment)) {
		t.Error("a workload was trimmed though the Rollouts could not be read")
	}
}

// The target and the primary a reconcile reads are the cache's own objects
// (getWorkload): scaling one must leave what it was given as it was, and
// return what the API server holds.
func TestScalingAWorkloadLeavesTheCachedObjectAsItWas(t *testing.T) {
	sch := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(sch); err != nil {
		t.Fatal(err)
	}
	meta := metav1.ObjectMeta{Name: "web", Namespace: "shop"}
	tmpl := corev1.PodTemplateSpec{Spec: corev1.PodSpec{
		NodeSelector: map[string]string{"disk": "ssd"},
		Containers:   []corev1.Container{{Name: "app", Image: "web:1"}}}}
	deploy := &appsv1.Deployment{ObjectMeta: meta, Spec: appsv1.DeploymentSpec{Replicas: ptr.To[int32](3), Template: tmpl}}
	// Parking a DaemonSet writes into its pod template's nodeSelector map.
	ds := &appsv1.DaemonSet{ObjectMeta: meta, Spec: appsv1.DaemonSetSpec{Template: *tmpl.DeepCopy()}}
	for _, tc := range []struct {
		kind workload.Kind
		obj  client.Object
		want func(client.Object) bool
	}{
		{deployment.Kind{}, deploy, func(o client.Object) bool { return *o.(*appsv1.Deployment).Spec.Replicas == 0 }},
		{daemonset.Kind{}, ds, func(o client.Object) bool { return workload.IsParked(&o.(*appsv1.DaemonSet).Spec.Template.Spec) }},
	} {
		c := fake.NewClientBuilder().WithScheme(sch).WithObjects(tc.obj.DeepCopyObject().(client.Object)).Build()
		r := &Reconciler{Client: c}
		cached := tc.obj.DeepCopyObject().(client.Object)
		if err := c.Get(context.Background(), client.ObjectKeyFromObject(cached), cached); err != nil {
			t.Fatal(err)
		}
		before := cached.DeepCopyObject()
		got, changed, err := r.setReplicas(context.Background(), tc.kind, tc.kind.Wrap(cached), 0)
		if err != nil || !changed {
			t.Fatalf("%T: setReplicas = %v, %v", tc.obj, changed, err)
		}
		if !equality.Semantic.DeepEqual(before, cached) {
			t.Errorf("%T: setReplicas changed the object it was given", tc.obj)
		}
		held := tc.obj.DeepCopyObject().(client.Object)
		if err := c.Get(context.Background(), client.ObjectKeyFromObject(held), held); err != nil {
			t.Fatal(err)
		}
		if !tc.want(got.Object()) || !tc.want(held) {
			t.Errorf("%T: scaled to zero, returned %v and the API server holds %v", tc.obj, got.Object(), held)
		}
	}
}
