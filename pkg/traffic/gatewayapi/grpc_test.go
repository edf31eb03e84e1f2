package gatewayapi

import (
	"fmt"
	"strings"
	"testing"

	"k8s.io/utils/ptr"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	sluicev1 "github.com/sluice-dev/sluice/api/v1alpha1"
	"github.com/sluice-dev/sluice/pkg/traffic"
)

// userGRPCRules is a user's GRPCRoute: one rule for a service's methods to
// the apex Service, with a header filter, and one to another Service.
func userGRPCRules() []gwv1.GRPCRouteRule {
	return []gwv1.GRPCRouteRule{
		{
			Name:        ptr.To(gwv1.SectionName("orders")),
			Matches:     []gwv1.GRPCRouteMatch{{Method: &gwv1.GRPCMethodMatch{Service: ptr.To("shop.Orders")}}},
			Filters:     []gwv1.GRPCRouteFilter{{Type: gwv1.GRPCRouteFilterRequestHeaderModifier, RequestHeaderModifier: &gwv1.HTTPHeaderFilter{Set: []gwv1.HTTPHeader{{Name: "x-a", Value: "1"}}}}},
			BackendRefs: []gwv1.GRPCBackendRef{{BackendRef: gwv1.BackendRef{BackendObjectReference: gwv1.BackendObjectReference{Name: "web", Port: ptr.To(gwv1.PortNumber(80))}}}},
		},
		{BackendRefs: []gwv1.GRPCBackendRef{{BackendRef: gwv1.BackendRef{BackendObjectReference: gwv1.BackendObjectReference{Name: "other"}}}}},
	}
}

func grpcRefs(rule gwv1.GRPCRouteRule) string {
	var out []string
	for _, r := range rule.BackendRefs {
		out = append(out, fmt.Sprintf("%s=%d", r.Name, ptr.Deref(r.Weight, 1)))
	}
	return strings.Join(out, ",")
}

func TestGRPCRulesShiftOnlyTheRulesThatPointAtTheApex(t *testing.T) {
	in := userGRPCRules()
	for _, weight := range []int32{10, 50, 100, 0} {
		out := buildGRPCRules(in, b, canarySpec(), traffic.Route{Weights: traffic.ForCanary(weight)})
		if len(out) != 2 {
			t.Fatalf("%d rules, want 2", len(out))
		}
		if got, want := grpcRefs(out[0]), fmt.Sprintf("web-primary=%d,web-canary=%d", 100-weight, weight); got != want {
			t.Errorf("weight %d: shifted rule backends = %s, want %s", weight, got, want)
		}
		for _, part := range []struct{ got, want any }{{out[0].Matches, in[0].Matches}, {out[0].Filters, in[0].Filters}, {out[0].Name, in[0].Name}, {out[1], in[1]}} {
			if mustJSON(part.got) != mustJSON(part.want) {
				t.Errorf("changed %s, want %s", mustJSON(part.got), mustJSON(part.want))
			}
		}
		if r, ok := observedGRPC(out, b); !ok || r.Weights != traffic.ForCanary(weight) || r.Experiment {
			t.Errorf("observed %+v %v, want weight %d and no experiment", r, ok, weight)
		}
		if again := buildGRPCRules(out, b, canarySpec(), traffic.Route{Weights: traffic.ForCanary(weight)}); !sameGRPCRules(again, out) {
			t.Error("buildGRPCRules is not idempotent")
		}
	}
	if mustJSON(in) != mustJSON(userGRPCRules()) {
		t.Error("buildGRPCRules modified its input")
	}
	if _, ok := observedGRPC(userGRPCRules()[1:], b); ok {
		t.Error("a route with no rule to the apex reads as one Sluice can shift")
	}
}

func TestGRPCRulesTurnABHeaderMatchesIntoGRPCHeaderMatches(t *testing.T) {
	ab := canarySpec(func(s *sluicev1.RolloutSpec) {
		s.Strategy = sluicev1.Strategy{ABTesting: &sluicev1.ABTestingStrategy{Match: []sluicev1.RequestMatch{
			{Headers: map[string]sluicev1.StringMatch{"x-canary": {Exact: ptr.To("1")}, "x-user": {Prefix: ptr.To("qa.")}}},
			{Headers: map[string]sluicev1.StringMatch{"x-region": {Regex: ptr.To("eu-.*")}}},
		}}}
	})
	on := buildGRPCRules(userGRPCRules(), b, ab, traffic.Route{Weights: traffic.ForCanary(0), Experiment: true, Revision: "r2"})
	if len(on) != 3 || *on[0].Name != "sluice-ab-0" || grpcRefs(on[0]) != "web-canary=1" {
		t.Fatalf("rules %s", mustJSON(on))
	}
	// Each A/B match keeps the user's method match and adds its headers.
	want := `[{"method":{"service":"shop.Orders"},"headers":[{"type":"Exact","name":"x-canary","value":"1"},{"type":"RegularExpression","name":"x-user","value":"^qa\\..*"}]},` +
		`{"method":{"service":"shop.Orders"},"headers":[{"type":"RegularExpression","name":"x-region","value":"eu-.*"}]}]`
	if got := mustJSON(on[0].Matches); got != want {
		t.Errorf("A/B matches = %s\nwant %s", got, want)
	}
	if mustJSON(on[0].Filters) != mustJSON(userGRPCRules()[0].Filters) {
		t.Error("the A/B rule lost the user's filters")
	}
	if r, _ := observedGRPC(on, b); !r.Experiment || r.Weights.Primary != 100 {
		t.Errorf("observed %+v, want an experiment with all other traffic on the primary", r)
	}
	off := buildGRPCRules(on, b, ab, traffic.Route{Weights: traffic.ForCanary(0)})
	if !sameGRPCRules(off, buildGRPCRules(userGRPCRules(), b, ab, traffic.Route{Weights: traffic.ForCanary(0)})) {
		t.Errorf("turning the experiment off left %s", mustJSON(off))
	}
}

