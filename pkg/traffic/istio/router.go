// Package istio is the Istio router: it shifts traffic through a
// VirtualService (networking.istio.io/v1) that it generates, with a
// DestinationRule per version, or that the user already has and lets Sluice
// adopt.
package istio

import (
	"context"
	"fmt"
	"slices"

	"google.golang.org/protobuf/proto"
	networking "istio.io/api/networking/v1alpha3"
	istiov1 "istio.io/client-go/pkg/apis/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	sluicev1 "github.com/sluice-dev/sluice/api/v1alpha1"
	"github.com/sluice-dev/sluice/pkg/traffic"
)

// Router shifts traffic through a VirtualService.
type Router struct {
	Client client.Client
}

var _ traffic.Router = (*Router)(nil)

// Name implements traffic.Router.
func (r *Router) Name() string { return "istio" }

func config(t traffic.Target) *sluicev1.IstioRouting { return t.Rollout.Spec.Routing.Istio }

func vsName(t traffic.Target) (string, bool) {
	if ref := config(t).VirtualServiceRef; ref != nil {
		return ref.Name, true
	}
	return t.Apex, false
}

// EnsureRoutes creates the DestinationRules and the generated VirtualService
// (or checks the adopted one), keeping the weights it holds.
func (r *Router) EnsureRoutes(ctx context.Context, t traffic.Target) error {
	p, err := policiesOf(config(t))
	if err != nil {
		return err
	}
	for _, host := range []string{t.Primary, t.Canary} {
		if err := r.ensureDestinationRule(ctx, t, host, p); err != nil {
			return err
		}
	}
	name, adopted := vsName(t)
	h := hostsOf(t)
	vs := &istiov1.VirtualService{}
	err = r.Client.Get(ctx, client.ObjectKey{Namespace: t.Rollout.Namespace, Name: name}, vs)
	switch {
	case apierrors.IsNotFound(err) && adopted:
		return &traffic.StalledError{Reason: "RouteNotFound", Message: fmt.Sprintf("routing.istio.virtualServiceRef: VirtualService %s not found", name)}
	case apierrors.IsNotFound(err):
		vs = &istiov1.VirtualService{ObjectMeta: metav1.ObjectMeta{
			Name: name, Namespace: t.Rollout.Namespace,
			Labels:      map[string]string{traffic.ManagedByLabel: traffic.ManagedByValue},
			Annotations: map[string]string{traffic.RouteAnnotation: traffic.Route{Weights: traffic.ForCanary(0)}.String()},
		}}
		vs.Spec.Hosts, vs.Spec.Gateways = r.hosts(t), config(t).Gateways
		vs.Spec.Http = []*networking.HTTPRoute{generatedHTTP(h, config(t), p)}
		if err := controllerutil.SetControllerReference(t.Rollout, vs, r.Client.Scheme()); err != nil {
			return err
		}
		if err := r.Client.Create(ctx, vs); err != nil {
			return fmt.Errorf("creating VirtualService %s: %w", name, err)
		}
		return nil
	case err != nil:
		return fmt.Errorf("reading VirtualService %s: %w", name, err)
	}
	if adopted {
		if _, ok := observed(vs.Spec.Http, h); !ok {
			return &traffic.StalledError{Reason: "NoRuleForService", Message: fmt.Sprintf(
				"VirtualService %s has no HTTP route to host %s: point the routes Sluice should shift at it", name, t.Apex)}
		}
		return nil
	}
	if !metav1.IsControlledBy(vs, t.Rollout) {
		return &traffic.StalledError{Reason: "RouteConflict", Message: fmt.Sprintf(
			"VirtualService %s exists and is not managed by this Rollout: adopt it with routing.istio.virtualServiceRef or remove it", name)}
	}
	// Refresh the generated route's pass-through fields from the spec, with
	// the route it holds now (a change by someone else is Apply's to report).
	current, _ := observed(vs.Spec.Http, h)
	if ann, ok := traffic.ParseRoute(vs.Annotations[traffic.RouteAnnotation]); ok && current.Experiment {
		current.Revision = ann.Revision
	}
	want := vs.Spec.DeepCopy()
	want.Hosts, want.Gateways = r.hosts(t), config(t).Gateways
	want.Http = buildHTTP([]*networking.HTTPRoute{generatedHTTP(h, config(t), p)}, h, &t.Rollout.Spec, current)
	if proto.Equal(want, &vs.Spec) {
		return nil
	}
	patch := client.MergeFrom(vs.DeepCopy())
	want.DeepCopyInto(&vs.Spec)
	if err := r.Client.Patch(ctx, vs, patch); err != nil {
		return fmt.Errorf("updating VirtualService %s: %w", name, err)
	}
	return nil
}

// hosts of the generated VirtualService: the spec's, and the apex Service
// for traffic inside the mesh.
func (r *Router) hosts(t traffic.Target) []string {
	out := slices.Clone(config(t).Hosts)
	if !slices.Contains(out, t.Apex) {
		out = append(out, t.Apex)
	}
	return out
}

