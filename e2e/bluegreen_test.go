//go:build e2e

package e2e

import (
	"net/http"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	sluicev1 "github.com/sluice-dev/sluice/api/v1alpha1"
	"github.com/sluice-dev/sluice/e2e/cluster"
)

// gate posts to one of the loadtester's gate endpoints for the story's
// Rollout, with the loadtester's token, and returns the status code. It
// names no release: the loadtester applies it to the release of the
// Rollout's latest check, the one waiting at the gate.
func (s *Story) gate(path string) int {
	s.t.Helper()
	body := `{"name":"` + s.Rollout.Name + `","namespace":"` + s.NS + `"}`
	code, msg, err := s.c.PostLoadtester(s.Ctx(), path, body)
	s.Must(err, "POST "+path)
	if code != http.StatusOK {
		s.Logf("POST %s: %d %s", path, code, msg)
	}
	return code
}

// TestBlueGreenWithPromotionGate: blue/green keeps every request on the
// stable version while the new one is checked, holds in WaitingPromotion
// while the loadtester's gate is closed, and switches all traffic at once
// when the gate is opened.
func TestBlueGreenWithPromotionGate(t *testing.T) {
	t.Parallel() // see main_test.go
	s := NewStory(t, "bluegreen")
	var changed, opened time.Time
	var routeWeights func() []string
	s.Given("app v1 behind a blue/green Rollout (3 iterations of 2s) with a confirm-promotion gate on the loadtester, under load", func() {
		s.DeployApp(cluster.App{Name: "podinfo", Version: "v1", Replicas: 2})
		s.CreateRollout(s.App.GatewayRollout(s.Host, sluicev1.Strategy{BlueGreen: &sluicev1.BlueGreenStrategy{Iterations: 3}}, &sluicev1.Analysis{
			Interval: &metav1.Duration{Duration: 2 * time.Second}, Threshold: 2,
			Webhooks: []sluicev1.Webhook{{Name: "approval", Type: sluicev1.HookConfirmPromotion, URL: s.c.LoadtesterHookURL + "/gate/check"}},
		}))
		s.WaitPhase(sluicev1.PhaseInitialized, 60*time.Second)
		routeWeights = s.RecordRouteWeights()
		s.StartLoad(50)
		s.WaitServing("v1")
	}).When("v2 is released", func() {
		changed = s.UpdateApp(cluster.App{Name: "podinfo", Version: "v2", Replicas: 2})
	}).Then("the Rollout waits for promotion with the gate named in GateClosed", func() {
		st := s.WaitPhase(sluicev1.PhaseWaitingPromotion, 90*time.Second)
		if c, _ := Condition(st, sluicev1.ConditionGate); c != metav1.ConditionTrue {
			s.Fatalf("GateClosed condition %q while waiting for promotion", c)
		}
	}).And("while it waits (4s more), v2 has answered no request", func() {
		time.Sleep(4 * time.Second)
		if ph := s.Status().Phase; ph != sluicev1.PhaseWaitingPromotion {
			s.Fatalf("phase %s with the gate closed", ph)
		}
		sp := s.Load.SplitBetween(changed, time.Now())
		s.Figure("split before the gate opened", sp.String())
		s.Figure("HTTPRoute weights (primary/canary) seen", strings.Join(routeWeights(), " -> "))
		if sp.ByVersion["v2"] != 0 || sp.Total < 100 {
			for _, h := range s.Load.Hits(changed, time.Now()) {
				if h.Version != "v1" {
					s.Logf("answer %s code %d at %s", h.Version, h.Code, h.At.Format("15:04:05.000"))
				}
			}
			s.Fatalf("blue/green sent traffic to the new version before promotion: %s", sp)
		}
	}).When("the gate is opened through the loadtester", func() {
		if code := s.gate("/gate/open"); code != http.StatusOK {
			s.Fatalf("/gate/open answered %d", code)
		}
		opened = time.Now()
	}).Then("the Rollout is promoted and v2 answers everything", func() {
		s.WaitPhase(sluicev1.PhaseSucceeded, 90*time.Second)
		s.Eventually(20*time.Second, "v2 only", func() (bool, string) {
			sp := s.Load.SplitBetween(time.Now().Add(-2*time.Second), time.Now())
			return sp.Total > 40 && sp.Share("v2") == 100, sp.String()
		})
		first := s.Load.FirstFrom("v2", changed)
		s.Figure("gate opened -> first request answered by v2", first.Sub(opened).Round(time.Millisecond))
		s.Figure("answers during the release", s.Load.SplitBetween(changed, time.Now()).String())
		s.ExpectNoFailedRequests(changed)
	}).And("the events show the release and the promotion", func() {
		s.ExpectEvents("NewRevision", "Promoting", "Promoted")
	})
}
