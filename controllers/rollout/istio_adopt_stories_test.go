package rollout_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"
	networking "istio.io/api/networking/v1alpha3"
	istiov1 "istio.io/client-go/pkg/apis/networking/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
	"sigs.k8s.io/controller-runtime/pkg/client"

	sluicev1 "github.com/sluice-dev/sluice/api/v1alpha1"
)

// withIstioTCP routes a TCP service (appProtocol tcp) through Istio: no
// HTTP-only fields, which the API refuses for it.
func withIstioTCP(ro *sluicev1.Rollout) {
	ro.Spec.Service.AppProtocol = "tcp"
	ro.Spec.Routing = &sluicev1.Routing{Istio: &sluicev1.IstioRouting{Hosts: []string{"db.example.com"}}}
}

func (s *story) virtualService(name string) *istiov1.VirtualService {
	s.t.Helper()
	vs := &istiov1.VirtualService{}
	s.must(k8sClient.Get(s.ctx, client.ObjectKey{Namespace: s.ns, Name: name}, vs))
	return vs
}

func (s *story) stalledWith(name, reason string) *metav1.Condition {
	s.t.Helper()
	var c *metav1.Condition
	s.eventually(storyTimeout, "Stalled with "+reason, func() error {
		c = meta.FindStatusCondition(s.getRollout(name).Status.Conditions, sluicev1.ConditionStalled)
		if c == nil || c.Status != metav1.ConditionTrue || c.Reason != reason {
			return fmt.Errorf("Stalled = %+v", c)
		}
		return nil
	})
	s.waitEvent(name, reason)
	return c
}

// TestAnIstioTCPServiceIsShiftedWithTCPRoutes: with appProtocol tcp, the
// generated VirtualService has a tcp route on the main port and no http
// route (Istio would not apply one to TCP traffic); its weights go through
// the steps, to the canary at promotion and back to the primary, and back
// at a rollback.
func TestAnIstioTCPServiceIsShiftedWithTCPRoutes(t *testing.T) {
	s := newStory(t)
	s.deploy("podinfo", "podinfo:1.0")
	s.initialized("podinfo", withIstioTCP, withCanaryWeights(20, 60))
	vs := s.virtualService("podinfo")
	if len(vs.Spec.Http) != 0 || len(vs.Spec.Tcp) != 1 {
		t.Fatalf("VirtualService routes: http %v, tcp %v; want one tcp route", vs.Spec.Http, vs.Spec.Tcp)
	}
	if m := vs.Spec.Tcp[0].Match; len(m) != 1 || m[0].Port != 9898 {
		t.Errorf("the tcp route matches %v, want the main port 9898", m)
	}
	if v := s.route("istio", "podinfo"); v.primary != 100 || v.canary != 0 {
		t.Fatalf("after initialization the tcp route holds %d/%d, want 100/0", v.primary, v.canary)
	}

	views := s.watchRoute("istio", "podinfo", sluicev1.PhaseSucceeded, func() { s.setImage("podinfo", "podinfo:2.0") })
	if got := canaryWeights(views); !slices.Equal(got, []int32{0, 20, 60, 100, 0}) {
		t.Errorf("canary weights on the tcp route over the release = %v, want [0 20 60 100 0]", got)
	}
	for _, v := range views {
		if v.primary+v.canary != 100 {
			t.Errorf("weights %d/%d do not add up to 100", v.primary, v.canary)
		}
	}
	s.expectKStatus("podinfo", status.CurrentStatus)

	// The next release is aborted at its first step: the tcp route goes
	// back to the primary.
	ro := s.getRollout("podinfo")
	patch := client.MergeFrom(ro.DeepCopy())
	ro.Spec.Strategy = sluicev1.Strategy{Canary: &sluicev1.CanaryStrategy{Steps: []sluicev1.CanaryStep{
		{SetWeight: ptr.To[int32](30)}, {Pause: &sluicev1.PauseStep{}},
	}}}
	s.must(k8sClient.Patch(s.ctx, ro, patch))
	s.setImage("podinfo", "podinfo:3.0")
	s.eventually(storyTimeout, "the tcp route at 30%", func() error {
		if v := s.route("istio", "podinfo"); v.canary != 30 || v.primary != 70 {
			return fmt.Errorf("route %+v", v)
		}
		return nil
	})
	s.ask("podinfo", sluicev1.ActionAbort, "alice")
	s.waitPhase("podinfo", sluicev1.PhaseFailed, storyTimeout)
	s.eventually(storyTimeout, "the tcp route back on the primary", func() error {
		if v := s.route("istio", "podinfo"); v.canary != 0 || v.primary != 100 {
			return fmt.Errorf("route %+v", v)
		}
		return nil
	})
	if vs := s.virtualService("podinfo"); len(vs.Spec.Http) != 0 {
		t.Errorf("an http route appeared on the TCP service's VirtualService: %v", vs.Spec.Http)
	}
}

