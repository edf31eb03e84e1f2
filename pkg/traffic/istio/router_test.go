package istio

import (
	"context"
	"reflect"
	"testing"

	"google.golang.org/protobuf/proto"
	istiov1 "istio.io/client-go/pkg/apis/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	sluicev1 "github.com/sluice-dev/sluice/api/v1alpha1"
	"github.com/sluice-dev/sluice/pkg/traffic"
)

// sharingCache reads as the manager's cache does with
// client.UnsafeDisableDeepCopy: the object handed out shares its maps,
// slices and messages with the cache's own, which must never change. Writes
// go to the API server (a fake one here) and leave the cache as it was, as
// they do until the watch brings them.
type sharingCache struct {
	client.Client
	objects map[types.NamespacedName]client.Object
}

func (c *sharingCache) Get(ctx context.Context, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
	cached, ok := c.objects[key]
	if !ok || reflect.TypeOf(cached) != reflect.TypeOf(obj) {
		return c.Client.Get(ctx, key, obj)
	}
	var o client.GetOptions
	o.ApplyOptions(opts)
	if o.UnsafeDisableDeepCopy == nil || !*o.UnsafeDisableDeepCopy {
		cached = cached.DeepCopyObject().(client.Object)
	}
	// A shallow copy, as controller-runtime's cache reader makes.
	reflect.ValueOf(obj).Elem().Set(reflect.ValueOf(cached).Elem())
	return nil
}

// Every reconcile of an Istio canary reads its VirtualService and its two
// DestinationRules; they are read as the cache's own objects, so writing
// a route must go from copies and leave the cache's objects untouched.
func TestTheIstioRouterWritesFromCopiesAndLeavesTheCacheAsItWas(t *testing.T) {
	ctx := context.Background()
	s := runtime.NewScheme()
	if err := istiov1.AddToScheme(s); err != nil {
		t.Fatal(err)
	}
	if err := sluicev1.AddToScheme(s); err != nil {
		t.Fatal(err)
	}
	api := fake.NewClientBuilder().WithScheme(s).Build()
	ro := &sluicev1.Rollout{
		ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "podinfo", UID: "uid-1"},
		Spec: sluicev1.RolloutSpec{
			Service: sluicev1.ServiceSpec{Port: 9898},
			Routing: &sluicev1.Routing{Istio: &sluicev1.IstioRouting{Hosts: []string{"podinfo.example.com"}}},
		},
	}
	target := traffic.Target{Rollout: ro, Apex: "podinfo", Primary: "podinfo-primary", Canary: "podinfo-canary"}

	// The routes as created, then in the cache.
	if err := (&Router{Client: api}).EnsureRoutes(ctx, target); err != nil {
		t.Fatal(err)
	}
	cache := &sharingCache{Client: api, objects: map[types.NamespacedName]client.Object{}}
	snapshots := map[types.NamespacedName]client.Object{}
	for _, obj := range []client.Object{&istiov1.VirtualService{}, &istiov1.DestinationRule{}, &istiov1.DestinationRule{}} {
		name := map[int]string{0: "podinfo", 1: "podinfo-primary", 2: "podinfo-canary"}[len(cache.objects)]
		key := types.NamespacedName{Namespace: "shop", Name: name}
		if err := api.Get(ctx, key, obj); err != nil {
			t.Fatal(err)
		}
		cache.objects[key] = obj
		snapshots[key] = obj.DeepCopyObject().(client.Object)
	}

	r := &Router{Client: cache}
	// Metadata and a traffic policy that the cached objects lack: both
	// are patched.
	ro.Spec.Routing.Istio.Metadata = &sluicev1.ServiceMetadata{Labels: map[string]string{"team": "payments"}}
	ro.Spec.Routing.Istio.TrafficPolicy = &runtime.RawExtension{Raw: []byte(`{"connectionPool":{"http":{"maxRequestsPerConnection":1}}}`)}
	if err := r.EnsureRoutes(ctx, target); err != nil {
		t.Fatal(err)
	}
	// The cache has not seen that write yet: a shift computed from its
	// copy would write the route lists as they were before it, so it is
	// refused for its resourceVersion.
	vsKey := types.NamespacedName{Namespace: "shop", Name: "podinfo"}
	if _, err := r.Apply(ctx, target, traffic.Route{Weights: traffic.ForCanary(30)}); !apierrors.IsConflict(err) {
		t.Fatalf("a shift from a VirtualService older than the API server's: %v, want a conflict", err)
	}
	// The watch brings the write; the shift then goes.
	fresh := &istiov1.VirtualService{}
	if err := api.Get(ctx, vsKey, fresh); err != nil {
		t.Fatal(err)
	}
	cache.objects[vsKey], snapshots[vsKey] = fresh, fresh.DeepCopy()
	applied, err := r.Apply(ctx, target, traffic.Route{Weights: traffic.ForCanary(30)})
	if err != nil {
		t.Fatal(err)
	}
	if applied.Route.Weights.Canary != 30 {
		t.Errorf("Apply read back %d%% on the canary, want 30", applied.Route.Weights.Canary)
	}
	if _, _, err := r.Observe(ctx, target); err != nil {
		t.Fatal(err)
	}

	for key, cached := range cache.objects {
		want := snapshots[key]
		switch c := cached.(type) {
		case *istiov1.VirtualService:
			w := want.(*istiov1.VirtualService)
			if !proto.Equal(&c.Spec, &w.Spec) || !reflect.DeepEqual(c.ObjectMeta, w.ObjectMeta) {
				t.Errorf("the cached VirtualService %s was changed in place", key.Name)
			}
		case *istiov1.DestinationRule:
			w := want.(*istiov1.DestinationRule)
			if !proto.Equal(&c.Spec, &w.Spec) || !reflect.DeepEqual(c.ObjectMeta, w.ObjectMeta) {
				t.Errorf("the cached DestinationRule %s was changed in place", key.Name)
			}
		}
	}

	// And the writes reached the API server.
	vs := &istiov1.VirtualService{}
	if err := api.Get(ctx, types.NamespacedName{Namespace: "shop", Name: "podinfo"}, vs); err != nil {
		t.Fatal(err)
	}
	if vs.Labels["team"] != "payments" || vs.Labels[traffic.ShiftingLabel] != "true" {
		t.Errorf("VirtualService labels %v, want team=payments and %s", vs.Labels, traffic.ShiftingLabel)
	}
	if got, _ := shiftedOf(target).observe(vs); got.Weights.Canary != 30 {
		t.Errorf("the API server's VirtualService sends %d%% to the canary, want 30", got.Weights.Canary)
	}
	dr := &istiov1.DestinationRule{}
	if err := api.Get(ctx, types.NamespacedName{Namespace: "shop", Name: "podinfo-canary"}, dr); err != nil {
		t.Fatal(err)
	}
	if dr.Spec.GetTrafficPolicy().GetConnectionPool().GetHttp().GetMaxRequestsPerConnection() != 1 {
		t.Errorf("the canary's DestinationRule was not given the traffic policy: %v", dr.Spec.GetTrafficPolicy())
	}
}
