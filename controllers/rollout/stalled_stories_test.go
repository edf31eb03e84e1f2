package rollout_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
	"sigs.k8s.io/controller-runtime/pkg/client"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	sluicev1 "github.com/sluice-dev/sluice/api/v1alpha1"
	"github.com/sluice-dev/sluice/controllers/rollout"
	"github.com/sluice-dev/sluice/pkg/traffic"
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

// TestAnApexServiceOfTheTeamsIsAdoptedKeptAndHandedBack: with
// service.adopt, a Service the team had before Sluice (named like the
// target, selecting its pods, with a second port, a label, an annotation
// and session affinity) is taken over rather than refused. It keeps
// selecting the target's pods until the primary is ready, then selects the
// primary's; everything else of it stays. Deleting the Rollout hands it
// back selecting the target's pods, with nothing of Sluice's left on it.
// Two Rollouts asking for one apex Service: the second stalls, and its
// deletion hands back only what is its own. Before, it pointed the first
// Rollout's Service at its own target and took Sluice's marks off it.
func TestDeletingARolloutStalledOnAnotherRolloutsServiceLeavesThatServiceAlone(t *testing.T) {
	for _, kind := range []string{"gatewayAPI", "istio"} {
		t.Run(kind, func(t *testing.T) {
			s := newStory(t)
			s.deploy("podinfo", "podinfo:1.0")
			s.initialized("podinfo", withRouter(kind), withCanaryWeights(50))
			getRoute := func() client.Object {
				r := routeObject(kind)
				s.must(k8sClient.Get(s.ctx, client.ObjectKey{Namespace: s.ns, Name: "podinfo"}, r))
				return r
			}
			before, route := s.getService("podinfo"), getRoute()

			s.deploy("other", "other:1.0")
			// Its generated route would have the apex Service's name too.
			s.rollout("other", withRouter(kind), withCanaryWeights(50), func(ro *sluicev1.Rollout) { ro.Spec.Service.Name = "podinfo" })
			s.waitStalled("other", "ServiceConflict")
			s.must(k8sClient.Delete(s.ctx, s.getRollout("other")))
			s.eventually(storyTimeout, "the second Rollout gone", func() error { return s.gone("other") })

			if got := getRoute(); got.GetResourceVersion() != route.GetResourceVersion() {
				t.Errorf("the first Rollout's route was handed back by the second's deletion: owners %v, labels %v", got.GetOwnerReferences(), got.GetLabels())
			}
			after := s.getService("podinfo")
			if !metav1.IsControlledBy(after, s.getRollout("podinfo")) || after.Labels["app.kubernetes.io/managed-by"] != "sluice" {
				t.Errorf("the first Rollout's Service was handed away: owners %v, labels %v", after.OwnerReferences, after.Labels)
			}
			if err := s.apexSelects("podinfo", primaryPods); err != nil {
				t.Errorf("the first Rollout's Service: %v", err)
			}
			if after.ResourceVersion != before.ResourceVersion {
				t.Errorf("the first Rollout's Service was written by the second's deletion")
			}
		})
	}
}

// A second Rollout of a target that another Rollout already releases (a
// copy made by mistake) stalls, and deleting it hands nothing back: the
// target, the primary, the Services and the route stay the first's.
// Before, its deletion scaled the first's parked target up and pointed the
// first's apex Service at it, taking Sluice's marks off.
func TestDeletingASecondRolloutOfATargetLeavesTheFirstsObjectsAlone(t *testing.T) {
	s := newStory(t)
	s.deploy("podinfo", "podinfo:1.0")
	s.initialized("podinfo", withRouter("gatewayAPI"), withCanaryWeights(50))
	s.eventually(storyTimeout, "the target parked", func() error {
		if r := ptr.Deref(s.getDeployment("podinfo").Spec.Replicas, 1); r != 0 {
			return fmt.Errorf("target at %d replicas", r)
		}
		return nil
	})
	getRoute := func() *gwv1.HTTPRoute {
		r := &gwv1.HTTPRoute{}
		s.must(k8sClient.Get(s.ctx, client.ObjectKey{Namespace: s.ns, Name: "podinfo"}, r))
		return r
	}
	apex, route := s.getService("podinfo"), getRoute()

	s.rollout("copy", withRouter("gatewayAPI"), withCanaryWeights(50), func(ro *sluicev1.Rollout) { ro.Spec.TargetRef.Name = "podinfo" })
	s.waitStalled("copy", "PrimaryConflict")
	s.must(k8sClient.Delete(s.ctx, s.getRollout("copy")))
	s.eventually(storyTimeout, "the copy gone", func() error { return s.gone("copy") })
	s.waitEventSaying("copy", "NothingHandedBack", "its primary podinfo-primary is Rollout podinfo's")

	if r := ptr.Deref(s.getDeployment("podinfo").Spec.Replicas, 1); r != 0 {
		t.Errorf("the first Rollout's parked target was scaled to %d", r)
	}
	if got := s.getService("podinfo"); got.ResourceVersion != apex.ResourceVersion {
		t.Errorf("the first Rollout's apex Service was written: owners %v, labels %v, selector %v", got.OwnerReferences, got.Labels, got.Spec.Selector)
	}
	if got := getRoute(); got.ResourceVersion != route.ResourceVersion {
		t.Errorf("the first Rollout's route was written: owners %v, labels %v", got.OwnerReferences, got.Labels)
	}
}

