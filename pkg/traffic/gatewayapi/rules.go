package gatewayapi

import (
	"fmt"
	"regexp"
	"sort"
	"strings"

	"k8s.io/utils/ptr"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	sluicev1 "github.com/sluice-dev/sluice/api/v1alpha1"
	"github.com/sluice-dev/sluice/pkg/traffic"
)

// rulePrefix names the rules Sluice inserts; any other rule is the user's.
const rulePrefix = "sluice-"

// backends are the Service names a route may point at for a Rollout.
type backends struct {
	apex, primary, canary string
	port                  gwv1.PortNumber
}

func backendsOf(t traffic.Target) backends {
	return backends{apex: t.Apex, primary: t.Primary, canary: t.Canary, port: gwv1.PortNumber(t.Rollout.Spec.Service.Port)}
}

// isOurs reports whether a backendRef points at the apex, primary or canary
// Service of the Rollout.
func (b backends) isOurs(ref gwv1.HTTPBackendRef) bool {
	return b.isOursRef(ref.BackendObjectReference)
}

func (b backends) isOursRef(ref gwv1.BackendObjectReference) bool {
	if ref.Group != nil && *ref.Group != "" || ref.Kind != nil && *ref.Kind != "Service" {
		return false
	}
	n := string(ref.Name)
	return n == b.apex || n == b.primary || n == b.canary
}

// managed reports whether a rule is one whose backends Sluice owns: a rule of
// the user's (not inserted by Sluice) that points at one of the Services.
func (b backends) managed(rule gwv1.HTTPRouteRule) bool {
	if inserted(rule) {
		return false
	}
	for _, ref := range rule.BackendRefs {
		if b.isOurs(ref) {
			return true
		}
	}
	return false
}

func inserted(rule gwv1.HTTPRouteRule) bool {
	return rule.Name != nil && strings.HasPrefix(string(*rule.Name), rulePrefix)
}

func (b backends) ref(name string, weight int32, filters ...gwv1.HTTPRouteFilter) gwv1.HTTPBackendRef {
	return gwv1.HTTPBackendRef{
		BackendRef: gwv1.BackendRef{
			BackendObjectReference: gwv1.BackendObjectReference{
				Group: ptr.To(gwv1.Group("")), Kind: ptr.To(gwv1.Kind("Service")),
				Name: gwv1.ObjectName(name), Port: ptr.To(b.port),
			},
			Weight: ptr.To(weight),
		},
		Filters: filters,
	}
}

// buildRules rewrites a route's rules for a Route: the backends of managed
// rules get the weights; experiment rules are inserted before each managed
// rule; every other rule, and every match, filter and timeout of the user's,
// is left exactly as it was.
func buildRules(current []gwv1.HTTPRouteRule, b backends, spec *sluicev1.RolloutSpec, r traffic.Route) []gwv1.HTTPRouteRule {
	var out []gwv1.HTTPRouteRule
	n := 0
	for _, rule := range current {
		if inserted(rule) {
			continue
		}
		if !b.managed(rule) {
			out = append(out, rule)
			continue
		}
		rule = *rule.DeepCopy()
		out = append(out, experimentRules(rule, b, spec, r, n)...)
		out = append(out, weighted(rule, b, spec, r))
		n++
	}
	return out
}

// weighted sets the backends of a managed rule: primary and canary with the
// weights, plus the mirror filter or affinity cookies of the experiment.
func weighted(rule gwv1.HTTPRouteRule, b backends, spec *sluicev1.RolloutSpec, r traffic.Route) gwv1.HTTPRouteRule {
	var refs []gwv1.HTTPBackendRef
	for _, ref := range rule.BackendRefs {
		if !b.isOurs(ref) {
			refs = append(refs, ref)
		}
	}
	var primaryFilters, canaryFilters []gwv1.HTTPRouteFilter
	if aff := traffic.Affinity(spec, r); aff != nil {
		canaryFilters = []gwv1.HTTPRouteFilter{setCookie(aff, r.Revision, "canary")}
		if traffic.PinsPrimary(aff) {
			primaryFilters = []gwv1.HTTPRouteFilter{setCookie(aff, r.Revision, "primary")}
		}
	}
	rule.BackendRefs = append([]gwv1.HTTPBackendRef{
		b.ref(b.primary, r.Weights.Primary, primaryFilters...),
		b.ref(b.canary, r.Weights.Canary, canaryFilters...),
	}, refs...)

	// Drop a mirror filter of ours, then add it back when mirroring.
	var filters []gwv1.HTTPRouteFilter
	for _, f := range rule.Filters {
		if f.Type == gwv1.HTTPRouteFilterRequestMirror && f.RequestMirror != nil && string(f.RequestMirror.BackendRef.Name) == b.canary {
			continue
		}
		filters = append(filters, f)
	}
	if pct, ok := traffic.Mirror(spec, r); ok {
		ref := b.ref(b.canary, 0).BackendObjectReference
		filters = append(filters, gwv1.HTTPRouteFilter{
			Type:          gwv1.HTTPRouteFilterRequestMirror,
			RequestMirror: &gwv1.HTTPRequestMirrorFilter{BackendRef: ref, Percent: ptr.To(pct)},
		})
	}
	rule.Filters = filters
	return rule
}

