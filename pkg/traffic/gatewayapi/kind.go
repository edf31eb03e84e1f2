package gatewayapi

import (
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	sluicev1 "github.com/sluice-dev/sluice/api/v1alpha1"
	"github.com/sluice-dev/sluice/pkg/traffic"
)

// kind is what differs between the route kinds the router handles: how a
// route is generated and how its rules are read and rewritten. The router
// does the rest (reading, patching, metadata) the same way for both.
type kind interface {
	// name is the route's kind, for messages.
	name() string
	// refField is the spec field that adopts a route of this kind.
	refField() string
	// adoptRef is the adopted route, nil for a generated one.
	adoptRef(g *sluicev1.GatewayAPIRouting) *sluicev1.LocalObjectReference
	empty() client.Object
	// generate is a new route with meta, all traffic to the primary.
	generate(t traffic.Target, meta metav1.ObjectMeta) client.Object
	// observed reads the Route the route's rules hold; false when no rule
	// points at the Rollout's Services.
	observed(route client.Object, b backends) (traffic.Route, bool)
	// syncGenerated gives a generated route the spec's parents, hostnames,
	// filters and timeouts; it reports whether anything changed.
	syncGenerated(route client.Object, t traffic.Target) bool
	// setRules rewrites the managed rules for want, leaving the rules as
	// they are when they already hold it; drifted reports that they did not
	// hold last, the Route Sluice wrote before.
	setRules(route client.Object, b backends, spec *sluicev1.RolloutSpec, want traffic.Route, last *traffic.Route) (changed, drifted bool)
	// handBack points the managed rules at the apex Service only and drops
	// the rules and filters Sluice added.
	handBack(route client.Object, b backends, spec *sluicev1.RolloutSpec)
}

type httpKind struct{}

func (httpKind) name() string     { return "HTTPRoute" }
func (httpKind) refField() string { return "routing.gatewayAPI.httpRouteRef" }
func (httpKind) adoptRef(g *sluicev1.GatewayAPIRouting) *sluicev1.LocalObjectReference {
	return g.HTTPRouteRef
}
func (httpKind) empty() client.Object { return &gwv1.HTTPRoute{} }

func (httpKind) generate(t traffic.Target, meta metav1.ObjectMeta) client.Object {
	b := backendsOf(t)
	return &gwv1.HTTPRoute{
		ObjectMeta: meta,
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
}

func (httpKind) observed(route client.Object, b backends) (traffic.Route, bool) {
	return observed(route.(*gwv1.HTTPRoute).Spec.Rules, b)
}

func (httpKind) syncGenerated(o client.Object, t traffic.Target) bool {
	route := o.(*gwv1.HTTPRoute)
	parents, hosts := parentRefs(t), hostnames(t)
	options := syncRuleOptions(route.Spec.Rules, backendsOf(t), routing(t))
	if !options && equality.Semantic.DeepEqual(route.Spec.ParentRefs, parents) && equality.Semantic.DeepEqual(route.Spec.Hostnames, hosts) {
		return false
	}
	route.Spec.ParentRefs, route.Spec.Hostnames = parents, hosts
	return true
}

func (httpKind) setRules(o client.Object, b backends, spec *sluicev1.RolloutSpec, want traffic.Route, last *traffic.Route) (changed, drifted bool) {
	route := o.(*gwv1.HTTPRoute)
	if last != nil {
		drifted = !sameRules(buildRules(route.Spec.Rules, b, spec, *last), route.Spec.Rules)
	}
	rules := buildRules(route.Spec.Rules, b, spec, want)
	if sameRules(rules, route.Spec.Rules) {
		return false, drifted
	}
	route.Spec.Rules = rules
	return true, drifted
}

func (httpKind) handBack(o client.Object, b backends, spec *sluicev1.RolloutSpec) {
	route := o.(*gwv1.HTTPRoute)
	var rules []gwv1.HTTPRouteRule
	for _, rule := range buildRules(route.Spec.Rules, b, spec, traffic.Route{Weights: traffic.ForCanary(0)}) {
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
}
