package rollout_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	autoscalingv2 "k8s.io/api/autoscaling/v2"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	sluicev1 "github.com/sluice-dev/sluice/api/v1alpha1"
)

// Stories of the target's autoscaler (spec.autoscalerRef): the primary gets
// its own copy, a change of the user's autoscaler is released with the next
// promotion, and KEDA is kept from waking the parked target.

func autoscalerRef(kind, name string, opts ...func(*sluicev1.AutoscalerRef)) rolloutOpt {
	apiVersion := "autoscaling/v2"
	if kind == "ScaledObject" {
		apiVersion = "keda.sh/v1alpha1"
	}
	return func(ro *sluicev1.Rollout) {
		ro.Spec.AutoscalerRef = &sluicev1.AutoscalerRef{APIVersion: apiVersion, Kind: kind, Name: name}
		for _, o := range opts {
			o(ro.Spec.AutoscalerRef)
		}
	}
}

func primaryMinReplicas(n int32) func(*sluicev1.AutoscalerRef) {
	return func(ref *sluicev1.AutoscalerRef) {
		ref.PrimaryScalerReplicas = &sluicev1.ScalerReplicas{MinReplicas: &n}
	}
}

func primaryQuery(trigger, query string) func(*sluicev1.AutoscalerRef) {
	return func(ref *sluicev1.AutoscalerRef) {
		ref.PrimaryScalerQueries = map[string]string{trigger: query}
	}
}

func (s *story) createHPA(name string, minReplicas, maxReplicas int32) {
	s.t.Helper()
	s.must(k8sClient.Create(s.ctx, &autoscalingv2.HorizontalPodAutoscaler{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: s.ns},
		Spec: autoscalingv2.HorizontalPodAutoscalerSpec{
			ScaleTargetRef: autoscalingv2.CrossVersionObjectReference{APIVersion: "apps/v1", Kind: "Deployment", Name: name},
			MinReplicas:    &minReplicas, MaxReplicas: maxReplicas,
		},
	}))
}

func (s *story) getHPA(name string) *autoscalingv2.HorizontalPodAutoscaler {
	s.t.Helper()
	h := &autoscalingv2.HorizontalPodAutoscaler{}
	s.must(k8sClient.Get(s.ctx, client.ObjectKey{Namespace: s.ns, Name: name}, h))
	return h
}

func (s *story) copyHPA(name string) (*autoscalingv2.HorizontalPodAutoscaler, error) {
	h := &autoscalingv2.HorizontalPodAutoscaler{}
	return h, k8sClient.Get(s.ctx, client.ObjectKey{Namespace: s.ns, Name: name}, h)
}

func TestAnHPAOnTheTargetGivesThePrimaryItsOwnAndAChangeIsReleasedWithTheNextPromotion(t *testing.T) {
	s := newStory(t)
	s.deploy("podinfo", "podinfo:1.0", withReplicas(2))
	s.createHPA("podinfo", 3, 10)
	ro := s.initialized("podinfo", iterations(100), autoscalerRef("HorizontalPodAutoscaler", "podinfo", primaryMinReplicas(4)))

	var cp *autoscalingv2.HorizontalPodAutoscaler
	s.eventually(storyTimeout, "the primary's HPA", func() error {
		var err error
		cp, err = s.copyHPA("podinfo-primary")
		return err
	})
	if ref := cp.Spec.ScaleTargetRef; ref.Kind != "Deployment" || ref.Name != "podinfo-primary" {
		t.Errorf("the primary's HPA scales %s %s, want Deployment podinfo-primary", ref.Kind, ref.Name)
	}
	if *cp.Spec.MinReplicas != 4 || cp.Spec.MaxReplicas != 10 {
		t.Errorf("the primary's HPA bounds %d..%d, want the Rollout's minimum 4 and the user's maximum 10", *cp.Spec.MinReplicas, cp.Spec.MaxReplicas)
	}
	if !metav1.IsControlledBy(cp, ro) || cp.Labels["sluice.dev/rollout"] != "podinfo" || cp.Labels["app.kubernetes.io/managed-by"] != "sluice" {
		t.Errorf("the primary's HPA: owners %v, labels %v; want the Rollout as controller and Sluice's labels", cp.OwnerReferences, cp.Labels)
	}
	if ref := s.getHPA("podinfo").Spec.ScaleTargetRef; ref.Name != "podinfo" {
		t.Errorf("the user's HPA was re-pointed at %s", ref.Name)
	}

	// A new scaling policy waits for the next release.
	h := s.getHPA("podinfo")
	h.Spec.MaxReplicas = 20
	s.must(k8sClient.Update(s.ctx, h))
	time.Sleep(time.Second)
	if cp, _ := s.copyHPA("podinfo-primary"); cp.Spec.MaxReplicas != 10 {
		t.Errorf("the primary's HPA took maxReplicas %d before a promotion, want the released 10", cp.Spec.MaxReplicas)
	}

	s.setImage("podinfo", "podinfo:2.0")
	s.waitPhase("podinfo", sluicev1.PhaseProgressing, storyTimeout)
	s.eventually(storyTimeout, "the canary at the HPA's minimum", func() error {
		// The primary runs 2 (no HPA controller in envtest); the user's HPA keeps 3.
		if n := replicas(s.getDeployment("podinfo")); n != 3 {
			return fmt.Errorf("canary replicas %d", n)
		}
		return nil
	})
	s.ask("podinfo", sluicev1.ActionPromoteFull, "sre")
	s.waitPhase("podinfo", sluicev1.PhaseSucceeded, storyTimeout)
	s.eventually(storyTimeout, "the new policy on the primary's HPA", func() error {
		cp, err := s.copyHPA("podinfo-primary")
		if err != nil {
			return err
		}
		if cp.Spec.MaxReplicas != 20 || *cp.Spec.MinReplicas != 4 || cp.Spec.ScaleTargetRef.Name != "podinfo-primary" {
			return fmt.Errorf("the primary's HPA scales %s within %d..%d", cp.Spec.ScaleTargetRef.Name, *cp.Spec.MinReplicas, cp.Spec.MaxReplicas)
		}
		return nil
	})

	// The primary's size is its HPA's: a count set on the parked target
	// is not passed on.
	s.eventually(storyTimeout, "the target parked", func() error {
		if n := replicas(s.getDeployment("podinfo")); n != 0 {
			return fmt.Errorf("target replicas %d", n)
		}
		return nil
	})
	before := replicas(s.getDeployment("podinfo-primary"))
	s.scale("podinfo", 7)
	s.eventually(storyTimeout, "the target parked again", func() error {
		if n := replicas(s.getDeployment("podinfo")); n != 0 {
			return fmt.Errorf("target replicas %d", n)
		}
		return nil
	})
	if n := replicas(s.getDeployment("podinfo-primary")); n != before {
		t.Errorf("primary replicas %d, want %d: its HPA owns them", n, before)
	}
	s.expectKStatus("podinfo", status.CurrentStatus)
}

