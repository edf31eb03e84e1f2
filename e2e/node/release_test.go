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
		promoted := time.Now()
		s.Eventually(60*time.Second, "v2 only", func() (bool, string) {
			sp := s.Load.SplitBetween(time.Now().Add(-2*time.Second), time.Now())
			return sp.Total > 30 && sp.Share("v2") == 100, sp.String()
		})
		s.Figure("real node: Succeeded -> all traffic on the new primary", time.Since(promoted).Round(time.Millisecond))
	}).And("no request failed", func() {
		s.ExpectNoFailedRequests(changed)
		s.ExpectEvents("NewRevision", "WeightChanged", "Promoting", "Promoted")
	})
}
