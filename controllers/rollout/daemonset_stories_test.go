package rollout_test

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
	"sigs.k8s.io/controller-runtime/pkg/client"

	sluicev1 "github.com/sluice-dev/sluice/api/v1alpha1"
	"github.com/sluice-dev/sluice/internal/testenv"
	"github.com/sluice-dev/sluice/pkg/workload"
)

// Stories of a DaemonSet target (issue 15): parked on no node between
// releases, run on the nodes its spec selects during one, and never a
// primary with fewer pods than it served with. envtest runs no DaemonSet
// controller; the fake kubelet reports every DaemonSet on
// testenv.FakeNodes nodes, or on none while parked.

// userNodes is the nodeSelector the user gives the DaemonSets of these
// stories: Sluice must keep it, and give it back exactly.
var userNodes = map[string]string{"kubernetes.io/os": "linux", "pool": "edge"}

// daemonSet creates a DaemonSet name running image on the nodes of userNodes.
func (s *story) daemonSet(name, image string) {
	s.t.Helper()
	d := &appsv1.DaemonSet{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: s.ns, Labels: map[string]string{"app": name}},
		Spec: appsv1.DaemonSetSpec{
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": name}},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": name}},
				Spec: corev1.PodSpec{
					NodeSelector: maps.Clone(userNodes),
					Containers: []corev1.Container{{
						Name: "app", Image: image, Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 9898}},
					}},
				},
			},
		},
	}
	s.must(k8sClient.Create(s.ctx, d))
}

// asDaemonSet makes the Rollout target the DaemonSet of its name.
func asDaemonSet() rolloutOpt {
	return func(ro *sluicev1.Rollout) { ro.Spec.TargetRef.Kind = "DaemonSet" }
}

func (s *story) getDaemonSet(name string) *appsv1.DaemonSet {
	s.t.Helper()
	d := &appsv1.DaemonSet{}
	s.must(k8sClient.Get(s.ctx, client.ObjectKey{Namespace: s.ns, Name: name}, d))
	return d
}

func (s *story) editDaemonSet(name string, edit func(*appsv1.DaemonSet)) {
	s.t.Helper()
	d := s.getDaemonSet(name)
	patch := client.MergeFrom(d.DeepCopy())
	edit(d)
	s.must(k8sClient.Patch(s.ctx, d, patch))
}

func (s *story) setDaemonSetImage(name, image string) {
	s.t.Helper()
	s.editDaemonSet(name, func(d *appsv1.DaemonSet) { d.Spec.Template.Spec.Containers[0].Image = image })
}

func parked(d *appsv1.DaemonSet) bool { return workload.IsParked(&d.Spec.Template.Spec) }

// waitParked waits until DaemonSet name is parked (or running, !want), its
// other node requirements the user's.
func (s *story) waitParked(name string, want bool, what string) {
	s.t.Helper()
	s.eventually(storyTimeout, what, func() error {
		d := s.getDaemonSet(name)
		if parked(d) != want {
			return fmt.Errorf("%s parked: %v, nodeSelector %v", name, parked(d), d.Spec.Template.Spec.NodeSelector)
		}
		return s.keepsUserNodes(d)
	})
}

// keepsUserNodes checks that d requires the user's nodes, and only them but
// for the parking.
func (s *story) keepsUserNodes(d *appsv1.DaemonSet) error {
	got := maps.Clone(d.Spec.Template.Spec.NodeSelector)
	delete(got, workload.ParkedNodeLabel)
	if !maps.Equal(got, userNodes) {
		return fmt.Errorf("%s requires nodes %v, want the user's %v", d.Name, d.Spec.Template.Spec.NodeSelector, userNodes)
	}
	return nil
}

