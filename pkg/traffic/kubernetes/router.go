// Package kubernetes is the router for plain Kubernetes: the apex Service's
// selector points at the primary or at the canary, so traffic switches all at
// once (blue/green). Weights other than 0 and 100 are not supported.
package kubernetes

import (
	"context"
	"fmt"
	"maps"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/sluice-dev/sluice/pkg/traffic"
)

// Router switches the apex Service's selector.
type Router struct {
	Client client.Client
}

var _ traffic.Router = (*Router)(nil)

// Name implements traffic.Router.
func (r *Router) Name() string { return "kubernetes" }

// EnsureRoutes implements traffic.Router: the apex Service is the route, and
// traffic.EnsureServices creates it.
func (r *Router) EnsureRoutes(context.Context, traffic.Target) error { return nil }

// Apply points the apex Service at the primary (canary weight 0) or at the
// canary (100) and returns what the API server holds after the patch. The
// experiment rules of other routers do not exist here and are ignored.
func (r *Router) Apply(ctx context.Context, t traffic.Target, want traffic.Route) (traffic.Applied, error) {
	var selector map[string]string
	switch want.Weights.Canary {
	case 0:
		selector = t.PrimarySelector
	case 100:
		selector = t.CanarySelector
	default:
		return traffic.Applied{}, fmt.Errorf("a canary weight of %d%%: %w (it switches 0%% or 100%%)", want.Weights.Canary, traffic.ErrUnsupported)
	}
	want = traffic.Route{Weights: want.Weights}
	svc, err := r.apex(ctx, t)
	if err != nil {
		return traffic.Applied{}, traffic.NotCachedYet(err, "apex Service "+t.Apex)
	}
	var out traffic.Applied
	// The annotation says what Sluice last wrote; a selector that says
	// otherwise was changed by someone else.
	if last := svc.Annotations[traffic.RouteAnnotation]; last != "" {
		current, ok := weightsOf(svc, t)
		out.Drifted = !ok || (traffic.Route{Weights: current}).String() != last
	}
	if !maps.Equal(svc.Spec.Selector, selector) || svc.Annotations[traffic.RouteAnnotation] != want.String() {
		upd := svc.DeepCopy()
		upd.Spec.Selector = selector
		if upd.Annotations == nil {
			upd.Annotations = map[string]string{}
		}
		upd.Annotations[traffic.RouteAnnotation] = want.String()
		// The patch response is the object as the API server holds it.
		if err := r.Client.Patch(ctx, upd, client.MergeFrom(svc)); err != nil {
			return traffic.Applied{}, fmt.Errorf("switching apex Service %s: %w", t.Apex, err)
		}
		svc = upd
	}
	got, ok := weightsOf(svc, t)
	if !ok {
		return traffic.Applied{}, fmt.Errorf("apex Service %s selects neither the primary nor the canary after the switch", t.Apex)
	}
	out.Route = traffic.Route{Weights: got}
	return out, nil
}

// Observe reads the apex Service's selector back.
func (r *Router) Observe(ctx context.Context, t traffic.Target) (traffic.Route, bool, error) {
	svc, err := r.apex(ctx, t)
	if apierrors.IsNotFound(err) {
		return traffic.Route{}, false, nil
	}
	if err != nil {
		return traffic.Route{}, false, err
	}
	w, ok := weightsOf(svc, t)
	return traffic.Route{Weights: w}, ok, nil
}

// Finalize implements traffic.Router: the apex Service is the route, and
// traffic.ReleaseApex hands it back on revert.
func (r *Router) Finalize(context.Context, traffic.Target, bool) error { return nil }

// apex reads the apex Service: the cache's own object, not a deep copy
// (it is read on every reconcile and changed seldom), so it is never
// changed in place; Apply patches a copy.
func (r *Router) apex(ctx context.Context, t traffic.Target) (*corev1.Service, error) {
	svc := &corev1.Service{}
	if err := r.Client.Get(ctx, client.ObjectKey{Namespace: t.Rollout.Namespace, Name: t.Apex}, svc, client.UnsafeDisableDeepCopy); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, err
		}
		return nil, fmt.Errorf("reading apex Service %s: %w", t.Apex, err)
	}
	return svc, nil
}

func weightsOf(svc *corev1.Service, t traffic.Target) (traffic.Weights, bool) {
	switch {
	case maps.Equal(svc.Spec.Selector, t.PrimarySelector):
		return traffic.ForCanary(0), true
	case maps.Equal(svc.Spec.Selector, t.CanarySelector):
		return traffic.ForCanary(100), true
	}
	return traffic.Weights{}, false
}
