package istio

import (
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"
	networking "istio.io/api/networking/v1alpha3"
	"k8s.io/utils/ptr"

	sluicev1 "github.com/sluice-dev/sluice/api/v1alpha1"
	"github.com/sluice-dev/sluice/pkg/traffic"
)

var h = hosts{namespace: "shop", apex: "web", primary: "web-primary", canary: "web-canary", port: 80}

func userHTTP() []*networking.HTTPRoute {
	return []*networking.HTTPRoute{
		{
			Name:    "main",
			Match:   []*networking.HTTPMatchRequest{{Uri: &networking.StringMatch{MatchType: &networking.StringMatch_Prefix{Prefix: "/api"}}}},
			Retries: &networking.HTTPRetry{Attempts: 2},
			Route:   []*networking.HTTPRouteDestination{{Destination: &networking.Destination{Host: "web.shop.svc.cluster.local"}}},
		},
		{Name: "other", Route: []*networking.HTTPRouteDestination{{Destination: &networking.Destination{Host: "cdn"}}}},
	}
}

func TestBuildHTTPShiftsOnlyRoutesToTheApexAndKeepsTheRest(t *testing.T) {
	spec := &sluicev1.RolloutSpec{Strategy: sluicev1.Strategy{Canary: &sluicev1.CanaryStrategy{StepWeights: []int32{10}}}}
	in := userHTTP()
	out := buildHTTP(in, h, spec, traffic.Route{Weights: traffic.ForCanary(40)})
	if len(out) != 2 || out[0].Route[0].Destination.Host != "web-primary" || out[0].Route[0].Weight != 60 || out[0].Route[1].Weight != 40 {
		t.Fatalf("routes = %v", out)
	}
	if !proto.Equal(out[0].Retries, in[0].Retries) || !proto.Equal(out[0].Match[0], in[0].Match[0]) || !proto.Equal(out[1], in[1]) {
		t.Error("the user's fields changed")
	}
	if !proto.Equal(in[0], userHTTP()[0]) {
		t.Error("buildHTTP modified its input")
	}
	if r, ok := observed(out, h); !ok || r.Weights.Canary != 40 || r.Experiment {
		t.Errorf("observed %+v %v", r, ok)
	}
}

func TestBuildHTTPExperimentRoutes(t *testing.T) {
	ab := &sluicev1.RolloutSpec{Strategy: sluicev1.Strategy{ABTesting: &sluicev1.ABTestingStrategy{Match: []sluicev1.RequestMatch{
		{Headers: map[string]sluicev1.StringMatch{"X-Canary": {Prefix: ptr.To("in")}}, Cookies: map[string]string{"beta": "yes"}},
	}}}}
	out := buildHTTP(userHTTP(), h, ab, traffic.Route{Weights: traffic.ForCanary(0), Experiment: true})
	if len(out) != 3 || out[0].Name != "sluice-ab-0" || out[0].Route[0].Destination.Host != "web-canary" {
		t.Fatalf("routes = %v", out)
	}
	m := out[0].Match[0]
	if m.Uri.GetPrefix() != "/api" || m.Headers["x-canary"].GetPrefix() != "in" || !strings.Contains(m.Headers["cookie"].GetRegex(), "beta=yes") {
		t.Errorf("A/B match = %v", m)
	}
	if out[0].Retries.GetAttempts() != 2 {
		t.Error("the A/B route lost the user's retries")
	}

	mirror := &sluicev1.RolloutSpec{Strategy: sluicev1.Strategy{BlueGreen: &sluicev1.BlueGreenStrategy{Mirror: true}}}
	out = buildHTTP(userHTTP(), h, mirror, traffic.Route{Weights: traffic.ForCanary(0), Experiment: true})
	if out[0].Mirror.GetHost() != "web-canary" || out[0].MirrorPercentage.GetValue() != 100 {
		t.Errorf("mirror = %v %v", out[0].Mirror, out[0].MirrorPercentage)
	}
	off := buildHTTP(out, h, mirror, traffic.Route{Weights: traffic.ForCanary(0)})
	if off[0].Mirror != nil {
		t.Error("the mirror stayed after the experiment")
	}
}

func TestAffinityRoutesFollowThePinAndTheCookieAttributes(t *testing.T) {
	spec := func(pin sluicev1.AffinityPin) *sluicev1.RolloutSpec {
		return &sluicev1.RolloutSpec{Strategy: sluicev1.Strategy{Canary: &sluicev1.CanaryStrategy{StepWeights: []int32{10},
			SessionAffinity: &sluicev1.SessionAffinity{CookieName: "c", Pin: pin, Domain: "example.com", Path: "/api", Secure: true, SameSite: "Lax"}}}}
	}
	run := traffic.Route{Weights: traffic.ForCanary(10), Experiment: true, Revision: "r2"}

	both := buildHTTP(userHTTP(), h, spec(sluicev1.PinBoth), run)
	if len(both) != 4 || both[0].Name != "sluice-affinity-canary-0" || both[1].Name != "sluice-affinity-primary-0" {
		t.Fatalf("routes with pin Both = %v", both)
	}
	if got := both[2].Route[0].Headers.GetResponse().GetAdd()["Set-Cookie"]; got != "c=r2-primary; Max-Age=86400; Path=/api; Domain=example.com; Secure; SameSite=Lax" {
		t.Errorf("primary Set-Cookie = %q", got)
	}

	canaryOnly := buildHTTP(userHTTP(), h, spec(sluicev1.PinCanaryOnly), run)
	if len(canaryOnly) != 3 || canaryOnly[0].Name != "sluice-affinity-canary-0" {
		t.Fatalf("routes with pin CanaryOnly = %v, want only the canary's affinity route inserted", canaryOnly)
	}
	if hd := canaryOnly[1].Route[0].Headers; hd != nil {
		t.Errorf("the primary destination sets headers %v, want none", hd)
	}
	if got := canaryOnly[1].Route[1].Headers.GetResponse().GetAdd()["Set-Cookie"]; !strings.HasPrefix(got, "c=r2-canary;") {
		t.Errorf("canary Set-Cookie = %q", got)
	}
	if r, ok := observed(canaryOnly, h); !ok || !r.Experiment || r.Weights.Canary != 10 {
		t.Errorf("observed %+v %v, want an experiment at weight 10", r, ok)
	}
}
