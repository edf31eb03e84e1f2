package rollout_test

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	sluicev1 "github.com/sluice-dev/sluice/api/v1alpha1"
	"github.com/sluice-dev/sluice/controllers/rollout"
	"github.com/sluice-dev/sluice/internal/testenv"
)

// Stories of issue 10: ordinary production situations in which Sluice must
// never be the cause of an outage.

func withReplicas(n int32) deployOpt {
	return func(d *appsv1.Deployment) { d.Spec.Replicas = &n }
}

// holdWhen keeps the Deployments for which f is true unavailable.
func (s *story) holdWhen(f func(d *appsv1.Deployment) bool) {
	s.limitWhen(func(d *appsv1.Deployment) (int32, bool) { return 0, f(d) })
}

// limitWhen caps the available replicas of the Deployments for which f
// returns true at the count it returns: a Deployment rolling out slowly.
func (s *story) limitWhen(f func(d *appsv1.Deployment) (int32, bool)) { s.limit.Store(&f) }

func image(d *appsv1.Deployment) string { return d.Spec.Template.Spec.Containers[0].Image }

func (s *story) scale(name string, n int32) {
	s.t.Helper()
	d := s.getDeployment(name)
	patch := client.MergeFrom(d.DeepCopy())
	d.Spec.Replicas = &n
	s.must(k8sClient.Patch(s.ctx, d, patch))
}

// waitReplicas waits until Deployment name asks for n replicas.
func (s *story) waitReplicas(name string, n int32, what string) {
	s.t.Helper()
	s.eventually(storyTimeout, what, func() error {
		if got := replicas(s.getDeployment(name)); got != n {
			return fmt.Errorf("%s replicas %d, want %d", name, got, n)
		}
		return nil
	})
}

func (s *story) waitStalled(name, reason string) *sluicev1.Rollout {
	s.t.Helper()
	var ro *sluicev1.Rollout
	s.eventually(storyTimeout, "Rollout "+name+" Stalled with "+reason, func() error {
		ro = s.getRollout(name)
		c := meta.FindStatusCondition(ro.Status.Conditions, sluicev1.ConditionStalled)
		if c == nil || c.Status != metav1.ConditionTrue || c.Reason != reason {
			return fmt.Errorf("phase %s, Stalled %+v (%s)", ro.Status.Phase, c, ro.Status.Message)
		}
		return nil
	})
	return ro
}

func (s *story) apexSelects(name string, want map[string]string) error {
	if sel := s.getService(name).Spec.Selector; !maps.Equal(sel, want) {
		return fmt.Errorf("apex Service %s selects %v, want %v", name, sel, want)
	}
	return nil
}

func (s *story) gone(name string) error {
	err := k8sClient.Get(s.ctx, client.ObjectKey{Namespace: s.ns, Name: name}, &sluicev1.Rollout{})
	if err == nil {
		return fmt.Errorf("Rollout %s still there", name)
	}
	return client.IgnoreNotFound(err)
}

// deleteRollout deletes the Rollout name and waits until it is gone: its
// finalizer has handed everything back.
func (s *story) deleteRollout(name string) {
	s.t.Helper()
	s.must(k8sClient.Delete(s.ctx, s.getRollout(name)))
	s.eventually(storyTimeout, "the Rollout gone", func() error { return s.gone(name) })
}

// deleteTarget deletes the Deployment name and waits until it is gone.
func (s *story) deleteTarget(name string) {
	s.t.Helper()
	s.must(k8sClient.Delete(s.ctx, s.getDeployment(name)))
	s.eventually(storyTimeout, "the target gone", func() error {
		err := k8sClient.Get(s.ctx, client.ObjectKey{Namespace: s.ns, Name: name}, &appsv1.Deployment{})
		if err == nil {
			return fmt.Errorf("Deployment %s still there", name)
		}
		return client.IgnoreNotFound(err)
	})
}

var (
	primaryPods = map[string]string{"app": "podinfo-primary"}
	targetPods  = map[string]string{"app": "podinfo"}
)

func TestAPromotionWhosePrimaryCannotRollOutStallsOnReadyPodsAndAbortRestoresTheStableVersion(t *testing.T) {
	s := newStory(t)
	s.deploy("podinfo", "podinfo:1.0")
	s.initialized("podinfo", iterations(1), progressDeadline(2))
	// Version 2 runs as a canary but never starts on the primary (a node
	// selector, a quota, a missing image pull secret: the primary's own).
	s.holdWhen(func(d *appsv1.Deployment) bool { return d.Name == "podinfo-primary" && image(d) == "podinfo:2.0" })

	s.setImage("podinfo", "podinfo:2.0")

	ro := s.waitStalled("podinfo", "PromotionStalled")
	if ro.Status.Phase != sluicev1.PhasePromoting {
		t.Errorf("phase = %s, want Promoting while stalled", ro.Status.Phase)
	}
	if err := s.apexSelects("podinfo", targetPods); err != nil {
		t.Errorf("while the primary cannot serve, traffic must stay on the canary's ready pods: %v", err)
	}
	if n := replicas(s.getDeployment("podinfo")); n != 2 {
		t.Errorf("canary replicas = %d while it holds all traffic, want 2", n)
	}
	s.waitEvent("podinfo", "PromotionStalled")

	s.ask("podinfo", sluicev1.ActionAbort, "sre")

	s.eventually(storyTimeout, "the stable version back on the primary and traffic on it", func() error {
		if img := image(s.getDeployment("podinfo-primary")); img != "podinfo:1.0" {
			return fmt.Errorf("primary runs %s", img)
		}
		if err := s.apexSelects("podinfo", primaryPods); err != nil {
			return err
		}
		if n := replicas(s.getDeployment("podinfo")); n != 0 {
			return fmt.Errorf("canary still at %d replicas", n)
		}
		return nil
	})
	s.waitEvent("podinfo", "PrimaryRestored")
	if ro := s.getRollout("podinfo"); ro.Status.Phase != sluicev1.PhaseFailed {
		t.Errorf("phase = %s, want Failed after the abort", ro.Status.Phase)
	}
}

