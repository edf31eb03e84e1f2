//go:build e2e

package e2e

import (
	"strconv"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	sluicev1 "github.com/sluice-dev/sluice/api/v1alpha1"
	"github.com/sluice-dev/sluice/e2e/cluster"
)

// TestCanaryRolledBackOnErrors: a version that answers 5xx is rolled back
// by the built-in success-rate check (read from Traefik's metrics in
// Prometheus), and the canary stops getting traffic.
func TestCanaryRolledBackOnErrors(t *testing.T) {
	t.Parallel() // see main_test.go
	s := NewStory(t, "canary-rollback")
	var changed, failedAt time.Time
	s.Given("app v1 behind a canary Rollout (steps 20, 40, 60; 3s per step; threshold 2; built-in success rate >= 99%), under load", func() {
		s.DeployApp(cluster.App{Name: "podinfo", Version: "v1", Replicas: 2})
		s.CreateRollout(s.App.GatewayRollout(s.Host, CanarySteps(20, 40, 60), &sluicev1.Analysis{
			Interval: &metav1.Duration{Duration: 3 * time.Second}, Threshold: 2,
			Metrics: []sluicev1.MetricCheck{SuccessRate(99)},
		}))
		s.WaitPhase(sluicev1.PhaseInitialized, 60*time.Second)
		s.StartLoad(60)
		s.WaitServing("v1")
	}).When("v2 is released and half of its answers are 500s", func() {
		changed = s.UpdateApp(cluster.App{Name: "podinfo", Version: "v2", Replicas: 2, ErrorRate: 0.5})
	}).Then("the success-rate check fails and the Rollout is rolled back: phase Failed, weight 0, Stalled", func() {
		st := s.WaitPhase(sluicev1.PhaseFailed, 120*time.Second)
		failedAt = time.Now()
		if st.CanaryWeight != 0 {
			s.Fatalf("weight %d after the rollback", st.CanaryWeight)
		}
		if c, reason := Condition(st, sluicev1.ConditionStalled); c != metav1.ConditionTrue {
			s.Fatalf("Stalled condition %q (%s) after the rollback", c, reason)
		}
		if c, _ := Condition(st, sluicev1.ConditionReady); c != metav1.ConditionFalse {
			s.Fatalf("Ready condition %q after the rollback", c)
		}
		s.Logf("message: %s", st.Message)
	}).And("the canary gets no traffic any more; v1 answers everything", func() {
		s.Eventually(20*time.Second, "v1 only", func() (bool, string) {
			sp := s.Load.SplitBetween(time.Now().Add(-2*time.Second), time.Now())
			return sp.Total > 50 && sp.Share("v1") == 100, sp.String()
		})
		pts := s.rec.points()
		var firstFail time.Time
		for _, p := range pts {
			if p.At.After(changed) && p.Failed > 0 {
				firstFail = p.At
				break
			}
		}
		last := s.Load.LastOf("v2")
		s.CheckSplit(changed, "v2", splitTolerance)
		if !firstFail.IsZero() {
			s.Figure("first failed check -> last request answered by the canary", last.Sub(firstFail).Round(time.Millisecond))
		}
		s.Figure("rollback seen (phase Failed) -> last request answered by the canary", last.Sub(failedAt).Round(time.Millisecond))
		s.Figure("answers during the release", s.Load.SplitBetween(changed, time.Now()).String())
	}).And("the check saw the errors: the success rate it recorded is below 99", func() {
		st := s.Status()
		var found bool
		for _, m := range st.Metrics {
			s.Logf("check %s = %q (%s) %s", m.Name, m.Value, m.Verdict, m.Message)
			if m.Name != sluicev1.MetricRequestSuccessRate {
				continue
			}
			found = true
			v, err := strconv.ParseFloat(m.Value, 64)
			if err != nil || v >= 99 {
				s.Fatalf("request-success-rate value %q: want a measured value below 99 (the canary answered 50%% 500s)", m.Value)
			}
		}
		if !found {
			s.Fatalf("no request-success-rate in status.metrics")
		}
	}).And("the events name the failed checks and the rollback", func() {
		s.ExpectEvents("NewRevision", "CheckFailed", "ThresholdReached")
	})
}