func TestGRPCRulesMirrorToTheCanary(t *testing.T) {
	mirror := canarySpec(func(s *sluicev1.RolloutSpec) {
		s.Strategy = sluicev1.Strategy{BlueGreen: &sluicev1.BlueGreenStrategy{Mirror: true, MirrorPercent: ptr.To[int32](30)}}
	})
	out := buildGRPCRules(userGRPCRules(), b, mirror, traffic.Route{Weights: traffic.ForCanary(0), Experiment: true})
	last := out[0].Filters[len(out[0].Filters)-1]
	if last.Type != gwv1.GRPCRouteFilterRequestMirror || last.RequestMirror.BackendRef.Name != "web-canary" || *last.RequestMirror.Percent != 30 {
		t.Errorf("mirror filter = %s", mustJSON(last))
	}
	if r, _ := observedGRPC(out, b); !r.Experiment {
		t.Errorf("observed %+v, want an experiment", r)
	}
	back := buildGRPCRules(out, b, mirror, traffic.Route{Weights: traffic.ForCanary(0)})
	if mustJSON(back[0].Filters) != mustJSON(userGRPCRules()[0].Filters) {
		t.Errorf("after the run the filters are %s, want the user's", mustJSON(back[0].Filters))
	}
}

func TestGRPCHandBackPointsTheRulesAtTheApex(t *testing.T) {
	route := &gwv1.GRPCRoute{Spec: gwv1.GRPCRouteSpec{Rules: buildGRPCRules(userGRPCRules(), b, canarySpec(), traffic.Route{Weights: traffic.ForCanary(40)})}}
	grpcKind{}.handBack(route, b, canarySpec())
	if len(route.Spec.Rules) != 2 || grpcRefs(route.Spec.Rules[0]) != "web=1" || grpcRefs(route.Spec.Rules[1]) != "other=1" {
		t.Errorf("handed back %s", mustJSON(route.Spec.Rules))
	}
}

func TestGRPCFiltersComeFromTheSpec(t *testing.T) {
	g := &sluicev1.GatewayAPIRouting{Filters: []sluicev1.GatewayAPIFilter{
		{Type: "RequestHeaderModifier", RequestHeaderModifier: &sluicev1.HeaderOperations{Set: map[string]string{"x-b": "2"}}},
		{Type: "ExtensionRef", ExtensionRef: &sluicev1.GatewayAPIExtensionRef{Group: "example.com", Kind: "RateLimit", Name: "rl"}},
	}}
	got := mustJSON(grpcRuleFilters(g))
	want := `[{"type":"RequestHeaderModifier","requestHeaderModifier":{"set":[{"name":"x-b","value":"2"}]}},{"type":"ExtensionRef","extensionRef":{"group":"example.com","kind":"RateLimit","name":"rl"}}]`
	if got != want {
		t.Errorf("filters = %s\nwant %s", got, want)
	}
	// A mirror of Sluice's stays when the spec's filters are put back.
	rules := buildGRPCRules(userGRPCRules(), b, canarySpec(func(s *sluicev1.RolloutSpec) {
		s.Strategy = sluicev1.Strategy{BlueGreen: &sluicev1.BlueGreenStrategy{Mirror: true}}
	}), traffic.Route{Experiment: true, Weights: traffic.ForCanary(0)})
	if !syncGRPCRuleOptions(rules, b, g) {
		t.Fatal("no change reported")
	}
	if n := len(rules[0].Filters); n != 3 || rules[0].Filters[2].Type != gwv1.GRPCRouteFilterRequestMirror {
		t.Errorf("filters after sync = %s", mustJSON(rules[0].Filters))
	}
}

func TestNormalizeGRPCTreatsServerDefaultsAsEqual(t *testing.T) {
	written := buildGRPCRules(userGRPCRules(), b, canarySpec(), traffic.Route{Weights: traffic.ForCanary(10)})
	defaulted := make([]gwv1.GRPCRouteRule, len(written))
	for i, r := range written {
		defaulted[i] = *r.DeepCopy()
	}
	defaulted[0].Matches[0].Method.Type = ptr.To(gwv1.GRPCMethodMatchExact)
	defaulted[1].BackendRefs[0].Group, defaulted[1].BackendRefs[0].Kind, defaulted[1].BackendRefs[0].Weight = ptr.To(gwv1.Group("")), ptr.To(gwv1.Kind("Service")), ptr.To[int32](1)
	if !sameGRPCRules(written, defaulted) {
		t.Error("server defaults make the rules differ: Sluice would rewrite the route on every reconcile")
	}
	defaulted[0].BackendRefs[1].Weight = ptr.To[int32](11)
	if sameGRPCRules(written, defaulted) {
		t.Error("a changed weight compares equal")
	}
}
