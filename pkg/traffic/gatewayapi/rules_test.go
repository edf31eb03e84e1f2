package gatewayapi

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"k8s.io/utils/ptr"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	sluicev1 "github.com/sluice-dev/sluice/api/v1alpha1"
	"github.com/sluice-dev/sluice/pkg/traffic"
)

var b = backends{apex: "web", primary: "web-primary", canary: "web-canary", port: 80}

func userRules() []gwv1.HTTPRouteRule {
	return []gwv1.HTTPRouteRule{
		{
			Name:        ptr.To(gwv1.SectionName("api")),
			Matches:     []gwv1.HTTPRouteMatch{{Path: &gwv1.HTTPPathMatch{Type: ptr.To(gwv1.PathMatchPathPrefix), Value: ptr.To("/api")}}},
			Filters:     []gwv1.HTTPRouteFilter{{Type: gwv1.HTTPRouteFilterRequestHeaderModifier, RequestHeaderModifier: &gwv1.HTTPHeaderFilter{Set: []gwv1.HTTPHeader{{Name: "X-A", Value: "1"}}}}},
			Timeouts:    &gwv1.HTTPRouteTimeouts{Request: ptr.To(gwv1.Duration("5s"))},
			BackendRefs: []gwv1.HTTPBackendRef{{BackendRef: gwv1.BackendRef{BackendObjectReference: gwv1.BackendObjectReference{Name: "web", Port: ptr.To(gwv1.PortNumber(80))}}}},
		},
		{BackendRefs: []gwv1.HTTPBackendRef{{BackendRef: gwv1.BackendRef{BackendObjectReference: gwv1.BackendObjectReference{Name: "other"}}}}},
	}
}

func refs(rule gwv1.HTTPRouteRule) string {
	var out []string
	for _, r := range rule.BackendRefs {
		out = append(out, fmt.Sprintf("%s=%d", r.Name, *r.Weight))
	}
	return strings.Join(out, ",")
}

func mustJSON(v any) string { j, _ := json.Marshal(v); return string(j) }

func canarySpec(opts ...func(*sluicev1.RolloutSpec)) *sluicev1.RolloutSpec {
	s := &sluicev1.RolloutSpec{Strategy: sluicev1.Strategy{Canary: &sluicev1.CanaryStrategy{StepWeights: []int32{10}}}}
	for _, o := range opts {
		o(s)
	}
	return s
}

func TestBuildRulesShiftsOnlyTheRulesThatPointAtTheApex(t *testing.T) {
	in := userRules()
	out := buildRules(in, b, canarySpec(), traffic.Route{Weights: traffic.ForCanary(25)})
	if len(out) != 2 {
		t.Fatalf("%d rules, want 2", len(out))
	}
	if got := refs(out[0]); got != "web-primary=75,web-canary=25" {
		t.Errorf("shifted rule backends = %s", got)
	}
	for _, part := range []struct{ got, want any }{{out[0].Matches, in[0].Matches}, {out[0].Filters, in[0].Filters}, {out[0].Timeouts, in[0].Timeouts}, {out[0].Name, in[0].Name}, {out[1], in[1]}} {
		if mustJSON(part.got) != mustJSON(part.want) {
			t.Errorf("changed %s, want %s", mustJSON(part.got), mustJSON(part.want))
		}
	}
	if mustJSON(in) != mustJSON(userRules()) {
		t.Error("buildRules modified its input")
	}
	// Applying the same route again is a no-op.
	if again := buildRules(out, b, canarySpec(), traffic.Route{Weights: traffic.ForCanary(25)}); !sameRules(again, out) {
		t.Error("buildRules is not idempotent")
	}
}

func TestBuildRulesAddsAndRemovesTheExperimentRules(t *testing.T) {
	ab := canarySpec(func(s *sluicev1.RolloutSpec) {
		s.Strategy = sluicev1.Strategy{ABTesting: &sluicev1.ABTestingStrategy{Match: []sluicev1.RequestMatch{
			{Headers: map[string]sluicev1.StringMatch{"x-canary": {Exact: ptr.To("1")}}},
			{Cookies: map[string]string{"beta": "yes"}},
		}}}
	})
	on := buildRules(userRules(), b, ab, traffic.Route{Weights: traffic.ForCanary(0), Experiment: true, Revision: "r2"})
	if len(on) != 3 || *on[0].Name != "sluice-ab-0" {
		t.Fatalf("rules %s", mustJSON(on))
	}
	// The A/B rule keeps the user's path match and adds each A/B condition.
	if len(on[0].Matches) != 2 || *on[0].Matches[0].Path.Value != "/api" || on[0].Matches[0].Headers[0].Value != "1" ||
		!strings.Contains(on[0].Matches[1].Headers[0].Value, "beta=yes") || refs(on[0]) != "web-canary=1" {
		t.Errorf("A/B rule = %s", mustJSON(on[0]))
	}
	if mustJSON(on[0].Filters) != mustJSON(userRules()[0].Filters) {
		t.Errorf("the A/B rule lost the user's filters")
	}
	off := buildRules(on, b, ab, traffic.Route{Weights: traffic.ForCanary(0)})
	if !sameRules(off, buildRules(userRules(), b, ab, traffic.Route{Weights: traffic.ForCanary(0)})) {
		t.Errorf("turning the experiment off left %s", mustJSON(off))
	}
}

