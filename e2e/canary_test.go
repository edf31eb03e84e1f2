//go:build e2e

package e2e

import (
	"fmt"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	sluicev1 "github.com/sluice-dev/sluice/api/v1alpha1"
	"github.com/sluice-dev/sluice/e2e/cluster"
)

// splitTolerance is how far (in percentage points) the measured share of
// the canary may be from the configured weight. Traefik's weighted round
// robin is exact; the slack covers requests in flight across a change.
const splitTolerance = 5

// TestCanaryPromotedThroughGateway: a good version walks the steps with
// real traffic through Traefik and is promoted; at each step the share of
// answers the new version gives matches the weight.
func TestCanaryPromotedThroughGateway(t *testing.T) {
	t.Parallel() // see main_test.go
	s := NewStory(t, "canary-promote")
	var changed, ready time.Time
	var routeWeights func() []string
	s.Given("app v1 behind a canary Rollout (steps 10, 30, 50; 4s per step; success rate >= 99% from Traefik's metrics, judged on 10 requests at least) on the Gateway, under load", func() {
		s.DeployApp(cluster.App{Name: "podinfo", Version: "v1", Replicas: 2})
		// minRequests: the guard's count is read from Traefik's own
		// counter of the canary's Service, as the rate is.
		check := SuccessRate(99)
		check.MinRequests = ptr.To[int64](10)
		s.CreateRollout(s.App.GatewayRollout(s.Host, CanarySteps(10, 30, 50), &sluicev1.Analysis{
			Interval: &metav1.Duration{Duration: 4 * time.Second}, Threshold: 2,
			Metrics: []sluicev1.MetricCheck{check},
		}))
		s.WaitPhase(sluicev1.PhaseInitialized, 60*time.Second)
		routeWeights = s.RecordRouteWeights()
		s.StartLoad(60)
		s.WaitServing("v1")
	}).When("the Deployment is changed to v2", func() {
		changed = s.UpdateApp(cluster.App{Name: "podinfo", Version: "v2", Replicas: 2})
	}).Then("the canary pods become ready and take traffic", func() {
		ready = s.WaitDeploymentReady("podinfo")
		s.Eventually(60*time.Second, "v2 answering", func() (bool, string) {
			return !s.Load.FirstFrom("v2", changed).IsZero(), s.Load.SplitBetween(time.Now().Add(-time.Second), time.Now()).String()
		})
		first := s.Load.FirstFrom("v2", changed)
		s.Figure("Deployment change -> canary pods ready", ready.Sub(changed).Round(time.Millisecond))
		s.Figure("canary pods ready -> first request answered by the canary", first.Sub(ready).Round(time.Millisecond))
		s.Figure("Deployment change -> first request answered by the canary", first.Sub(changed).Round(time.Millisecond))
	}).And("the Rollout is promoted: phase Succeeded, weight 0, Ready=True", func() {
		st := s.WaitPhase(sluicev1.PhaseSucceeded, 120*time.Second)
		if st.CanaryWeight != 0 || st.FailedChecks != 0 {
			s.Fatalf("after promotion: weight %d, failed checks %d", st.CanaryWeight, st.FailedChecks)
		}
		if c, _ := Condition(st, sluicev1.ConditionReady); c != metav1.ConditionTrue {
			s.Fatalf("Ready condition %q after promotion", c)
		}
		for _, m := range st.Metrics {
			s.Logf("last check %s = %s (%s)", m.Name, m.Value, m.Verdict)
			if m.Name == sluicev1.MetricRequestSuccessRate && m.Verdict != "Pass" {
				s.Fatalf("the last success-rate check was %s (%s), want Pass: the guard counts the canary's requests from Traefik", m.Verdict, m.Message)
			}
		}
		s.Figure("Deployment change -> Succeeded", time.Since(changed).Round(time.Millisecond))
	}).And("each step's weight matched the measured split of real answers", func() {
		wins := s.CheckSplit(changed, "v2", splitTolerance)
		var seen []int32
		for _, w := range wins {
			seen = append(seen, w.Weight)
		}
		if fmt.Sprint(seen) != "[10 30 50]" {
			s.Fatalf("weights while Progressing: %v, want [10 30 50]", seen)
		}
	}).And("all traffic is now answered by v2, the promoted primary", func() {
		s.Eventually(20*time.Second, "v2 only", func() (bool, string) {
			sp := s.Load.SplitBetween(time.Now().Add(-2*time.Second), time.Now())
			return sp.Total > 50 && sp.Share("v2") == 100, sp.String()
		})
		total := s.Load.SplitBetween(changed, time.Now())
		s.Figure("answers during the release", total.String())
		// v2 answers from the canary, then from the new primary: the last
		// answer of v1 is when all traffic is on v2's pods.
		promoting := s.FirstSeen(func(p sluicev1.Phase, _, _ int32) bool { return p == sluicev1.PhasePromoting })
		s.Figure("promotion starts -> last answer of the old version", s.Load.LastOf("v1").Sub(promoting).Round(time.Millisecond))
		// Finalising begins once the route sends everything to the primary,
		// which then runs v2.
		finalising := s.FirstSeen(func(p sluicev1.Phase, _, _ int32) bool { return p == sluicev1.PhaseFinalising })
		s.Figure("promotion starts -> all traffic on the new primary", finalising.Sub(promoting).Round(time.Millisecond))
		s.ExpectNoFailedRequests(changed)
	}).And("the HTTPRoute's weights only went forward: 100/0, 90/10, 70/30, 50/50, (0/100 while promoting), 100/0", func() {
		s.ExpectForwardWeights(routeWeights(), "100/0 90/10 70/30 50/50 100/0")
	}).And("the events tell the story", func() {
		s.ExpectEvents("NewRevision", "WeightChanged", "Promoting", "PrimaryUpdated", "Promoted")
	})
}

