//go:build e2e

package e2e

import (
	"fmt"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	sluicev1 "github.com/sluice-dev/sluice/api/v1alpha1"
	"github.com/sluice-dev/sluice/e2e/cluster"
	"github.com/sluice-dev/sluice/pkg/workload"
)

// TestDaemonSetReleasedOnTheRealNode: a DaemonSet target is released like a
// Deployment. Between releases Sluice parks it (no pod: the parking key in
// its nodeSelector matches no node) and the primary DaemonSet serves; for a
// release the target is unparked on the node and takes the steps' share of
// real traffic beside the primary's pod; the promotion replaces the
// primary's pod (the only one on the node) while the canary carries all
// traffic, and the target is parked again. No request fails.
func TestDaemonSetReleasedOnTheRealNode(t *testing.T) {
	t.Parallel() // see main_test.go
	s := NewStory(t, "daemonset")
	var changed time.Time
	var routeWeights func() []string
	parked := func(name string) (bool, string) {
		d := &appsv1.DaemonSet{}
		if err := s.c.Client.Get(s.ctx, client.ObjectKey{Namespace: s.NS, Name: name}, d); err != nil {
			return false, err.Error()
		}
		st := d.Status
		return d.Spec.Template.Spec.NodeSelector[workload.ParkedNodeLabel] == "true" && st.DesiredNumberScheduled == 0 && st.CurrentNumberScheduled == 0,
			fmt.Sprintf("nodeSelector %v, desired %d, current %d", d.Spec.Template.Spec.NodeSelector, st.DesiredNumberScheduled, st.CurrentNumberScheduled)
	}
	s.Given("app v1 as a DaemonSet behind a canary Rollout (steps 20, 50; 4s per step; success rate >= 99% from Traefik's metrics) on the Gateway, under load", func() {
		s.DeployDaemonSet(cluster.App{Name: "agent", Version: "v1"})
		ro := s.App.GatewayRollout(s.Host, CanarySteps(20, 50), &sluicev1.Analysis{
			Interval: &metav1.Duration{Duration: 4 * time.Second}, Threshold: 2,
			Metrics: []sluicev1.MetricCheck{SuccessRate(99)},
		})
		ro.Spec.TargetRef.Kind = "DaemonSet"
		s.CreateRollout(ro)
		s.WaitPhase(sluicev1.PhaseInitialized, 60*time.Second)
		routeWeights = s.RecordRouteWeights()
		s.StartLoad(60)
		s.WaitServing("v1")
	}).Then("the target is parked (no pod, the parking key in its nodeSelector) and the primary DaemonSet serves from the node", func() {
		s.Eventually(30*time.Second, "the target parked", func() (bool, string) { return parked("agent") })
		s.WaitDaemonSetReady("agent-primary")
	}).When("the DaemonSet is changed to v2", func() {
		changed = s.UpdateDaemonSet(cluster.App{Name: "agent", Version: "v2"})
	}).Then("the target runs v2 on the node and takes the steps' share of the traffic; the Rollout is promoted", func() {
		s.Eventually(60*time.Second, "v2 answering", func() (bool, string) {
			return !s.Load.FirstFrom("v2", changed).IsZero(), s.Load.SplitBetween(time.Now().Add(-time.Second), time.Now()).String()
		})
		s.Figure("DaemonSet change -> first request answered by the canary", s.Load.FirstFrom("v2", changed).Sub(changed).Round(time.Millisecond))
		st := s.WaitPhase(sluicev1.PhaseSucceeded, 120*time.Second)
		if st.CanaryWeight != 0 || st.FailedChecks != 0 {
			s.Fatalf("after promotion: weight %d, failed checks %d", st.CanaryWeight, st.FailedChecks)
		}
		s.Figure("DaemonSet change -> Succeeded", time.Since(changed).Round(time.Millisecond))
		var seen []int32
		for _, w := range s.CheckSplit(changed, "v2", splitTolerance) {
			seen = append(seen, w.Weight)
		}
		if fmt.Sprint(seen) != "[20 50]" {
			s.Fatalf("weights while Progressing: %v, want [20 50]", seen)
		}
	}).And("all traffic is answered by v2 from the primary, the target is parked again, the weights only went forward and no request failed", func() {
		s.Eventually(20*time.Second, "v2 only", func() (bool, string) {
			sp := s.Load.SplitBetween(time.Now().Add(-2*time.Second), time.Now())
			return sp.Total > 50 && sp.Share("v2") == 100, sp.String()
		})
		s.Eventually(30*time.Second, "the target parked again", func() (bool, string) { return parked("agent") })
		s.ExpectForwardWeights(routeWeights(), "100/0 80/20 50/50 100/0")
		s.Figure("answers during the release", s.Load.SplitBetween(changed, time.Now()).String())
		s.ExpectNoFailedRequests(changed)
	})
}
