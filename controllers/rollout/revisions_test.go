package rollout

import (
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/sluice-dev/sluice/pkg/workload"
	"github.com/sluice-dev/sluice/pkg/workload/deployment"
)

func TestATargetsRevisionIsHashedAgainOnlyWhenItsSpecOrConfigurationMayHaveChanged(t *testing.T) {
	var r revisions
	key := types.NamespacedName{Namespace: "shop", Name: "podinfo"}
	d := &appsv1.Deployment{}
	d.UID, d.Generation = "uid-1", 3
	d.Spec.Template.Spec.Containers = []corev1.Container{{Name: "app", Image: "podinfo:1.0"}}
	target := deployment.Kind{}.Wrap(d)
	configs := map[string]string{"ConfigMap/podinfo-config": "sum-1"}
	want := func() string {
		t.Helper()
		rev, err := workload.Revision(d.Spec.Template.DeepCopy(), configs)
		if err != nil {
			t.Fatal(err)
		}
		return rev
	}
	got := func() string {
		t.Helper()
		rev, err := r.of(key, target, configs)
		if err != nil {
			t.Fatal(err)
		}
		return rev
	}

	v1 := want()
	if rev := got(); rev != v1 {
		t.Fatalf("revision %s, want %s", rev, v1)
	}
	// A template changed in memory at the same generation is not hashed
	// again: no object the API server stored changes so.
	d.Spec.Template.Spec.Containers[0].Image = "podinfo:2.0"
	if rev := got(); rev != v1 {
		t.Errorf("revision %s at the same generation, want the remembered %s", rev, v1)
	}
	d.Generation = 4
	v2 := want()
	if rev := got(); rev != v2 || v2 == v1 {
		t.Errorf("revision %s after the generation moved, want %s (not %s)", rev, v2, v1)
	}
	configs["ConfigMap/podinfo-config"] = "sum-2"
	v3 := want()
	if rev := got(); rev != v3 || v3 == v2 {
		t.Errorf("revision %s after the configuration changed, want %s (not %s)", rev, v3, v2)
	}
	// The memo keeps its own copy of the checksums.
	configs["ConfigMap/podinfo-config"] = "sum-1"
	if rev := got(); rev == v3 {
		t.Errorf("revision %s after the configuration changed back, want it hashed again", rev)
	}
	// A new object of the same name at the same generation.
	configs["ConfigMap/podinfo-config"] = "sum-2"
	d.UID, d.Spec.Template.Spec.Containers[0].Image = "uid-2", "podinfo:3.0"
	if rev, v4 := got(), want(); rev != v4 {
		t.Errorf("revision %s of a new target of the same name, want %s", rev, v4)
	}
	r.forget(key)
	d.Spec.Template.Spec.Containers[0].Image = "podinfo:4.0"
	if rev, v5 := got(), want(); rev != v5 {
		t.Errorf("revision %s after the Rollout was forgotten, want %s", rev, v5)
	}
}
