package gatewayapi

import (
	"fmt"
	"regexp"
	"slices"
	"strings"

	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	sluicev1 "github.com/sluice-dev/sluice/api/v1alpha1"
	"github.com/sluice-dev/sluice/pkg/traffic"
)

// A GRPCRoute's rules match gRPC services, methods and headers and carry the
// same backendRefs and filters as an HTTPRoute's, but no timeouts. Sluice
// sets their weights, A/B rules and mirror the way it sets an HTTPRoute's
// (rules.go). Two things have no gRPC form and are refused by the CRD's
// validation with routeKind: GRPCRoute: session affinity (a cookie, which
// gRPC clients do not keep) and A/B matches on a URI, HTTP method or cookie
// (a GRPCRoute matches headers and gRPC methods only). A/B header matches
// become GRPCRoute header matches.

type grpcKind struct{}

func (grpcKind) name() string     { return "GRPCRoute" }
func (grpcKind) refField() string { return "routing.gatewayAPI.grpcRouteRef" }
func (grpcKind) adoptRef(g *sluicev1.GatewayAPIRouting) *sluicev1.LocalObjectReference {
	return g.GRPCRouteRef
}
func (grpcKind) empty() client.Object { return &gwv1.GRPCRoute{} }

func (grpcKind) generate(t traffic.Target, meta metav1.ObjectMeta) client.Object {
	b := backendsOf(t)
	return &gwv1.GRPCRoute{
		ObjectMeta: meta,
		Spec: gwv1.GRPCRouteSpec{
			CommonRouteSpec: gwv1.CommonRouteSpec{ParentRefs: parentRefs(t)},
			Hostnames:       hostnames(t),
			// No matches: every method of every service.
			Rules: []gwv1.GRPCRouteRule{{
				Filters:     grpcRuleFilters(routing(t)),
				BackendRefs: []gwv1.GRPCBackendRef{b.grpcRef(b.primary, 100), b.grpcRef(b.canary, 0)},
			}},
		},
	}
}

func (grpcKind) observed(route client.Object, b backends) (traffic.Route, bool) {
	return observedGRPC(route.(*gwv1.GRPCRoute).Spec.Rules, b)
}

func (grpcKind) syncGenerated(o client.Object, t traffic.Target) bool {
	route := o.(*gwv1.GRPCRoute)
	parents, hosts := parentRefs(t), hostnames(t)
	options := syncGRPCRuleOptions(route.Spec.Rules, backendsOf(t), routing(t))
	if !options && equality.Semantic.DeepEqual(route.Spec.ParentRefs, parents) && equality.Semantic.DeepEqual(route.Spec.Hostnames, hosts) {
		return false
	}
	route.Spec.ParentRefs, route.Spec.Hostnames = parents, hosts
	return true
}

func (grpcKind) setRules(o client.Object, b backends, spec *sluicev1.RolloutSpec, want traffic.Route, last *traffic.Route) (changed, drifted bool) {
	route := o.(*gwv1.GRPCRoute)
	if last != nil {
		drifted = !sameGRPCRules(buildGRPCRules(route.Spec.Rules, b, spec, *last), route.Spec.Rules)
	}
	rules := buildGRPCRules(route.Spec.Rules, b, spec, want)
	if sameGRPCRules(rules, route.Spec.Rules) {
		return false, drifted
	}
	route.Spec.Rules = rules
	return true, drifted
}

func (grpcKind) handBack(o client.Object, b backends, spec *sluicev1.RolloutSpec) {
	route := o.(*gwv1.GRPCRoute)
	var rules []gwv1.GRPCRouteRule
	for _, rule := range buildGRPCRules(route.Spec.Rules, b, spec, traffic.Route{Weights: traffic.ForCanary(0)}) {
		if b.grpcManaged(rule) {
			var refs []gwv1.GRPCBackendRef
			for _, ref := range rule.BackendRefs {
				if !b.isOursRef(ref.BackendObjectReference) {
					refs = append(refs, ref)
				}
			}
			rule.BackendRefs = append([]gwv1.GRPCBackendRef{b.grpcRef(b.apex, 1)}, refs...)
		}
		rules = append(rules, rule)
	}
	route.Spec.Rules = rules
}

func grpcInserted(rule gwv1.GRPCRouteRule) bool {
	return rule.Name != nil && strings.HasPrefix(string(*rule.Name), rulePrefix)
}

