package rollout_test

import (
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
	"sigs.k8s.io/controller-runtime/pkg/client"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	sluicev1 "github.com/sluice-dev/sluice/api/v1alpha1"
	"github.com/sluice-dev/sluice/controllers/rollout"
)

// TestAServiceSomeoneElseHasStallsTheRollout: a Service with a name Sluice
// needs, not Sluice's, stalls the Rollout (ServiceConflict, told in a
// Warning event) before anything else is written: no primary is created
// and the Service is left as it is. Once that Service is deleted, the
// Rollout carries on by itself, although the manager caches only its own
// Services and so gets no event for it.
func TestAServiceSomeoneElseHasStallsTheRollout(t *testing.T) {
	s := newStory(t)
	s.deploy("podinfo", "podinfo:1.0")
	theirs := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "podinfo-canary", Namespace: s.ns, Labels: map[string]string{"team": "shop"}},
		Spec:       corev1.ServiceSpec{Selector: map[string]string{"app": "shop"}, Ports: []corev1.ServicePort{{Port: 80}}},
	}
	s.must(k8sClient.Create(s.ctx, theirs))
	s.rollout("podinfo")

	ro := s.waitStalled("podinfo", "ServiceConflict")
	if !strings.Contains(ro.Status.Message, "Service podinfo-canary exists and is not managed by Sluice") {
		t.Errorf("the Stalled message does not name the Service: %q", ro.Status.Message)
	}
	s.waitEvent("podinfo", "ServiceConflict")
	if err := k8sClient.Get(s.ctx, client.ObjectKey{Namespace: s.ns, Name: "podinfo-primary"}, &appsv1.Deployment{}); !apierrors.IsNotFound(err) {
		t.Errorf("primary Deployment while stalled: %v, want not found", err)
	}
	if got := s.getService("podinfo-canary"); got.ResourceVersion != theirs.ResourceVersion {
		t.Errorf("their Service was written: resourceVersion %s, was %s", got.ResourceVersion, theirs.ResourceVersion)
	}
	s.expectKStatus("podinfo", status.FailedStatus)

	// Long after the stall, as in a cluster where someone deletes the
	// Service later (deleted at once, it met a reconcile still retrying).
	time.Sleep(3 * time.Second)
	s.must(k8sClient.Delete(s.ctx, theirs))
	s.waitPhase("podinfo", sluicev1.PhaseInitialized, rollout.ConflictRecheck+storyTimeout)
	s.expectKStatus("podinfo", status.CurrentStatus)
}

// TestAnAdoptedRouteThatDoesNotExistStallsTheRolloutUntilItDoes: an
// httpRouteRef naming no HTTPRoute stalls the Rollout (RouteNotFound, in a
// Warning event) with nothing moved; the route created, it carries on.
func TestAnAdoptedRouteThatDoesNotExistStallsTheRolloutUntilItDoes(t *testing.T) {
	s := newStory(t)
	s.deploy("podinfo", "podinfo:1.0")
	s.rollout("podinfo", withCanaryWeights(50), func(ro *sluicev1.Rollout) {
		ro.Spec.Routing = &sluicev1.Routing{GatewayAPI: &sluicev1.GatewayAPIRouting{HTTPRouteRef: &sluicev1.LocalObjectReference{Name: "shop"}}}
	})

	ro := s.waitStalled("podinfo", "RouteNotFound")
	if !strings.Contains(ro.Status.Message, "HTTPRoute shop not found") {
		t.Errorf("the Stalled message does not name the route: %q", ro.Status.Message)
	}
	s.waitEvent("podinfo", "RouteNotFound")
	if err := k8sClient.Get(s.ctx, client.ObjectKey{Namespace: s.ns, Name: "podinfo-primary"}, &appsv1.Deployment{}); !apierrors.IsNotFound(err) {
		t.Errorf("primary Deployment while stalled: %v, want not found", err)
	}

	s.must(k8sClient.Create(s.ctx, &gwv1.HTTPRoute{
		ObjectMeta: metav1.ObjectMeta{Name: "shop", Namespace: s.ns},
		Spec: gwv1.HTTPRouteSpec{
			CommonRouteSpec: gwv1.CommonRouteSpec{ParentRefs: []gwv1.ParentReference{{Name: "public"}}},
			Rules: []gwv1.HTTPRouteRule{{BackendRefs: []gwv1.HTTPBackendRef{{BackendRef: gwv1.BackendRef{
				BackendObjectReference: gwv1.BackendObjectReference{Name: "podinfo", Port: ptr.To(gwv1.PortNumber(9898))},
			}}}}},
		},
	}))
	s.waitPhase("podinfo", sluicev1.PhaseInitialized, storyTimeout)
	s.expectKStatus("podinfo", status.CurrentStatus)
}
