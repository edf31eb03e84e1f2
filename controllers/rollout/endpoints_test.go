package rollout

import (
	"testing"

	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/utils/ptr"
)

func TestReadyEndpointsCountsEachServicesReadyPodsOnce(t *testing.T) {
	slice := func(svc string, family discoveryv1.AddressType, ready ...*bool) discoveryv1.EndpointSlice {
		sl := discoveryv1.EndpointSlice{AddressType: family}
		sl.Labels = map[string]string{discoveryv1.LabelServiceName: svc}
		for _, r := range ready {
			sl.Endpoints = append(sl.Endpoints, discoveryv1.Endpoint{Conditions: discoveryv1.EndpointConditions{Ready: r}})
		}
		return sl
	}
	yes, no := ptr.To(true), ptr.To(false)
	got := readyEndpoints([]discoveryv1.EndpointSlice{
		// Dual-stack: each family lists the same two pods.
		slice("web-canary", discoveryv1.AddressTypeIPv4, yes, yes),
		slice("web-canary", discoveryv1.AddressTypeIPv6, yes, yes),
		// Two slices of one family add up; a draining pod is not ready; no
		// condition means ready.
		slice("web-primary", discoveryv1.AddressTypeIPv4, yes, no),
		slice("web-primary", discoveryv1.AddressTypeIPv4, nil),
	})
	if got["web-canary"] != 2 || got["web-primary"] != 2 || len(got) != 2 {
		t.Errorf("readyEndpoints = %v, want web-canary 2 (dual-stack counted once), web-primary 2", got)
	}
}