func TestARunNeverShrinksThePrimaryAndTheCanaryTakesAllTrafficOnlyAtThePrimarysSize(t *testing.T) {
	s := newStory(t)
	s.deploy("podinfo", "podinfo:1.0", withReplicas(4))
	s.initialized("podinfo", iterations(100))

	s.setImage("podinfo", "podinfo:2.0")
	s.waitPhase("podinfo", sluicev1.PhaseProgressing, storyTimeout)
	s.waitReplicas("podinfo", 4, "the canary at the primary's size")
	// An autoscaler sizes the canary for its small share.
	s.scale("podinfo", 1)

	// Promotion first brings the canary back to the primary's size.
	s.ask("podinfo", sluicev1.ActionPromoteFull, "sre")
	s.waitPhase("podinfo", sluicev1.PhaseSucceeded, storyTimeout)
	if n := replicas(s.getDeployment("podinfo-primary")); n != 4 {
		t.Errorf("primary replicas after promotion = %d, want 4 (never fewer than served before)", n)
	}
	if s.eventNote("podinfo", "PrimaryUpdated", "") == "" {
		t.Errorf("no PrimaryUpdated event")
	}

	// A second run, rolled back while the canary is small.
	s.setImage("podinfo", "podinfo:3.0")
	s.waitPhase("podinfo", sluicev1.PhaseProgressing, storyTimeout)
	s.scale("podinfo", 1)
	s.ask("podinfo", sluicev1.ActionAbort, "sre")
	s.waitPhase("podinfo", sluicev1.PhaseFailed, storyTimeout)
	s.waitReplicas("podinfo", 0, "the canary scaled to zero")
	if n := replicas(s.getDeployment("podinfo-primary")); n != 4 {
		t.Errorf("primary replicas after rollback = %d, want 4: a rollback never lowers the primary", n)
	}

	// Its owner scaling the parked target is still passed on.
	s.scale("podinfo", 6)
	s.waitReplicas("podinfo-primary", 6, "the owner's count on the primary")
}

func TestDeletingASucceededRolloutHandsTrafficToTheTargetOnlyOnceItIsReady(t *testing.T) {
	s := newStory(t)
	s.deploy("podinfo", "podinfo:1.0", withReplicas(3))
	s.initialized("podinfo", iterations(1))
	s.setImage("podinfo", "podinfo:2.0")
	s.waitPhase("podinfo", sluicev1.PhaseSucceeded, storyTimeout)
	s.waitReplicas("podinfo", 0, "the target parked")
	// The target's new pods take a while to be ready.
	s.holdWhen(func(d *appsv1.Deployment) bool { return d.Name == "podinfo" })

	s.must(k8sClient.Delete(s.ctx, s.getRollout("podinfo")))

	s.waitReplicas("podinfo", 3, "the target scaled back up")
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

	s.holdWhen(func(*appsv1.Deployment) bool { return false })
	s.eventually(storyTimeout, "the Rollout gone", func() error { return s.gone("podinfo") })
	apex := s.getService("podinfo")
	if !maps.Equal(apex.Spec.Selector, targetPods) || metav1.GetControllerOf(apex) != nil {
		t.Errorf("apex Service selects %v (owner %v), want the target's pods and no owner", apex.Spec.Selector, metav1.GetControllerOf(apex))
	}
	if img := image(s.getDeployment("podinfo")); img != "podinfo:2.0" {
		t.Errorf("target runs %s, want the promoted podinfo:2.0", img)
	}
}

func TestDeletingARolloutMidRunKeepsThePrimaryServingUntilTheTargetIsReady(t *testing.T) {
	s := newStory(t)
	s.deploy("podinfo", "podinfo:1.0")
	s.initialized("podinfo", iterations(100), progressDeadline(1))
	// The target's new pods never get ready (held before the release, so
	// that no report of the fake kubelet can make them ready first).
	s.holdWhen(func(d *appsv1.Deployment) bool { return d.Name == "podinfo" })
	s.setImage("podinfo", "podinfo:2.0")
	s.waitPhase("podinfo", sluicev1.PhaseProgressing, storyTimeout)
	s.eventually(storyTimeout, "the target unavailable", func() error {
		if n := s.getDeployment("podinfo").Status.AvailableReplicas; n != 0 {
			return fmt.Errorf("%d available", n)
		}
		return nil
	})
	// And the manager has seen it (its cache may lag the API server under
	// load): it waits for the canary, or has rolled it back.
	s.eventually(storyTimeout, "the manager to see the target unavailable", func() error {
		ro := s.getRollout("podinfo")
		if ro.Status.WaitingSince == nil && ro.Status.Phase != sluicev1.PhaseFailed {
			return fmt.Errorf("phase %s: %s", ro.Status.Phase, ro.Status.Message)
		}
		return nil
	})

	s.must(k8sClient.Delete(s.ctx, s.getRollout("podinfo")))

	// Past the progress deadline the deletion waits, and says why.
	s.waitStalled("podinfo", "HandoverBlocked")
	s.waitEvent("podinfo", "HandoverBlocked")
	if err := s.apexSelects("podinfo", primaryPods); err != nil {
		t.Fatalf("traffic moved to a target that is not ready: %v", err)
	}
	s.getDeployment("podinfo-primary")

	s.holdWhen(func(*appsv1.Deployment) bool { return false })
	s.eventually(storyTimeout, "the Rollout gone", func() error { return s.gone("podinfo") })
	if err := s.apexSelects("podinfo", targetPods); err != nil {
		t.Error(err)
	}
}

