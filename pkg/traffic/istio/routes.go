package istio

import (
	"fmt"
	"regexp"
	"sort"
	"strings"

	"google.golang.org/protobuf/types/known/durationpb"
	networking "istio.io/api/networking/v1alpha3"

	sluicev1 "github.com/sluice-dev/sluice/api/v1alpha1"
	"github.com/sluice-dev/sluice/pkg/traffic"
)

// routePrefix names the HTTP routes Sluice inserts; any other is the user's.
const routePrefix = "sluice-"

// hosts are the Service names a VirtualService may route to for a Rollout.
type hosts struct {
	namespace             string
	apex, primary, canary string
	port                  uint32
}

func hostsOf(t traffic.Target) hosts {
	return hosts{namespace: t.Rollout.Namespace, apex: t.Apex, primary: t.Primary, canary: t.Canary, port: uint32(t.Rollout.Spec.Service.Port)}
}

// name returns which of our Services a destination host names ("" if none):
// short names and cluster FQDNs both count.
func (h hosts) name(host string) string {
	short := strings.TrimSuffix(host, "."+h.namespace+".svc.cluster.local")
	short = strings.TrimSuffix(short, "."+h.namespace+".svc")
	short = strings.TrimSuffix(short, "."+h.namespace)
	switch short {
	case h.apex, h.primary, h.canary:
		return short
	}
	return ""
}

func inserted(r *networking.HTTPRoute) bool { return strings.HasPrefix(r.GetName(), routePrefix) }

// managed reports whether an HTTP route is the user's and sends traffic to
// one of the Rollout's Services.
func (h hosts) managed(r *networking.HTTPRoute) bool {
	if inserted(r) {
		return false
	}
	for _, d := range r.GetRoute() {
		if h.name(d.GetDestination().GetHost()) != "" {
			return true
		}
	}
	return false
}

func (h hosts) dest(svc string, weight int32, headers *networking.Headers) *networking.HTTPRouteDestination {
	return &networking.HTTPRouteDestination{
		Destination: &networking.Destination{Host: svc, Port: &networking.PortSelector{Number: h.port}},
		Weight:      weight,
		Headers:     headers,
	}
}

// buildHTTP rewrites a VirtualService's HTTP routes for a Route: managed
// routes get the weights, experiment routes are inserted before each, and
// everything else the user wrote is left as it was.
func buildHTTP(current []*networking.HTTPRoute, h hosts, spec *sluicev1.RolloutSpec, r traffic.Route) []*networking.HTTPRoute {
	var out []*networking.HTTPRoute
	n := 0
	for _, route := range current {
		if inserted(route) {
			continue
		}
		if !h.managed(route) {
			out = append(out, route)
			continue
		}
		route = route.DeepCopy()
		out = append(out, experimentRoutes(route, h, spec, r, n)...)
		out = append(out, weighted(route, h, spec, r))
		n++
	}
	return out
}

func weighted(route *networking.HTTPRoute, h hosts, spec *sluicev1.RolloutSpec, r traffic.Route) *networking.HTTPRoute {
	var others []*networking.HTTPRouteDestination
	for _, d := range route.Route {
		if h.name(d.GetDestination().GetHost()) == "" {
			others = append(others, d)
		}
	}
	var primaryHeaders, canaryHeaders *networking.Headers
	if aff := traffic.Affinity(spec, r); aff != nil {
		canaryHeaders = setCookie(aff, r.Revision, "canary")
		if traffic.PinsPrimary(aff) {
			primaryHeaders = setCookie(aff, r.Revision, "primary")
		}
	}
	route.Route = append([]*networking.HTTPRouteDestination{
		h.dest(h.primary, r.Weights.Primary, primaryHeaders),
		h.dest(h.canary, r.Weights.Canary, canaryHeaders),
	}, others...)
	if route.Mirror != nil && h.name(route.Mirror.GetHost()) == h.canary {
		route.Mirror, route.MirrorPercentage = nil, nil
	}
	if pct, ok := traffic.Mirror(spec, r); ok {
		route.Mirror = &networking.Destination{Host: h.canary, Port: &networking.PortSelector{Number: h.port}}
		route.MirrorPercentage = &networking.Percent{Value: float64(pct)}
	}
	return route
}

func experimentRoutes(route *networking.HTTPRoute, h hosts, spec *sluicev1.RolloutSpec, r traffic.Route, n int) []*networking.HTTPRoute {
	if !r.Experiment {
		return nil
	}
	only := func(name, svc string, match []*networking.HTTPMatchRequest) *networking.HTTPRoute {
		c := route.DeepCopy()
		c.Name = fmt.Sprintf("%s%s-%d", routePrefix, name, n)
		c.Match = match
		c.Route = []*networking.HTTPRouteDestination{h.dest(svc, 100, nil)}
		c.Mirror, c.MirrorPercentage = nil, nil
		return c
	}
	if ab := spec.Strategy.ABTesting; ab != nil {
		return []*networking.HTTPRoute{only("ab", h.canary, combine(route.Match, ab.Match))}
	}
	if aff := traffic.Affinity(spec, r); aff != nil {
		cookie := func(version string) []sluicev1.RequestMatch {
			return []sluicev1.RequestMatch{{Cookies: map[string]string{aff.CookieName: traffic.AffinityValue(r.Revision, version)}}}
		}
		out := []*networking.HTTPRoute{only("affinity-canary", h.canary, combine(route.Match, cookie("canary")))}
		if traffic.PinsPrimary(aff) {
			out = append(out, only("affinity-primary", h.primary, combine(route.Match, cookie("primary"))))
		}
		return out
	}
	return nil
}