func TestBuildRulesMirrorsAndPinsSessions(t *testing.T) {
	mirror := canarySpec(func(s *sluicev1.RolloutSpec) {
		s.Strategy = sluicev1.Strategy{BlueGreen: &sluicev1.BlueGreenStrategy{Mirror: true, MirrorPercent: ptr.To[int32](30)}}
	})
	out := buildRules(userRules(), b, mirror, traffic.Route{Weights: traffic.ForCanary(0), Experiment: true})
	last := out[0].Filters[len(out[0].Filters)-1]
	if last.RequestMirror == nil || last.RequestMirror.BackendRef.Name != "web-canary" || *last.RequestMirror.Percent != 30 {
		t.Errorf("mirror filter = %s", mustJSON(last))
	}
	if r, _ := observed(out, b); !r.Experiment || r.Weights.Canary != 0 {
		t.Errorf("observed %+v, want an experiment at weight 0", r)
	}

	aff := canarySpec(func(s *sluicev1.RolloutSpec) {
		s.Strategy.Canary.SessionAffinity = &sluicev1.SessionAffinity{CookieName: "c"}
	})
	out = buildRules(userRules(), b, aff, traffic.Route{Weights: traffic.ForCanary(10), Experiment: true, Revision: "r2"})
	if len(out) != 4 || *out[0].Name != "sluice-affinity-canary-0" || *out[1].Name != "sluice-affinity-primary-0" {
		t.Fatalf("affinity rules = %s", mustJSON(out))
	}
	if v := out[2].BackendRefs[1].Filters[0].ResponseHeaderModifier.Add[0].Value; v != "c=r2-canary; Max-Age=86400; Path=/" {
		t.Errorf("canary Set-Cookie = %q", v)
	}
}

func TestAffinityPinningTheCanaryOnlyLeavesThePrimarysUsersUnpinned(t *testing.T) {
	aff := canarySpec(func(s *sluicev1.RolloutSpec) {
		s.Strategy.Canary.SessionAffinity = &sluicev1.SessionAffinity{CookieName: "c", Pin: sluicev1.PinCanaryOnly, Secure: true, SameSite: "Strict"}
	})
	out := buildRules(userRules(), b, aff, traffic.Route{Weights: traffic.ForCanary(10), Experiment: true, Revision: "r2"})
	if len(out) != 3 || *out[0].Name != "sluice-affinity-canary-0" {
		t.Fatalf("rules = %s, want only the canary's affinity rule before the shifted one", mustJSON(out))
	}
	shifted := out[1]
	if len(shifted.BackendRefs[0].Filters) != 0 {
		t.Errorf("the primary backend sets a cookie: %s", mustJSON(shifted.BackendRefs[0].Filters))
	}
	if v := shifted.BackendRefs[1].Filters[0].ResponseHeaderModifier.Add[0].Value; v != "c=r2-canary; Max-Age=86400; Path=/; Secure; SameSite=Strict" {
		t.Errorf("canary Set-Cookie = %q", v)
	}
	if r, _ := observed(out, b); !r.Experiment || r.Weights.Canary != 10 {
		t.Errorf("observed %+v, want an experiment at weight 10", r)
	}
	if back := buildRules(out, b, aff, traffic.Route{Weights: traffic.ForCanary(0)}); len(back) != 2 || len(back[0].BackendRefs[1].Filters) != 0 {
		t.Errorf("after the run the rules are %s, want the user's two rules without cookies", mustJSON(back))
	}
}

func TestNormalizeTreatsServerDefaultsAsEqual(t *testing.T) {
	written := buildRules(userRules(), b, canarySpec(), traffic.Route{Weights: traffic.ForCanary(10)})
	defaulted := make([]gwv1.HTTPRouteRule, len(written))
	for i, r := range written {
		defaulted[i] = *r.DeepCopy()
	}
	// What the API server adds: a default match on the rule without one,
	// and group/kind/weight on backendRefs.
	defaulted[1].Matches = []gwv1.HTTPRouteMatch{{Path: &gwv1.HTTPPathMatch{Type: ptr.To(gwv1.PathMatchPathPrefix), Value: ptr.To("/")}}}
	defaulted[1].BackendRefs[0].Group, defaulted[1].BackendRefs[0].Kind, defaulted[1].BackendRefs[0].Weight = ptr.To(gwv1.Group("")), ptr.To(gwv1.Kind("Service")), ptr.To[int32](1)
	if !sameRules(written, defaulted) {
		t.Error("server defaults make the rules differ: Sluice would rewrite the route on every reconcile")
	}
	defaulted[0].BackendRefs[1].Weight = ptr.To[int32](11)
	if sameRules(written, defaulted) {
		t.Error("a changed weight compares equal")
	}
}