func TestATargetRecreatedWithAnotherSelectorStallsWithoutMovingTraffic(t *testing.T) {
	s := newStory(t)
	s.deploy("podinfo", "podinfo:1.0")
	s.initialized("podinfo")
	s.deleteTarget("podinfo")
	s.deploy("podinfo", "podinfo:1.0", func(d *appsv1.Deployment) {
		d.Spec.Selector.MatchLabels = map[string]string{"app.kubernetes.io/name": "podinfo"}
		d.Spec.Template.Labels = map[string]string{"app.kubernetes.io/name": "podinfo"}
	})

	ro := s.waitStalled("podinfo", "SelectorChanged")
	if ro.Status.Message == "" {
		t.Errorf("no message says what is wrong")
	}
	if sel := s.getService("podinfo-primary").Spec.Selector; !maps.Equal(sel, primaryPods) {
		t.Errorf("primary Service re-pointed at %v, pods the primary does not run", sel)
	}
	if err := s.apexSelects("podinfo", primaryPods); err != nil {
		t.Error(err)
	}
	s.waitEvent("podinfo", "SelectorChanged")
}

func TestAConfigChangeMidRunRestartsTheCanaryPodsBeforeAnyCheckCounts(t *testing.T) {
	s := newStory(t)
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "podinfo-config", Namespace: s.ns}, Data: map[string]string{"color": "blue"}}
	s.must(k8sClient.Create(s.ctx, cm))
	s.deploy("podinfo", "podinfo:1.0", withConfigMapEnv("podinfo-config", "color"))
	s.initialized("podinfo", iterations(100))
	s.setImage("podinfo", "podinfo:2.0")
	s.waitPhase("podinfo", sluicev1.PhaseProgressing, storyTimeout)
	var stamp string
	s.eventually(storyTimeout, "the canary's pods stamped with their configuration", func() error {
		stamp = s.getDeployment("podinfo").Spec.Template.Annotations[rollout.ConfigStampAnnotation]
		if stamp == "" {
			return fmt.Errorf("no %s on the target's pod template", rollout.ConfigStampAnnotation)
		}
		return nil
	})
	// Two steps into the run, so that its start lies in an earlier second
	// than the change (the status records times to the second).
	s.eventually(storyTimeout, "the run two steps in", func() error {
		if i := s.getRollout("podinfo").Status.CurrentStepIndex; i < 2 {
			return fmt.Errorf("at step %d", i)
		}
		return nil
	})
	before := s.getRollout("podinfo").Status.CanaryRevision
	changed := time.Now().Truncate(time.Second)

	s.must(k8sClient.Get(s.ctx, client.ObjectKeyFromObject(cm), cm))
	cm.Data["color"] = "green"
	s.must(k8sClient.Update(s.ctx, cm))

	s.eventually(storyTimeout, "the canary's pods restarted with the new configuration", func() error {
		if now := s.getDeployment("podinfo").Spec.Template.Annotations[rollout.ConfigStampAnnotation]; now == stamp {
			return fmt.Errorf("the canary's pod template still has stamp %s", now)
		}
		return nil
	})
	s.waitEvent("podinfo", "RevisionChanged")
	// The event is told apart from the status that records it. The run's
	// start, not its step, shows the restart: the new run's first step
	// lasts an interval, a second here, which a story on a loaded machine
	// can miss.
	var ro *sluicev1.Rollout
	s.eventually(storyTimeout, "the run restarted", func() error {
		ro = s.getRollout("podinfo")
		if ro.Status.CanaryRevision == before || ro.Status.RunStartedAt == nil || ro.Status.RunStartedAt.Before(&metav1.Time{Time: changed}) {
			return fmt.Errorf("revision %s (was %s), run started at %v, step %d", ro.Status.CanaryRevision, before, ro.Status.RunStartedAt, ro.Status.CurrentStepIndex)
		}
		return nil
	})
	// The stamp is Sluice's, not the user's: it starts no release of its own.
	time.Sleep(500 * time.Millisecond)
	if again := s.getRollout("podinfo").Status.CanaryRevision; again != ro.Status.CanaryRevision {
		t.Errorf("the stamp changed the revision again: %s -> %s", ro.Status.CanaryRevision, again)
	}
}

// TestAnAbortedConfigChangeGivesThePrimaryItsStableConfigurationBack: a
// configuration-only release whose primary cannot roll out is aborted. The
// primary gets back its stable template, which reads the copy the stable
// pods read all along, with its stable content: a stable pod that restarts
// reads the stable configuration, not the one that was aborted. (Before,
// the promotion overwrote that copy, and the abort wrote it back.)
func TestAnAbortedConfigChangeGivesThePrimaryItsStableConfigurationBack(t *testing.T) {
	s := newStory(t)
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "podinfo-config", Namespace: s.ns}, Data: map[string]string{"color": "blue"}}
	s.must(k8sClient.Create(s.ctx, cm))
	s.deploy("podinfo", "podinfo:1.0", withConfigMapEnv("podinfo-config", "color"))
	s.initialized("podinfo", iterations(1), progressDeadline(2))
	stableRev := s.getRollout("podinfo").Status.StableRevision
	stableTemplate := s.getDeployment("podinfo-primary").Spec.Template.Annotations[rollout.RevisionAnnotation]
	// The new configuration never starts on the primary.
	s.holdWhen(func(d *appsv1.Deployment) bool {
		return d.Name == "podinfo-primary" && d.Spec.Template.Annotations[rollout.RevisionAnnotation] != stableTemplate
	})

	stableCopy := s.primaryConfigRef("podinfo")
	cm.Data["color"] = "green"
	s.must(k8sClient.Update(s.ctx, cm))
	s.waitStalled("podinfo", "PromotionStalled")
	if got, _ := s.configData(false, s.primaryConfigRef("podinfo")); got["color"] != "green" {
		t.Fatalf("while promoting, the primary's template reads %v, want the new green", got)
	}
	if got, _ := s.configData(false, stableCopy); got["color"] != "blue" {
		t.Errorf("while promoting, the copy %s the stable pods read holds %v, want the stable blue", stableCopy, got)
	}

	s.ask("podinfo", sluicev1.ActionAbort, "sre")

	s.waitEvent("podinfo", "PrimaryRestored")
	if got := s.primaryConfigRef("podinfo"); got != stableCopy {
		t.Errorf("after the abort the primary reads %s, want the stable pods' copy %s", got, stableCopy)
	}
	if got, _ := s.configData(false, stableCopy); got["color"] != "blue" {
		t.Errorf("after the abort the primary's copy has color=%v, want the stable blue: a restarted stable pod would read the aborted configuration", got)
	}
	if got := s.getDeployment("podinfo-primary").Spec.Template.Annotations[rollout.RevisionAnnotation]; got != stableTemplate {
		t.Errorf("the primary's template is at %q, want the stable %q", got, stableTemplate)
	}
	if ro := s.getRollout("podinfo"); ro.Status.Phase != sluicev1.PhaseFailed || ro.Status.StableRevision != stableRev {
		t.Errorf("phase %s, stable %s; want Failed at the stable %s", ro.Status.Phase, ro.Status.StableRevision, stableRev)
	}
}