func TestABlueGreenReleaseOfADaemonSetPromotesThePrimaryAndParksTheTarget(t *testing.T) {
	s := newStory(t)
	s.daemonSet("podinfo", "podinfo:1.0")
	ro := s.initialized("podinfo", asDaemonSet(), iterations(1))

	primary := s.getDaemonSet("podinfo-primary")
	if !metav1.IsControlledBy(primary, ro) || parked(primary) {
		t.Errorf("primary owned by the Rollout: %v, parked: %v; want owned and running", metav1.IsControlledBy(primary, ro), parked(primary))
	}
	if err := s.keepsUserNodes(primary); err != nil {
		t.Error(err)
	}
	if got := primary.Spec.Selector.MatchLabels; !maps.Equal(got, primaryPods) {
		t.Errorf("primary selector = %v, want %v", got, primaryPods)
	}
	s.waitParked("podinfo", true, "the target parked once the primary serves")
	if err := s.apexSelects("podinfo", primaryPods); err != nil {
		t.Error(err)
	}

	s.setDaemonSetImage("podinfo", "podinfo:2.0")
	s.waitParked("podinfo", false, "the target unparked as the canary")
	ro = s.waitPhase("podinfo", sluicev1.PhaseSucceeded, storyTimeout)

	primary = s.getDaemonSet("podinfo-primary")
	if img := primary.Spec.Template.Spec.Containers[0].Image; img != "podinfo:2.0" || primary.Annotations[workload.RevisionAnnotation] != ro.Status.StableRevision {
		t.Errorf("primary runs %s at revision %s, want podinfo:2.0 at %s", img, primary.Annotations[workload.RevisionAnnotation], ro.Status.StableRevision)
	}
	if parked(primary) {
		t.Error("the primary was parked")
	}
	s.waitParked("podinfo", true, "the target parked again after the promotion")
	if err := s.apexSelects("podinfo", primaryPods); err != nil {
		t.Error(err)
	}
	// Parking is not a new revision: the release does not start again.
	time.Sleep(time.Second)
	if ro := s.getRollout("podinfo"); ro.Status.Phase != sluicev1.PhaseSucceeded {
		t.Errorf("phase %s after parking the target, want Succeeded (%s)", ro.Status.Phase, ro.Status.Message)
	}
	s.expectKStatus("podinfo", status.CurrentStatus)
}

func TestACanaryOfADaemonSetShiftsWeightStepByStep(t *testing.T) {
	s := newStory(t)
	s.daemonSet("podinfo", "podinfo:1.0")
	s.initialized("podinfo", asDaemonSet(), withRouter("gatewayAPI"), withCanaryWeights(20, 60))
	s.waitParked("podinfo", true, "the target parked")

	views := s.watchRoute("gatewayAPI", "podinfo", sluicev1.PhaseSucceeded, func() { s.setDaemonSetImage("podinfo", "podinfo:2.0") })
	if got := canaryWeights(views); !slices.Equal(got, []int32{0, 20, 60, 100, 0}) {
		t.Errorf("canary weights over the release = %v, want [0 20 60 100 0]", got)
	}
	if img := s.getDaemonSet("podinfo-primary").Spec.Template.Spec.Containers[0].Image; img != "podinfo:2.0" {
		t.Errorf("primary runs %s, want podinfo:2.0", img)
	}
	s.waitParked("podinfo", true, "the target parked after the promotion")
	s.expectKStatus("podinfo", status.CurrentStatus)
}

func TestAFailingCheckRollsADaemonSetBackAndThePrimaryKeepsServing(t *testing.T) {
	s := newStory(t)
	s.daemonSet("podinfo", "podinfo:1.0")
	s.initialized("podinfo", asDaemonSet(), iterations(5), webhook("smoke", sluicev1.HookRollout, s.failingHook()))

	s.setDaemonSetImage("podinfo", "podinfo:2.0")
	ro := s.waitPhase("podinfo", sluicev1.PhaseFailed, storyTimeout)

	primary := s.getDaemonSet("podinfo-primary")
	if img := primary.Spec.Template.Spec.Containers[0].Image; img != "podinfo:1.0" || parked(primary) {
		t.Errorf("primary runs %s, parked %v; want podinfo:1.0 still serving", img, parked(primary))
	}
	if primary.Status.NumberAvailable != testenv.FakeNodes {
		t.Errorf("primary available on %d nodes, want all %d", primary.Status.NumberAvailable, testenv.FakeNodes)
	}
	if err := s.apexSelects("podinfo", primaryPods); err != nil {
		t.Error(err)
	}
	s.waitParked("podinfo", true, "the failed canary parked")
	if ro.Status.FailedRevision == "" || ro.Status.FailedRevision == ro.Status.StableRevision {
		t.Errorf("failed revision %q, stable %q", ro.Status.FailedRevision, ro.Status.StableRevision)
	}
	s.expectKStatus("podinfo", status.FailedStatus)
}

