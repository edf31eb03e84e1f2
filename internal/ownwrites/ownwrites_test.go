package ownwrites

import (
	"context"
	"errors"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	clocktesting "k8s.io/utils/clock/testing"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
)

func TestACopyOlderThanOurOwnWriteIsBehindUntilTheCacheCatchesUp(t *testing.T) {
	var p Versions[types.NamespacedName] // as a Reconciler holds it: ready at its zero value
	primary := types.NamespacedName{Namespace: "shop", Name: "Deployment/podinfo-primary"}
	if p.IsBehind(primary, "7") {
		t.Fatal("an object never written is behind")
	}
	p.Wrote(primary, "7", "9") // the template of the promotion
	if !p.IsBehind(primary, "7") {
		t.Error("the primary cached before the promotion is not behind")
	}
	// The Deployment controller's status write after ours: caught up.
	if p.IsBehind(primary, "10") {
		t.Error("a copy newer than our write is behind")
	}
	if p.IsBehind(primary, "7") {
		t.Error("after the cache caught up, the old version is still behind")
	}
	p.Wrote(primary, "10", "10")
	if p.IsBehind(primary, "10") {
		t.Error("a write that changed nothing put the current copy behind")
	}
}

// laggingCache answers reads with the copies it was given, as a cache that
// has not yet seen the writes made since.
type laggingCache struct {
	client.Client
	copies map[types.NamespacedName]*corev1.Service
}

func (c *laggingCache) Get(_ context.Context, key client.ObjectKey, obj client.Object, _ ...client.GetOption) error {
	cached, ok := c.copies[key]
	if !ok {
		return apierrors.NewNotFound(corev1.Resource("services"), key.Name)
	}
	cached.DeepCopyInto(obj.(*corev1.Service))
	return nil
}

func TestTheClientRefusesACachedCopyItsOwnPatchLeftBehind(t *testing.T) {
	ctx := context.Background()
	apex := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "podinfo"},
		Spec:       corev1.ServiceSpec{Selector: map[string]string{"app": "podinfo-primary"}},
	}
	api := fake.NewClientBuilder().WithObjects(apex).Build()
	cached := &corev1.Service{}
	if err := api.Get(ctx, client.ObjectKeyFromObject(apex), cached); err != nil {
		t.Fatal(err)
	}
	cache := &laggingCache{Client: api, copies: map[types.NamespacedName]*corev1.Service{client.ObjectKeyFromObject(apex): cached.DeepCopy()}}
	c := NewClient(cache)

	if err := c.Get(ctx, client.ObjectKeyFromObject(apex), &corev1.Service{}); err != nil {
		t.Fatalf("a copy before any write: %v", err)
	}
	switched := cached.DeepCopy()
	switched.Spec.Selector = map[string]string{"app": "podinfo"}
	if err := c.Patch(ctx, switched, client.MergeFrom(cached)); err != nil {
		t.Fatal(err)
	}
	err := c.Get(ctx, client.ObjectKeyFromObject(apex), &corev1.Service{})
	if !errors.Is(err, ErrBehind) {
		t.Fatalf("the cached copy from before the switch: got %v, want ErrBehind", err)
	}
	if got, want := err.Error(), "Service podinfo: "+ErrBehind.Error(); got != want {
		t.Errorf("error %q, want %q", got, want)
	}
	// Another Service of the same name elsewhere is not the one written.
	other := types.NamespacedName{Namespace: "web", Name: "podinfo"}
	cache.copies[other] = cached.DeepCopy()
	if err := c.Get(ctx, other, &corev1.Service{}); err != nil {
		t.Errorf("a Service in another namespace: %v", err)
	}

	// The cache catches up.
	cache.copies[client.ObjectKeyFromObject(apex)] = switched.DeepCopy()
	got := &corev1.Service{}
	if err := c.Get(ctx, client.ObjectKeyFromObject(apex), got); err != nil {
		t.Fatalf("the copy with the switch: %v", err)
	}
	if got.Spec.Selector["app"] != "podinfo" {
		t.Errorf("selector %v, want the canary's", got.Spec.Selector)
	}
}

func TestAnObjectItCreatedIsBehindUntilTheCacheShowsIt(t *testing.T) {
	ctx := context.Background()
	api := fake.NewClientBuilder().Build()
	cache := &laggingCache{Client: api, copies: map[types.NamespacedName]*corev1.Service{}}
	c := NewClient(cache)
	clock := clocktesting.NewFakePassiveClock(time.Date(2026, 12, 4, 23, 0, 0, 0, time.UTC))
	c.versions.clock = clock
	apex := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "podinfo"}}
	key := client.ObjectKeyFromObject(apex)

	if err := c.Get(ctx, key, &corev1.Service{}); !apierrors.IsNotFound(err) {
		t.Fatalf("before the create: got %v, want NotFound", err)
	}
	if err := c.Create(ctx, apex.DeepCopy()); err != nil {
		t.Fatal(err)
	}
	// Created again, it would be refused as existing: look again instead.
	err := c.Get(ctx, key, &corev1.Service{})
	if !errors.Is(err, ErrBehind) || apierrors.IsNotFound(err) {
		t.Fatalf("created, not in the cache yet: got %v, want ErrBehind", err)
	}
	// Someone else's Service of the same name elsewhere is not it.
	if err := c.Get(ctx, types.NamespacedName{Namespace: "web", Name: "podinfo"}, &corev1.Service{}); !apierrors.IsNotFound(err) {
		t.Errorf("a Service in another namespace: got %v, want NotFound", err)
	}

	// The cache shows it; deleted by someone else later, it is gone.
	cache.copies[key] = apex.DeepCopy()
	if err := c.Get(ctx, key, &corev1.Service{}); err != nil {
		t.Fatalf("in the cache: %v", err)
	}
	delete(cache.copies, key)
	if err := c.Get(ctx, key, &corev1.Service{}); !apierrors.IsNotFound(err) {
		t.Errorf("deleted after the cache showed it: got %v, want NotFound", err)
	}

	// Deleted by someone else before the cache ever showed it: believed
	// gone once the grace has passed, rather than waited for for ever.
	canary := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "podinfo-canary"}}
	if err := c.Create(ctx, canary.DeepCopy()); err != nil {
		t.Fatal(err)
	}
	clock.SetTime(clock.Now().Add(createdGrace - time.Second))
	if err := c.Get(ctx, client.ObjectKeyFromObject(canary), &corev1.Service{}); !errors.Is(err, ErrBehind) {
		t.Errorf("within the grace: got %v, want ErrBehind", err)
	}
	clock.SetTime(clock.Now().Add(time.Second))
	if err := c.Get(ctx, client.ObjectKeyFromObject(canary), &corev1.Service{}); !apierrors.IsNotFound(err) {
		t.Errorf("past the grace: got %v, want NotFound", err)
	}

	// Deleted by this client: not waited for.
	primary := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "podinfo-primary"}}
	if err := c.Create(ctx, primary.DeepCopy()); err != nil {
		t.Fatal(err)
	}
	if err := c.Delete(ctx, primary.DeepCopy()); err != nil {
		t.Fatal(err)
	}
	if err := c.Get(ctx, client.ObjectKeyFromObject(primary), &corev1.Service{}); !apierrors.IsNotFound(err) {
		t.Errorf("deleted by this client: got %v, want NotFound", err)
	}
	if len(c.versions.created) != 0 {
		t.Errorf("still remembered: %v", c.versions.created)
	}
}