// TestACanarySizedByItsWeightGrowsBeforeEachStep: with scaleWithWeight the
// canary of a primary of 10 replicas takes 10 % on 2 replicas (never one
// alone) and 50 % on 5, and grows to 10 before it takes all traffic at
// promotion. The weight moves only once the replicas for it are ready:
// while 3 of the 5 are not, the route stays at 10 %. Throughout, no route gives the canary more than its
// available replicas carry at a primary pod's load.
func TestACanarySizedByItsWeightGrowsBeforeEachStep(t *testing.T) {
	for _, kind := range routerKinds {
		t.Run(kind, func(t *testing.T) {
			s := newStory(t)
			s.deploy("podinfo", "podinfo:1.0", withReplicas(10))
			s.initialized("podinfo", withRouter(kind), withCanaryWeights(10, 50), func(ro *sluicev1.Rollout) {
				ro.Spec.Strategy.Canary.ScaleWithWeight = true
			})
			// Only two of the canary's replicas become available until let
			// go: the 3 more asked for 50 % start but are not ready.
			s.capAvailable("podinfo", "2")

			// Every write to the route and to the canary is followed, so
			// that even a short-lived state (the promotion's 100 %) is seen.
			follow := s.followRouteAndCanary(kind, "podinfo")
			s.setImage("podinfo", "podinfo:2.0")
			s.eventually(storyTimeout, "the canary scaled to 5 for 50 % and waiting for them", func() error {
				ro := s.getRollout("podinfo")
				if replicas(s.getDeployment("podinfo")) != 5 || !strings.Contains(ro.Status.Message, "waiting for the canary to be ready") {
					return fmt.Errorf("canary replicas %d, phase %s: %s", replicas(s.getDeployment("podinfo")), ro.Status.Phase, ro.Status.Message)
				}
				return nil
			})
			if v := s.route(kind, "podinfo"); v.canary != 10 {
				t.Errorf("while the canary's 5 replicas are not ready the route gives it %d%%, want 10%%", v.canary)
			}
			s.capAvailable("podinfo", "")
			s.waitPhase("podinfo", sluicev1.PhaseSucceeded, storyTimeout)

			var overloaded []string
			seen := map[int32]int32{} // canary weight -> fewest canary replicas asked for at it
			for _, st := range follow() {
				if st.weight == 0 {
					continue
				}
				if n, ok := seen[st.weight]; !ok || st.replicas < n {
					seen[st.weight] = st.replicas
				}
				if need := (10*st.weight + 99) / 100; st.available < need {
					overloaded = append(overloaded, fmt.Sprintf("%d%% on %d available replicas (%d needed)", st.weight, st.available, need))
				}
			}
			if len(overloaded) > 0 {
				t.Errorf("the route gave the canary more than its ready replicas carry: %v", overloaded)
			}
			for w, want := range map[int32]int32{10: 2, 50: 5, 100: 10} {
				if seen[w] != want {
					t.Errorf("at %d%% the canary ran %d replicas, want %d (seen: %v)", w, seen[w], want, seen)
				}
			}
			if n := replicas(s.getDeployment("podinfo-primary")); n != 10 {
				t.Errorf("primary replicas after promotion = %d, want 10", n)
			}
		})
	}
}

// TestACanarysFloorIsTheSpecsMinReplicas: strategy.canary.minReplicas
// moves the floor of a canary sized by its weight, down to save a pod or up
// to spread a small canary, and the weight's own need still wins above it:
// a primary of 10 at 10 % runs a canary of 1 or 3, and both run 5 at 50 %
// and 10 before promotion.
func TestACanarysFloorIsTheSpecsMinReplicas(t *testing.T) {
	for _, floor := range []int32{1, 3} {
		t.Run(fmt.Sprintf("minReplicas=%d", floor), func(t *testing.T) {
			s := newStory(t)
			s.deploy("podinfo", "podinfo:1.0", withReplicas(10))
			s.initialized("podinfo", withRouter("gatewayAPI"), withCanaryWeights(10, 50), func(ro *sluicev1.Rollout) {
				ro.Spec.Strategy.Canary.ScaleWithWeight = true
				ro.Spec.Strategy.Canary.MinReplicas = ptr.To(floor)
			})
			follow := s.followRouteAndCanary("gatewayAPI", "podinfo")
			s.setImage("podinfo", "podinfo:2.0")
			s.waitPhase("podinfo", sluicev1.PhaseSucceeded, storyTimeout)

			seen := map[int32]int32{} // canary weight -> fewest canary replicas asked for at it
			for _, st := range follow() {
				if n, ok := seen[st.weight]; st.weight > 0 && (!ok || st.replicas < n) {
					seen[st.weight] = st.replicas
				}
			}
			for w, want := range map[int32]int32{10: floor, 50: 5, 100: 10} {
				if seen[w] != want {
					t.Errorf("at %d%% the canary ran %d replicas, want %d (seen: %v)", w, seen[w], want, seen)
				}
			}
			// The scale for 50 % is told once, as an event an SRE reads.
			want := fmt.Sprintf("step 2/2: scaling the canary from %d to 5 replicas before it takes 50%% of the traffic", floor)
			s.eventually(storyTimeout, "the scale for 50 % told once", func() error {
				if got := s.eventNotes("podinfo", "CanaryScaled"); len(got) != 1 || got[0] != want {
					return fmt.Errorf("CanaryScaled events %q, want one: %q", got, want)
				}
				return nil
			})
		})
	}
}