// experimentRules are the rules inserted before the n-th managed rule: A/B
// matches to the canary, or the affinity cookies of each version.
func experimentRules(rule gwv1.HTTPRouteRule, b backends, spec *sluicev1.RolloutSpec, r traffic.Route, n int) []gwv1.HTTPRouteRule {
	if !r.Experiment {
		return nil
	}
	only := func(name, svc string, matches []gwv1.HTTPRouteMatch) gwv1.HTTPRouteRule {
		return gwv1.HTTPRouteRule{
			Name:        ptr.To(gwv1.SectionName(fmt.Sprintf("%s%s-%d", rulePrefix, name, n))),
			Matches:     matches,
			Filters:     rule.Filters,
			Timeouts:    rule.Timeouts,
			BackendRefs: []gwv1.HTTPBackendRef{b.ref(svc, 1)},
		}
	}
	if ab := spec.Strategy.ABTesting; ab != nil {
		return []gwv1.HTTPRouteRule{only("ab", b.canary, combine(rule.Matches, ab.Match))}
	}
	if aff := traffic.Affinity(spec, r); aff != nil {
		cookie := func(version string) []sluicev1.RequestMatch {
			return []sluicev1.RequestMatch{{Cookies: map[string]string{aff.CookieName: traffic.AffinityValue(r.Revision, version)}}}
		}
		out := []gwv1.HTTPRouteRule{only("affinity-canary", b.canary, combine(rule.Matches, cookie("canary")))}
		if traffic.PinsPrimary(aff) {
			out = append(out, only("affinity-primary", b.primary, combine(rule.Matches, cookie("primary"))))
		}
		return out
	}
	return nil
}

// combine ANDs each of a rule's matches with each of the extra matches (the
// rule's own conditions still apply to the inserted rule).
func combine(ruleMatches []gwv1.HTTPRouteMatch, extra []sluicev1.RequestMatch) []gwv1.HTTPRouteMatch {
	if len(ruleMatches) == 0 {
		ruleMatches = []gwv1.HTTPRouteMatch{{}}
	}
	var out []gwv1.HTTPRouteMatch
	for _, rm := range ruleMatches {
		for _, em := range extra {
			m := *rm.DeepCopy()
			if em.URI != nil {
				m.Path = pathMatch(*em.URI)
			}
			if em.Method != "" {
				m.Method = ptr.To(gwv1.HTTPMethod(em.Method))
			}
			for _, name := range sortedKeys(em.Headers) {
				m.Headers = append(m.Headers, headerMatch(name, em.Headers[name]))
			}
			for _, name := range sortedKeys(em.Cookies) {
				m.Headers = append(m.Headers, gwv1.HTTPHeaderMatch{
					Type: ptr.To(gwv1.HeaderMatchRegularExpression), Name: "Cookie",
					Value: fmt.Sprintf("(^|.*;\\s*)%s=%s(;.*|$)", regexp.QuoteMeta(name), regexp.QuoteMeta(em.Cookies[name])),
				})
			}
			out = append(out, m)
		}
	}
	return out
}

func pathMatch(s sluicev1.StringMatch) *gwv1.HTTPPathMatch {
	switch {
	case s.Exact != nil:
		return &gwv1.HTTPPathMatch{Type: ptr.To(gwv1.PathMatchExact), Value: s.Exact}
	case s.Prefix != nil:
		return &gwv1.HTTPPathMatch{Type: ptr.To(gwv1.PathMatchPathPrefix), Value: s.Prefix}
	default:
		return &gwv1.HTTPPathMatch{Type: ptr.To(gwv1.PathMatchRegularExpression), Value: s.Regex}
	}
}

func headerMatch(name string, s sluicev1.StringMatch) gwv1.HTTPHeaderMatch {
	m := gwv1.HTTPHeaderMatch{Name: gwv1.HTTPHeaderName(name)}
	switch {
	case s.Exact != nil:
		m.Type, m.Value = ptr.To(gwv1.HeaderMatchExact), *s.Exact
	case s.Prefix != nil:
		m.Type, m.Value = ptr.To(gwv1.HeaderMatchRegularExpression), "^"+regexp.QuoteMeta(*s.Prefix)+".*"
	default:
		m.Type, m.Value = ptr.To(gwv1.HeaderMatchRegularExpression), *s.Regex
	}
	return m
}

// observed reads the Route a route's rules hold: the weights of the first
// managed rule, and whether experiment rules or our mirror are in place.
func observed(rules []gwv1.HTTPRouteRule, b backends) (traffic.Route, bool) {
	var r traffic.Route
	found := false
	for _, rule := range rules {
		if inserted(rule) {
			r.Experiment = true
			continue
		}
		if !b.managed(rule) || found {
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
				// An adopted rule not yet rewritten: all traffic to the apex,
				// which selects the primary.
				r.Weights.Primary = 100
			}
		}
		for _, f := range rule.Filters {
			if f.Type == gwv1.HTTPRouteFilterRequestMirror && f.RequestMirror != nil && string(f.RequestMirror.BackendRef.Name) == b.canary {
				r.Experiment = true
			}
		}
		for _, ref := range rule.BackendRefs {
			if len(ref.Filters) > 0 && b.isOurs(ref) {
				r.Experiment = true
			}
		}
	}
	return r, found
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func setCookie(a *sluicev1.SessionAffinity, revision, version string) gwv1.HTTPRouteFilter {
	return gwv1.HTTPRouteFilter{
		Type: gwv1.HTTPRouteFilterResponseHeaderModifier,
		ResponseHeaderModifier: &gwv1.HTTPHeaderFilter{Add: []gwv1.HTTPHeader{{
			Name: "Set-Cookie", Value: traffic.SetCookie(a, revision, version),
		}}},
	}
}