// grpcManaged reports whether Sluice owns a rule's backends: a rule of the
// user's that points at one of the Services.
func (b backends) grpcManaged(rule gwv1.GRPCRouteRule) bool {
	if grpcInserted(rule) {
		return false
	}
	for _, ref := range rule.BackendRefs {
		if b.isOursRef(ref.BackendObjectReference) {
			return true
		}
	}
	return false
}

func (b backends) grpcRef(name string, weight int32) gwv1.GRPCBackendRef {
	return gwv1.GRPCBackendRef{BackendRef: b.ref(name, weight).BackendRef}
}

// buildGRPCRules is buildRules for a GRPCRoute's rules.
func buildGRPCRules(current []gwv1.GRPCRouteRule, b backends, spec *sluicev1.RolloutSpec, r traffic.Route) []gwv1.GRPCRouteRule {
	var out []gwv1.GRPCRouteRule
	n := 0
	for _, rule := range current {
		if grpcInserted(rule) {
			continue
		}
		if !b.grpcManaged(rule) {
			out = append(out, rule)
			continue
		}
		rule = *rule.DeepCopy()
		if ab := spec.Strategy.ABTesting; ab != nil && r.Experiment {
			out = append(out, gwv1.GRPCRouteRule{
				Name:        ptr.To(gwv1.SectionName(fmt.Sprintf("%sab-%d", rulePrefix, n))),
				Matches:     combineGRPC(rule.Matches, ab.Match),
				Filters:     rule.Filters,
				BackendRefs: []gwv1.GRPCBackendRef{b.grpcRef(b.canary, 1)},
			})
		}
		out = append(out, grpcWeighted(rule, b, spec, r))
		n++
	}
	return out
}

// isOurMirror reports whether a filter is the mirror to the canary that
// Sluice adds.
func (b backends) isOurMirror(f gwv1.GRPCRouteFilter) bool {
	return f.Type == gwv1.GRPCRouteFilterRequestMirror && f.RequestMirror != nil && string(f.RequestMirror.BackendRef.Name) == b.canary
}

// grpcWeighted sets the backends of a managed rule, primary and canary with
// the weights, and the mirror filter of the experiment.
func grpcWeighted(rule gwv1.GRPCRouteRule, b backends, spec *sluicev1.RolloutSpec, r traffic.Route) gwv1.GRPCRouteRule {
	var refs []gwv1.GRPCBackendRef
	for _, ref := range rule.BackendRefs {
		if !b.isOursRef(ref.BackendObjectReference) {
			refs = append(refs, ref)
		}
	}
	rule.BackendRefs = append([]gwv1.GRPCBackendRef{b.grpcRef(b.primary, r.Weights.Primary), b.grpcRef(b.canary, r.Weights.Canary)}, refs...)
	var filters []gwv1.GRPCRouteFilter
	for _, f := range rule.Filters {
		if !b.isOurMirror(f) {
			filters = append(filters, f)
		}
	}
	if pct, ok := traffic.Mirror(spec, r); ok {
		filters = append(filters, gwv1.GRPCRouteFilter{
			Type:          gwv1.GRPCRouteFilterRequestMirror,
			RequestMirror: &gwv1.HTTPRequestMirrorFilter{BackendRef: b.ref(b.canary, 0).BackendObjectReference, Percent: ptr.To(pct)},
		})
	}
	rule.Filters = filters
	return rule
}

// combineGRPC ANDs each of a rule's matches with the header matches of
// each A/B match.
func combineGRPC(ruleMatches []gwv1.GRPCRouteMatch, extra []sluicev1.RequestMatch) []gwv1.GRPCRouteMatch {
	if len(ruleMatches) == 0 {
		ruleMatches = []gwv1.GRPCRouteMatch{{}}
	}
	var out []gwv1.GRPCRouteMatch
	for _, rm := range ruleMatches {
		for _, em := range extra {
			m := *rm.DeepCopy()
			for _, name := range sortedKeys(em.Headers) {
				m.Headers = append(m.Headers, grpcHeaderMatch(name, em.Headers[name]))
			}
			out = append(out, m)
		}
	}
	return out
}

func grpcHeaderMatch(name string, s sluicev1.StringMatch) gwv1.GRPCHeaderMatch {
	m := gwv1.GRPCHeaderMatch{Name: gwv1.GRPCHeaderName(name)}
	switch {
	case s.Exact != nil:
		m.Type, m.Value = ptr.To(gwv1.GRPCHeaderMatchExact), *s.Exact
	case s.Prefix != nil:
		m.Type, m.Value = ptr.To(gwv1.GRPCHeaderMatchRegularExpression), "^"+regexp.QuoteMeta(*s.Prefix)+".*"
	default:
		m.Type, m.Value = ptr.To(gwv1.GRPCHeaderMatchRegularExpression), *s.Regex
	}
	return m
}