// routeAndCanary is the state of a story's route and canary Deployment
// after one write to either.
type routeAndCanary struct {
	weight            int32 // the route's share to the canary
	replicas          int32 // the canary's spec.replicas
	available         int32 // the canary's status.availableReplicas
	resourceVersion   uint64
	isRoute, isCanary bool
}

// followRouteAndCanary watches the route and the canary Deployment name from
// now on (a watch sees every write, however short-lived, where sampling can
// miss one) and returns a func that, once both watches have caught up with
// the objects' current versions, stops them and gives the states the two
// went through, in the order they were written. Ordering the writes of two
// objects by resourceVersion is sound here only because envtest runs one
// etcd, whose revision is every object's resourceVersion.
func (s *story) followRouteAndCanary(kind, name string) func() []routeAndCanary {
	s.t.Helper()
	wc, err := watchClient()
	s.must(err)
	ctx, cancel := context.WithTimeout(s.ctx, storyTimeout)
	var mu sync.Mutex
	var writes []routeAndCanary
	var lastRoute, lastCanary uint64
	follow := func(list client.ObjectList) *sync.WaitGroup {
		w, err := wc.Watch(ctx, list, client.InNamespace(s.ns))
		s.must(err)
		var wg sync.WaitGroup
		wg.Go(func() {
			defer w.Stop()
			for ev := range w.ResultChan() {
				obj, ok := ev.Object.(client.Object)
				if !ok || obj.GetName() != name {
					continue
				}
				rv, _ := strconv.ParseUint(obj.GetResourceVersion(), 10, 64)
				wr := routeAndCanary{resourceVersion: rv}
				if d, isDeployment := obj.(*appsv1.Deployment); isDeployment {
					wr.isCanary, wr.replicas, wr.available = true, replicas(d), d.Status.AvailableReplicas
				} else {
					wr.isRoute, wr.weight = true, viewOf(kind, name, obj).canary
				}
				mu.Lock()
				writes = append(writes, wr)
				if wr.isCanary {
					lastCanary = max(lastCanary, rv)
				} else {
					lastRoute = max(lastRoute, rv)
				}
				mu.Unlock()
			}
		})
		return &wg
	}
	routes, canaries := follow(routeList(kind)), follow(&appsv1.DeploymentList{})
	return func() []routeAndCanary {
		s.t.Helper()
		route, canary := routeObject(kind), &appsv1.Deployment{}
		s.must(k8sClient.Get(s.ctx, client.ObjectKey{Namespace: s.ns, Name: name}, route))
		s.must(k8sClient.Get(s.ctx, client.ObjectKey{Namespace: s.ns, Name: name}, canary))
		wantRoute, _ := strconv.ParseUint(route.GetResourceVersion(), 10, 64)
		wantCanary, _ := strconv.ParseUint(canary.GetResourceVersion(), 10, 64)
		s.eventually(storyTimeout, "the watches caught up", func() error {
			mu.Lock()
			defer mu.Unlock()
			if lastRoute < wantRoute || lastCanary < wantCanary {
				return fmt.Errorf("route at %d of %d, canary at %d of %d", lastRoute, wantRoute, lastCanary, wantCanary)
			}
			return nil
		})
		cancel()
		routes.Wait()
		canaries.Wait()
		slices.SortFunc(writes, func(a, b routeAndCanary) int { return cmp.Compare(a.resourceVersion, b.resourceVersion) })
		var out []routeAndCanary
		var cur routeAndCanary
		for _, wr := range writes {
			if wr.isRoute {
				cur.weight = wr.weight
			} else {
				cur.replicas, cur.available = wr.replicas, wr.available
			}
			cur.resourceVersion = wr.resourceVersion
			out = append(out, cur)
		}
		return out
	}
}

// capAvailable caps the replicas of Deployment name that the fake kubelet
// reports available at v ("" lifts the cap): the others run, not ready.
func (s *story) capAvailable(name, v string) {
	s.t.Helper()
	d := s.getDeployment(name)
	patch := client.MergeFrom(d.DeepCopy())
	if v == "" {
		delete(d.Annotations, testenv.AvailableAnnotation)
	} else {
		metav1.SetMetaDataAnnotation(&d.ObjectMeta, testenv.AvailableAnnotation, v)
	}
	s.must(k8sClient.Patch(s.ctx, d, patch))
}

// TestACanaryWithNoAvailablePodHasItsShareHeldOnThePrimary: a canary that
// took its share and then has no available pod left (a version that
// crashes once ready, its pods evicted or lost with their node) would send
// that share to no endpoint until the progress deadline. Its share moves
// to the primary at once, with a CanaryUnavailable event and a failed
// check, its step and recorded weight kept; it comes back only once the
// canary is ready again (not with its first pod), and the release then goes
// on to promotion.
func TestACanaryWithNoAvailablePodHasItsShareHeldOnThePrimary(t *testing.T) {
	for _, kind := range routerKinds {
		t.Run(kind, func(t *testing.T) {
			s := newStory(t)
			s.canaryAt20WithNoAvailablePod(kind)
			s.expectEvents("podinfo", "CanaryUnavailable", 1)

			// One pod of three back is not the canary ready: the share
			// stays on the primary.
			s.capAvailable("podinfo", "1")
			s.eventually(storyTimeout, "the canary's first pod seen", func() error {
				if ro := s.getRollout("podinfo"); !strings.Contains(ro.Status.Message, "1 available") {
					return fmt.Errorf("phase %s: %s", ro.Status.Phase, ro.Status.Message)
				}
				return nil
			})
			if v := s.route(kind, "podinfo"); v.canary != 0 {
				t.Errorf("with 1 of the canary's 3 pods available the route gives it %d%%, want 0", v.canary)
			}

			s.capAvailable("podinfo", "")
			s.canaryShareBack(kind)
			s.eventually(storyTimeout, "status.canaryShareHeld false with the share back", func() error {
				if ro := s.getRollout("podinfo"); ro.Status.CanaryShareHeld {
					return fmt.Errorf("still held: %s", ro.Status.Message)
				}
				return nil
			})
			s.waitPhase("podinfo", sluicev1.PhaseSucceeded, storyTimeout)
			s.expectEvents("podinfo", "CanaryUnavailable", 1)
		})
	}
}

