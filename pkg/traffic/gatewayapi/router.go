// Package gatewayapi is the Gateway API router: it shifts traffic through an
// HTTPRoute (gateway.networking.k8s.io/v1) that it generates, or that the
// user already has and lets Sluice adopt.
package gatewayapi

import (
	"context"
	"fmt"
	"maps"

	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	sluicev1 "github.com/sluice-dev/sluice/api/v1alpha1"
	"github.com/sluice-dev/sluice/pkg/traffic"
)

// Router shifts traffic through an HTTPRoute.
type Router struct {
	Client client.Client
}

var _ traffic.Router = (*Router)(nil)

// Name implements traffic.Router.
func (r *Router) Name() string { return "gatewayAPI" }

func routing(t traffic.Target) *sluicev1.GatewayAPIRouting {
	return t.Rollout.Spec.Routing.GatewayAPI
}

// routeName is the adopted route's name, or the apex name for a generated one.
func routeName(t traffic.Target) (name string, adopted bool) {
	if ref := routing(t).HTTPRouteRef; ref != nil {
		return ref.Name, true
	}
	return t.Apex, false
}

// EnsureRoutes creates the generated HTTPRoute, or checks that the adopted
// one exists and routes to the apex Service.
func (r *Router) EnsureRoutes(ctx context.Context, t traffic.Target) error {
	name, adopted := routeName(t)
	route := &gwv1.HTTPRoute{}
	err := r.Client.Get(ctx, client.ObjectKey{Namespace: t.Rollout.Namespace, Name: name}, route)
	switch {
	case apierrors.IsNotFound(err) && adopted:
		return &traffic.StalledError{Reason: "RouteNotFound", Message: fmt.Sprintf("routing.gatewayAPI.httpRouteRef: HTTPRoute %s not found", name)}
	case apierrors.IsNotFound(err):
		return r.create(ctx, t)
	case err != nil:
		return fmt.Errorf("reading HTTPRoute %s: %w", name, err)
	}
	if adopted {
		if _, ok := observed(route.Spec.Rules, backendsOf(t)); !ok {
			return &traffic.StalledError{Reason: "NoRuleForService", Message: fmt.Sprintf(
				"HTTPRoute %s has no rule with a backendRef to Service %s: point the rules Sluice should shift at it", name, t.Apex)}
		}
		return nil
	}
	if !metav1.IsControlledBy(route, t.Rollout) {
		return &traffic.StalledError{Reason: "RouteConflict", Message: fmt.Sprintf(
			"HTTPRoute %s exists and is not managed by this Rollout: adopt it with routing.gatewayAPI.httpRouteRef or remove it", name)}
	}
	parents, hosts := parentRefs(t), hostnames(t)
	patch := client.MergeFrom(route.DeepCopy())
	options := syncRuleOptions(route.Spec.Rules, backendsOf(t), routing(t))
	if !options && equality.Semantic.DeepEqual(route.Spec.ParentRefs, parents) && equality.Semantic.DeepEqual(route.Spec.Hostnames, hosts) {
		return nil
	}
	route.Spec.ParentRefs, route.Spec.Hostnames = parents, hosts
	if err := r.Client.Patch(ctx, route, patch); err != nil {
		return fmt.Errorf("updating HTTPRoute %s: %w", name, err)
	}
	return nil
}

