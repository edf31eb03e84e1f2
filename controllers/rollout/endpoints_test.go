package rollout

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
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
		// A Service whose pods all left: listed, with none ready.
		slice("api-canary", discoveryv1.AddressTypeIPv4, no, no),
	})
	if n, listed := got["api-canary"]; got["web-canary"] != 2 || got["web-primary"] != 2 || !listed || n != 0 || len(got) != 3 {
		t.Errorf("readyEndpoints = %v, want web-canary 2 (dual-stack counted once), web-primary 2, api-canary 0", got)
	}
}

func TestTheCachedEndpointSliceKeepsWhatSluiceCounts(t *testing.T) {
	yes, no := ptr.To(true), ptr.To(false)
	sl := &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{Name: "web-primary-x1", Namespace: "shop",
			GenerateName: "web-primary-",
			Labels: map[string]string{discoveryv1.LabelServiceName: "web-primary", RolloutLabel: "web",
				"endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io", "app.kubernetes.io/managed-by": "sluice"},
			Annotations:     map[string]string{"endpoints.kubernetes.io/last-change-trigger-time": "2026-12-03T07:00:00Z"},
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "v1", Kind: "Service", Name: "web-primary", UID: "5e1f"}}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Ports:       []discoveryv1.EndpointPort{{Port: ptr.To[int32](8080)}},
		Endpoints: []discoveryv1.Endpoint{
			{Addresses: []string{"10.0.0.7"}, Conditions: discoveryv1.EndpointConditions{Ready: yes, Serving: yes},
				NodeName: ptr.To("node-1"), Zone: ptr.To("a"),
				TargetRef: &corev1.ObjectReference{Kind: "Pod", Namespace: "shop", Name: "web-primary-5d9f-abcde", UID: "0b1c"}},
			{Addresses: []string{"10.0.0.8"}, Conditions: discoveryv1.EndpointConditions{Ready: no, Terminating: yes}},
		},
	}
	before := readyEndpoints([]discoveryv1.EndpointSlice{*sl})
	out, err := StripEndpointSlice(sl.DeepCopy())
	if err != nil {
		t.Fatal(err)
	}
	got := out.(*discoveryv1.EndpointSlice)
	if after := readyEndpoints([]discoveryv1.EndpointSlice{*got}); after["web-primary"] != before["web-primary"] || after["web-primary"] != 1 {
		t.Errorf("ready endpoints %v after the transform, %v before; want 1 both times", after, before)
	}
	if got.Labels[RolloutLabel] != "web" || got.Labels[discoveryv1.LabelServiceName] != "web-primary" || got.AddressType != discoveryv1.AddressTypeIPv4 {
		t.Errorf("the transform lost what finds and counts the slice: labels %v, address type %q", got.Labels, got.AddressType)
	}
	if len(got.Endpoints) != 2 || got.Endpoints[0].Conditions.Ready == nil || !*got.Endpoints[0].Conditions.Ready ||
		got.Endpoints[1].Conditions.Ready == nil || *got.Endpoints[1].Conditions.Ready {
		t.Errorf("endpoints %+v, want the first ready and the second not", got.Endpoints)
	}
	// The shared readiness values are never the ones written through: a
	// deep copy (what every reader of the cache gets) owns its own.
	cp := got.DeepCopy()
	*cp.Endpoints[0].Conditions.Ready = false
	if !*got.Endpoints[0].Conditions.Ready {
		t.Error("changing a copy of a cached slice changed the cached slice")
	}
	if got.Annotations != nil || got.Ports != nil || got.Endpoints[0].TargetRef != nil || got.Endpoints[0].Addresses != nil || got.Endpoints[0].NodeName != nil ||
		got.OwnerReferences != nil || got.GenerateName != "" || len(got.Labels) != 2 || got.Endpoints[1].Conditions.Terminating != nil {
		t.Errorf("the cached slice keeps what Sluice never reads: %+v", got)
	}
	// Not a slice: passed through untouched.
	svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "web"}}
	if o, _ := StripEndpointSlice(svc); o != svc {
		t.Errorf("a Service came out as %v", o)
	}
}
