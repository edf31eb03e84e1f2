//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	sluicev1 "github.com/sluice-dev/sluice/api/v1alpha1"
	"github.com/sluice-dev/sluice/e2e/cluster"
)

// rolloutReconciles reads controller-runtime's reconcile counter of the
// rollout controller from a manager's /metrics (0 when it never ran).
func rolloutReconciles(url string) (int, error) {
	resp, err := http.Get(url)
	if err != nil {
		return 0, err
	}
	defer func() { _ = resp.Body.Close() }()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, err
	}
	total := 0
	for _, line := range strings.Split(string(body), "\n") {
		if !strings.HasPrefix(line, "controller_runtime_reconcile_total{") || !strings.Contains(line, `controller="rollout"`) {
			continue
		}
		f := strings.Fields(line)
		n, err := strconv.ParseFloat(f[len(f)-1], 64)
		if err != nil {
			return 0, fmt.Errorf("%q: %w", line, err)
		}
		total += int(n)
	}
	return total, nil
}

// storyTwoManagersDuringARollingUpgrade (in TestManagerDisruptions): a second manager runs beside the
// first, as during a chart's rolling upgrade (maxSurge 1). The one without
// the Lease reconciles nothing; when the old one is stopped mid-release the
// new one takes over and finishes it, weights only going forward and no
// request failing.
func storyTwoManagersDuringARollingUpgrade(t *testing.T) {
	s := NewStory(t, "two-managers")
	var changed time.Time
	var second, leader string
	var before int
	var routeWeights func() []string
	s.Given("app v1 behind a canary Rollout (steps 10..50, 2s each), under load, and a second manager started beside the first", func() {
		s.DeployApp(cluster.App{Name: "podinfo", Version: "v1", Replicas: 2})
		s.CreateRollout(s.App.GatewayRollout(s.Host, CanarySteps(10, 20, 30, 40, 50), &sluicev1.Analysis{
			Interval: &metav1.Duration{Duration: 2 * time.Second}, Threshold: 2,
		}))
		s.WaitPhase(sluicev1.PhaseInitialized, 60*time.Second)
		s.waitLeader(60 * time.Second)
		leader = s.c.ManagerLeaseHolder(s.ctx)
		p, url, err := s.c.StartSecondManager(s.ctx)
		s.Must(err, "starting the second manager")
		second = url
		before, err = rolloutReconciles(second)
		s.Must(err, "reading the second manager's metrics")
		t.Cleanup(func() {
			if p != nil {
				p.Stop(10 * time.Second)
			}
			if err := s.c.EnsureManager(context.Background()); err != nil {
				t.Errorf("restarting the manager for the next stories: %v", err)
			}
		})
		routeWeights = s.RecordRouteWeights()
		s.StartLoad(50)
		s.WaitServing("v1")
	}).When("v2 is released", func() {
		changed = s.UpdateApp(cluster.App{Name: "podinfo", Version: "v2", Replicas: 2})
		s.Eventually(60*time.Second, "weight 30", func() (bool, string) {
			st := s.Status()
			return st.CanaryWeight == 30, fmt.Sprintf("phase %s weight %d", st.Phase, st.CanaryWeight)
		})
	}).Then("the second manager, without the Lease, has reconciled nothing", func() {
		n, err := rolloutReconciles(second)
		s.Must(err, "reading the second manager's metrics")
		if n != before {
			s.Fatalf("the manager without the Lease reconciled %d times", n-before)
		}
		if h := s.c.ManagerLeaseHolder(s.ctx); h != leader {
			s.Fatalf("the Lease moved from %s to %s without a stop", leader, h)
		}
	}).When("the old manager is stopped, as the rolling upgrade does", func() {
		s.c.StopManagerGracefully()
	}).Then("the new manager takes the Lease and finishes the release", func() {
		s.Eventually(30*time.Second, "the new leader", func() (bool, string) {
			h := s.c.ManagerLeaseHolder(s.ctx)
			return h != "" && h != leader, "holder " + h
		})
		s.WaitPhase(sluicev1.PhaseSucceeded, 120*time.Second)
		url := second
		if s.c.RealNode() {
			// The pod that replaces the stopped one may win the Lease
			// over the second: read whichever leads.
			var err error
			url, err = s.c.LeaderMetricsURL(s.ctx)
			s.Must(err, "finding the new leader's pod")
			if url != second {
				before = 0
			}
		}
		if n, err := rolloutReconciles(url); err != nil || n == before {
			s.Fatalf("the new leader reconciled %d times (%v)", n-before, err)
		}
	}).And("the weights only went forward and no request failed", func() {
		s.ExpectForwardWeights(routeWeights(), "100/0 90/10 80/20 70/30 60/40 50/50 100/0")
		s.ExpectNoFailedRequests(changed)
	})
}
