package istio

import (
	"testing"

	"google.golang.org/protobuf/proto"
	networking "istio.io/api/networking/v1alpha3"

	sluicev1 "github.com/sluice-dev/sluice/api/v1alpha1"
	"github.com/sluice-dev/sluice/pkg/traffic"
)

func TestTheMainPortIsTCPByItsAppProtocolOrElseItsName(t *testing.T) {
	for _, tc := range []struct {
		name        string
		portName    string
		appProtocol string
		tcp         bool
	}{
		{"the default port", "http", "", false},
		{"appProtocol tcp", "http", "tcp", true},
		{"appProtocol TCP, any case", "http", "TCP", true},
		{"appProtocol mysql, which Istio proxies as TCP", "db", "mysql", true},
		{"appProtocol http wins over a tcp name", "tcp", "http", false},
		{"appProtocol grpc", "grpc", "grpc", false},
		{"a port named tcp", "tcp", "", true},
		{"a port named tcp-db", "tcp-db", "", true},
		{"a port named redis-cache", "redis-cache", "", true},
		{"a port named tcpx is not Istio's convention", "tcpx", "", false},
		{"a port named http-tcp", "http-tcp", "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := TCP(&sluicev1.ServiceSpec{PortName: tc.portName, AppProtocol: tc.appProtocol}); got != tc.tcp {
				t.Errorf("TCP = %v, want %v", got, tc.tcp)
			}
		})
	}
}

func userTCP() []*networking.TCPRoute {
	return []*networking.TCPRoute{
		{
			Match: []*networking.L4MatchAttributes{{Port: 5432, SourceLabels: map[string]string{"app": "api"}}},
			Route: []*networking.RouteDestination{
				{Destination: &networking.Destination{Host: "web.shop.svc.cluster.local"}, Weight: 90},
				{Destination: &networking.Destination{Host: "legacy-db"}, Weight: 10},
			},
		},
		{Route: []*networking.RouteDestination{{Destination: &networking.Destination{Host: "other"}}}},
	}
}

func TestBuildTCPWeighsOnlyTheRoutesToTheRolloutAndKeepsTheRest(t *testing.T) {
	in := userTCP()
	out := buildTCP(in, h, traffic.Route{Weights: traffic.ForCanary(30)})
	if len(out) != 2 {
		t.Fatalf("routes = %v", out)
	}
	got := out[0].Route
	if len(got) != 3 || got[0].Destination.Host != "web-primary" || got[0].Weight != 70 ||
		got[1].Destination.Host != "web-canary" || got[1].Weight != 30 || got[0].Destination.Port.GetNumber() != 80 {
		t.Fatalf("destinations = %v", got)
	}
	if !proto.Equal(got[2], in[0].Route[1]) || !proto.Equal(out[0].Match[0], in[0].Match[0]) || !proto.Equal(out[1], in[1]) {
		t.Error("the user's destinations, matches or routes changed")
	}
	if !proto.Equal(in[0], userTCP()[0]) {
		t.Error("buildTCP modified its input")
	}
	if r, ok := observedTCP(out, h); !ok || r.Weights != traffic.ForCanary(30) || r.Experiment {
		t.Errorf("observed %+v %v", r, ok)
	}
}

func TestObservedTCPReadsTheApexAsThePrimary(t *testing.T) {
	r, ok := observedTCP([]*networking.TCPRoute{{Route: []*networking.RouteDestination{{Destination: &networking.Destination{Host: "web"}}}}}, h)
	if !ok || r.Weights != traffic.ForCanary(0) {
		t.Errorf("observed %+v %v", r, ok)
	}
	if _, ok := observedTCP(userTCP()[1:], h); ok {
		t.Error("a route to another host was read as the Rollout's")
	}
}

func TestAGeneratedTCPRouteMatchesTheMainPortAndGoesBackToTheApexWhenHandedBack(t *testing.T) {
	route := generatedTCP(h)
	if len(route.Match) != 1 || route.Match[0].Port != 80 {
		t.Errorf("match = %v", route.Match)
	}
	if r, ok := observedTCP([]*networking.TCPRoute{route}, h); !ok || r.Weights != traffic.ForCanary(0) {
		t.Errorf("a new route holds %+v", r)
	}
	routes := buildTCP(userTCP(), h, traffic.Route{Weights: traffic.ForCanary(50)})
	handBackTCP(routes, h)
	if got := routes[0].Route; len(got) != 2 || got[0].Destination.Host != "web" || got[0].Weight != 100 || got[1].Destination.Host != "legacy-db" {
		t.Errorf("handed back: %v", got)
	}
}

func TestShiftedBuildsTheRoutesOfItsProtocolOnly(t *testing.T) {
	spec := &sluicev1.RolloutSpec{Strategy: sluicev1.Strategy{Canary: &sluicev1.CanaryStrategy{StepWeights: []int32{10}}}}
	vs := &networking.VirtualService{Http: userHTTP(), Tcp: userTCP()}
	out := shifted{tcp: true, h: h, spec: spec}.build(vs, traffic.Route{Weights: traffic.ForCanary(20)})
	if !sameHTTPRoutes(out.Http, vs.Http) || out.Tcp[0].Route[1].Weight != 20 {
		t.Errorf("tcp: http %v, tcp %v", out.Http, out.Tcp)
	}
	out = shifted{h: h, spec: spec}.build(vs, traffic.Route{Weights: traffic.ForCanary(20)})
	if out.Http[0].Route[1].Weight != 20 || !proto.Equal(out.Tcp[0], vs.Tcp[0]) {
		t.Errorf("http: http %v, tcp %v", out.Http, out.Tcp)
	}
}

func sameHTTPRoutes(a, b []*networking.HTTPRoute) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !proto.Equal(a[i], b[i]) {
			return false
		}
	}
	return true
}
