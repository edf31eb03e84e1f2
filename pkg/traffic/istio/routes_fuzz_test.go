package istio

import (
	"testing"

	"google.golang.org/protobuf/proto"
	"k8s.io/utils/ptr"

	sluicev1 "github.com/sluice-dev/sluice/api/v1alpha1"
	"github.com/sluice-dev/sluice/pkg/traffic"
)

// FuzzBuildHTTP: whatever a Rollout author writes in the A/B matches and
// whatever weight the state machine asks for, building the VirtualService's
// routes never panics, the managed route's primary and canary weights are
// in 0..100 and add up to 100, the routes read back as built, and the
// user's other route is left exactly as it was.
func FuzzBuildHTTP(f *testing.F) {
	f.Add(int32(40), "X-Canary", "in", "beta", "yes", "/api", false, true)
	f.Add(int32(0), "", "", "", "", "", true, false)
	f.Add(int32(100), "x\x00y", "\xff", "c=;", "v\n", "*", true, true)
	f.Add(int32(-5), "h", "v", "k", "v", "/", false, false)
	f.Fuzz(func(t *testing.T, weight int32, header, value, cookie, cookieValue, path string, mirror, experiment bool) {
		w := min(max(weight, 0), 100)
		spec := &sluicev1.RolloutSpec{Strategy: sluicev1.Strategy{ABTesting: &sluicev1.ABTestingStrategy{Match: []sluicev1.RequestMatch{
			{Headers: map[string]sluicev1.StringMatch{header: {Exact: ptr.To(value)}}, URI: &sluicev1.StringMatch{Prefix: ptr.To(path)}, Method: value},
			{Cookies: map[string]string{cookie: cookieValue}},
		}}}}
		if mirror {
			spec.Strategy = sluicev1.Strategy{BlueGreen: &sluicev1.BlueGreenStrategy{Mirror: true, MirrorPercent: ptr.To(w)}}
		}
		route := traffic.Route{Weights: traffic.ForCanary(w), Experiment: experiment, Revision: "r2"}
		in := userHTTP()
		out := buildHTTP(in, h, spec, route)

		got, found := observed(out, h)
		if !found {
			t.Fatalf("the built routes hold no managed route: %v", out)
		}
		if got.Weights != route.Weights {
			t.Errorf("the routes read back weights %+v, built with %+v", got.Weights, route.Weights)
		}
		for _, r := range out {
			if inserted(r) || !h.managed(r) {
				continue
			}
			var sum int32
			for _, d := range r.Route {
				if d.Weight < 0 || d.Weight > 100 {
					t.Errorf("destination %s weight %d", d.Destination.GetHost(), d.Weight)
				}
				sum += d.Weight
			}
			if sum != 100 {
				t.Errorf("the managed route's weights add up to %d: %v", sum, r.Route)
			}
		}
		if last := out[len(out)-1]; !proto.Equal(last, userHTTP()[1]) {
			t.Errorf("the user's other route changed: %v", last)
		}
	})
}