func setCookie(a *sluicev1.SessionAffinity, revision, version string) *networking.Headers {
	return &networking.Headers{Response: &networking.Headers_HeaderOperations{Add: map[string]string{
		"Set-Cookie": traffic.SetCookie(a, revision, version),
	}}}
}

// combine ANDs each of a route's matches with each extra match.
func combine(routeMatches []*networking.HTTPMatchRequest, extra []sluicev1.RequestMatch) []*networking.HTTPMatchRequest {
	if len(routeMatches) == 0 {
		routeMatches = []*networking.HTTPMatchRequest{{}}
	}
	var out []*networking.HTTPMatchRequest
	for _, rm := range routeMatches {
		for _, em := range extra {
			m := rm.DeepCopy()
			m.Name = ""
			mergeMatch(m, em)
			out = append(out, m)
		}
	}
	return out
}

func mergeMatch(m *networking.HTTPMatchRequest, em sluicev1.RequestMatch) {
	if em.URI != nil {
		m.Uri = stringMatch(*em.URI)
	}
	if em.Method != "" {
		m.Method = &networking.StringMatch{MatchType: &networking.StringMatch_Exact{Exact: em.Method}}
	}
	if len(em.Headers) > 0 || len(em.Cookies) > 0 {
		if m.Headers == nil {
			m.Headers = map[string]*networking.StringMatch{}
		}
	}
	for name, s := range em.Headers {
		m.Headers[strings.ToLower(name)] = stringMatch(s)
	}
	if len(em.Cookies) > 0 {
		names := make([]string, 0, len(em.Cookies))
		for k := range em.Cookies {
			names = append(names, k)
		}
		sort.Strings(names)
		var parts []string
		for _, k := range names {
			parts = append(parts, fmt.Sprintf("(^|.*;\\s*)%s=%s(;.*|$)", regexp.QuoteMeta(k), regexp.QuoteMeta(em.Cookies[k])))
		}
		// Istio matches one regex per header: all cookies must be present.
		re := parts[0]
		if len(parts) > 1 {
			re = "(?:" + strings.Join(parts, ")(?:") + ")"
		}
		m.Headers["cookie"] = &networking.StringMatch{MatchType: &networking.StringMatch_Regex{Regex: re}}
	}
}

func stringMatch(s sluicev1.StringMatch) *networking.StringMatch {
	switch {
	case s.Exact != nil:
		return &networking.StringMatch{MatchType: &networking.StringMatch_Exact{Exact: *s.Exact}}
	case s.Prefix != nil:
		return &networking.StringMatch{MatchType: &networking.StringMatch_Prefix{Prefix: *s.Prefix}}
	default:
		return &networking.StringMatch{MatchType: &networking.StringMatch_Regex{Regex: *s.Regex}}
	}
}

// observed reads the Route a VirtualService holds.
func observed(http []*networking.HTTPRoute, h hosts) (traffic.Route, bool) {
	var r traffic.Route
	found := false
	for _, route := range http {
		if inserted(route) {
			r.Experiment = true
			continue
		}
		if !h.managed(route) || found {
			continue
		}
		found = true
		for _, d := range route.Route {
			w := d.Weight
			if w == 0 && len(route.Route) == 1 {
				w = 100 // a single destination takes all traffic
			}
			switch h.name(d.GetDestination().GetHost()) {
			case h.primary, h.apex:
				r.Weights.Primary = w
			case h.canary:
				r.Weights.Canary = w
			}
			if d.Headers != nil {
				r.Experiment = true
			}
		}
		if route.Mirror != nil && h.name(route.Mirror.GetHost()) == h.canary {
			r.Experiment = true
		}
	}
	return r, found
}

// generatedHTTP is the single HTTP route of a generated VirtualService, with
// the pass-through fields of routing.istio and its corsPolicy.
func generatedHTTP(h hosts, cfg *sluicev1.IstioRouting, p policies) *networking.HTTPRoute {
	route := &networking.HTTPRoute{Route: []*networking.HTTPRouteDestination{h.dest(h.primary, 100, nil), h.dest(h.canary, 0, nil)}}
	route.CorsPolicy = p.cors
	for _, m := range cfg.Match {
		nm := &networking.HTTPMatchRequest{}
		mergeMatch(nm, m)
		route.Match = append(route.Match, nm)
	}
	if cfg.Timeout != nil {
		route.Timeout = durationpb.New(cfg.Timeout.Duration)
	}
	if rt := cfg.Retries; rt != nil {
		route.Retries = &networking.HTTPRetry{Attempts: rt.Attempts, RetryOn: rt.RetryOn}
		if rt.PerTryTimeout != nil {
			route.Retries.PerTryTimeout = durationpb.New(rt.PerTryTimeout.Duration)
		}
	}
	if hd := cfg.Headers; hd != nil {
		route.Headers = &networking.Headers{Request: headerOps(hd.Request), Response: headerOps(hd.Response)}
	}
	if rw := cfg.Rewrite; rw != nil {
		route.Rewrite = &networking.HTTPRewrite{Uri: rw.URI, Authority: rw.Authority}
	}
	return route
}

func headerOps(o *sluicev1.HeaderOperations) *networking.Headers_HeaderOperations {
	if o == nil {
		return nil
	}
	return &networking.Headers_HeaderOperations{Set: o.Set, Add: o.Add, Remove: o.Remove}
}
