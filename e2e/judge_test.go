//go:build e2e

package e2e

import (
	"strconv"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	sluicev1 "github.com/sluice-dev/sluice/api/v1alpha1"
	"github.com/sluice-dev/sluice/e2e/cluster"
)

// judgeLatencyQuery is the mean latency in ms that Traefik measured for one
// side's Service (.side is canary or primary; .interval is the compare
// step, so each sample covers its own step of the window).
const judgeLatencyQuery = `1000 * sum(rate(traefik_service_request_duration_seconds_sum{service="{{ .namespace }}-{{ .service }}-{{ .side }}-http-80@kubernetesgateway"}[{{ .interval }}]))
  / sum(rate(traefik_service_request_duration_seconds_count{service="{{ .namespace }}-{{ .service }}-{{ .side }}-http-80@kubernetesgateway"}[{{ .interval }}]))`

// judgeLimitMs is the fixed maximum on the same check: every version of the
// story stays under it, so only the comparison can tell them apart.
const judgeLimitMs = 500.0

// TestComparativeJudgeOnRealTraffic: the comparative judge reads the
// latencies Traefik measured for real requests to each side. On a service
// that is slow as a whole (150 ms per request), a canary as slow as its
// primary is promoted, and a canary 20 % slower (180 ms) is rolled back,
// although both stay far under the fixed limit of the same check.
//
// The node is shared with the other stories, whose bursts slow both sides
// at once. A window of 6 samples then needs all of the canary's above all
// of the primary's to be significant, and one burst let a 20 % slower
// canary pass a step. So each side gets 10 samples (20 s at 2 s steps),
// the judge waits for 8 of this run's (the window starts with the run),
// and the first failed check rolls back: the slower canary would have to
// pass every judged check to get through.
func TestComparativeJudgeOnRealTraffic(t *testing.T) {
	// Beside the other stories: both sides of the comparison share the
	// node and its load, and the judge compares them over the same steps.
	t.Parallel() // see main_test.go
	s := NewStory(t, "judge")
	const slow = 150 * time.Millisecond
	var released time.Time
	s.Given("app v1 answering in 150 ms, behind a canary Rollout (steps 30, 60; 10s per step; threshold 1) whose latency check compares the canary with the primary (+10% tolerance, 20s window) under a fixed maximum of 500 ms, under load", func() {
		s.DeployApp(cluster.App{Name: "podinfo", Version: "v1", Replicas: 2, Latency: slow})
		s.Must(s.c.Client.Create(s.ctx, &sluicev1.MetricTemplate{
			ObjectMeta: metav1.ObjectMeta{Name: "latency", Namespace: s.NS},
			Spec:       sluicev1.MetricTemplateSpec{Query: judgeLatencyQuery},
		}), "creating the MetricTemplate")
		s.CreateRollout(s.App.GatewayRollout(s.Host, CanarySteps(30, 60), &sluicev1.Analysis{
			Interval: &metav1.Duration{Duration: 10 * time.Second}, Threshold: 1,
			Metrics: []sluicev1.MetricCheck{{
				Name:           "latency",
				TemplateRef:    &sluicev1.MetricTemplateReference{Name: "latency"},
				Interval:       &metav1.Duration{Duration: 20 * time.Second},
				ThresholdRange: &sluicev1.ThresholdRange{Max: ptr.To(judgeLimitMs)},
				// The first check of a run comes before the canary has a
				// window of samples: hold rather than judge on too few.
				OnNoData: sluicev1.NoDataHold,
				Compare: &sluicev1.Compare{
					Direction: sluicev1.CompareIncrease, Tolerance: "10%", MinSamples: 8,
					Step: &metav1.Duration{Duration: 2 * time.Second},
				},
			}},
		}))
		s.WaitPhase(sluicev1.PhaseInitialized, 60*time.Second)
		s.StartLoad(60)
		s.WaitServing("v1")
	}).When("v2, as slow as v1, is released", func() {
		released = s.UpdateApp(cluster.App{Name: "podinfo", Version: "v2", Replicas: 2, Latency: slow})
	}).Then("the judge finds no worsening and v2 is promoted, though a fixed limit of 100 ms would have failed it", func() {
		s.WaitPhase(sluicev1.PhaseSucceeded, 150*time.Second)
		s.WaitServing("v2")
		m := s.latencyStatus()
		s.Logf("latency check of v2: %s", m)
		if v := s.latencyValue(m); v < 100 {
			s.Fatalf("v2's measured latency %.0f ms: the story wants a slow service (over 100 ms)", v)
		}
	}).And("no request failed during v2's release", func() {
		s.ExpectNoFailedRequests(released)
	}).When("v3, 20% slower (180 ms), is released", func() {
		released = s.UpdateApp(cluster.App{Name: "podinfo", Version: "v3", Replicas: 2, Latency: slow * 6 / 5})
	}).Then("the judge finds the canary slower than the primary and v3 is rolled back", func() {
		st := s.WaitPhase(sluicev1.PhaseFailed, 150*time.Second)
		if st.CanaryWeight != 0 {
			s.Fatalf("weight %d after the rollback", st.CanaryWeight)
		}
		m := s.latencyStatus()
		s.Logf("latency check of v3: %s", m)
		if m.Verdict != "Fail" || !strings.HasPrefix(m.Estimate, "+") || m.PValue == "" || m.PrimaryValue == "" {
			s.Fatalf("latency check %s: want Fail with the canary's shift, its p-value and the primary's median", m)
		}
		if v := s.latencyValue(m); v >= judgeLimitMs {
			s.Fatalf("v3's measured latency %.0f ms: the story wants it under the fixed limit of %.0f ms", v, judgeLimitMs)
		}
	}).And("v2 answers everything again; no request failed", func() {
		s.WaitServing("v2")
		s.ExpectNoFailedRequests(released)
	}).And("the events say why", func() {
		s.ExpectEvents("NewRevision", "Promoted", "CheckFailed", "ThresholdReached")
	})
}

// latencyStatus is the latency check's entry in status.metrics.
func (s *Story) latencyStatus() judgeStatus {
	s.t.Helper()
	for _, m := range s.Status().Metrics {
		if m.Name == "latency" {
			return judgeStatus(m)
		}
	}
	s.Fatalf("no latency check in status.metrics")
	return judgeStatus{}
}

// latencyValue is the canary's measured latency of a check, in ms.
func (s *Story) latencyValue(m judgeStatus) float64 {
	s.t.Helper()
	v, err := strconv.ParseFloat(m.Value, 64)
	if err != nil {
		s.Fatalf("latency check value %q: %v", m.Value, err)
	}
	return v
}

type judgeStatus sluicev1.MetricStatus

func (m judgeStatus) String() string {
	return "value " + m.Value + " ms, primary " + m.PrimaryValue + " ms, shift " + m.Estimate + ", p " + m.PValue + ", " + m.Verdict + ": " + m.Message
}