// userDR is a DestinationRule of the user's for host, with fields of its
// own that Sluice must leave as they are.
func userDR(ns, name, host string) *istiov1.DestinationRule {
	dr := &istiov1.DestinationRule{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: map[string]string{"team": "shop"}}}
	dr.Spec.Host = host
	dr.Spec.ExportTo = []string{"."}
	dr.Spec.TrafficPolicy = &networking.TrafficPolicy{
		Tls: &networking.ClientTLSSettings{Mode: networking.ClientTLSSettings_ISTIO_MUTUAL},
		LoadBalancer: &networking.LoadBalancerSettings{LbPolicy: &networking.LoadBalancerSettings_ConsistentHash{
			ConsistentHash: &networking.LoadBalancerSettings_ConsistentHashLB{HashKey: &networking.LoadBalancerSettings_ConsistentHashLB_HttpHeaderName{HttpHeaderName: "x-user"}},
		}},
	}
	return dr
}

// TestAUsersDestinationRulesAreAdoptedAsTheyAreAndHandedBackIntact: a team
// coming from Flagger, or managing Istio by hand, has DestinationRules for
// the -primary and -canary hosts. Sluice does not overwrite one that has
// the name it would generate: the Rollout is Stalled and the event says how
// to adopt it. Adopted, they are used as they are, never written, through a
// release and the Rollout's deletion.
func TestAUsersDestinationRulesAreAdoptedAsTheyAreAndHandedBackIntact(t *testing.T) {
	s := newStory(t)
	s.deploy("podinfo", "podinfo:1.0")
	primary := userDR(s.ns, "podinfo-primary", "podinfo-primary")
	canary := userDR(s.ns, "podinfo-canary-policy", "podinfo-canary."+s.ns+".svc.cluster.local")
	wrong := userDR(s.ns, "podinfo-apex", "podinfo")
	for _, dr := range []*istiov1.DestinationRule{primary, canary, wrong} {
		s.must(k8sClient.Create(s.ctx, dr))
	}

	// Not named: the DestinationRule with the name Sluice would generate
	// is not overwritten.
	s.rollout("podinfo", withRouter("istio"), withCanaryWeights(40))
	c := s.stalledWith("podinfo", "RouteConflict")
	if !strings.Contains(c.Message, "DestinationRule podinfo-primary") || !strings.Contains(c.Message, "routing.istio.destinationRuleRefs") {
		t.Errorf("the Stalled message does not say how to adopt it: %q", c.Message)
	}
	s.expectKStatus("podinfo", status.FailedStatus)

	// Named, but one is for another host: Istio would not apply it there.
	adopt := func(canaryName string) {
		ro := s.getRollout("podinfo")
		patch := client.MergeFrom(ro.DeepCopy())
		ro.Spec.Routing.Istio.DestinationRuleRefs = &sluicev1.IstioDestinationRuleRefs{
			Primary: sluicev1.LocalObjectReference{Name: "podinfo-primary"},
			Canary:  sluicev1.LocalObjectReference{Name: canaryName},
		}
		s.must(k8sClient.Patch(s.ctx, ro, patch))
	}
	adopt("podinfo-apex")
	c = s.stalledWith("podinfo", "DestinationRuleHostMismatch")
	if !strings.Contains(c.Message, "podinfo-apex") || !strings.Contains(c.Message, "podinfo-canary") {
		t.Errorf("the Stalled message does not name the DestinationRule and its host: %q", c.Message)
	}

	// Both right: the Rollout carries on, through a release.
	adopt("podinfo-canary-policy")
	s.waitPhase("podinfo", sluicev1.PhaseInitialized, storyTimeout)
	s.expectKStatus("podinfo", status.CurrentStatus)
	s.setImage("podinfo", "podinfo:2.0")
	s.waitPhase("podinfo", sluicev1.PhaseSucceeded, storyTimeout)

	untouched := func(when string) {
		t.Helper()
		for _, want := range []*istiov1.DestinationRule{primary, canary} {
			got := s.destinationRule(want.Name)
			if got.ResourceVersion != want.ResourceVersion || !proto.Equal(&got.Spec, &want.Spec) ||
				len(got.OwnerReferences) != 0 || got.Labels["team"] != "shop" || len(got.Labels) != 1 {
				t.Errorf("%s: DestinationRule %s was written (resourceVersion %s, was %s): spec %v, labels %v, owners %v",
					when, want.Name, got.ResourceVersion, want.ResourceVersion, &got.Spec, got.Labels, got.OwnerReferences)
			}
		}
	}
	untouched("after a release")
	// Sluice generated no second DestinationRule for the canary's host.
	if err := k8sClient.Get(s.ctx, client.ObjectKey{Namespace: s.ns, Name: "podinfo-canary"}, &istiov1.DestinationRule{}); err == nil {
		t.Errorf("Sluice generated podinfo-canary beside the adopted podinfo-canary-policy")
	}

	s.deleteRollout("podinfo")
	untouched("after the Rollout's deletion")
}

