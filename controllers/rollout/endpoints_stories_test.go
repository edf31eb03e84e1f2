package rollout_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	sluicev1 "github.com/sluice-dev/sluice/api/v1alpha1"
)

// endpointSlice writes the EndpointSlice that the EndpointSlice controller
// keeps for a Service of Sluice's (envtest runs none): the Service's labels,
// and ready endpoints for n pods.
func (s *story) endpointSlice(rollout, service string, ready int) {
	s.t.Helper()
	sl := &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{Namespace: s.ns, Name: service + "-slice", Labels: map[string]string{
			discoveryv1.LabelServiceName: service, "app.kubernetes.io/managed-by": "sluice", "sluice.dev/rollout": rollout,
		}},
		AddressType: discoveryv1.AddressTypeIPv4,
	}
	for i := range ready {
		sl.Endpoints = append(sl.Endpoints, discoveryv1.Endpoint{
			Addresses:  []string{fmt.Sprintf("10.0.0.%d", i+1)},
			Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(true)},
		})
	}
	existing := &discoveryv1.EndpointSlice{}
	if err := k8sClient.Get(s.ctx, client.ObjectKeyFromObject(sl), existing); err == nil {
		existing.Endpoints = sl.Endpoints
		s.must(k8sClient.Update(s.ctx, existing))
		return
	}
	s.must(k8sClient.Create(s.ctx, sl))
}

// TestTrafficMovesToTheCanaryOnlyOnceItsServiceListsItsPods: the
// EndpointSlice controller lists a pod some time after the Deployment counts
// it available (seconds on a loaded cluster, seen in e2e); a gateway sent
// the canary's share to a Service without its pods then, and those requests
// failed. The weight moves only once the canary's Service lists as many
// ready endpoints as the canary has available pods, and the Rollout says
// why it waits.
func TestTrafficMovesToTheCanaryOnlyOnceItsServiceListsItsPods(t *testing.T) {
	s := newStory(t)
	s.deploy("podinfo", "podinfo:1.0")
	s.initialized("podinfo", withRouter("gatewayAPI"), withCanaryWeights(20, 50))
	// The cluster's EndpointSlice controller has listed the primary's pods
	// and, for now, none of the canary's.
	s.endpointSlice("podinfo", "podinfo-primary", 2)
	s.endpointSlice("podinfo", "podinfo-canary", 0)

	s.setImage("podinfo", "podinfo:2.0")
	s.eventually(storyTimeout, "the Rollout waiting for the canary Service's endpoints", func() error {
		ro := s.getRollout("podinfo")
		if !strings.Contains(ro.Status.Message, "podinfo-canary") || !strings.Contains(ro.Status.Message, "ready endpoints") {
			return fmt.Errorf("phase %s, message %q", ro.Status.Phase, ro.Status.Message)
		}
		return nil
	})
	time.Sleep(time.Second)
	if ro := s.getRollout("podinfo"); ro.Status.CanaryWeight != 0 {
		t.Fatalf("canary weight %d while its Service lists none of its pods", ro.Status.CanaryWeight)
	}

	s.endpointSlice("podinfo", "podinfo-canary", 2)
	s.eventually(storyTimeout, "the first step's weight once the Service lists the canary's pods", func() error {
		if w := s.getRollout("podinfo").Status.CanaryWeight; w != 20 {
			return fmt.Errorf("canary weight %d", w)
		}
		return nil
	})
	s.waitPhase("podinfo", sluicev1.PhaseSucceeded, storyTimeout)
}

// TestACanaryWhoseServiceListsNoReadyEndpointHasItsShareMovedAtOnce: pods
// evicted or lost with their node leave their Service's EndpointSlices
// before the Deployment controller counts them gone (two controllers and
// three writes later: the ReplicaSet's status, then the Deployment's). A
// gateway routes by the slices, so from the first moment each request of
// the canary's share fails. The share moves to the primary as soon as the
// canary's Service lists no ready endpoint, without waiting for the
// Deployment's count, and comes back once the Service lists its pods again.
func TestACanaryWhoseServiceListsNoReadyEndpointHasItsShareMovedAtOnce(t *testing.T) {
	s := newStory(t)
	s.deploy("podinfo", "podinfo:1.0")
	s.initialized("podinfo", withRouter("gatewayAPI"), withCanaryWeights(20, 50), func(ro *sluicev1.Rollout) {
		ro.Spec.Analysis.Interval = &metav1.Duration{Duration: time.Hour}
	})
	s.endpointSlice("podinfo", "podinfo-primary", 2)
	s.endpointSlice("podinfo", "podinfo-canary", 2)
	s.setImage("podinfo", "podinfo:2.0")
	s.canaryShareBack("gatewayAPI")

	// The Deployment still counts its two pods available (the fake
	// kubelet does not take them away): only the Service says they left.
	s.endpointSlice("podinfo", "podinfo-canary", 0)
	s.eventually(storyTimeout, "the canary's share on the primary", func() error {
		v, ro := s.route("gatewayAPI", "podinfo"), s.getRollout("podinfo")
		if v.canary != 0 || !ro.Status.CanaryShareHeld || !strings.Contains(ro.Status.Message, "its 20% of the traffic is on the primary") {
			return fmt.Errorf("route canary %d%%, held %t: %s", v.canary, ro.Status.CanaryShareHeld, ro.Status.Message)
		}
		return nil
	})
	if d := s.getDeployment("podinfo"); d.Status.AvailableReplicas == 0 {
		t.Fatalf("the Deployment counts no available pod: the story must show the move before it does")
	}
	s.waitEvent("podinfo", "CanaryUnavailable")

	s.endpointSlice("podinfo", "podinfo-canary", 2)
	s.eventually(storyTimeout, "the share back on the canary once its Service lists its pods", func() error {
		if v, ro := s.route("gatewayAPI", "podinfo"), s.getRollout("podinfo"); v.canary != 20 || ro.Status.CanaryShareHeld {
			return fmt.Errorf("route canary %d%%, held %t: %s", v.canary, ro.Status.CanaryShareHeld, ro.Status.Message)
		}
		return nil
	})
	s.expectEvents("podinfo", "CanaryUnavailable", 1)
}
