package rollout_test

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"

	networking "istio.io/api/networking/v1alpha3"
	istiov1 "istio.io/client-go/pkg/apis/networking/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	sluicev1 "github.com/sluice-dev/sluice/api/v1alpha1"
	"github.com/sluice-dev/sluice/internal/manager"
)

// TestAnEditOfAnAdoptedRouteJustBeforeAShiftIsKept: an adopted route is the
// team's, and they (or their GitOps tool) edit it while releases run. A
// merge patch replaces a list whole, so a shift written from a cached copy
// that predates their edit would write their old rules back over it: a
// route they just added would vanish, and its clients get 404s. Sluice's
// route writes carry the resourceVersion they were computed from, so such
// a shift conflicts and is made again from the route as it now stands.
func TestAnEditOfAnAdoptedRouteJustBeforeAShiftIsKept(t *testing.T) {
	for _, kind := range routerKinds {
		t.Run(kind, func(t *testing.T) {
			object := map[string]string{"gatewayAPI": "httproutes/shop", "istio": "virtualservices/shop"}[kind]
			// The shift to 50 % (the first write of the route that sets a
			// weight of 50), and the hand-back on deletion (the write that
			// removes Sluice's annotation).
			race := &patchRace{object: object, matches: func(body string) bool {
				return strings.Contains(body, `"weight":50`) ||
					strings.Contains(body, `"sluice.dev/route":null`) || strings.Contains(body, `"annotations":null`)
			}}
			s := newStoryWrapped(t, manager.Options{}, func(rt http.RoundTripper) http.RoundTripper {
				race.next = rt
				return race
			})
			race.ns = s.ns
			s.deploy("podinfo", "podinfo:1.0")
			var route client.Object
			var routing *sluicev1.Routing
			// addRule is the team's edit: a new rule for /<name>, to the
			// Service <name>, read and written straight from the API server.
			var addRule func(name string) func() error
			// kept says whether the team's rule for /<name> is still there.
			var kept func(name string) error
			switch kind {
			case "gatewayAPI":
				route = &gwv1.HTTPRoute{
					ObjectMeta: metav1.ObjectMeta{Name: "shop", Namespace: s.ns},
					Spec: gwv1.HTTPRouteSpec{
						CommonRouteSpec: gwv1.CommonRouteSpec{ParentRefs: []gwv1.ParentReference{{Name: "public"}}},
						Rules: []gwv1.HTTPRouteRule{{BackendRefs: []gwv1.HTTPBackendRef{{BackendRef: gwv1.BackendRef{BackendObjectReference: gwv1.BackendObjectReference{
							Name: "podinfo", Port: ptr.To(gwv1.PortNumber(9898))}}}}}},
					},
				}
				routing = &sluicev1.Routing{GatewayAPI: &sluicev1.GatewayAPIRouting{HTTPRouteRef: &sluicev1.LocalObjectReference{Name: "shop"}}}
				addRule = func(name string) func() error {
					return func() error {
						r := &gwv1.HTTPRoute{}
						if err := k8sClient.Get(s.ctx, client.ObjectKey{Namespace: s.ns, Name: "shop"}, r); err != nil {
							return err
						}
						r.Spec.Rules = append(r.Spec.Rules, gwv1.HTTPRouteRule{
							Matches: []gwv1.HTTPRouteMatch{{Path: &gwv1.HTTPPathMatch{Type: ptr.To(gwv1.PathMatchPathPrefix), Value: ptr.To("/" + name)}}},
							BackendRefs: []gwv1.HTTPBackendRef{{BackendRef: gwv1.BackendRef{BackendObjectReference: gwv1.BackendObjectReference{
								Name: gwv1.ObjectName(name), Port: ptr.To(gwv1.PortNumber(80))}}}},
						})
						return k8sClient.Update(s.ctx, r)
					}
				}
				kept = func(name string) error {
					r := &gwv1.HTTPRoute{}
					s.must(k8sClient.Get(s.ctx, client.ObjectKey{Namespace: s.ns, Name: "shop"}, r))
					if !slices.ContainsFunc(r.Spec.Rules, func(rule gwv1.HTTPRouteRule) bool {
						return len(rule.BackendRefs) == 1 && string(rule.BackendRefs[0].Name) == name
					}) {
						return fmt.Errorf("the team's rule for /%s is gone: %s", name, jsonOf(t, r.Spec.Rules))
					}
					return nil
				}
			case "istio":
				vs := &istiov1.VirtualService{ObjectMeta: metav1.ObjectMeta{Name: "shop", Namespace: s.ns}}
				vs.Spec.Hosts = []string{"podinfo"}
				vs.Spec.Http = []*networking.HTTPRoute{{Name: "main", Route: []*networking.HTTPRouteDestination{{Destination: &networking.Destination{Host: "podinfo"}}}}}
				route = vs
				routing = &sluicev1.Routing{Istio: &sluicev1.IstioRouting{VirtualServiceRef: &sluicev1.LocalObjectReference{Name: "shop"}}}
				addRule = func(name string) func() error {
					return func() error {
						vs := s.virtualService("shop")
						vs.Spec.Http = append([]*networking.HTTPRoute{{
							Name:  name,
							Match: []*networking.HTTPMatchRequest{{Uri: &networking.StringMatch{MatchType: &networking.StringMatch_Prefix{Prefix: "/" + name}}}},
							Route: []*networking.HTTPRouteDestination{{Destination: &networking.Destination{Host: name}}},
						}}, vs.Spec.Http...)
						return k8sClient.Update(s.ctx, vs)
					}
				}
				kept = func(name string) error {
					vs := s.virtualService("shop")
					if !slices.ContainsFunc(vs.Spec.Http, func(r *networking.HTTPRoute) bool { return r.Name == name }) {
						return fmt.Errorf("the team's route for /%s is gone: %v", name, &vs.Spec)
					}
					return nil
				}
			}
			s.must(k8sClient.Create(s.ctx, route))
			s.initialized("podinfo", withCanaryWeights(50), func(ro *sluicev1.Rollout) { ro.Spec.Routing = routing })

			race.arm(addRule("search"))
			s.setImage("podinfo", "podinfo:2.0")
			s.waitPhase("podinfo", sluicev1.PhaseSucceeded, storyTimeout)

			if ran, err := race.ran(); !ran || err != nil {
				t.Fatalf("the team's edit was not made right before the shift (made: %v, error: %v)", ran, err)
			}
			if err := kept("search"); err != nil {
				t.Error(err)
			}
			if v := s.routeNamed(kind, "shop", "podinfo"); v.primary != 100 || v.canary != 0 {
				t.Errorf("after the release the route is %+v, want all on the primary", v)
			}
			if got := s.eventReasons("podinfo"); slices.Contains(got, "ReconcileError") {
				t.Errorf("events %v: a ReconcileError told for a shift that only had to be made again", got)
			}

			// The same edit right before the route is handed back, as the
			// Rollout is deleted.
			race.arm(addRule("reviews"))
			s.deleteRollout("podinfo")
			if ran, err := race.ran(); !ran || err != nil {
				t.Fatalf("the team's edit was not made right before the hand-back (made: %v, error: %v)", ran, err)
			}
			for _, name := range []string{"search", "reviews"} {
				if err := kept(name); err != nil {
					t.Errorf("after the hand-back: %v", err)
				}
			}
			handedBack := routeObject(kind)
			s.must(k8sClient.Get(s.ctx, client.ObjectKey{Namespace: s.ns, Name: "shop"}, handedBack))
			if v := viewOf(kind, "podinfo", handedBack); v.primary != 0 || v.canary != 0 || handedBack.GetAnnotations()["sluice.dev/route"] != "" {
				t.Errorf("the route was not handed back to the apex Service: %+v, annotations %v", v, handedBack.GetAnnotations())
			}
			if errs := s.errorsLogged(); len(errs) > 0 {
				t.Errorf("the manager logged errors for writes that only had to be made again:\n%s", strings.Join(errs, "\n"))
			}
		})
	}
}

