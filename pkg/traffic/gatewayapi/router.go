// Package gatewayapi is the Gateway API router: it shifts traffic through an
// HTTPRoute or a GRPCRoute (gateway.networking.k8s.io/v1) that it generates,
// or that the user already has and lets Sluice adopt.
package gatewayapi

import (
	"context"
	"fmt"
	"maps"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	sluicev1 "github.com/sluice-dev/sluice/api/v1alpha1"
	"github.com/sluice-dev/sluice/pkg/traffic"
)

// Router shifts traffic through an HTTPRoute, or through a GRPCRoute when
// GRPC is set. The two are separate routers (set apart by Name) because a
// router's route kinds are watched once a Rollout uses it, and a cluster
// may serve HTTPRoutes without GRPCRoutes (Gateway API before v1.1).
type Router struct {
	Client client.Client
	// GRPC makes the router handle GRPCRoutes (routing.gatewayAPI.routeKind:
	// GRPCRoute).
	GRPC bool
}

var _ traffic.Router = (*Router)(nil)

// Name implements traffic.Router.
func (r *Router) Name() string {
	if r.GRPC {
		return "gatewayAPI/GRPCRoute"
	}
	return "gatewayAPI"
}

func (r *Router) kind() kind {
	if r.GRPC {
		return grpcKind{}
	}
	return httpKind{}
}

func routing(t traffic.Target) *sluicev1.GatewayAPIRouting {
	return t.Rollout.Spec.Routing.GatewayAPI
}

// routeName is the adopted route's name, or the apex name for a generated one.
func routeName(t traffic.Target, k kind) (name string, adopted bool) {
	if ref := k.adoptRef(routing(t)); ref != nil {
		return ref.Name, true
	}
	return t.Apex, false
}

// EnsureRoutes creates the generated route, or checks that the adopted one
// exists and routes to the apex Service.
func (r *Router) EnsureRoutes(ctx context.Context, t traffic.Target) error {
	k := r.kind()
	name, adopted := routeName(t, k)
	// The cache's own object, read only: the copy below is what changes.
	route := k.empty()
	err := r.Client.Get(ctx, client.ObjectKey{Namespace: t.Rollout.Namespace, Name: name}, route, client.UnsafeDisableDeepCopy)
	switch {
	case apierrors.IsNotFound(err) && adopted:
		return &traffic.StalledError{Reason: "RouteNotFound", Message: fmt.Sprintf("%s: %s %s not found", k.refField(), k.name(), name)}
	case apierrors.IsNotFound(err):
		return r.create(ctx, t, k)
	case err != nil:
		return fmt.Errorf("reading %s %s: %w", k.name(), name, err)
	}
	if adopted {
		if _, ok := k.observed(route, backendsOf(t)); !ok {
			return &traffic.StalledError{Reason: "NoRuleForService", Message: fmt.Sprintf(
				"%s %s has no rule with a backendRef to Service %s: point the rules Sluice should shift at it", k.name(), name, t.Apex)}
		}
		return nil
	}
	if !metav1.IsControlledBy(route, t.Rollout) {
		return &traffic.StalledError{Reason: "RouteConflict", Message: fmt.Sprintf(
			"%s %s exists and is not managed by this Rollout: adopt it with %s or remove it", k.name(), name, k.refField())}
	}
	patch := client.MergeFrom(route)
	upd := route.DeepCopyObject().(client.Object)
	specChanged := k.syncGenerated(upd, t)
	if metaChanged := traffic.SyncMetadata(upd, routing(t).Metadata); !specChanged && !metaChanged {
		return nil
	}
	if err := r.Client.Patch(ctx, upd, patch); err != nil {
		return fmt.Errorf("updating %s %s: %w", k.name(), name, err)
	}
	return nil
}

func (r *Router) create(ctx context.Context, t traffic.Target, k kind) error {
	initial := traffic.Route{Weights: traffic.ForCanary(0)}
	route := k.generate(t, metav1.ObjectMeta{
		Name: t.Apex, Namespace: t.Rollout.Namespace,
		Labels:      map[string]string{traffic.ManagedByLabel: traffic.ManagedByValue},
		Annotations: map[string]string{traffic.RouteAnnotation: initial.String()},
	})
	traffic.SyncMetadata(route, routing(t).Metadata)
	if err := controllerutil.SetControllerReference(t.Rollout, route, r.Client.Scheme()); err != nil {
		return err
	}
	if err := r.Client.Create(ctx, route); err != nil {
		return fmt.Errorf("creating %s %s: %w", k.name(), route.GetName(), traffic.CreateRefused(err, k.name()))
	}
	return nil
}

func parentRefs(t traffic.Target) []gwv1.ParentReference {
	var out []gwv1.ParentReference
	for _, p := range routing(t).ParentRefs {
		ref := gwv1.ParentReference{
			Group: ptr.To(gwv1.Group(gwv1.GroupName)), Kind: ptr.To(gwv1.Kind("Gateway")),
			Name: gwv1.ObjectName(p.Name),
		}
		if p.Kind == "Service" {
			// GAMMA: a mesh route of the core Service's traffic.
			ref.Group, ref.Kind = ptr.To(gwv1.Group("")), ptr.To(gwv1.Kind("Service"))
			if p.Port != nil {
				ref.Port = ptr.To(gwv1.PortNumber(*p.Port))
			}
		}
		if p.Namespace != "" {
			ref.Namespace = ptr.To(gwv1.Namespace(p.Namespace))
		}
		if p.SectionName != "" {
			ref.SectionName = ptr.To(gwv1.SectionName(p.SectionName))
		}
		out = append(out, ref)
	}
	return out
}

