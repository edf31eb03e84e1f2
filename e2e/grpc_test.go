//go:build e2e

package e2e

import (
	"fmt"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	sluicev1 "github.com/sluice-dev/sluice/api/v1alpha1"
	"github.com/sluice-dev/sluice/e2e/cluster"
)

// grpcLatencyLimitMs is the p99 the GRPCRoute story's built-in latency
// check allows, and grpcBadLatency what the bad version adds to each call.
// Far apart on purpose: on two cores with other stories running beside it,
// a good version's p99 through Traefik has reached 453 ms (a CI run failed
// on a limit of 250 ms), while a bad call takes 1.5 s and more.
const (
	grpcLatencyLimitMs = 1000.0
	grpcBadLatency     = 1500 * time.Millisecond
)

// TestGRPCRouteThroughTraefik: gRPC calls go through Traefik on a
// GRPCRoute that Sluice generates and weights. A good version walks the
// steps with the split of real calls matching each weight and is promoted
// with no failed call; a version whose calls take 1.5 s is caught by the
// built-in request-duration check, which reads the histogram of the
// GRPCRoute's canary backend in Traefik's metrics, and rolled back. (The
// built-in success rate is refused on a GRPCRoute: Traefik counts every
// gRPC call, good or not, with code 2; see docs/metrics.md.)
func TestGRPCRouteThroughTraefik(t *testing.T) {
	t.Parallel() // see main_test.go
	s := NewStory(t, "grpc")
	var changed, bad time.Time
	var routeWeights func() []string
	s.Given("app v1 serving gRPC behind a canary Rollout with routeKind GRPCRoute (steps 20, 50; 4s per step; p99 latency <= 1 s from Traefik's metrics), under gRPC load", func() {
		s.DeployApp(cluster.App{Name: "greeter", Version: "v1", Replicas: 2})
		s.CreateRollout(s.App.GRPCRollout(s.Host, CanarySteps(20, 50), &sluicev1.Analysis{
			Interval: &metav1.Duration{Duration: 4 * time.Second}, Threshold: 2,
			Metrics: []sluicev1.MetricCheck{{
				Name:           sluicev1.MetricRequestDuration,
				ThresholdRange: &sluicev1.ThresholdRange{Max: ptr.To(grpcLatencyLimitMs)},
				Interval:       &metav1.Duration{Duration: 10 * time.Second},
				// The first check may come before the canary has a call.
				OnNoData: sluicev1.NoDataHold,
			}},
		}))
		s.WaitPhase(sluicev1.PhaseInitialized, 60*time.Second)
		routeWeights = s.RecordRouteWeights()
		s.StartGRPCLoad(60)
		s.WaitServing("v1")
	}).When("v2 is released", func() {
		changed = s.UpdateApp(cluster.App{Name: "greeter", Version: "v2", Replicas: 2})
	}).Then("the calls split at each step's weight and the Rollout is promoted", func() {
		st := s.WaitPhase(sluicev1.PhaseSucceeded, 120*time.Second)
		if st.CanaryWeight != 0 || st.FailedChecks != 0 {
			s.Fatalf("after promotion: weight %d, failed checks %d", st.CanaryWeight, st.FailedChecks)
		}
		for _, m := range st.Metrics {
			s.Logf("last check %s = %s (%s)", m.Name, m.Value, m.Verdict)
		}
		s.Figure("change -> Succeeded", time.Since(changed).Round(time.Millisecond))
		var seen []int32
		for _, w := range s.CheckSplit(changed, "v2", splitTolerance) {
			seen = append(seen, w.Weight)
		}
		if fmt.Sprint(seen) != "[20 50]" {
			s.Fatalf("weights while Progressing: %v, want [20 50]", seen)
		}
	}).And("every call is answered by v2, the GRPCRoute's weights only went forward and no call failed", func() {
		s.Eventually(20*time.Second, "v2 only", func() (bool, string) {
			sp := s.Load.SplitBetween(time.Now().Add(-2*time.Second), time.Now())
			return sp.Total > 50 && sp.Share("v2") == 100, sp.String()
		})
		s.ExpectForwardWeights(routeWeights(), "100/0 80/20 50/50 100/0")
		s.ExpectNoFailedRequests(changed)
	}).When("v3, whose calls take 1.5 s, is released", func() {
		bad = s.UpdateApp(cluster.App{Name: "greeter", Version: "v3", Replicas: 2, Latency: grpcBadLatency})
	}).Then("the latency check fails on the canary's gRPC calls and the Rollout is rolled back", func() {
		st := s.WaitPhase(sluicev1.PhaseFailed, 120*time.Second)
		for _, m := range st.Metrics {
			s.Logf("last check %s = %s (%s)", m.Name, m.Value, m.Verdict)
		}
		if st.FailedChecks < 2 {
			s.Fatalf("rolled back after %d failed checks, want the threshold of 2", st.FailedChecks)
		}
		s.Figure("bad change -> Failed", time.Since(bad).Round(time.Millisecond))
	}).And("v2 answers every call again, and no call failed (slow is not failed)", func() {
		s.WaitServing("v2")
		s.ExpectNoFailedRequests(bad)
		s.Figure("calls per version since the bad change", s.Load.SplitBetween(bad, time.Now()).String())
	})
}