// TestACanaryThatKeepsLosingItsPodsIsRolledBackAtTheThreshold: each move
// of the canary's share to the primary is a failed check, so a version
// that fails each time it has been ready a while is rolled back at the
// threshold (2 here) rather than taking its share back and losing it
// again until someone notices; the route ends with all traffic on the
// primary.
func TestACanaryThatKeepsLosingItsPodsIsRolledBackAtTheThreshold(t *testing.T) {
	for _, kind := range routerKinds {
		t.Run(kind, func(t *testing.T) {
			s := newStory(t)
			s.canaryAt20WithNoAvailablePod(kind)
			s.capAvailable("podinfo", "")
			s.canaryShareBack(kind)
			s.capAvailable("podinfo", "0")
			s.waitPhase("podinfo", sluicev1.PhaseFailed, storyTimeout)
			ro := s.getRollout("podinfo")
			if ro.Status.FailedChecks != 2 || !strings.Contains(ro.Status.Message, "2 failed checks") {
				t.Errorf("failed with %d failed checks: %s; want the threshold of 2 reached by the canary's losses", ro.Status.FailedChecks, ro.Status.Message)
			}
			// Waited for: the rollback is recorded before the route
			// moves (recordFirst), so the phase may show first.
			s.eventually(storyTimeout, "all traffic on the primary after the rollback", func() error {
				if v := s.route(kind, "podinfo"); v.canary != 0 || v.primary != 100 {
					return fmt.Errorf("the route gives %d/%d", v.primary, v.canary)
				}
				return nil
			})
			s.expectEvents("podinfo", "CanaryUnavailable", 2)
			s.expectEvents("podinfo", "ThresholdReached", 1)
		})
	}
}

// TestAShareHeldOnThePrimaryGoesBackThroughTheConfirmTrafficIncreaseGate:
// a canary that lost every pod has its share held on the primary; when it
// is ready again, giving the share back raises its traffic from none to
// its weight, so a team that gates each rise (confirm-traffic-increase)
// gates this one too: the share stays on the primary, with the gate named
// in the Rollout's condition, until the gate opens. The team had opened it
// for the first step and closed it since.
func TestAShareHeldOnThePrimaryGoesBackThroughTheConfirmTrafficIncreaseGate(t *testing.T) {
	kind := routerKinds[0]
	s := newStory(t)
	lt := s.startLoadtester()
	s.deploy("podinfo", "podinfo:1.0", withReplicas(3))
	s.initialized("podinfo", withRouter(kind), withCanaryWeights(20, 50), func(ro *sluicev1.Rollout) {
		ro.Spec.Analysis.Interval = &metav1.Duration{Duration: 3 * time.Second}
	}, webhook("approval", sluicev1.HookConfirmTrafficIncrease, lt.url("/gate/check")))
	s.setImage("podinfo", "podinfo:2.0")
	s.waitGateClosed("podinfo", sluicev1.HookConfirmTrafficIncrease)
	lt.post("/gate/open", "podinfo")
	s.canaryShareBack(kind)
	lt.post("/gate/close", "podinfo")

	s.capAvailable("podinfo", "0")
	s.eventually(storyTimeout, "the canary's share held on the primary", func() error {
		if v, ro := s.route(kind, "podinfo"), s.getRollout("podinfo"); v.canary != 0 || !ro.Status.CanaryShareHeld {
			return fmt.Errorf("route canary %d%%, held %v: %s", v.canary, ro.Status.CanaryShareHeld, ro.Status.Message)
		}
		return nil
	})

	// Ready again: the share waits for the gate, never goes back first.
	s.capAvailable("podinfo", "")
	s.eventually(storyTimeout, "the return held at the closed gate", func() error {
		v, ro := s.route(kind, "podinfo"), s.getRollout("podinfo")
		if v.canary != 0 {
			t.Fatalf("the share went back to the canary (%d%%) with the confirm-traffic-increase gate closed: %s", v.canary, ro.Status.Message)
		}
		if err := gateClosed(ro, sluicev1.HookConfirmTrafficIncrease); err != nil {
			return err
		}
		if !ro.Status.CanaryShareHeld || ro.Status.CanaryWeight != 20 {
			return fmt.Errorf("held %v at weight %d, want the 20%% held", ro.Status.CanaryShareHeld, ro.Status.CanaryWeight)
		}
		return nil
	})

	lt.post("/gate/open", "podinfo")
	s.canaryShareBack(kind)
	s.waitEvent("podinfo", "GateOpened")
	s.waitPhase("podinfo", sluicev1.PhaseSucceeded, storyTimeout)
}

