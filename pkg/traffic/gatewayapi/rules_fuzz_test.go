package gatewayapi

import (
	"testing"

	"k8s.io/utils/ptr"

	sluicev1 "github.com/sluice-dev/sluice/api/v1alpha1"
	"github.com/sluice-dev/sluice/pkg/traffic"
)

// FuzzBuildRules: whatever a Rollout author writes in the A/B matches and
// whatever weight the state machine asks for, building the route never
// panics, the managed rule sends primary and canary weights in 0..100 that
// add up to 100, the route reads back as built, and the user's other rule
// is left exactly as it was.
func FuzzBuildRules(f *testing.F) {
	f.Add(int32(25), "x-canary", "1", "beta", "yes", "/api", false, true)
	f.Add(int32(0), "", "", "", "", "", true, false)
	f.Add(int32(100), "x\x00y", "\xff", "c=;", "v\n", "*", true, true)
	f.Add(int32(-5), "h", "v", "k", "v", "/", false, false)
	f.Fuzz(func(t *testing.T, weight int32, header, value, cookie, cookieValue, path string, mirror, experiment bool) {
		w := min(max(weight, 0), 100)
		spec := canarySpec(func(s *sluicev1.RolloutSpec) {
			if mirror {
				s.Strategy = sluicev1.Strategy{BlueGreen: &sluicev1.BlueGreenStrategy{Mirror: true, MirrorPercent: ptr.To(w)}}
				return
			}
			s.Strategy = sluicev1.Strategy{ABTesting: &sluicev1.ABTestingStrategy{Match: []sluicev1.RequestMatch{
				{Headers: map[string]sluicev1.StringMatch{header: {Exact: ptr.To(value)}}, URI: &sluicev1.StringMatch{Prefix: ptr.To(path)}, Method: value},
				{Cookies: map[string]string{cookie: cookieValue}},
			}}}
		})
		route := traffic.Route{Weights: traffic.ForCanary(w), Experiment: experiment, Revision: "r2"}
		in := userRules()
		out := buildRules(in, b, spec, route)

		got, found := observed(out, b)
		if !found {
			t.Fatalf("the built rules hold no managed rule: %s", mustJSON(out))
		}
		if got.Weights != route.Weights {
			t.Errorf("the route reads back weights %+v, built with %+v", got.Weights, route.Weights)
		}
		for _, rule := range out {
			if inserted(rule) || !b.managed(rule) {
				continue
			}
			var sum int32
			for _, ref := range rule.BackendRefs {
				if !b.isOurs(ref) {
					continue
				}
				if *ref.Weight < 0 || *ref.Weight > 100 {
					t.Errorf("backend %s weight %d", ref.Name, *ref.Weight)
				}
				sum += *ref.Weight
			}
			if sum != 100 {
				t.Errorf("the managed rule's weights add up to %d: %s", sum, refs(rule))
			}
		}
		if last := out[len(out)-1]; mustJSON(last) != mustJSON(in[1]) {
			t.Errorf("the user's other rule changed: %s, was %s", mustJSON(last), mustJSON(in[1]))
		}
	})
}

// FuzzBuildGRPCRules: FuzzBuildRules for a GRPCRoute. Whatever A/B header
// match and weight, building never panics, the managed rule's weights add up
// to 100 and read back as built, building again changes nothing, and the
// user's other rule is left exactly as it was.
func FuzzBuildGRPCRules(f *testing.F) {
	f.Add(int32(25), "x-canary", "1", false, true)
	f.Add(int32(0), "", "", true, false)
	f.Add(int32(100), "x\x00y", "\xff(", true, true)
	f.Add(int32(-5), "h", "v", false, false)
	f.Fuzz(func(t *testing.T, weight int32, header, value string, mirror, experiment bool) {
		w := min(max(weight, 0), 100)
		spec := canarySpec(func(s *sluicev1.RolloutSpec) {
			if mirror {
				s.Strategy = sluicev1.Strategy{BlueGreen: &sluicev1.BlueGreenStrategy{Mirror: true, MirrorPercent: ptr.To(w)}}
				return
			}
			s.Strategy = sluicev1.Strategy{ABTesting: &sluicev1.ABTestingStrategy{Match: []sluicev1.RequestMatch{
				{Headers: map[string]sluicev1.StringMatch{header: {Exact: ptr.To(value)}}},
				{Headers: map[string]sluicev1.StringMatch{header: {Prefix: ptr.To(value)}}},
			}}}
		})
		route := traffic.Route{Weights: traffic.ForCanary(w), Experiment: experiment, Revision: "r2"}
		in := userGRPCRules()
		out := buildGRPCRules(in, b, spec, route)

		got, found := observedGRPC(out, b)
		if !found {
			t.Fatalf("the built rules hold no managed rule: %s", mustJSON(out))
		}
		if got.Weights != route.Weights {
			t.Errorf("the route reads back weights %+v, built with %+v", got.Weights, route.Weights)
		}
		for _, rule := range out {
			if grpcInserted(rule) || !b.grpcManaged(rule) {
				continue
			}
			var sum int32
			for _, ref := range rule.BackendRefs {
				if b.isOursRef(ref.BackendObjectReference) {
					sum += *ref.Weight
				}
			}
			if sum != 100 {
				t.Errorf("the managed rule's weights add up to %d: %s", sum, grpcRefs(rule))
			}
		}
		if again := buildGRPCRules(out, b, spec, route); !sameGRPCRules(again, out) {
			t.Errorf("building again changed the rules: %s, was %s", mustJSON(again), mustJSON(out))
		}
		if last := out[len(out)-1]; mustJSON(last) != mustJSON(in[1]) {
			t.Errorf("the user's other rule changed: %s, was %s", mustJSON(last), mustJSON(in[1]))
		}
	})
}
