package rollout_test

import (
	"fmt"
	"maps"
	"strings"
	"testing"
	"time"

	networking "istio.io/api/networking/v1alpha3"
	istiov1 "istio.io/client-go/pkg/apis/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	sluicev1 "github.com/sluice-dev/sluice/api/v1alpha1"
)

// editRollout applies edit to Rollout name's spec as a user's update would
// (the manager writes the Rollout too: a conflict is tried again), and
// returns what the API server answered.
func (s *story) editRollout(name string, edit func(*sluicev1.Rollout)) error {
	return retry.RetryOnConflict(retry.DefaultRetry, func() error {
		ro := s.getRollout(name)
		edit(ro)
		return k8sClient.Update(s.ctx, ro)
	})
}

// switchRouter moves Rollout name to router kind ("" for the plain
// kubernetes router), as an edit of the committed spec would.
func (s *story) switchRouter(name, kind string) error {
	return s.editRollout(name, func(ro *sluicev1.Rollout) {
		ro.Spec.Routing = nil
		if kind != "" {
			withRouter(kind)(ro)
		}
	})
}

// releasedThroughTheMesh releases image on Rollout name, moved from the
// Gateway API to the mesh, and checks that both routes end with everything
// on the primary: the VirtualService it released through, and the
// HTTPRoute it left at rest.
func (s *story) releasedThroughTheMesh(name, image string) {
	s.t.Helper()
	before := s.getRollout(name).Status.StableRevision
	s.setImage(name, image)
	s.eventually(storyTimeout, image+" released through the mesh", func() error {
		ro := s.getRollout(name)
		if ro.Status.Phase != sluicev1.PhaseSucceeded || ro.Status.StableRevision == before {
			return fmt.Errorf("phase %s, stable %s (was %s): %s", ro.Status.Phase, ro.Status.StableRevision, before, ro.Status.Message)
		}
		return nil
	})
	if v := s.route("istio", name); v.canary != 0 || v.primary != 100 {
		s.t.Errorf("after the release through the mesh the VirtualService holds %d/%d, want all on the primary", v.primary, v.canary)
	}
	if v := s.route("gatewayAPI", name); v.canary != 0 {
		s.t.Errorf("the HTTPRoute left at rest holds %d/%d, want all on the primary", v.primary, v.canary)
	}
}

// A team moves its app from the Gateway API to the mesh while a release
// runs. The run's share sits on the HTTPRoute, which the spec no longer
// names: had the change been taken, nothing would ever shift it back, and
// once the canary's pods went, the Gateway would send that share to a
// Service with no pods (it did: 20% of the Gateway's requests had nowhere
// to go after the release, on 453d6e0). The change is refused at apply
// while the run holds traffic, and taken at rest.
func TestARouterChangeIsRefusedWhileAReleaseRunsAndTakenAtRest(t *testing.T) {
	s := newStory(t)
	s.deploy("podinfo", "podinfo:1.0")
	s.initialized("podinfo", withRouter("gatewayAPI"), withCanaryWeights(20, 60), func(ro *sluicev1.Rollout) {
		ro.Spec.Analysis.Interval = &metav1.Duration{Duration: 3 * time.Second}
	})
	s.setImage("podinfo", "podinfo:2.0")
	s.eventually(storyTimeout, "20% on the HTTPRoute", func() error {
		if v := s.route("gatewayAPI", "podinfo"); v.canary != 20 {
			return fmt.Errorf("the HTTPRoute holds %d/%d", v.primary, v.canary)
		}
		return nil
	})

	for _, to := range []string{"istio", "", "grpcRoute"} {
		err := s.switchRouter("podinfo", to)
		if err == nil || !strings.Contains(err.Error(), "routing cannot move to another router or route while the Rollout is not at rest") {
			t.Errorf("moving to router %q mid-run: %v, want it refused saying why", to, err)
		}
	}
	// The pass-through fields of the same route may still change.
	s.must(s.editRollout("podinfo", func(ro *sluicev1.Rollout) {
		ro.Spec.Routing.GatewayAPI.Hostnames = []string{"app.example.com", "www.example.com"}
	}))

	s.waitPhase("podinfo", sluicev1.PhaseSucceeded, storyTimeout)
	if v := s.route("gatewayAPI", "podinfo"); v.canary != 0 {
		t.Errorf("after the release the HTTPRoute holds %d/%d, want all on the primary", v.primary, v.canary)
	}
	s.must(s.switchRouter("podinfo", "istio"))
	s.releasedThroughTheMesh("podinfo", "podinfo:3.0")
}