// TestACanaryLeftWithNoPodWhileThePrimaryRollsOutHasTheTrafficMovedToThePrimary:
// at promotion the canary (or blue/green's green) takes all traffic while
// the primary rolls out its revision (slowly here: one of its two pods
// available). When the canary then loses every pod (a drain, a lost node),
// all traffic goes to the primary's one available pod rather than to no
// endpoint, comes back to the canary once it is ready again, and the
// promotion ends as usual.
func TestACanaryLeftWithNoPodWhileThePrimaryRollsOutHasTheTrafficMovedToThePrimary(t *testing.T) {
	for _, kind := range append([]string{"blueGreen"}, routerKinds...) {
		t.Run(kind, func(t *testing.T) {
			s := newStory(t)
			s.deploy("podinfo", "podinfo:1.0", withReplicas(2))
			opt := iterations(1)
			if kind != "blueGreen" {
				opt = func(ro *sluicev1.Rollout) { withRouter(kind)(ro); withCanaryWeights(20)(ro) }
			}
			s.initialized("podinfo", opt)
			// The canary's share: the route's weight, or whom blue/green's
			// apex Service selects.
			canaryShare := func() (canary int32) {
				if kind == "blueGreen" {
					if s.apexSelects("podinfo", targetPods) == nil {
						return 100
					}
					return 0
				}
				return s.route(kind, "podinfo").canary
			}
			s.limitWhen(func(d *appsv1.Deployment) (int32, bool) {
				return 1, d.Name == "podinfo-primary" && image(d) == "podinfo:2.0"
			})
			s.setImage("podinfo", "podinfo:2.0")
			s.eventually(storyTimeout, "all traffic on the canary while the primary rolls out", func() error {
				w, ro := canaryShare(), s.getRollout("podinfo")
				if w != 100 || ro.Status.Phase != sluicev1.PhasePromoting || !strings.Contains(ro.Status.Message, "waiting for the primary to roll out") {
					return fmt.Errorf("canary %d%%, phase %s: %s", w, ro.Status.Phase, ro.Status.Message)
				}
				return nil
			})

			s.capAvailable("podinfo", "0")
			s.eventually(storyTimeout, "all traffic on the primary's available pod", func() error {
				w, ro := canaryShare(), s.getRollout("podinfo")
				if w != 0 || ro.Status.Phase != sluicev1.PhasePromoting || !ro.Status.CanaryShareHeld ||
					!strings.Contains(ro.Status.Message, "its 100% of the traffic is on the primary's 1 available pods") {
					return fmt.Errorf("canary %d%%, phase %s, held %t: %s", w, ro.Status.Phase, ro.Status.CanaryShareHeld, ro.Status.Message)
				}
				return nil
			})
			s.waitEvent("podinfo", "CanaryUnavailable")
			if d := s.getDeployment("podinfo-primary"); image(d) != "podinfo:2.0" {
				t.Errorf("the primary runs %s while the traffic is on it, want its rollout of podinfo:2.0 to go on", image(d))
			}

			s.capAvailable("podinfo", "")
			s.eventually(storyTimeout, "all traffic back on the ready canary", func() error {
				if w, ro := canaryShare(), s.getRollout("podinfo"); w != 100 || ro.Status.CanaryShareHeld {
					return fmt.Errorf("canary %d%%, held %t: %s", w, ro.Status.CanaryShareHeld, ro.Status.Message)
				}
				return nil
			})
			s.limitWhen(func(*appsv1.Deployment) (int32, bool) { return 0, false })
			s.waitPhase("podinfo", sluicev1.PhaseSucceeded, storyTimeout)
			if w := canaryShare(); w != 0 {
				t.Errorf("after the promotion the canary has %d%% of the traffic, want none", w)
			}
			s.expectEvents("podinfo", "CanaryUnavailable", 1)
		})
	}
}

// canaryAt20WithNoAvailablePod releases podinfo (3 replicas) to a canary at
// 20 % of steps 20, 50 (3s each), then takes all of the canary's available
// pods away and waits until its share is held on the primary: weight and
// step kept in the status, one failed check.
func (s *story) canaryAt20WithNoAvailablePod(kind string) {
	s.t.Helper()
	s.canaryAt20(kind)
	s.capAvailable("podinfo", "0")
	s.eventually(storyTimeout, "the canary's share on the primary", func() error {
		v, ro := s.route(kind, "podinfo"), s.getRollout("podinfo")
		if v.canary != 0 || ro.Status.Phase != sluicev1.PhaseProgressing || !strings.Contains(ro.Status.Message, "its 20% of the traffic is on the primary") {
			return fmt.Errorf("route canary %d%%, phase %s: %s", v.canary, ro.Status.Phase, ro.Status.Message)
		}
		if !ro.Status.CanaryShareHeld {
			return fmt.Errorf("route canary 0%%, status.canaryShareHeld not yet true: %s", ro.Status.Message)
		}
		if ro.Status.CanaryWeight != 20 || ro.Status.CurrentStepIndex != 0 || ro.Status.FailedChecks < 1 {
			s.t.Errorf("sheltered: status weight %d at step %d with %d failed checks, want 20 at step 0 kept and a failed check",
				ro.Status.CanaryWeight, ro.Status.CurrentStepIndex, ro.Status.FailedChecks)
		}
		return nil
	})
}

// TestANewRevisionMidRunKeepsTheCanarysShareWhileThePrimaryHasNoPod: a
// new revision mid-run starts the run again at weight 0, which moves the
// canary's share back to the primary. With every primary pod gone (evicted,
// lost with a node, crash-looping) that share would reach no endpoint while
// the canary's pods still answer it. The route stays until the primary has
// an available pod, told once in an event and in the status; then the new
// run goes on to promotion.
func TestANewRevisionMidRunKeepsTheCanarysShareWhileThePrimaryHasNoPod(t *testing.T) {
	for _, kind := range routerKinds {
		t.Run(kind, func(t *testing.T) {
			s := newStory(t)
			s.canaryAt20(kind)
			// The primary loses every pod; the canary keeps two of three,
			// so the next revision's canary is not ready at once either.
			s.capAvailable("podinfo-primary", "0")
			s.capAvailable("podinfo", "2")
			// Seen by the manager before the new template: one watch
			// stream delivers both Deployments' writes, in order.
			s.eventually(storyTimeout, "the primary with no available pod", func() error {
				if d := s.getDeployment("podinfo-primary"); d.Status.AvailableReplicas != 0 {
					return fmt.Errorf("%d available", d.Status.AvailableReplicas)
				}
				return nil
			})
			s.setImage("podinfo", "podinfo:3.0")
			s.eventually(storyTimeout, "the share kept on the canary", func() error {
				ro := s.getRollout("podinfo")
				if !strings.Contains(ro.Status.Message, "the primary has no available pod: ") || ro.Status.CanaryRevision == "" {
					return fmt.Errorf("phase %s: %s", ro.Status.Phase, ro.Status.Message)
				}
				return nil
			})
			if v := s.route(kind, "podinfo"); v.canary < 20 {
				t.Errorf("with no primary pod available the route gives the canary %d%%, want its 20%% or more kept", v.canary)
			}
			s.expectEvents("podinfo", "PrimaryUnavailable", 1)

			s.capAvailable("podinfo-primary", "")
			s.eventually(storyTimeout, "the new run's weight routed once the primary has pods", func() error {
				if v := s.route(kind, "podinfo"); v.canary != 0 {
					return fmt.Errorf("route canary %d%%", v.canary)
				}
				return nil
			})
			s.capAvailable("podinfo", "")
			s.waitPhase("podinfo", sluicev1.PhaseSucceeded, storyTimeout)
			if img := s.getDeployment("podinfo-primary").Spec.Template.Spec.Containers[0].Image; img != "podinfo:3.0" {
				t.Errorf("primary runs %s, want podinfo:3.0", img)
			}
			s.expectEvents("podinfo", "PrimaryUnavailable", 1)
		})
	}
}

