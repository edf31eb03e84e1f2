//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	sluicev1 "github.com/sluice-dev/sluice/api/v1alpha1"
	"github.com/sluice-dev/sluice/e2e/cluster"
)

// storyOperatorKilledMidRelease (in TestManagerDisruptions): the manager is killed (SIGKILL) in the
// middle of a release; traffic stays where it was while it is down, and
// after a restart the release completes without repeating or skipping a
// step.
func storyOperatorKilledMidRelease(t *testing.T) {
	s := NewStory(t, "operator-restart")
	var changed, killed, restarted time.Time
	var routeWeights func() []string
	s.Given("app v1 behind a canary Rollout (steps 10, 20, 30, 40, 50; 4s per step), under load", func() {
		s.DeployApp(cluster.App{Name: "podinfo", Version: "v1", Replicas: 2})
		s.CreateRollout(s.App.GatewayRollout(s.Host, CanarySteps(10, 20, 30, 40, 50), &sluicev1.Analysis{
			Interval: &metav1.Duration{Duration: 4 * time.Second}, Threshold: 2,
		}))
		s.WaitPhase(sluicev1.PhaseInitialized, 60*time.Second)
		routeWeights = s.RecordRouteWeights()
		s.StartLoad(50)
		s.WaitServing("v1")
	}).When("v2 is released and the manager is killed with SIGKILL at weight 30", func() {
		changed = s.UpdateApp(cluster.App{Name: "podinfo", Version: "v2", Replicas: 2})
		s.Eventually(90*time.Second, "weight 30", func() (bool, string) {
			st := s.Status()
			return st.CanaryWeight == 30, fmt.Sprintf("phase %s weight %d", st.Phase, st.CanaryWeight)
		})
		t.Cleanup(func() {
			if err := s.c.EnsureManager(context.Background()); err != nil {
				t.Errorf("restarting the manager for the next stories: %v", err)
			}
		})
		s.c.KillManager()
		killed = time.Now()
	}).Then("while it is down (6s), the Gateway keeps the 30% split", func() {
		time.Sleep(6 * time.Second)
		sp := s.Load.SplitBetween(killed.Add(settle), time.Now())
		s.Figure("split while the manager was down at weight 30%", sp.String())
		if d := sp.Share("v2") - 30; sp.Total < 20 || d > splitTolerance || d < -splitTolerance {
			// Not fatal: the restart and the rest of the release are still checked.
			s.Errorf("status says weight 30 but the Gateway's split while the manager was down is %s (HTTPRoute %s)", sp, strings.Join(routeWeights(), " -> "))
		}
	}).When("the manager is started again (it reconciles once the killed one's Lease has expired, about 15s)", func() {
		s.Must(s.c.StartManager(s.ctx), "restarting the manager")
		restarted = time.Now()
	}).Then("the release completes: Succeeded", func() {
		s.WaitPhase(sluicev1.PhaseSucceeded, 120*time.Second)
		s.Figure("manager restarted -> Succeeded", time.Since(restarted).Round(time.Millisecond))
	}).And("the weights went 10, 20, 30, 40, 50: no step repeated or skipped, each split measured", func() {
		var seen []int32
		for _, w := range s.CheckSplit(changed, "v2", splitTolerance) {
			seen = append(seen, w.Weight)
		}
		if fmt.Sprint(seen) != "[10 20 30 40 50]" {
			s.Fatalf("weights while Progressing: %v, want [10 20 30 40 50]", seen)
		}
		s.ExpectEvents("NewRevision", "WeightChanged", "Promoted")
	}).And("no request failed, the manager's downtime included", func() {
		s.ExpectNoFailedRequests(changed)
	})
}