// TestADestinationRuleSluiceGeneratedIsReleasedOrReplacedWhenTheRolloutAdopts:
// the way from routing.istio.trafficPolicy to DestinationRules of one's own.
// Naming the generated DestinationRule hands it over as it stands (no owner,
// so the garbage collector keeps it after the Rollout); naming another one
// for the host removes the generated one, so that one applies to the host.
func TestADestinationRuleSluiceGeneratedIsReleasedOrReplacedWhenTheRolloutAdopts(t *testing.T) {
	s := newStory(t)
	s.deploy("podinfo", "podinfo:1.0")
	s.initialized("podinfo", withCanaryWeights(50), withIstioPolicies(`{"tls": {"mode": "ISTIO_MUTUAL"}}`, `{"allowMethods": ["GET"]}`))
	s.destinationRule("podinfo-canary") // generated
	own := userDR(s.ns, "podinfo-canary-own", "podinfo-canary")
	s.must(k8sClient.Create(s.ctx, own))

	ro := s.getRollout("podinfo")
	patch := client.MergeFrom(ro.DeepCopy())
	ro.Spec.Routing.Istio.TrafficPolicy = nil
	ro.Spec.Routing.Istio.DestinationRuleRefs = &sluicev1.IstioDestinationRuleRefs{
		Primary: sluicev1.LocalObjectReference{Name: "podinfo-primary"},
		Canary:  sluicev1.LocalObjectReference{Name: "podinfo-canary-own"},
	}
	s.must(k8sClient.Patch(s.ctx, ro, patch))
	s.eventually(storyTimeout, "podinfo-primary released with its policy, podinfo-canary removed", func() error {
		dr := s.destinationRule("podinfo-primary")
		if len(dr.OwnerReferences) != 0 || dr.Labels["app.kubernetes.io/managed-by"] != "" {
			return fmt.Errorf("podinfo-primary: owners %v, labels %v", dr.OwnerReferences, dr.Labels)
		}
		if dr.Spec.TrafficPolicy.GetTls().GetMode() != networking.ClientTLSSettings_ISTIO_MUTUAL {
			return fmt.Errorf("podinfo-primary: trafficPolicy %v", dr.Spec.TrafficPolicy)
		}
		err := k8sClient.Get(s.ctx, client.ObjectKey{Namespace: s.ns, Name: "podinfo-canary"}, &istiov1.DestinationRule{})
		if err == nil {
			return fmt.Errorf("the generated podinfo-canary is still there beside podinfo-canary-own")
		}
		return client.IgnoreNotFound(err)
	})
	if got := s.destinationRule("podinfo-canary-own"); got.ResourceVersion != own.ResourceVersion {
		t.Errorf("the adopted podinfo-canary-own was written: %v", &got.Spec)
	}
	s.expectKStatus("podinfo", status.CurrentStatus)
}

