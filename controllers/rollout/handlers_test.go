package rollout

import (
	"context"
	"reflect"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	sluicev1 "github.com/sluice-dev/sluice/api/v1alpha1"
)

func TestAnObjectWakesTheRolloutThatControlsItAndNoOther(t *testing.T) {
	ref := func(apiVersion, kind, name string, controller bool) metav1.OwnerReference {
		return metav1.OwnerReference{APIVersion: apiVersion, Kind: kind, Name: name, UID: types.UID(name), Controller: ptr.To(controller)}
	}
	gv := sluicev1.GroupVersion.String()
	for _, tc := range []struct {
		name   string
		owners []metav1.OwnerReference
		want   []reconcile.Request
	}{
		{"a primary or Service of a Rollout", []metav1.OwnerReference{ref(gv, "Rollout", "web", true)},
			[]reconcile.Request{{NamespacedName: types.NamespacedName{Namespace: "shop", Name: "web"}}}},
		{"its controller among other owners", []metav1.OwnerReference{ref("v1", "ConfigMap", "x", false), ref(gv, "Rollout", "web", true)},
			[]reconcile.Request{{NamespacedName: types.NamespacedName{Namespace: "shop", Name: "web"}}}},
		{"a Rollout owns it but does not control it", []metav1.OwnerReference{ref(gv, "Rollout", "web", false)}, nil},
		{"a Rollout of another API group controls it", []metav1.OwnerReference{ref("argoproj.io/v1alpha1", "Rollout", "web", true)}, nil},
		{"another kind controls it", []metav1.OwnerReference{ref("apps/v1", "Deployment", "web", true)}, nil},
		{"no owner", nil, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "web-primary", Namespace: "shop", OwnerReferences: tc.owners}}
			if got := rolloutOfController(context.Background(), svc); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("rolloutOfController = %v, want %v", got, tc.want)
			}
		})
	}
}