func TestARolloutWhoseAutoscalerIsMissingStallsUntilItIsCreated(t *testing.T) {
	s := newStory(t)
	s.deploy("podinfo", "podinfo:1.0")
	s.rollout("podinfo", autoscalerRef("HorizontalPodAutoscaler", "podinfo"))

	ro := s.waitStalled("podinfo", "AutoscalerNotFound")
	if want := "HorizontalPodAutoscaler podinfo named in autoscalerRef does not exist"; !strings.Contains(ro.Status.Message, want) {
		t.Errorf("message %q, want it to say %q", ro.Status.Message, want)
	}
	s.waitEvent("podinfo", "AutoscalerNotFound")
	s.expectKStatus("podinfo", status.FailedStatus)
	if _, err := s.copyHPA("podinfo-primary"); err == nil {
		t.Errorf("a primary HPA was created without the user's")
	}

	s.createHPA("podinfo", 1, 5)
	s.waitPhase("podinfo", sluicev1.PhaseInitialized, storyTimeout)
	s.eventually(storyTimeout, "the primary's HPA", func() error {
		_, err := s.copyHPA("podinfo-primary")
		return err
	})
	s.expectKStatus("podinfo", status.CurrentStatus)
}

var scaledObjectGVK = schema.GroupVersionKind{Group: "keda.sh", Version: "v1alpha1", Kind: "ScaledObject"}

func (s *story) createScaledObject(name, specYAML string) {
	s.t.Helper()
	spec := map[string]any{}
	s.must(yaml.Unmarshal([]byte(specYAML), &spec))
	u := &unstructured.Unstructured{Object: map[string]any{"spec": spec}}
	u.SetGroupVersionKind(scaledObjectGVK)
	u.SetName(name)
	u.SetNamespace(s.ns)
	s.must(k8sClient.Create(s.ctx, u))
}

func (s *story) getScaledObject(name string) (*unstructured.Unstructured, error) {
	u := &unstructured.Unstructured{}
	u.SetGroupVersionKind(scaledObjectGVK)
	return u, k8sClient.Get(s.ctx, client.ObjectKey{Namespace: s.ns, Name: name}, u)
}

// pausedReplicas is the paused-replicas annotation of the user's
// ScaledObject ("" when absent).
func (s *story) pausedReplicas(name string) string {
	s.t.Helper()
	u, err := s.getScaledObject(name)
	s.must(err)
	return u.GetAnnotations()["autoscaling.keda.sh/paused-replicas"]
}

