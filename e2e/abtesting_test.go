//go:build e2e

package e2e

import (
	"net/http"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	sluicev1 "github.com/sluice-dev/sluice/api/v1alpha1"
	"github.com/sluice-dev/sluice/e2e/cluster"
)

// TestABTestingByHeader: during an A/B release, requests with the header
// are answered by the new version and all others by the stable one.
func TestABTestingByHeader(t *testing.T) {
	t.Parallel() // see main_test.go
	s := NewStory(t, "abtest")
	var changed time.Time
	var insiders *cluster.Load
	s.Given("app v1 behind an A/B Rollout matching x-canary: insider (4 iterations of 2s), with load with and without the header", func() {
		s.DeployApp(cluster.App{Name: "podinfo", Version: "v1", Replicas: 2})
		s.CreateRollout(s.App.GatewayRollout(s.Host, sluicev1.Strategy{ABTesting: &sluicev1.ABTestingStrategy{
			Iterations: 4,
			Match:      []sluicev1.RequestMatch{{Headers: map[string]sluicev1.StringMatch{"x-canary": {Exact: ptr.To("insider")}}}},
		}}, &sluicev1.Analysis{Interval: &metav1.Duration{Duration: 2 * time.Second}, Threshold: 2}))
		s.WaitPhase(sluicev1.PhaseInitialized, 60*time.Second)
		s.StartLoad(40)
		s.WaitServing("v1")
		insiders = s.c.StartLoad(s.Host, 40, http.Header{"X-Canary": {"insider"}})
		t.Cleanup(insiders.Stop)
	}).When("v2 is released", func() {
		changed = s.UpdateApp(cluster.App{Name: "podinfo", Version: "v2", Replicas: 2})
	}).Then("while Progressing, v2 answers every request with the header and none without", func() {
		s.WaitPhase(sluicev1.PhaseProgressing, 60*time.Second)
		// Wait for the first answer of v2 to the insiders (the route is written).
		s.Eventually(30*time.Second, "v2 answering insiders", func() (bool, string) {
			return !insiders.FirstFrom("v2", changed).IsZero(), insiders.SplitBetween(time.Now().Add(-time.Second), time.Now()).String()
		})
		from := insiders.FirstFrom("v2", changed).Add(settle)
		time.Sleep(3 * time.Second)
		if ph := s.Status().Phase; ph != sluicev1.PhaseProgressing {
			s.Logf("phase %s at the end of the measure", ph)
		}
		to := time.Now()
		in := insiders.SplitBetween(from, to)
		out := s.Load.SplitBetween(from, to)
		s.Figure("split with the header", in.String())
		s.Figure("split without the header", out.String())
		if in.Total < 20 || in.Share("v2") != 100 {
			s.Fatalf("requests with the header: %s, want all answered by v2", in)
		}
		if out.Total < 20 || out.Share("v1") != 100 {
			s.Fatalf("requests without the header: %s, want all answered by v1", out)
		}
	}).And("after the iterations v2 is promoted and answers everyone", func() {
		s.WaitPhase(sluicev1.PhaseSucceeded, 90*time.Second)
		s.Eventually(20*time.Second, "v2 for everyone", func() (bool, string) {
			sp := s.Load.SplitBetween(time.Now().Add(-2*time.Second), time.Now())
			return sp.Total > 40 && sp.Share("v2") == 100, sp.String()
		})
		s.ExpectEvents("NewRevision", "Promoted")
	})
}