func hostnames(t traffic.Target) []gwv1.Hostname {
	var out []gwv1.Hostname
	for _, h := range routing(t).Hostnames {
		out = append(out, gwv1.Hostname(h))
	}
	return out
}

// get reads the route as the cache's own object, which callers must not
// change: a reconcile reads it every time, and copying it was most of a
// canary's cost; a write starts from a copy.
func (r *Router) get(ctx context.Context, t traffic.Target, k kind) (client.Object, error) {
	name, _ := routeName(t, k)
	route := k.empty()
	if err := r.Client.Get(ctx, client.ObjectKey{Namespace: t.Rollout.Namespace, Name: name}, route, client.UnsafeDisableDeepCopy); err != nil {
		return nil, err
	}
	return route, nil
}

// Apply rewrites the route's managed rules for want, reads the result back
// from the update's response, and reports a change made by someone else.
func (r *Router) Apply(ctx context.Context, t traffic.Target, want traffic.Route) (traffic.Applied, error) {
	k := r.kind()
	cached, err := r.get(ctx, t, k)
	if err != nil {
		return traffic.Applied{}, fmt.Errorf("reading %s: %w", k.name(), traffic.NotCachedYet(err, k.name()))
	}
	route := cached.DeepCopyObject().(client.Object)
	b := backendsOf(t)
	var last *traffic.Route
	if l, ok := traffic.ParseRoute(route.GetAnnotations()[traffic.RouteAnnotation]); ok {
		last = &l
	}
	// A patch, not an update: only what changed is sent, and the rest of
	// the route stays as the API server holds it. But a merge patch
	// replaces the rules list whole, and written from a copy older than
	// the route (the team edited an adopted one, the cache has not seen
	// it yet) it would put their old rules back over their edit: so it
	// is locked to the copy read, and a conflict is decided again from
	// the route as it stands.
	patch := client.MergeFromWithOptions(cached, client.MergeFromWithOptimisticLock{})
	changed, drifted := k.setRules(route, b, &t.Rollout.Spec, want, last)
	labels, relabel := traffic.SyncShiftingLabel(route.GetLabels(), want)
	if relabel || changed || route.GetAnnotations()[traffic.RouteAnnotation] != want.String() {
		route.SetLabels(labels)
		annotations := maps.Clone(route.GetAnnotations())
		if annotations == nil {
			annotations = map[string]string{}
		}
		annotations[traffic.RouteAnnotation] = want.String()
		route.SetAnnotations(annotations)
		if err := r.Client.Patch(ctx, route, patch); err != nil {
			return traffic.Applied{}, fmt.Errorf("updating %s %s: %w", k.name(), route.GetName(), err)
		}
	}
	out := traffic.Applied{Drifted: drifted}
	out.Route, _ = routeOf(route, b, k)
	return out, nil
}

// Observe reads the route back.
func (r *Router) Observe(ctx context.Context, t traffic.Target) (traffic.Route, bool, error) {
	k := r.kind()
	route, err := r.get(ctx, t, k)
	if apierrors.IsNotFound(err) {
		return traffic.Route{}, false, nil
	}
	if err != nil {
		return traffic.Route{}, false, err
	}
	got, ok := routeOf(route, backendsOf(t), k)
	return got, ok, nil
}

// routeOf reads the Route a route object holds; the experiment's revision
// is the one Sluice recorded when it wrote the rules.
func routeOf(route client.Object, b backends, k kind) (traffic.Route, bool) {
	got, ok := k.observed(route, b)
	if ann, annOK := traffic.ParseRoute(route.GetAnnotations()[traffic.RouteAnnotation]); annOK && got.Experiment {
		got.Revision = ann.Revision
	}
	return got, ok
}

// Finalize hands the route back: the managed rules point at the apex Service
// only and Sluice's rules and filters are removed. A generated route is
// deleted with the Rollout unless revert keeps it (released from the Rollout).
func (r *Router) Finalize(ctx context.Context, t traffic.Target, revert bool) error {
	k := r.kind()
	cached, err := r.get(ctx, t, k)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	_, adopted := routeName(t, k)
	if !adopted && (!revert || traffic.ControlledByAnother(cached, t.Rollout)) {
		// Garbage-collected with the Rollout; or another Rollout's route
		// of the same name, which this one stalled on and never shifted.
		return nil
	}
	// Locked, as Apply's: the rules list is written whole.
	patch := client.MergeFromWithOptions(cached, client.MergeFromWithOptimisticLock{})
	route := cached.DeepCopyObject().(client.Object)
	k.handBack(route, backendsOf(t), &t.Rollout.Spec)
	labels, _ := traffic.SyncShiftingLabel(route.GetLabels(), traffic.Route{})
	annotations := maps.Clone(route.GetAnnotations())
	delete(annotations, traffic.RouteAnnotation)
	route.SetAnnotations(annotations)
	if !adopted {
		var owners []metav1.OwnerReference
		for _, o := range route.GetOwnerReferences() {
			if o.UID != t.Rollout.UID {
				owners = append(owners, o)
			}
		}
		route.SetOwnerReferences(owners)
		labels = maps.Clone(labels)
		delete(labels, traffic.ManagedByLabel)
	}
	route.SetLabels(labels)
	if err := r.Client.Patch(ctx, route, patch); err != nil {
		return fmt.Errorf("handing %s %s back: %w", k.name(), route.GetName(), err)
	}
	return nil
}