// A release failed, and the team moves the app to the mesh. Once the
// rollback has drained (the route sends the canary nothing and its pods are
// gone) the Rollout is as much at rest as after a success, and the change
// is taken; during the drain it is refused, for the canary's pods still
// answer what the old route sent them. On cf8db8f a failed Rollout refused
// it until a next release succeeded, which the team may have meant to
// release through the new router.
func TestARouterChangeIsTakenOnceAFailedReleaseHasDrained(t *testing.T) {
	s := newStory(t)
	s.deploy("podinfo", "podinfo:1.0")
	s.initialized("podinfo", withRouter("gatewayAPI"), withCanaryWeights(20, 60), scaleDownDelay(3), func(ro *sluicev1.Rollout) {
		ro.Spec.Analysis.Interval = &metav1.Duration{Duration: time.Hour}
	})
	s.setImage("podinfo", "podinfo:2.0")
	s.eventually(storyTimeout, "20% on the HTTPRoute", func() error {
		if v := s.route("gatewayAPI", "podinfo"); v.canary != 20 {
			return fmt.Errorf("the HTTPRoute holds %d/%d", v.primary, v.canary)
		}
		return nil
	})
	s.ask("podinfo", sluicev1.ActionAbort, "sre")

	s.waitDraining("podinfo", sluicev1.PhaseFailed, 3*time.Second)
	if err := s.switchRouter("podinfo", "istio"); err == nil || !strings.Contains(err.Error(), "routing cannot move to another router or route while the Rollout is not at rest") {
		t.Errorf("moving to the mesh while the rollback drains: %v, want it refused saying why", err)
	}
	s.waitReplicas("podinfo", 0, "the canary scaled to zero after the drain")
	s.eventually(storyTimeout, "the move to the mesh taken after the drain", func() error {
		return s.switchRouter("podinfo", "istio")
	})
	s.eventually(storyTimeout, "the mesh sending everything to the primary", func() error {
		vs := routeObject("istio")
		if err := k8sClient.Get(s.ctx, client.ObjectKey{Namespace: s.ns, Name: "podinfo"}, vs); err != nil {
			return err
		}
		if v := viewOf("istio", "podinfo", vs); v.canary != 0 || v.primary != 100 {
			return fmt.Errorf("the VirtualService holds %d/%d", v.primary, v.canary)
		}
		return nil
	})
	if ro := s.getRollout("podinfo"); ro.Status.Phase != sluicev1.PhaseFailed {
		t.Errorf("after the move the phase is %s (%s), want Failed until the next release", ro.Status.Phase, ro.Status.Message)
	}

	s.must(s.editRollout("podinfo", func(ro *sluicev1.Rollout) {
		ro.Spec.Analysis.Interval = &metav1.Duration{Duration: time.Second}
	}))
	s.releasedThroughTheMesh("podinfo", "podinfo:3.0")
}