func (r *Router) create(ctx context.Context, t traffic.Target) error {
	b := backendsOf(t)
	initial := traffic.Route{Weights: traffic.ForCanary(0)}
	route := &gwv1.HTTPRoute{
		ObjectMeta: metav1.ObjectMeta{
			Name: t.Apex, Namespace: t.Rollout.Namespace,
			Labels:      map[string]string{traffic.ManagedByLabel: traffic.ManagedByValue},
			Annotations: map[string]string{traffic.RouteAnnotation: initial.String()},
		},
		Spec: gwv1.HTTPRouteSpec{
			CommonRouteSpec: gwv1.CommonRouteSpec{ParentRefs: parentRefs(t)},
			Hostnames:       hostnames(t),
			Rules: []gwv1.HTTPRouteRule{{
				Matches:     []gwv1.HTTPRouteMatch{{Path: &gwv1.HTTPPathMatch{Type: ptr.To(gwv1.PathMatchPathPrefix), Value: ptr.To("/")}}},
				Filters:     ruleFilters(routing(t)),
				Timeouts:    ruleTimeouts(routing(t)),
				BackendRefs: []gwv1.HTTPBackendRef{b.ref(b.primary, 100), b.ref(b.canary, 0)},
			}},
		},
	}
	if err := controllerutil.SetControllerReference(t.Rollout, route, r.Client.Scheme()); err != nil {
		return err
	}
	if err := r.Client.Create(ctx, route); err != nil {
		return fmt.Errorf("creating HTTPRoute %s: %w", route.Name, err)
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

func (r *Router) get(ctx context.Context, t traffic.Target) (*gwv1.HTTPRoute, error) {
	name, _ := routeName(t)
	route := &gwv1.HTTPRoute{}
	if err := r.Client.Get(ctx, client.ObjectKey{Namespace: t.Rollout.Namespace, Name: name}, route); err != nil {
		return nil, err
	}
	return route, nil
}

// Apply rewrites the route's managed rules for want, reads the result back
// from the update's response, and reports a change made by someone else.
func (r *Router) Apply(ctx context.Context, t traffic.Target, want traffic.Route) (traffic.Applied, error) {
	route, err := r.get(ctx, t)
	if err != nil {
		return traffic.Applied{}, fmt.Errorf("reading HTTPRoute: %w", err)
	}
	b, spec := backendsOf(t), &t.Rollout.Spec
	var out traffic.Applied
	if last, ok := traffic.ParseRoute(route.Annotations[traffic.RouteAnnotation]); ok {
		out.Drifted = !sameRules(buildRules(route.Spec.Rules, b, spec, last), route.Spec.Rules)
	}
	rules := buildRules(route.Spec.Rules, b, spec, want)
	labels, relabel := traffic.SyncShiftingLabel(route.Labels, want)
	if relabel || !sameRules(rules, route.Spec.Rules) || route.Annotations[traffic.RouteAnnotation] != want.String() {
		// A patch, not an update: the gateway writes the route's status
		// concurrently, and the rules are Sluice's to set either way.
		patch := client.MergeFrom(route.DeepCopy())
		route.Spec.Rules, route.Labels = rules, labels
		if route.Annotations == nil {
			route.Annotations = map[string]string{}
		}
		route.Annotations[traffic.RouteAnnotation] = want.String()
		if err := r.Client.Patch(ctx, route, patch); err != nil {
			return traffic.Applied{}, fmt.Errorf("updating HTTPRoute %s: %w", route.Name, err)
		}
	}
	out.Route, _ = routeOf(route, b)
	return out, nil
}

// Observe reads the route back.
func (r *Router) Observe(ctx context.Context, t traffic.Target) (traffic.Route, bool, error) {
	route, err := r.get(ctx, t)
	if apierrors.IsNotFound(err) {
		return traffic.Route{}, false, nil
	}
	if err != nil {
		return traffic.Route{}, false, err
	}
	got, ok := routeOf(route, backendsOf(t))
	return got, ok, nil
}

// routeOf reads the Route an HTTPRoute holds; the experiment's revision is
// the one Sluice recorded when it wrote the rules.
func routeOf(route *gwv1.HTTPRoute, b backends) (traffic.Route, bool) {
	got, ok := observed(route.Spec.Rules, b)
	if ann, annOK := traffic.ParseRoute(route.Annotations[traffic.RouteAnnotation]); annOK && got.Experiment {
		got.Revision = ann.Revision
	}
	return got, ok
}

// Finalize hands the route back: the managed rules point at the apex Service
// only and Sluice's rules and filters are removed. A generated route is
// deleted with the Rollout unless revert keeps it (released from the Rollout).
func (r *Router) Finalize(ctx context.Context, t traffic.Target, revert bool) error {
	route, err := r.get(ctx, t)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	_, adopted := routeName(t)
	if !adopted && !revert {
		return nil // garbage-collected with the Rollout
	}
	b := backendsOf(t)
	patch := client.MergeFrom(route.DeepCopy())
	var rules []gwv1.HTTPRouteRule
	for _, rule := range buildRules(route.Spec.Rules, b, &t.Rollout.Spec, traffic.Route{Weights: traffic.ForCanary(0)}) {
		if b.managed(rule) {
			var refs []gwv1.HTTPBackendRef
			for _, ref := range rule.BackendRefs {
				if !b.isOurs(ref) {
					refs = append(refs, ref)
				}
			}
			rule.BackendRefs = append([]gwv1.HTTPBackendRef{b.ref(b.apex, 1)}, refs...)
		}
		rules = append(rules, rule)
	}
	route.Spec.Rules = rules
	route.Labels, _ = traffic.SyncShiftingLabel(route.Labels, traffic.Route{})
	delete(route.Annotations, traffic.RouteAnnotation)
	if !adopted {
		var owners []metav1.OwnerReference
		for _, o := range route.OwnerReferences {
			if o.UID != t.Rollout.UID {
				owners = append(owners, o)
			}
		}
		route.OwnerReferences = owners
		labels := maps.Clone(route.Labels)
		delete(labels, traffic.ManagedByLabel)
		route.Labels = labels
	}
	if err := r.Client.Patch(ctx, route, patch); err != nil {
		return fmt.Errorf("handing HTTPRoute %s back: %w", route.Name, err)
	}
	return nil
}