func TestAKEDAScaledObjectIsCopiedWithThePrimarysQueryAndPausedWhileTheTargetIsParked(t *testing.T) {
	s := newStory(t)
	s.deploy("podinfo", "podinfo:1.0")
	s.createScaledObject("podinfo", `
scaleTargetRef: {name: podinfo}
minReplicaCount: 1
maxReplicaCount: 8
triggers:
- type: prometheus
  name: rps
  metadata: {serverAddress: "http://prometheus.monitoring:9090", threshold: "100", query: 'sum(rate(http_requests_total{app="podinfo"}[1m]))'}
`)
	const query = `sum(rate(http_requests_total{app="podinfo-primary"}[1m]))`
	s.initialized("podinfo", iterations(100), autoscalerRef("ScaledObject", "podinfo", primaryQuery("rps", query)))

	s.eventually(storyTimeout, "the primary's ScaledObject and the user's paused on the parked target", func() error {
		cp, err := s.getScaledObject("podinfo-primary")
		if err != nil {
			return err
		}
		if name, _, _ := unstructured.NestedString(cp.Object, "spec", "scaleTargetRef", "name"); name != "podinfo-primary" {
			return fmt.Errorf("the primary's ScaledObject scales %s", name)
		}
		triggers, _, _ := unstructured.NestedSlice(cp.Object, "spec", "triggers")
		if q, _, _ := unstructured.NestedString(triggers[0].(map[string]any), "metadata", "query"); q != query {
			return fmt.Errorf("the primary's rps query is %q", q)
		}
		if p := s.pausedReplicas("podinfo"); p != "0" {
			return fmt.Errorf("the user's ScaledObject has paused-replicas %q", p)
		}
		return nil
	})
	if cp, _ := s.getScaledObject("podinfo-primary"); cp.GetAnnotations()["autoscaling.keda.sh/paused-replicas"] != "" {
		t.Errorf("the primary's ScaledObject is paused")
	}

	s.setImage("podinfo", "podinfo:2.0")
	s.waitPhase("podinfo", sluicev1.PhaseProgressing, storyTimeout)
	s.eventually(storyTimeout, "the user's ScaledObject resumed while the canary runs", func() error {
		if p := s.pausedReplicas("podinfo"); p != "" {
			return fmt.Errorf("paused-replicas %q during the run", p)
		}
		if n := replicas(s.getDeployment("podinfo")); n == 0 {
			return fmt.Errorf("the canary is not scaled up")
		}
		return nil
	})

	s.ask("podinfo", sluicev1.ActionPromoteFull, "sre")
	s.waitPhase("podinfo", sluicev1.PhaseSucceeded, storyTimeout)
	s.eventually(storyTimeout, "the user's ScaledObject paused again with the target parked", func() error {
		if p := s.pausedReplicas("podinfo"); p != "0" {
			return fmt.Errorf("paused-replicas %q", p)
		}
		return nil
	})
	s.expectKStatus("podinfo", status.CurrentStatus)

	// Deleting the Rollout hands the target back to its autoscaler.
	s.must(k8sClient.Delete(s.ctx, s.getRollout("podinfo")))
	s.eventually(storyTimeout, "the Rollout gone and the user's ScaledObject resumed", func() error {
		if p := s.pausedReplicas("podinfo"); p != "" {
			return fmt.Errorf("paused-replicas %q", p)
		}
		return s.gone("podinfo")
	})
}

// TestRemovingAutoscalerRefHandsTheAutoscalerBack: once a Rollout no longer
// names its autoscaler, Sluice undoes what it did for it: the primary's copy
// goes (else it would scale the primary for good, owned by nobody's spec),
// and Sluice's pause is lifted from the user's autoscaler (else it would
// stay paused for good). Before, both stayed.
func TestRemovingAutoscalerRefHandsTheAutoscalerBack(t *testing.T) {
	s := newStory(t)
	s.deploy("podinfo", "podinfo:1.0")
	s.createScaledObject("podinfo", `
scaleTargetRef: {name: podinfo}
minReplicaCount: 1
maxReplicaCount: 8
triggers:
- type: cpu
  metadata: {value: "60"}
`)
	s.initialized("podinfo", autoscalerRef("ScaledObject", "podinfo"))
	s.eventually(storyTimeout, "the primary's ScaledObject and the user's paused", func() error {
		if _, err := s.getScaledObject("podinfo-primary"); err != nil {
			return err
		}
		if p := s.pausedReplicas("podinfo"); p != "0" {
			return fmt.Errorf("the user's ScaledObject has paused-replicas %q", p)
		}
		return nil
	})

	s.eventually(storyTimeout, "autoscalerRef removed", func() error {
		ro := s.getRollout("podinfo")
		ro.Spec.AutoscalerRef = nil
		return k8sClient.Update(s.ctx, ro)
	})

	s.eventually(storyTimeout, "the primary's copy gone and the user's ScaledObject resumed", func() error {
		if _, err := s.getScaledObject("podinfo-primary"); !apierrors.IsNotFound(err) {
			return fmt.Errorf("the primary's ScaledObject is still there (%v)", err)
		}
		if p := s.pausedReplicas("podinfo"); p != "" {
			return fmt.Errorf("the user's ScaledObject still has paused-replicas %q", p)
		}
		return nil
	})
	s.waitEvent("podinfo", "AutoscalerReleased")
	if ro := s.getRollout("podinfo"); ro.Status.Phase != sluicev1.PhaseInitialized {
		t.Errorf("phase %s (%s), want Initialized: releasing the autoscaler is no release", ro.Status.Phase, ro.Status.Message)
	}
	if n := replicas(s.getDeployment("podinfo-primary")); n < 1 {
		t.Errorf("primary replicas = %d, want it kept serving", n)
	}
}