// A VirtualService the team wrote is adopted: Sluice points its route at
// the -primary and -canary Services, which go with the Rollout, and hands
// it back to the apex Service only when the Rollout is deleted. Let go by a
// spec edit (the ref removed or renamed, even at rest), it would keep
// pointing at podinfo-primary, and the Rollout's deletion would later take
// that Service from under it (it did, on 453d6e0). The edit is refused;
// deleting the Rollout still hands the route back.
func TestAnAdoptedRouteCannotBeLetGoByASpecEdit(t *testing.T) {
	s := newStory(t)
	s.deploy("podinfo", "podinfo:1.0")
	vs := &istiov1.VirtualService{ObjectMeta: metav1.ObjectMeta{Name: "shop", Namespace: s.ns}}
	vs.Spec.Hosts = []string{"shop.example.com"}
	vs.Spec.Http = []*networking.HTTPRoute{{Name: "main", Route: []*networking.HTTPRouteDestination{{Destination: &networking.Destination{Host: "podinfo"}}}}}
	s.must(k8sClient.Create(s.ctx, vs))
	ro := s.initialized("podinfo", withCanaryWeights(50), func(ro *sluicev1.Rollout) {
		ro.Spec.Routing = &sluicev1.Routing{Istio: &sluicev1.IstioRouting{VirtualServiceRef: &sluicev1.LocalObjectReference{Name: "shop"}}}
	})

	for what, edit := range map[string]func(*sluicev1.Rollout){
		"removed": func(ro *sluicev1.Rollout) {
			ro.Spec.Routing = &sluicev1.Routing{Istio: &sluicev1.IstioRouting{Hosts: []string{"shop.example.com"}}}
		},
		"renamed": func(ro *sluicev1.Rollout) {
			ro.Spec.Routing = &sluicev1.Routing{Istio: &sluicev1.IstioRouting{VirtualServiceRef: &sluicev1.LocalObjectReference{Name: "shop-v2"}}}
		},
		"another router": func(ro *sluicev1.Rollout) {
			ro.Spec.Routing = nil
			withRouter("gatewayAPI")(ro)
		},
	} {
		err := s.editRollout("podinfo", edit)
		if err == nil || !strings.Contains(err.Error(), "an adopted route (httpRouteRef, grpcRouteRef, virtualServiceRef) cannot be let go") {
			t.Errorf("virtualServiceRef %s at rest: %v, want it refused saying why", what, err)
		}
	}

	s.must(k8sClient.Delete(s.ctx, ro))
	s.eventually(storyTimeout, "the adopted route handed back to the apex Service", func() error {
		s.must(k8sClient.Get(s.ctx, client.ObjectKeyFromObject(vs), vs))
		if r := vs.Spec.Http[0].Route; len(r) != 1 || r[0].Destination.Host != "podinfo" {
			return fmt.Errorf("the route sends its traffic to %v", r)
		}
		return nil
	})
}

// A Rollout's primary, its Services and its routes are named after its
// target, which it parks at zero replicas. Pointed at another Deployment by
// an edit, the Rollout would build a second set for it and leave the first
// behind: the old target at zero, its apex Service selecting the old
// primary's pods, which the Rollout's deletion then removes, with no
// handover, for only the current target is handed back (on 06d92b3 the old
// target stayed at zero replicas after the delete, and its Service had no
// pod to send to). The edit is refused, as a change of kind is.
func TestTheTargetOfARolloutCannotBeRenamed(t *testing.T) {
	s := newStory(t)
	s.deploy("podinfo", "podinfo:1.0")
	s.deploy("other", "other:1.0")
	s.initialized("podinfo", iterations(1))

	err := s.editRollout("podinfo", func(ro *sluicev1.Rollout) { ro.Spec.TargetRef.Name = "other" })
	if err == nil || !strings.Contains(err.Error(), "targetRef.name cannot change") {
		t.Errorf("targetRef.name changed: %v, want it refused saying why", err)
	}

	s.must(k8sClient.Delete(s.ctx, s.getRollout("podinfo")))
	s.eventually(storyTimeout, "the Rollout gone", func() error { return s.gone("podinfo") })
	if n := replicas(s.getDeployment("podinfo")); n != 2 {
		t.Errorf("after the Rollout's deletion the first target has %d replicas, want its 2 back", n)
	}
	if apex := s.getService("podinfo"); !maps.Equal(apex.Spec.Selector, targetPods) {
		t.Errorf("after the Rollout's deletion Service podinfo selects %v, want the target's pods", apex.Spec.Selector)
	}
}

