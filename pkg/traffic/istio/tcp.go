package istio

import (
	"regexp"

	networking "istio.io/api/networking/v1alpha3"

	sluicev1 "github.com/sluice-dev/sluice/api/v1alpha1"
	"github.com/sluice-dev/sluice/pkg/traffic"
)

// Istio's protocol selection: a port's appProtocol names its protocol, or,
// without one, the port's name does (`<protocol>[-<suffix>]`). These are the
// protocols Istio proxies as TCP, whose traffic a VirtualService routes with
// tcp routes: http routes would never apply to it. The API's CEL rules say
// the same (api/v1alpha1, RolloutSpec).
var (
	tcpAppProtocol = regexp.MustCompile(`^(?i)(tcp|mongo|mysql|redis)$`)
	tcpPortName    = regexp.MustCompile(`^(tcp|mongo|mysql|redis)(-.*)?$`)
)

// TCP reports whether the Istio router routes the main port of s as TCP:
// by its appProtocol when it has one, else by its name.
func TCP(s *sluicev1.ServiceSpec) bool {
	if s.AppProtocol != "" {
		return tcpAppProtocol.MatchString(s.AppProtocol)
	}
	return tcpPortName.MatchString(s.PortName)
}

func (h hosts) tcpDest(svc string, weight int32) *networking.RouteDestination {
	return &networking.RouteDestination{
		Destination: &networking.Destination{Host: svc, Port: &networking.PortSelector{Number: h.port}},
		Weight:      weight,
	}
}

// managedTCP reports whether a tcp route sends traffic to one of the
// Rollout's Services.
func (h hosts) managedTCP(r *networking.TCPRoute) bool {
	for _, d := range r.GetRoute() {
		if h.name(d.GetDestination().GetHost()) != "" {
			return true
		}
	}
	return false
}

// othersTCP are a route's destinations to other hosts than the Rollout's,
// which are kept as they were.
func (h hosts) othersTCP(r *networking.TCPRoute) []*networking.RouteDestination {
	var others []*networking.RouteDestination
	for _, d := range r.GetRoute() {
		if h.name(d.GetDestination().GetHost()) == "" {
			others = append(others, d)
		}
	}
	return others
}

// buildTCP rewrites a VirtualService's tcp routes for a Route: the routes
// that send traffic to one of the Rollout's Services get the primary and
// the canary, weighted; every other route and destination is left as it
// was. TCP has no requests to match, so a Route's experiment rules have
// no tcp form (the API refuses the strategies that need them).
func buildTCP(current []*networking.TCPRoute, h hosts, r traffic.Route) []*networking.TCPRoute {
	out := make([]*networking.TCPRoute, 0, len(current))
	for _, route := range current {
		if !h.managedTCP(route) {
			out = append(out, route)
			continue
		}
		route = route.DeepCopy()
		route.Route = append([]*networking.RouteDestination{
			h.tcpDest(h.primary, r.Weights.Primary),
			h.tcpDest(h.canary, r.Weights.Canary),
		}, h.othersTCP(route)...)
		out = append(out, route)
	}
	return out
}

// observedTCP reads the Route the first managed tcp route holds.
func observedTCP(tcp []*networking.TCPRoute, h hosts) (traffic.Route, bool) {
	for _, route := range tcp {
		if !h.managedTCP(route) {
			continue
		}
		var r traffic.Route
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
		}
		return r, true
	}
	return traffic.Route{}, false
}

// handBackTCP points the managed tcp routes at the apex Service again.
func handBackTCP(tcp []*networking.TCPRoute, h hosts) {
	for _, route := range tcp {
		if h.managedTCP(route) {
			route.Route = append([]*networking.RouteDestination{h.tcpDest(h.apex, 100)}, h.othersTCP(route)...)
		}
	}
}

// generatedTCP is the single tcp route of a generated VirtualService. It
// matches the main port only: without a port, a tcp route would catch the
// Services' other TCP ports (service.ports) too and send them to the main
// one. Through a gateway, the port matched is the gateway's, so its TCP
// server must listen on the same number (or adopt a VirtualService).
func generatedTCP(h hosts) *networking.TCPRoute {
	return &networking.TCPRoute{
		Match: []*networking.L4MatchAttributes{{Port: h.port}},
		Route: []*networking.RouteDestination{h.tcpDest(h.primary, 100), h.tcpDest(h.canary, 0)},
	}
}