// canaryAt20 releases podinfo (3 replicas) with steps 20, 50 (3s each)
// and waits until the route gives the canary its 20 %.
func (s *story) canaryAt20(kind string) {
	s.t.Helper()
	s.deploy("podinfo", "podinfo:1.0", withReplicas(3))
	s.initialized("podinfo", withRouter(kind), withCanaryWeights(20, 50), func(ro *sluicev1.Rollout) {
		ro.Spec.Analysis.Interval = &metav1.Duration{Duration: 3 * time.Second}
	})
	s.setImage("podinfo", "podinfo:2.0")
	s.canaryShareBack(kind)
}

// canaryShareBack waits until the route gives the canary 20 % or more.
func (s *story) canaryShareBack(kind string) {
	s.t.Helper()
	s.eventually(storyTimeout, "the canary at 20 %", func() error {
		if v := s.route(kind, "podinfo"); v.canary < 20 {
			return fmt.Errorf("route canary %d%%", v.canary)
		}
		return nil
	})
}

// TestACanaryReadyThresholdLetsAPartlyAvailableCanaryTakeItsSteps: with
// canaryReadyThreshold 50, a canary whose replicas all run the new version
// but only half are available takes traffic; without it, it would wait for
// all. It still takes all traffic at promotion only with as many available
// replicas as the primary serves with.
func TestACanaryReadyThresholdLetsAPartlyAvailableCanaryTakeItsSteps(t *testing.T) {
	s := newStory(t)
	s.deploy("podinfo", "podinfo:1.0", withReplicas(4))
	s.initialized("podinfo", iterations(2), progressDeadline(3), func(ro *sluicev1.Rollout) { ro.Spec.CanaryReadyThreshold = ptr.To[int32](50) })
	d := s.getDeployment("podinfo")
	patch := client.MergeFrom(d.DeepCopy())
	metav1.SetMetaDataAnnotation(&d.ObjectMeta, testenv.AvailableAnnotation, "2")
	s.must(k8sClient.Patch(s.ctx, d, patch))

	s.setImage("podinfo", "podinfo:2.0")
	s.waitStalled("podinfo", "PromotionStalled")
	ro := s.getRollout("podinfo")
	if ro.Status.Phase != sluicev1.PhasePromoting || !strings.Contains(ro.Status.Message, "2 available") {
		t.Errorf("phase %s (%s): want the steps done and the promotion waiting for the canary's 4 replicas", ro.Status.Phase, ro.Status.Message)
	}
	if err := s.apexSelects("podinfo", primaryPods); err != nil {
		t.Errorf("a half-available canary must not take all traffic: %v", err)
	}

	d = s.getDeployment("podinfo")
	patch = client.MergeFrom(d.DeepCopy())
	delete(d.Annotations, testenv.AvailableAnnotation)
	s.must(k8sClient.Patch(s.ctx, d, patch))
	s.waitPhase("podinfo", sluicev1.PhaseSucceeded, storyTimeout)
}

// TestAPrimaryReadyThresholdInitializesWithAPartlyAvailablePrimary: with
// primaryReadyThreshold 50, a primary with 2 of its 4 replicas available
// counts as ready, and the Rollout is initialized without waiting for the
// other two (without it, it would wait for all 4).
func TestAPrimaryReadyThresholdInitializesWithAPartlyAvailablePrimary(t *testing.T) {
	s := newStory(t)
	s.holdWhen(func(d *appsv1.Deployment) bool { return d.Name == "podinfo-primary" })
	s.deploy("podinfo", "podinfo:1.0", withReplicas(4))
	s.rollout("podinfo", func(ro *sluicev1.Rollout) { ro.Spec.PrimaryReadyThreshold = ptr.To[int32](50) })
	s.eventually(storyTimeout, "the primary created", func() error {
		return k8sClient.Get(s.ctx, client.ObjectKey{Namespace: s.ns, Name: "podinfo-primary"}, &appsv1.Deployment{})
	})
	d := s.getDeployment("podinfo-primary")
	patch := client.MergeFrom(d.DeepCopy())
	metav1.SetMetaDataAnnotation(&d.ObjectMeta, testenv.AvailableAnnotation, "2")
	s.must(k8sClient.Patch(s.ctx, d, patch))
	s.holdWhen(func(*appsv1.Deployment) bool { return false })

	s.waitPhase("podinfo", sluicev1.PhaseInitialized, storyTimeout)
	if d := s.getDeployment("podinfo-primary"); d.Status.AvailableReplicas != 2 || ptr.Deref(d.Spec.Replicas, 0) != 4 {
		t.Errorf("primary %d of %d available when initialized, want 2 of 4 (the threshold's half)", d.Status.AvailableReplicas, ptr.Deref(d.Spec.Replicas, 0))
	}
}

// waitGateClosed waits until the Rollout is held at a closed gate of type t.
func (s *story) waitGateClosed(name string, t sluicev1.HookType) {
	s.t.Helper()
	s.eventually(storyTimeout, string(t)+" gate closed", func() error { return gateClosed(s.getRollout(name), t) })
}

// gateClosed says why ro is not held at a closed gate of type t, if it is not.
func gateClosed(ro *sluicev1.Rollout, t sluicev1.HookType) error {
	c := meta.FindStatusCondition(ro.Status.Conditions, sluicev1.ConditionGate)
	if c == nil || c.Status != metav1.ConditionTrue || !strings.Contains(c.Message, string(t)) {
		return fmt.Errorf("gate condition %+v: %s", c, ro.Status.Message)
	}
	return nil
}
