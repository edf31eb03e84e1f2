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

// EnsureRoutes creates the DestinationRules (or checks the adopted ones) and
// the generated VirtualService (or checks the adopted one), keeping the
// weights it holds.
func (r *Router) EnsureRoutes(ctx context.Context, t traffic.Target) error {
	p, err := policiesOf(config(t))
	if err != nil {
		return err
	}
	for _, host := range []string{t.Primary, t.Canary} {
		if name, ok := adoptedDR(t, host); ok {
			err = r.adoptDestinationRule(ctx, t, host, name)
		} else {
			err = r.ensureDestinationRule(ctx, t, host, p)
		}
		if err != nil {
			return err
		}
	}
	name, adopted := vsName(t)
	s := shiftedOf(t)
	// The cache's own object: a reconcile that finds it as it should be only
	// reads it. It is never changed here; a patch goes from a copy.
	vs, err := r.cached(ctx, t)
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
		if s.tcp {
			vs.Spec.Tcp = []*networking.TCPRoute{generatedTCP(s.h)}
		} else {
			vs.Spec.Http = []*networking.HTTPRoute{generatedHTTP(s.h, config(t), p)}
		}
		traffic.SyncMetadata(vs, config(t).Metadata)
		if err := controllerutil.SetControllerReference(t.Rollout, vs, r.Client.Scheme()); err != nil {
			return err
		}
		if err := r.Client.Create(ctx, vs); err != nil {
			return fmt.Errorf("creating VirtualService %s: %w", name, traffic.CreateRefused(err, "VirtualService"))
		}
		return nil
	case err != nil:
		return fmt.Errorf("reading VirtualService %s: %w", name, err)
	}
	if adopted {
		if _, ok := s.observe(vs); !ok {
			return &traffic.StalledError{Reason: "NoRuleForService", Message: fmt.Sprintf(
				"VirtualService %s has no %s route to host %s: point the routes Sluice should shift at it", name, s.kind(), t.Apex)}
		}
		return nil
	}
	if !metav1.IsControlledBy(vs, t.Rollout) {
		return &traffic.StalledError{Reason: "RouteConflict", Message: fmt.Sprintf(
			"VirtualService %s exists and is not managed by this Rollout: adopt it with routing.istio.virtualServiceRef or remove it", name)}
	}
	// Refresh the generated route's pass-through fields from the spec, with
	// the route it holds now (a change by someone else is Apply's to report).
	// A route of the other protocol (service.appProtocol changed) gives way
	// to the new one with all traffic on the primary, which always has
	// ready pods; Apply then sets the weight the run asks for.
	current, ok := s.observe(vs)
	if !ok {
		current = traffic.Route{Weights: traffic.ForCanary(0)}
	}
	want := vs.Spec.DeepCopy()
	want.Hosts, want.Gateways = r.hosts(t), config(t).Gateways
	if s.tcp {
		want.Http, want.Tcp = nil, buildTCP([]*networking.TCPRoute{generatedTCP(s.h)}, s.h, current)
	} else {
		want.Tcp, want.Http = nil, buildHTTP([]*networking.HTTPRoute{generatedHTTP(s.h, config(t), p)}, s.h, s.spec, current)
	}
	if proto.Equal(want, &vs.Spec) && !traffic.MetadataChanged(vs, config(t).Metadata) {
		return nil
	}
	upd := vs.DeepCopy()
	traffic.SyncMetadata(upd, config(t).Metadata)
	want.DeepCopyInto(&upd.Spec)
	if err := r.Client.Patch(ctx, upd, client.MergeFrom(vs)); err != nil {
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

// get reads the VirtualService as a copy of its own, to change.
func (r *Router) get(ctx context.Context, t traffic.Target) (*istiov1.VirtualService, error) {
	name, _ := vsName(t)
	vs := &istiov1.VirtualService{}
	return vs, r.Client.Get(ctx, client.ObjectKey{Namespace: t.Rollout.Namespace, Name: name}, vs)
}

// cached reads the VirtualService as the cache's own object, not a deep
// copy (it is read on every reconcile, and a deep copy of its protobuf
// spec is costly): the caller only reads it, and writes from a copy.
func (r *Router) cached(ctx context.Context, t traffic.Target) (*istiov1.VirtualService, error) {
	name, _ := vsName(t)
	vs := &istiov1.VirtualService{}
	return vs, r.Client.Get(ctx, client.ObjectKey{Namespace: t.Rollout.Namespace, Name: name}, vs, client.UnsafeDisableDeepCopy)
}

// Apply rewrites the managed routes for want and reads the result back.
func (r *Router) Apply(ctx context.Context, t traffic.Target, want traffic.Route) (traffic.Applied, error) {
	vs, err := r.cached(ctx, t)
	if err != nil {
		return traffic.Applied{}, fmt.Errorf("reading VirtualService: %w", traffic.NotCachedYet(err, "VirtualService"))
	}
	s := shiftedOf(t)
	var out traffic.Applied
	if last, ok := traffic.ParseRoute(vs.Annotations[traffic.RouteAnnotation]); ok {
		out.Drifted = !proto.Equal(s.build(&vs.Spec, last), &vs.Spec)
	}
	spec := s.build(&vs.Spec, want)
	labels, relabel := traffic.SyncShiftingLabel(vs.Labels, want)
	if relabel || !proto.Equal(spec, &vs.Spec) || vs.Annotations[traffic.RouteAnnotation] != want.String() {
		upd := vs.DeepCopy()
		spec.DeepCopyInto(&upd.Spec)
		if relabel {
			// A new map (SyncShiftingLabel); otherwise labels is the
			// cache's own, which the answer must not be decoded into.
			upd.Labels = labels
		}
		if upd.Annotations == nil {
			upd.Annotations = map[string]string{}
		}
		upd.Annotations[traffic.RouteAnnotation] = want.String()
		// Locked to the copy read: a merge patch replaces the http (or
		// tcp) list whole, and from a copy older than the VirtualService
		// (the team edited an adopted one, the cache has not seen it yet)
		// it would put their old routes back over their edit.
		if err := r.Client.Patch(ctx, upd, client.MergeFromWithOptions(vs, client.MergeFromWithOptimisticLock{})); err != nil {
			return traffic.Applied{}, fmt.Errorf("updating VirtualService %s: %w", vs.Name, err)
		}
		vs = upd
	}
	out.Route, _ = s.observe(vs)
	return out, nil
}

// Observe reads the VirtualService back.
func (r *Router) Observe(ctx context.Context, t traffic.Target) (traffic.Route, bool, error) {
	vs, err := r.cached(ctx, t)
	if apierrors.IsNotFound(err) {
		return traffic.Route{}, false, nil
	}
	if err != nil {
		return traffic.Route{}, false, err
	}
	got, ok := shiftedOf(t).observe(vs)
	return got, ok, nil
}

// shifted is what Sluice shifts in a VirtualService for a Rollout: its
// http routes, or its tcp routes when the main port is TCP (TCP).
type shifted struct {
	tcp  bool
	h    hosts
	spec *sluicev1.RolloutSpec
}

func shiftedOf(t traffic.Target) shifted {
	return shifted{tcp: TCP(&t.Rollout.Spec.Service), h: hostsOf(t), spec: &t.Rollout.Spec}
}

func (s shifted) kind() string {
	if s.tcp {
		return "tcp"
	}
	return "HTTP"
}

// build returns a copy of vs with the shifted routes rebuilt for r; the
// routes of the other protocol are left as they are.
func (s shifted) build(vs *networking.VirtualService, r traffic.Route) *networking.VirtualService {
	out := vs.DeepCopy()
	if s.tcp {
		out.Tcp = buildTCP(vs.Tcp, s.h, r)
	} else {
		out.Http = buildHTTP(vs.Http, s.h, s.spec, r)
	}
	return out
}

// observe reads the Route a VirtualService holds.
func (s shifted) observe(vs *istiov1.VirtualService) (traffic.Route, bool) {
	if s.tcp {
		return observedTCP(vs.Spec.Tcp, s.h)
	}
	got, ok := observed(vs.Spec.Http, s.h)
	if ann, annOK := traffic.ParseRoute(vs.Annotations[traffic.RouteAnnotation]); annOK && got.Experiment {
		got.Revision = ann.Revision
	}
	return got, ok
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
	if !adopted && (!revert || traffic.ControlledByAnother(vs, t.Rollout)) {
		// Garbage-collected with the Rollout; or another Rollout's
		// VirtualService of the same name, which this one never shifted.
		return nil
	}
	s := shiftedOf(t)
	// Locked, as Apply's: the route lists are written whole.
	patch := client.MergeFromWithOptions(vs.DeepCopy(), client.MergeFromWithOptimisticLock{})
	if s.tcp {
		handBackTCP(vs.Spec.Tcp, s.h)
	} else {
		vs.Spec.Http = handBackHTTP(vs.Spec.Http, s.h, s.spec)
	}
	vs.Labels, _ = traffic.SyncShiftingLabel(vs.Labels, traffic.Route{})
	delete(vs.Annotations, traffic.RouteAnnotation)
	if !adopted {
		release(vs, t)
	}
	if err := r.Client.Patch(ctx, vs, patch); err != nil {
		return fmt.Errorf("handing VirtualService %s back: %w", vs.Name, err)
	}
	return nil
}

// handBackHTTP removes the experiment routes and points the managed HTTP
// routes at the apex Service again.
func handBackHTTP(current []*networking.HTTPRoute, h hosts, spec *sluicev1.RolloutSpec) []*networking.HTTPRoute {
	http := buildHTTP(current, h, spec, traffic.Route{Weights: traffic.ForCanary(0)})
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
	return http
}