func TestDeletingARolloutUnparksTheDaemonSetAndHandsTrafficBackOnceItIsReady(t *testing.T) {
	s := newStory(t)
	s.daemonSet("podinfo", "podinfo:1.0")
	s.initialized("podinfo", asDaemonSet(), iterations(1))
	s.waitParked("podinfo", true, "the target parked")
	// The target's pods, once unparked, take a while to be available.
	s.editDaemonSet("podinfo", func(d *appsv1.DaemonSet) {
		d.Annotations = map[string]string{testenv.AvailableAnnotation: "0"}
	})

	s.must(k8sClient.Delete(s.ctx, s.getRollout("podinfo")))

	s.waitParked("podinfo", false, "the target unparked")
	time.Sleep(time.Second)
	if err := s.apexSelects("podinfo", primaryPods); err != nil {
		t.Fatalf("traffic moved before the target was ready: %v", err)
	}
	if err := s.gone("podinfo"); err == nil {
		t.Fatalf("the Rollout (and with it the serving primary) went before the target was ready")
	}
	if ro := s.getRollout("podinfo"); ro.Status.Phase != sluicev1.PhaseTerminating {
		t.Errorf("phase = %s, want Terminating while the handover waits", ro.Status.Phase)
	}

	s.editDaemonSet("podinfo", func(d *appsv1.DaemonSet) { delete(d.Annotations, testenv.AvailableAnnotation) })
	s.eventually(storyTimeout, "the Rollout gone", func() error { return s.gone("podinfo") })
	if err := s.apexSelects("podinfo", targetPods); err != nil {
		t.Error(err)
	}
	target := s.getDaemonSet("podinfo")
	if !maps.Equal(target.Spec.Template.Spec.NodeSelector, userNodes) {
		t.Errorf("the target requires nodes %v after the Rollout, want exactly the user's %v", target.Spec.Template.Spec.NodeSelector, userNodes)
	}
}

// TestATargetUnparkedBehindSluicesBackIsParkedAgainWithoutARelease: a
// GitOps tool that owns the nodeSelector (Flux's server-side apply) removes
// the parking; the same revision is not a release, and the primary is left
// as it is.
func TestATargetUnparkedBehindSluicesBackIsParkedAgainWithoutARelease(t *testing.T) {
	s := newStory(t)
	s.daemonSet("podinfo", "podinfo:1.0")
	ro := s.initialized("podinfo", asDaemonSet())
	s.waitParked("podinfo", true, "the target parked")
	primaryGen := s.getDaemonSet("podinfo-primary").Generation

	s.editDaemonSet("podinfo", func(d *appsv1.DaemonSet) { d.Spec.Template.Spec.NodeSelector = maps.Clone(userNodes) })

	s.waitParked("podinfo", true, "the target parked again")
	after := s.getRollout("podinfo")
	if after.Status.Phase != sluicev1.PhaseInitialized || after.Status.StableRevision != ro.Status.StableRevision || after.Status.CanaryRevision != "" {
		t.Errorf("phase %s, stable %s (was %s), canary %q: unparking started a release", after.Status.Phase, after.Status.StableRevision, ro.Status.StableRevision, after.Status.CanaryRevision)
	}
	if gen := s.getDaemonSet("podinfo-primary").Generation; gen != primaryGen {
		t.Errorf("the primary was changed (generation %d -> %d)", primaryGen, gen)
	}
}

// TestADaemonSetOnTheHostNetworkIsRefusedWithoutMovingAnything: its primary
// and canary pods could not share a node.
func TestADaemonSetOnTheHostNetworkIsRefusedWithoutMovingAnything(t *testing.T) {
	s := newStory(t)
	s.daemonSet("agent", "agent:1.0")
	s.editDaemonSet("agent", func(d *appsv1.DaemonSet) { d.Spec.Template.Spec.HostNetwork = true })
	s.rollout("agent", asDaemonSet())

	ro := s.waitStalled("agent", "InvalidTarget")
	if c := ro.Status.Conditions; !slices.ContainsFunc(c, func(c metav1.Condition) bool {
		return c.Type == sluicev1.ConditionStalled && strings.Contains(c.Message, "hostNetwork: true")
	}) {
		t.Errorf("the Stalled condition does not say why: %+v", c)
	}
	err := k8sClient.Get(s.ctx, client.ObjectKey{Namespace: s.ns, Name: "agent-primary"}, &appsv1.DaemonSet{})
	if client.IgnoreNotFound(err) != nil || err == nil {
		t.Errorf("a primary was created for a DaemonSet Sluice refuses (%v)", err)
	}
	if parked(s.getDaemonSet("agent")) {
		t.Error("the refused DaemonSet was parked")
	}
}
