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

// SetWeights points the apex Service at the primary (canary weight 0) or at
// the canary (100) and returns what the API server holds after the patch.
func (r *Router) SetWeights(ctx context.Context, t traffic.Target, w traffic.Weights) (traffic.Weights, error) {
	var selector map[string]string
	switch w.Canary {
	case 0:
		selector = t.PrimarySelector
	case 100:
		selector = t.CanarySelector
	default:
		return traffic.Weights{}, fmt.Errorf("a canary weight of %d%%: %w (it switches 0%% or 100%%)", w.Canary, traffic.ErrUnsupported)
	}
	svc := &corev1.Service{}
	if err := r.Client.Get(ctx, client.ObjectKey{Namespace: t.Rollout.Namespace, Name: t.Apex}, svc); err != nil {
		return traffic.Weights{}, fmt.Errorf("reading apex Service %s: %w", t.Apex, err)
	}
	if !maps.Equal(svc.Spec.Selector, selector) {
		patch := client.MergeFrom(svc.DeepCopy())
		svc.Spec.Selector = selector
		// The patch response is the object as the API server holds it.
		if err := r.Client.Patch(ctx, svc, patch); err != nil {
			return traffic.Weights{}, fmt.Errorf("switching apex Service %s: %w", t.Apex, err)
		}
	}
	got, ok := weightsOf(svc, t)
	if !ok {
		return traffic.Weights{}, fmt.Errorf("apex Service %s selects neither the primary nor the canary after the switch", t.Apex)
	}
	return got, nil
}

// Weights reads the apex Service's selector back.
func (r *Router) Weights(ctx context.Context, t traffic.Target) (traffic.Weights, bool, error) {
	svc := &corev1.Service{}
	err := r.Client.Get(ctx, client.ObjectKey{Namespace: t.Rollout.Namespace, Name: t.Apex}, svc)
	if apierrors.IsNotFound(err) {
		return traffic.Weights{}, false, nil
	}
	if err != nil {
		return traffic.Weights{}, false, fmt.Errorf("reading apex Service %s: %w", t.Apex, err)
	}
	w, ok := weightsOf(svc, t)
	return w, ok, nil
}

// Finalize implements traffic.Router; the Services are owned by the Rollout
// and garbage-collected with it.
func (r *Router) Finalize(context.Context, traffic.Target) error { return nil }

func weightsOf(svc *corev1.Service, t traffic.Target) (traffic.Weights, bool) {
	switch {
	case maps.Equal(svc.Spec.Selector, t.PrimarySelector):
		return traffic.ForCanary(0), true
	case maps.Equal(svc.Spec.Selector, t.CanarySelector):
		return traffic.ForCanary(100), true
	}
	return traffic.Weights{}, false
}