// TestCanaryScaledWithItsWeightThroughGateway: strategy.canary.scaleWithWeight
// on the real node. A canary of an app of 4 replicas takes 25 % on 2 pods
// (never fewer than two, so that one lost pod leaves one serving), 75 % on
// 3, and grows to 4 before it takes all traffic at promotion; the weight
// moves only once the pods for it are ready. One canary pod is evicted at
// 25 %, as a node drain would, and no request fails.
func TestCanaryScaledWithItsWeightThroughGateway(t *testing.T) {
	t.Parallel() // see main_test.go
	s := NewStory(t, "canary-scaled")
	var changed time.Time
	var mu sync.Mutex
	seen := map[int32]int32{} // canary weight -> fewest canary replicas asked for at it
	var overloaded []string
	s.Given("app v1 of 4 replicas behind a canary Rollout sized by its weight (steps 25, 75; 4s per step; success rate >= 99%) on the Gateway, under load", func() {
		s.DeployApp(cluster.App{Name: "podinfo", Version: "v1", Replicas: 4})
		ro := s.App.GatewayRollout(s.Host, CanarySteps(25, 75), &sluicev1.Analysis{
			Interval: &metav1.Duration{Duration: 4 * time.Second}, Threshold: 2,
			Metrics: []sluicev1.MetricCheck{SuccessRate(99)},
		})
		ro.Spec.Strategy.Canary.ScaleWithWeight = true
		s.CreateRollout(ro)
		s.WaitPhase(sluicev1.PhaseInitialized, 60*time.Second)
		// The route's canary weight, then the canary's pods: the pods grow
		// before the weight moves, so read in that order.
		go func() {
			for s.Ctx().Err() == nil {
				time.Sleep(50 * time.Millisecond)
				w, ok := s.routeCanaryWeight()
				d := &appsv1.Deployment{}
				if !ok || w == 0 || s.Cluster().Client.Get(s.Ctx(), client.ObjectKey{Namespace: s.NS, Name: "podinfo"}, d) != nil {
					continue
				}
				mu.Lock()
				if n, ok := seen[w]; !ok || ptrOr(d.Spec.Replicas, 1) < n {
					seen[w] = ptrOr(d.Spec.Replicas, 1)
				}
				// One pod fewer than the weight's share is the eviction's
				// doing; none at all is an outage of that share.
				if need := (4*w + 99) / 100; d.Status.AvailableReplicas < need-1 || d.Status.AvailableReplicas == 0 {
					overloaded = append(overloaded, fmt.Sprintf("%d%% on %d available pods (%d needed)", w, d.Status.AvailableReplicas, need))
				}
				mu.Unlock()
			}
		}()
		s.StartLoad(60)
		s.WaitServing("v1")
	}).When("the Deployment is changed to v2 and, at 25 %, one canary pod is evicted", func() {
		changed = s.UpdateApp(cluster.App{Name: "podinfo", Version: "v2", Replicas: 4})
		waitCanaryWeight(s, 25, 90*time.Second)
		evictOneCanaryPod(s)
	}).Then("the Rollout is promoted: phase Succeeded, weight 0", func() {
		st := s.WaitPhase(sluicev1.PhaseSucceeded, 120*time.Second)
		if st.CanaryWeight != 0 || st.FailedChecks != 0 {
			s.Fatalf("after promotion: weight %d, failed checks %d", st.CanaryWeight, st.FailedChecks)
		}
		s.Figure("Deployment change -> Succeeded", time.Since(changed).Round(time.Millisecond))
	}).And("the canary ran 2 pods at 25 %, 3 at 75 % and 4 before it took all traffic, each ready before its weight", func() {
		mu.Lock()
		defer mu.Unlock()
		s.Figure("fewest canary pods asked for at each weight", fmt.Sprint(seen))
		for w, want := range map[int32]int32{25: 2, 75: 3, 100: 4} {
			if seen[w] != want {
				s.Errorf("at %d%% the canary ran %d pods, want %d (seen: %v)", w, seen[w], want, seen)
			}
		}
		if n := len(overloaded); n > 0 {
			// Errorf: the requests that failed then are counted next.
			s.Errorf("the route gave the canary more than its available pods carry in %d samples 50ms apart, the first: %s", n, overloaded[0])
		}
	}).And("no request failed", func() {
		s.ExpectNoFailedRequests(changed)
	})
}