// The team's own Service, adopted, is theirs again when the Rollout goes,
// even when its target went first: with Sluice's owner reference left on
// it, the garbage collector would delete it with the Rollout (and a
// LoadBalancer its address).
func TestAnAdoptedApexServiceIsHandedBackWhenItsTargetWasDeletedFirst(t *testing.T) {
	s := newStory(t)
	s.deploy("podinfo", "podinfo:1.0")
	s.teamService("podinfo", map[string]string{"team": "shop"})
	s.initialized("podinfo", func(ro *sluicev1.Rollout) { ro.Spec.Service.Adopt = true })
	s.eventually(storyTimeout, "the adopted Service selecting the primary's pods", func() error { return s.apexSelects("podinfo", primaryPods) })
	if !metav1.IsControlledBy(s.getService("podinfo"), s.getRollout("podinfo")) {
		t.Fatalf("the Service was not adopted: owners %v", s.getService("podinfo").OwnerReferences)
	}

	s.deleteTarget("podinfo")
	s.must(k8sClient.Delete(s.ctx, s.getRollout("podinfo")))
	s.eventually(storyTimeout, "the Rollout gone", func() error { return s.gone("podinfo") })

	svc := s.getService("podinfo")
	if len(svc.OwnerReferences) != 0 {
		t.Errorf("the team's Service still has owners %v: the garbage collector deletes it with the Rollout", svc.OwnerReferences)
	}
	if svc.Annotations[traffic.AdoptedAnnotation] != "" || svc.Labels["app.kubernetes.io/managed-by"] != "" || svc.Annotations["team"] != "shop" {
		t.Errorf("handed back with Sluice's marks or without its own: labels %v, annotations %v", svc.Labels, svc.Annotations)
	}
	// Selecting the target's pods, so a target created again is served.
	if err := s.apexSelects("podinfo", targetPods); err != nil {
		t.Errorf("handed back: %v", err)
	}
}

func TestAnApexServiceOfTheTeamsIsAdoptedKeptAndHandedBack(t *testing.T) {
	for _, kind := range []string{"gatewayAPI", "kubernetes"} {
		t.Run(kind, func(t *testing.T) {
			s := newStory(t)
			s.holdWhen(func(d *appsv1.Deployment) bool { return d.Name == "podinfo-primary" })
			s.deploy("podinfo", "podinfo:1.0")
			theirs := &corev1.Service{
				ObjectMeta: metav1.ObjectMeta{Name: "podinfo", Namespace: s.ns,
					Labels: map[string]string{"tier": "web"}, Annotations: map[string]string{"team": "shop"}},
				Spec: corev1.ServiceSpec{
					Selector:        map[string]string{"app": "podinfo"},
					SessionAffinity: corev1.ServiceAffinityClientIP,
					Ports: []corev1.ServicePort{
						{Name: "http", Port: 9898, TargetPort: intstr.FromInt32(9898)},
						{Name: "metrics", Port: 9797, TargetPort: intstr.FromInt32(9797)},
					},
				},
			}
			s.must(k8sClient.Create(s.ctx, theirs))
			opts := []rolloutOpt{func(ro *sluicev1.Rollout) { ro.Spec.Service.Adopt = true }}
			if kind != "kubernetes" {
				opts = append(opts, withRouter(kind), withCanaryWeights(50))
			}
			s.rollout("podinfo", opts...)

			s.eventually(storyTimeout, "the Service adopted, still selecting the target's pods", func() error {
				svc := s.getService("podinfo")
				if !metav1.IsControlledBy(svc, s.getRollout("podinfo")) {
					return fmt.Errorf("not controlled by the Rollout: %v", svc.OwnerReferences)
				}
				return s.apexSelects("podinfo", targetPods)
			})
			if c := meta.FindStatusCondition(s.getRollout("podinfo").Status.Conditions, sluicev1.ConditionStalled); c != nil && c.Status == metav1.ConditionTrue {
				t.Fatalf("stalled although service.adopt is set: %s: %s", c.Reason, c.Message)
			}

			s.holdWhen(func(*appsv1.Deployment) bool { return false })
			s.waitPhase("podinfo", sluicev1.PhaseInitialized, storyTimeout)
			s.eventually(storyTimeout, "the adopted Service selecting the primary's pods", func() error { return s.apexSelects("podinfo", primaryPods) })
			svc := s.getService("podinfo")
			if svc.Labels["tier"] != "web" || svc.Annotations["team"] != "shop" || svc.Spec.SessionAffinity != corev1.ServiceAffinityClientIP {
				t.Errorf("the adopted Service lost its own fields: labels %v, annotations %v, affinity %s", svc.Labels, svc.Annotations, svc.Spec.SessionAffinity)
			}
			if got := s.portsOf("podinfo"); !strings.Contains(got, "9797") || !strings.Contains(got, "9898") {
				t.Errorf("the adopted Service's ports: %s, want its metrics port kept beside 9898", got)
			}

			s.must(k8sClient.Delete(s.ctx, s.getRollout("podinfo")))
			s.eventually(storyTimeout, "the Rollout gone", func() error { return s.gone("podinfo") })
			svc = s.getService("podinfo")
			if err := s.apexSelects("podinfo", targetPods); err != nil {
				t.Errorf("handed back: %v", err)
			}
			if metav1.GetControllerOf(svc) != nil || svc.Annotations[traffic.AdoptedAnnotation] != "" || svc.Labels["app.kubernetes.io/managed-by"] != "" {
				t.Errorf("handed back with Sluice's marks: owners %v, labels %v, annotations %v", svc.OwnerReferences, svc.Labels, svc.Annotations)
			}
			if svc.Annotations["team"] != "shop" || svc.Labels["tier"] != "web" {
				t.Errorf("handed back without its own labels or annotations: %v %v", svc.Labels, svc.Annotations)
			}
		})
	}
}