// A team changes the strategy while a release runs: from A/B to a weighted
// canary, from a canary with session affinity to blue/green, from
// blue/green with a mirror to a canary. From the edit on, the route is the
// new strategy's: the old one's rules (A/B matches, affinity cookies, the
// mirror) go, the release ends, and the route sends everything to the
// primary with nothing of Sluice's left in it.
func TestAStrategyChangedMidRunLeavesNothingOfTheOldOneInTheRoute(t *testing.T) {
	abTesting := func(ro *sluicev1.Rollout) {
		ro.Spec.Strategy = sluicev1.Strategy{ABTesting: &sluicev1.ABTestingStrategy{Iterations: 100,
			Match: []sluicev1.RequestMatch{{Headers: map[string]sluicev1.StringMatch{"x-canary": {Exact: ptr.To("insider")}}}}}}
	}
	affinity := func(ro *sluicev1.Rollout) {
		withCanaryWeights(20, 60)(ro)
		ro.Spec.Strategy.Canary.SessionAffinity = &sluicev1.SessionAffinity{CookieName: "aff", MaxAge: 600}
	}
	mirror := func(ro *sluicev1.Rollout) {
		ro.Spec.Strategy = sluicev1.Strategy{BlueGreen: &sluicev1.BlueGreenStrategy{Iterations: 100, Mirror: true}}
	}
	blueGreen := func(ro *sluicev1.Rollout) {
		ro.Spec.Strategy = sluicev1.Strategy{BlueGreen: &sluicev1.BlueGreenStrategy{Iterations: 2}}
	}
	for _, c := range []struct {
		name     string
		from, to rolloutOpt
		started  func(routeView) bool // the old strategy's route in place
	}{
		{"A/B to canary", abTesting, withCanaryWeights(20, 60), func(v routeView) bool { return v.abHeader != "" }},
		{"canary with affinity to blue/green", affinity, blueGreen, func(v routeView) bool { return v.canary == 20 && v.canaryCookie != "" }},
		{"blue/green with a mirror to canary", mirror, withCanaryWeights(50), func(v routeView) bool { return v.mirrorPercent != 0 }},
	} {
		t.Run(c.name, func(t *testing.T) {
			s := newStory(t)
			s.deploy("podinfo", "podinfo:1.0")
			s.initialized("podinfo", withRouter("gatewayAPI"), c.from, func(ro *sluicev1.Rollout) {
				ro.Spec.Analysis.Interval = &metav1.Duration{Duration: time.Hour}
			})
			views := s.watchRoute("gatewayAPI", "podinfo", sluicev1.PhaseSucceeded, func() {
				s.setImage("podinfo", "podinfo:2.0")
				s.eventually(storyTimeout, "the old strategy's route", func() error {
					if v := s.route("gatewayAPI", "podinfo"); !c.started(v) {
						return fmt.Errorf("the route is %+v", v)
					}
					return nil
				})
				s.must(s.editRollout("podinfo", func(ro *sluicev1.Rollout) {
					c.to(ro)
					ro.Spec.Analysis.Interval = &metav1.Duration{Duration: time.Second}
				}))
			})
			if last := views[len(views)-1]; len(last.inserted) > 0 || last.canaryCookie != "" || last.mirrorPercent != 0 || last.canary != 0 || last.primary != 100 {
				t.Errorf("after the release the route is %+v, want everything on the primary and nothing of Sluice's", last)
			}
			if n := replicas(s.getDeployment("podinfo-primary")); n != 2 {
				t.Errorf("the primary asks for %d replicas, want 2", n)
			}
			if img := s.getDeployment("podinfo-primary").Spec.Template.Spec.Containers[0].Image; img != "podinfo:2.0" {
				t.Errorf("the primary runs %s, want podinfo:2.0 promoted", img)
			}
		})
	}
}