// TestAnAdoptedVirtualServiceOfATCPServiceHasItsTCPRoutesShiftedAndHandedBack:
// with virtualServiceRef and a TCP main port, Sluice shifts the user's tcp
// routes to the apex Service and leaves the rest; deleting the Rollout
// points them at the apex Service again.
func TestAnAdoptedVirtualServiceOfATCPServiceHasItsTCPRoutesShiftedAndHandedBack(t *testing.T) {
	s := newStory(t)
	s.deploy("podinfo", "podinfo:1.0")
	vs := &istiov1.VirtualService{ObjectMeta: metav1.ObjectMeta{Name: "db", Namespace: s.ns}}
	vs.Spec.Hosts = []string{"podinfo"}
	vs.Spec.Tcp = []*networking.TCPRoute{
		{Match: []*networking.L4MatchAttributes{{Port: 9898}}, Route: []*networking.RouteDestination{{Destination: &networking.Destination{Host: "podinfo"}}}},
		{Match: []*networking.L4MatchAttributes{{Port: 9999}}, Route: []*networking.RouteDestination{{Destination: &networking.Destination{Host: "replica-db"}}}},
	}
	vs.Spec.Http = []*networking.HTTPRoute{{Name: "admin", Route: []*networking.HTTPRouteDestination{{Destination: &networking.Destination{Host: "admin"}}}}}
	s.must(k8sClient.Create(s.ctx, vs))
	user := vs.Spec.DeepCopy()

	s.initialized("podinfo", withCanaryWeights(50), func(ro *sluicev1.Rollout) {
		ro.Spec.Service.PortName = "tcp-db" // Istio's port naming: TCP
		ro.Spec.Routing = &sluicev1.Routing{Istio: &sluicev1.IstioRouting{VirtualServiceRef: &sluicev1.LocalObjectReference{Name: "db"}}}
	})
	got := s.virtualService("db")
	if r := got.Spec.Tcp[0].Route; len(r) != 2 || r[0].Destination.Host != "podinfo-primary" || r[0].Weight != 100 || r[1].Destination.Host != "podinfo-canary" {
		t.Fatalf("the adopted tcp route was not taken over: %v", r)
	}
	if !proto.Equal(got.Spec.Tcp[1], user.Tcp[1]) || !proto.Equal(got.Spec.Http[0], user.Http[0]) || !proto.Equal(got.Spec.Tcp[0].Match[0], user.Tcp[0].Match[0]) {
		t.Errorf("the user's other routes or matches changed: %v", &got.Spec)
	}

	s.deleteRollout("podinfo")
	got = s.virtualService("db")
	if r := got.Spec.Tcp[0].Route; len(r) != 1 || r[0].Destination.Host != "podinfo" {
		t.Errorf("the tcp route was not handed back to the apex Service: %v", r)
	}
	if !proto.Equal(got.Spec.Tcp[1], user.Tcp[1]) || !proto.Equal(got.Spec.Http[0], user.Http[0]) {
		t.Errorf("the user's other routes changed: %v", &got.Spec)
	}
}
