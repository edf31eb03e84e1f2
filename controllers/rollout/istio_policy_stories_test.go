package rollout_test

import (
	"fmt"
	"testing"
	"time"

	istiov1 "istio.io/client-go/pkg/apis/networking/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
	"sigs.k8s.io/controller-runtime/pkg/client"

	sluicev1 "github.com/sluice-dev/sluice/api/v1alpha1"
)

func withIstioPolicies(trafficPolicy, corsPolicy string) rolloutOpt {
	return func(ro *sluicev1.Rollout) {
		withRouter("istio")(ro)
		ro.Spec.Routing.Istio.TrafficPolicy = &runtime.RawExtension{Raw: []byte(trafficPolicy)}
		ro.Spec.Routing.Istio.CorsPolicy = &runtime.RawExtension{Raw: []byte(corsPolicy)}
	}
}

func (s *story) destinationRule(name string) *istiov1.DestinationRule {
	s.t.Helper()
	dr := &istiov1.DestinationRule{}
	s.must(k8sClient.Get(s.ctx, client.ObjectKey{Namespace: s.ns, Name: name}, dr))
	return dr
}

// drPolicies waits until both generated DestinationRules say what check
// accepts.
func (s *story) drPolicies(what string, check func(*istiov1.DestinationRule) error) {
	s.t.Helper()
	s.eventually(storyTimeout, what, func() error {
		for _, name := range []string{"podinfo-primary", "podinfo-canary"} {
			if err := check(s.destinationRule(name)); err != nil {
				return fmt.Errorf("DestinationRule %s: %w", name, err)
			}
		}
		return nil
	})
}

func TestAnIstioTrafficPolicyIsKeptOnBothDestinationRulesAndCorsOnTheRoute(t *testing.T) {
	s := newStory(t)
	s.deploy("podinfo", "podinfo:1.0")
	s.initialized("podinfo", withCanaryWeights(50), withIstioPolicies(
		`{"loadBalancer": {"consistentHash": {"httpCookie": {"name": "user", "ttl": "1h"}}},
		  "connectionPool": {"http": {"http2MaxRequests": 1000}},
		  "outlierDetection": {"consecutive5xxErrors": 5, "interval": "1m"},
		  "tls": {"mode": "ISTIO_MUTUAL"}}`,
		`{"allowOrigins": [{"exact": "https://shop.example.com"}], "allowMethods": ["GET"], "maxAge": "24h"}`))

	s.drPolicies("the traffic policy on the DestinationRules", func(dr *istiov1.DestinationRule) error {
		tp := dr.Spec.TrafficPolicy
		if tp.GetLoadBalancer().GetConsistentHash().GetHttpCookie().GetTtl().AsDuration() != time.Hour ||
			tp.GetConnectionPool().GetHttp().GetHttp2MaxRequests() != 1000 ||
			tp.GetOutlierDetection().GetInterval().AsDuration() != time.Minute ||
			tp.GetTls().GetMode().String() != "ISTIO_MUTUAL" {
			return fmt.Errorf("trafficPolicy %v", tp)
		}
		return nil
	})
	vs := &istiov1.VirtualService{}
	s.must(k8sClient.Get(s.ctx, client.ObjectKey{Namespace: s.ns, Name: "podinfo"}, vs))
	if cors := vs.Spec.Http[0].CorsPolicy; cors.GetAllowOrigins()[0].GetExact() != "https://shop.example.com" || cors.GetMaxAge().AsDuration() != 24*time.Hour {
		t.Errorf("the generated route's corsPolicy = %v", cors)
	}

	// The Rollout's policy changes: both DestinationRules follow.
	ro := s.getRollout("podinfo")
	patch := client.MergeFrom(ro.DeepCopy())
	ro.Spec.Routing.Istio.TrafficPolicy = &runtime.RawExtension{Raw: []byte(`{"loadBalancer": {"simple": "LEAST_REQUEST"}, "tls": {"mode": "DISABLE"}}`)}
	s.must(k8sClient.Patch(s.ctx, ro, patch))
	s.drPolicies("the new traffic policy", func(dr *istiov1.DestinationRule) error {
		if tp := dr.Spec.TrafficPolicy; tp.GetLoadBalancer().GetSimple().String() != "LEAST_REQUEST" || tp.GetTls().GetMode().String() != "DISABLE" || tp.GetOutlierDetection() != nil {
			return fmt.Errorf("trafficPolicy %v", tp)
		}
		return nil
	})

	// Someone edits a DestinationRule by hand: it is put back.
	dr := s.destinationRule("podinfo-canary")
	dr.Spec.TrafficPolicy = nil
	dr.Spec.Subsets = nil
	s.must(k8sClient.Update(s.ctx, dr))
	s.drPolicies("the edited DestinationRule put back", func(dr *istiov1.DestinationRule) error {
		if dr.Spec.TrafficPolicy.GetTls().GetMode().String() != "DISABLE" {
			return fmt.Errorf("trafficPolicy %v", dr.Spec.TrafficPolicy)
		}
		return nil
	})

	// A policy Istio would refuse stalls the Rollout with the reason.
	ro = s.getRollout("podinfo")
	patch = client.MergeFrom(ro.DeepCopy())
	ro.Spec.Routing.Istio.TrafficPolicy = &runtime.RawExtension{Raw: []byte(`{"loadBalancer": {"simpel": "ROUND_ROBIN"}}`)}
	s.must(k8sClient.Patch(s.ctx, ro, patch))
	s.eventually(storyTimeout, "Stalled with InvalidTrafficPolicy", func() error {
		c := meta.FindStatusCondition(s.getRollout("podinfo").Status.Conditions, sluicev1.ConditionStalled)
		if c == nil || c.Status != metav1.ConditionTrue || c.Reason != "InvalidTrafficPolicy" {
			return fmt.Errorf("Stalled = %+v", c)
		}
		return nil
	})
	s.waitEvent("podinfo", "InvalidTrafficPolicy")
	s.expectKStatus("podinfo", status.FailedStatus)
	if tp := s.destinationRule("podinfo-primary").Spec.TrafficPolicy; tp.GetTls().GetMode().String() != "DISABLE" {
		t.Errorf("the refused policy changed the DestinationRule: %v", tp)
	}

	// Fixed, the Rollout is Current again.
	ro = s.getRollout("podinfo")
	patch = client.MergeFrom(ro.DeepCopy())
	ro.Spec.Routing.Istio.TrafficPolicy = &runtime.RawExtension{Raw: []byte(`{"loadBalancer": {"simple": "ROUND_ROBIN"}}`)}
	s.must(k8sClient.Patch(s.ctx, ro, patch))
	s.drPolicies("the fixed policy", func(dr *istiov1.DestinationRule) error {
		if dr.Spec.TrafficPolicy.GetLoadBalancer().GetSimple().String() != "ROUND_ROBIN" {
			return fmt.Errorf("trafficPolicy %v", dr.Spec.TrafficPolicy)
		}
		return nil
	})
	s.eventually(storyTimeout, "no longer Stalled", func() error {
		if c := meta.FindStatusCondition(s.getRollout("podinfo").Status.Conditions, sluicev1.ConditionStalled); c != nil && c.Status == metav1.ConditionTrue {
			return fmt.Errorf("Stalled = %+v", c)
		}
		return nil
	})
	s.expectKStatus("podinfo", status.CurrentStatus)
}