// ensureDestinationRule creates the DestinationRule of host, or puts the
// one it created back to the spec: the host and routing.istio.trafficPolicy,
// nothing else. A change of the policy in the Rollout, or an edit of the
// DestinationRule by someone else, is undone here.
func (r *Router) ensureDestinationRule(ctx context.Context, t traffic.Target, host string, p policies) error {
	want := destinationRuleSpec(host, p)
	dr := &istiov1.DestinationRule{}
	err := r.Client.Get(ctx, client.ObjectKey{Namespace: t.Rollout.Namespace, Name: host}, dr)
	if err == nil {
		if !metav1.IsControlledBy(dr, t.Rollout) {
			return &traffic.StalledError{Reason: "RouteConflict", Message: fmt.Sprintf("DestinationRule %s exists and is not managed by this Rollout", host)}
		}
		if proto.Equal(&dr.Spec, want) {
			return nil
		}
		patch := client.MergeFrom(dr.DeepCopy())
		dr.Spec.Reset()
		proto.Merge(&dr.Spec, want)
		if err := r.Client.Patch(ctx, dr, patch); err != nil {
			return fmt.Errorf("updating DestinationRule %s: %w", host, err)
		}
		return nil
	}
	if !apierrors.IsNotFound(err) {
		return fmt.Errorf("reading DestinationRule %s: %w", host, err)
	}
	dr = &istiov1.DestinationRule{ObjectMeta: metav1.ObjectMeta{
		Name: host, Namespace: t.Rollout.Namespace,
		Labels: map[string]string{traffic.ManagedByLabel: traffic.ManagedByValue},
	}}
	proto.Merge(&dr.Spec, want)
	if err := controllerutil.SetControllerReference(t.Rollout, dr, r.Client.Scheme()); err != nil {
		return err
	}
	if err := r.Client.Create(ctx, dr); err != nil {
		return fmt.Errorf("creating DestinationRule %s: %w", host, err)
	}
	return nil
}

func (r *Router) get(ctx context.Context, t traffic.Target) (*istiov1.VirtualService, error) {
	name, _ := vsName(t)
	vs := &istiov1.VirtualService{}
	return vs, r.Client.Get(ctx, client.ObjectKey{Namespace: t.Rollout.Namespace, Name: name}, vs)
}

// Apply rewrites the managed HTTP routes for want and reads the result back.
func (r *Router) Apply(ctx context.Context, t traffic.Target, want traffic.Route) (traffic.Applied, error) {
	vs, err := r.get(ctx, t)
	if err != nil {
		return traffic.Applied{}, fmt.Errorf("reading VirtualService: %w", err)
	}
	h, spec := hostsOf(t), &t.Rollout.Spec
	var out traffic.Applied
	if last, ok := traffic.ParseRoute(vs.Annotations[traffic.RouteAnnotation]); ok {
		out.Drifted = !sameHTTP(buildHTTP(vs.Spec.Http, h, spec, last), vs.Spec.Http)
	}
	http := buildHTTP(vs.Spec.Http, h, spec, want)
	labels, relabel := traffic.SyncShiftingLabel(vs.Labels, want)
	if relabel || !sameHTTP(http, vs.Spec.Http) || vs.Annotations[traffic.RouteAnnotation] != want.String() {
		patch := client.MergeFrom(vs.DeepCopy())
		vs.Spec.Http, vs.Labels = http, labels
		if vs.Annotations == nil {
			vs.Annotations = map[string]string{}
		}
		vs.Annotations[traffic.RouteAnnotation] = want.String()
		if err := r.Client.Patch(ctx, vs, patch); err != nil {
			return traffic.Applied{}, fmt.Errorf("updating VirtualService %s: %w", vs.Name, err)
		}
	}
	out.Route, _ = routeOf(vs, h)
	return out, nil
}

// Observe reads the VirtualService back.
func (r *Router) Observe(ctx context.Context, t traffic.Target) (traffic.Route, bool, error) {
	vs, err := r.get(ctx, t)
	if apierrors.IsNotFound(err) {
		return traffic.Route{}, false, nil
	}
	if err != nil {
		return traffic.Route{}, false, err
	}
	got, ok := routeOf(vs, hostsOf(t))
	return got, ok, nil
}

func routeOf(vs *istiov1.VirtualService, h hosts) (traffic.Route, bool) {
	got, ok := observed(vs.Spec.Http, h)
	if ann, annOK := traffic.ParseRoute(vs.Annotations[traffic.RouteAnnotation]); annOK && got.Experiment {
		got.Revision = ann.Revision
	}
	return got, ok
}

func sameHTTP(a, b []*networking.HTTPRoute) bool {
	return slices.EqualFunc(a, b, func(x, y *networking.HTTPRoute) bool { return proto.Equal(x, y) })
}

// Finalize hands the VirtualService back pointing at the apex host, or
// leaves a generated one to garbage collection when not reverting.
func (r *Router) Finalize(ctx context.Context, t traffic.Target, revert bool) error {
	vs, err := r.get(ctx, t)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	_, adopted := vsName(t)
	if !adopted && !revert {
		return nil
	}
	h := hostsOf(t)
	patch := client.MergeFrom(vs.DeepCopy())
	http := buildHTTP(vs.Spec.Http, h, &t.Rollout.Spec, traffic.Route{Weights: traffic.ForCanary(0)})
	for _, route := range http {
		if !h.managed(route) {
			continue
		}
		var dests []*networking.HTTPRouteDestination
		for _, d := range route.Route {
			if h.name(d.GetDestination().GetHost()) == "" {
				dests = append(dests, d)
			}
		}
		route.Route = append([]*networking.HTTPRouteDestination{h.dest(h.apex, 100, nil)}, dests...)
	}
	vs.Spec.Http = http
	vs.Labels, _ = traffic.SyncShiftingLabel(vs.Labels, traffic.Route{})
	delete(vs.Annotations, traffic.RouteAnnotation)
	if !adopted {
		var owners []metav1.OwnerReference
		for _, o := range vs.OwnerReferences {
			if o.UID != t.Rollout.UID {
				owners = append(owners, o)
			}
		}
		vs.OwnerReferences = owners
		delete(vs.Labels, traffic.ManagedByLabel)
	}
	if err := r.Client.Patch(ctx, vs, patch); err != nil {
		return fmt.Errorf("handing VirtualService %s back: %w", vs.Name, err)
	}
	return nil
}
