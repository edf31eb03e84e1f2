package gatewayapi

import (
	"slices"

	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/utils/ptr"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	sluicev1 "github.com/sluice-dev/sluice/api/v1alpha1"
)

// The filters and timeouts of a generated HTTPRoute's rules come from
// routing.gatewayAPI.filters and .timeouts. They are set on the rule that
// splits the traffic and on the rules a run inserts before it (A/B,
// affinity), which copy it; a mirror filter of Sluice's own stays.

// ruleFilters are the filters the spec asks for, in its order.
func ruleFilters(g *sluicev1.GatewayAPIRouting) []gwv1.HTTPRouteFilter {
	var out []gwv1.HTTPRouteFilter
	for _, f := range g.Filters {
		switch f.Type {
		case string(gwv1.HTTPRouteFilterRequestHeaderModifier):
			out = append(out, gwv1.HTTPRouteFilter{Type: gwv1.HTTPRouteFilterRequestHeaderModifier, RequestHeaderModifier: headerFilter(f.RequestHeaderModifier)})
		case string(gwv1.HTTPRouteFilterResponseHeaderModifier):
			out = append(out, gwv1.HTTPRouteFilter{Type: gwv1.HTTPRouteFilterResponseHeaderModifier, ResponseHeaderModifier: headerFilter(f.ResponseHeaderModifier)})
		case string(gwv1.HTTPRouteFilterExtensionRef):
			if r := f.ExtensionRef; r != nil {
				out = append(out, gwv1.HTTPRouteFilter{Type: gwv1.HTTPRouteFilterExtensionRef, ExtensionRef: &gwv1.LocalObjectReference{
					Group: gwv1.Group(r.Group), Kind: gwv1.Kind(r.Kind), Name: gwv1.ObjectName(r.Name)}})
			}
		}
	}
	return out
}

// headerFilter is the Gateway API form of header operations, in name order
// so that the route reads back as built.
func headerFilter(o *sluicev1.HeaderOperations) *gwv1.HTTPHeaderFilter {
	if o == nil {
		return &gwv1.HTTPHeaderFilter{}
	}
	h := &gwv1.HTTPHeaderFilter{Remove: o.Remove}
	for _, k := range sortedKeys(o.Set) {
		h.Set = append(h.Set, gwv1.HTTPHeader{Name: gwv1.HTTPHeaderName(k), Value: o.Set[k]})
	}
	for _, k := range sortedKeys(o.Add) {
		h.Add = append(h.Add, gwv1.HTTPHeader{Name: gwv1.HTTPHeaderName(k), Value: o.Add[k]})
	}
	return h
}

// ruleTimeouts are the timeouts the spec asks for; nil for none.
func ruleTimeouts(g *sluicev1.GatewayAPIRouting) *gwv1.HTTPRouteTimeouts {
	t := g.Timeouts
	if t == nil || (t.Request == "" && t.BackendRequest == "") {
		return nil
	}
	out := &gwv1.HTTPRouteTimeouts{}
	if t.Request != "" {
		out.Request = ptr.To(gwv1.Duration(t.Request))
	}
	if t.BackendRequest != "" {
		out.BackendRequest = ptr.To(gwv1.Duration(t.BackendRequest))
	}
	return out
}

// syncRuleOptions gives the rules of a generated route that Sluice manages
// (and those it inserted) the spec's filters and timeouts, keeping a mirror
// filter of its own; it reports whether anything changed.
func syncRuleOptions(rules []gwv1.HTTPRouteRule, b backends, g *sluicev1.GatewayAPIRouting) bool {
	want, timeouts := ruleFilters(g), ruleTimeouts(g)
	changed := false
	for i := range rules {
		rule := &rules[i]
		if !inserted(*rule) && !b.managed(*rule) {
			continue
		}
		filters := slices.Clone(want)
		for _, f := range rule.Filters {
			if f.Type == gwv1.HTTPRouteFilterRequestMirror && f.RequestMirror != nil && string(f.RequestMirror.BackendRef.Name) == b.canary {
				filters = append(filters, f)
			}
		}
		if !equality.Semantic.DeepEqual(rule.Filters, filters) {
			rule.Filters, changed = filters, true
		}
		if !equality.Semantic.DeepEqual(rule.Timeouts, timeouts) {
			rule.Timeouts, changed = timeouts, true
		}
	}
	return changed
}
