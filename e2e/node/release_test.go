//go:build e2e

package node

import (
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	sluicev1 "github.com/sluice-dev/sluice/api/v1alpha1"
	"github.com/sluice-dev/sluice/e2e"
	"github.com/sluice-dev/sluice/e2e/cluster"
)

// TestReleaseOnRealNode: a good version, as real containers with readiness
// probes, is released by the chart-installed Sluice through Traefik under
// load, and no request fails.
func TestReleaseOnRealNode(t *testing.T) {
	s := NewStory(t, "node-release")
	var changed time.Time
	s.Given("app v1 (2 real pods) behind a canary Rollout (10, 50) on the Gateway, under load", func() {
		s.DeployApp(cluster.App{Name: "podinfo", Version: "v1", Replicas: 2})
		s.CreateRollout(s.App.GatewayRollout(s.Host, e2e.CanarySteps(10, 50), &sluicev1.Analysis{
			Interval: &metav1.Duration{Duration: 4 * time.Second}, Threshold: 2,
			Metrics: []sluicev1.MetricCheck{e2e.SuccessRate(99)},
		}))
		s.WaitPhase(sluicev1.PhaseInitialized, 90*time.Second)
		s.StartLoad(40)
		s.WaitServing("v1")
	}).When("the Deployment is changed to v2", func() {
		changed = s.UpdateApp(cluster.App{Name: "podinfo", Version: "v2", Replicas: 2})
	}).Then("the canary answers, then is promoted", func() {
		s.Eventually(90*time.Second, "v2 answering", func() (bool, string) {
			return !s.Load.FirstFrom("v2", changed).IsZero(), s.Load.SplitBetween(time.Now().Add(-time.Second), time.Now()).String()
		})
		s.Figure("real node: change -> first canary answer", s.Load.FirstFrom("v2", changed).Sub(changed).Round(time.Millisecond))
		s.WaitPhase(sluicev1.PhaseSucceeded, 180*time.Second)
		s.Eventually(60*time.Second, "v2 only", func() (bool, string) {
			sp := s.Load.SplitBetween(time.Now().Add(-2*time.Second), time.Now())
			return sp.Total > 30 && sp.Share("v2") == 100, sp.String()
		})
		promoting := s.FirstSeen(func(p sluicev1.Phase, _, _ int32) bool { return p == sluicev1.PhasePromoting })
		// v2 answers from the canary, then from the new primary: the last
		// answer of v1 is when all traffic is on v2's pods.
		s.Figure("real node: promotion starts -> last answer of the old version", s.Load.LastOf("v1").Sub(promoting).Round(time.Millisecond))
	}).And("no request failed", func() {
		s.ExpectNoFailedRequests(changed)
		s.ExpectEvents("NewRevision", "WeightChanged", "Promoting", "Promoted")
	})
}

// TestBadVersionRolledBackOnRealNode: v2 answers 30% 500s from real
// containers; the success-rate check fails twice and Sluice rolls back;
// after that v2 gets no traffic.
func TestBadVersionRolledBackOnRealNode(t *testing.T) {
	s := NewStory(t, "node-rollback")
	var changed time.Time
	s.Given("app v1 behind a canary Rollout (20, 50) on the Gateway, under load", func() {
		s.DeployApp(cluster.App{Name: "podinfo", Version: "v1", Replicas: 2})
		s.CreateRollout(s.App.GatewayRollout(s.Host, e2e.CanarySteps(20, 50), &sluicev1.Analysis{
			Interval: &metav1.Duration{Duration: 4 * time.Second}, Threshold: 2,
			Metrics: []sluicev1.MetricCheck{e2e.SuccessRate(99)},
		}))
		s.WaitPhase(sluicev1.PhaseInitialized, 90*time.Second)
		s.StartLoad(40)
		s.WaitServing("v1")
	}).When("v2, which fails 30% of its requests, is released", func() {
		changed = s.UpdateApp(cluster.App{Name: "podinfo", Version: "v2", Replicas: 2, ErrorRate: 0.3})
	}).Then("the Rollout fails and v2 stops answering", func() {
		s.WaitPhase(sluicev1.PhaseFailed, 120*time.Second)
		time.Sleep(3 * time.Second)
		last := s.Load.LastOf("v2")
		if last.IsZero() {
			s.Fatalf("v2 never answered: the check did not see it")
		}
		if sp := s.Load.SplitBetween(time.Now().Add(-2*time.Second), time.Now()); sp.Share("v1") != 100 {
			s.Fatalf("after the rollback: %s", sp)
		}
		firstFail := s.FirstSeen(func(_ sluicev1.Phase, _, failed int32) bool { return failed > 0 })
		s.Figure("real node: first failed check -> last canary answer", last.Sub(firstFail).Round(time.Millisecond))
		s.Figure("real node: change -> first canary answer", s.Load.FirstFrom("v2", changed).Sub(changed).Round(time.Millisecond))
		s.ExpectEvents("NewRevision", "CheckFailed", "ThresholdReached")
	})
}