// observedGRPC is observed for a GRPCRoute's rules.
func observedGRPC(rules []gwv1.GRPCRouteRule, b backends) (traffic.Route, bool) {
	var r traffic.Route
	found := false
	for _, rule := range rules {
		if grpcInserted(rule) {
			r.Experiment = true
			continue
		}
		if !b.grpcManaged(rule) || found {
			continue
		}
		found = true
		for _, ref := range rule.BackendRefs {
			w := int32(1)
			if ref.Weight != nil {
				w = *ref.Weight
			}
			switch string(ref.Name) {
			case b.primary:
				r.Weights.Primary = w
			case b.canary:
				r.Weights.Canary = w
			case b.apex:
				r.Weights.Primary = 100 // an adopted rule not yet rewritten
			}
		}
		if slices.ContainsFunc(rule.Filters, b.isOurMirror) {
			r.Experiment = true
		}
	}
	return r, found
}

// grpcRuleFilters are the spec's filters in their GRPCRoute form: the
// Gateway API gives both kinds the same header and extension filters.
func grpcRuleFilters(g *sluicev1.GatewayAPIRouting) []gwv1.GRPCRouteFilter {
	var out []gwv1.GRPCRouteFilter
	for _, f := range ruleFilters(g) {
		out = append(out, gwv1.GRPCRouteFilter{
			Type:                   gwv1.GRPCRouteFilterType(f.Type),
			RequestHeaderModifier:  f.RequestHeaderModifier,
			ResponseHeaderModifier: f.ResponseHeaderModifier,
			ExtensionRef:           f.ExtensionRef,
		})
	}
	return out
}

// syncGRPCRuleOptions is syncRuleOptions for a GRPCRoute (no timeouts).
func syncGRPCRuleOptions(rules []gwv1.GRPCRouteRule, b backends, g *sluicev1.GatewayAPIRouting) bool {
	want := grpcRuleFilters(g)
	changed := false
	for i := range rules {
		rule := &rules[i]
		if !grpcInserted(*rule) && !b.grpcManaged(*rule) {
			continue
		}
		filters := slices.Clone(want)
		for _, f := range rule.Filters {
			if b.isOurMirror(f) {
				filters = append(filters, f)
			}
		}
		if !equality.Semantic.DeepEqual(rule.Filters, filters) {
			rule.Filters, changed = filters, true
		}
	}
	return changed
}

// sameGRPCRules compares rules as the API server holds them (see sameRules).
func sameGRPCRules(a, b []gwv1.GRPCRouteRule) bool {
	return equality.Semantic.DeepEqual(normalizeGRPC(a), normalizeGRPC(b))
}

func normalizeGRPC(rules []gwv1.GRPCRouteRule) []gwv1.GRPCRouteRule {
	out := make([]gwv1.GRPCRouteRule, len(rules))
	for i, rule := range rules {
		r := *rule.DeepCopy()
		for j := range r.Matches {
			m := &r.Matches[j]
			if m.Method != nil && m.Method.Type == nil {
				m.Method.Type = ptr.To(gwv1.GRPCMethodMatchExact)
			}
			for k := range m.Headers {
				if m.Headers[k].Type == nil {
					m.Headers[k].Type = ptr.To(gwv1.GRPCHeaderMatchExact)
				}
			}
			if len(m.Headers) == 0 {
				m.Headers = nil
			}
		}
		if len(r.Matches) == 0 {
			r.Matches = nil
		}
		for j := range r.BackendRefs {
			ref := &r.BackendRefs[j]
			normalizeRef(&ref.BackendObjectReference)
			if ref.Weight == nil {
				ref.Weight = ptr.To[int32](1)
			}
			normalizeGRPCFilters(ref.Filters)
			if len(ref.Filters) == 0 {
				ref.Filters = nil
			}
		}
		normalizeGRPCFilters(r.Filters)
		if len(r.Filters) == 0 {
			r.Filters = nil
		}
		if len(r.BackendRefs) == 0 {
			r.BackendRefs = nil
		}
		out[i] = r
	}
	return out
}

func normalizeGRPCFilters(filters []gwv1.GRPCRouteFilter) {
	for i := range filters {
		if m := filters[i].RequestMirror; m != nil {
			normalizeRef(&m.BackendRef)
		}
	}
}