// TestAPortAddedToAnAdoptedServiceJustBeforeSluiceWritesItsPortsIsKept: an
// adopted apex Service is the team's too, and keeps the ports Sluice does
// not write. Sluice writes its ports when the Rollout's change, with a merge
// patch, which replaces the list whole: written from a cached copy that
// predates the team's new port, it would remove that port, and the clients
// of it would be refused. The write carries the resourceVersion it was
// computed from, so it conflicts and is made again from the Service as it
// now stands.
func TestAPortAddedToAnAdoptedServiceJustBeforeSluiceWritesItsPortsIsKept(t *testing.T) {
	race := &patchRace{object: "services/podinfo", matches: func(body string) bool {
		return strings.Contains(body, `"ports"`)
	}}
	s := newStoryWrapped(t, manager.Options{}, func(rt http.RoundTripper) http.RoundTripper {
		race.next = rt
		return race
	})
	race.ns = s.ns
	s.deploy("podinfo", "podinfo:1.0")
	s.teamService("podinfo", nil)
	s.initialized("podinfo", func(ro *sluicev1.Rollout) { ro.Spec.Service.Adopt = true })

	// The team adds a port to their Service, read and written straight from
	// the API server, right before Sluice writes the port the Rollout now
	// asks for.
	race.arm(func() error {
		svc := s.getService("podinfo")
		svc.Spec.Ports = append(svc.Spec.Ports, corev1.ServicePort{Name: "admin", Port: 9090, TargetPort: intstr.FromInt32(9090), Protocol: corev1.ProtocolTCP})
		return k8sClient.Update(s.ctx, svc)
	})
	s.must(s.editRollout("podinfo", func(ro *sluicev1.Rollout) {
		ro.Spec.Service.Ports = []sluicev1.ServicePort{{Name: "metrics", Port: 9797}}
	}))
	s.eventually(storyTimeout, "the metrics port on the apex Service", func() error {
		if got := s.portsOf("podinfo"); !strings.Contains(got, "metrics:9797") {
			return fmt.Errorf("ports %s", got)
		}
		return nil
	})
	if ran, err := race.ran(); !ran || err != nil {
		t.Fatalf("the team's edit was not made right before Sluice's write (made: %v, error: %v)", ran, err)
	}
	if got := s.portsOf("podinfo"); !strings.Contains(got, "admin:9090") {
		t.Errorf("the team's admin port is gone from their Service: ports %s", got)
	}
	if got := s.eventReasons("podinfo"); slices.Contains(got, "ReconcileError") {
		t.Errorf("events %v: a ReconcileError told for a write that only had to be made again", got)
	}
	if errs := s.errorsLogged(); len(errs) > 0 {
		t.Errorf("the manager logged errors for a write that only had to be made again:\n%s", strings.Join(errs, "\n"))
	}
}
