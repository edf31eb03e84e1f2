package analysis_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	sluicev1 "github.com/sluice-dev/sluice/api/v1alpha1"
	"github.com/sluice-dev/sluice/pkg/analysis"
)

// TestACompareCheckCatchesACanarySlowerThanItsPrimaryUnderAFixedMaximum
// feeds a real Prometheus two services, each with a canary and a primary
// whose median latency is scraped every second with ±10% noise:
//
//   - shop: the canary is 20% slower than the primary (240ms against
//     200ms). Both are under the 500ms a user would set as a maximum, so
//     the threshold alone lets the canary through; the comparison fails it.
//   - slow: the service is slow (400ms) and the canary no slower than its
//     primary. The comparison passes it.
func TestACompareCheckCatchesACanarySlowerThanItsPrimaryUnderAFixedMaximum(t *testing.T) {
	env := startReal(t)
	rng := rand.New(rand.NewPCG(14, 5))
	latency := func(ms float64) func() float64 {
		return func() float64 { return ms * (1 + 0.2*(rng.Float64()-0.5)) }
	}
	for _, s := range []struct {
		namespace, deployment string
		ms                    float64
	}{
		{"shop", "podinfo", 240}, {"shop", "podinfo-primary", 200},
		{"slow", "podinfo", 400}, {"slow", "podinfo-primary", 400},
	} {
		env.exp.SetGauge("app_latency_p50_ms", map[string]string{"namespace": s.namespace, "deployment": s.deployment}, latency(s.ms))
	}
	// 20 one-second scrapes of every series: a full window on both sides.
	env.prom.WaitFor(t, `min(count_over_time(app_latency_p50_ms[20s])) >= 20`, 60*time.Second)

	const query = `avg(app_latency_p50_ms{namespace="{{ .namespace }}",deployment="{{ .target }}"})`
	latencyCheck := func(compare bool) sluicev1.MetricCheck {
		c := sluicev1.MetricCheck{
			Name:           "latency",
			TemplateRef:    &sluicev1.MetricTemplateReference{Name: "latency"},
			Interval:       &metav1.Duration{Duration: 20 * time.Second},
			ThresholdRange: &sluicev1.ThresholdRange{Max: ptr(500.0)},
		}
		if compare {
			c.Compare = &sluicev1.Compare{Direction: sluicev1.CompareIncrease, Tolerance: "10%", MinSamples: 10,
				Step: &metav1.Duration{Duration: time.Second}}
		}
		return c
	}
	p, err := analysis.NewPrometheus(reader(t, template("shop", "latency", query), template("slow", "latency", query)),
		analysis.PrometheusOptions{Address: env.prom.URL})
	if err != nil {
		t.Fatal(err)
	}
	run := func(ns string, check sluicev1.MetricCheck) sluicev1.MetricStatus {
		ro := rolloutIn(ns, nil)
		ro.Spec.Analysis = &sluicev1.Analysis{Metrics: []sluicev1.MetricCheck{check}}
		return analysis.Run(context.Background(), p, ro, time.Now()).Metrics[0]
	}

	t.Run("the threshold alone passes the slower canary", func(t *testing.T) {
		if ms := run("shop", latencyCheck(false)); ms.Verdict != analysis.VerdictPass {
			t.Errorf("%+v, want Pass: 240ms is under the maximum", ms)
		}
	})
	t.Run("the comparison fails the canary 20% slower than its primary", func(t *testing.T) {
		ms := run("shop", latencyCheck(true))
		t.Logf("%+v", ms)
		if ms.Verdict != analysis.VerdictFail {
			t.Fatalf("verdict %s, want Fail: %s", ms.Verdict, ms.Message)
		}
		if !strings.HasPrefix(ms.Estimate, "+1") && !strings.HasPrefix(ms.Estimate, "+2") {
			t.Errorf("estimate %q, want about +20%%", ms.Estimate)
		}
		if !near(ms.Value, 240) || !near(ms.PrimaryValue, 200) {
			t.Errorf("canary %s, primary %s: want the medians, about 240 and 200", ms.Value, ms.PrimaryValue)
		}
		if !strings.Contains(ms.Message, "latency: canary +") || !strings.Contains(ms.Message, "vs primary (p") {
			t.Errorf("message %q, want the estimate and p", ms.Message)
		}
	})
	t.Run("the comparison passes a slow service whose canary is as slow as its primary", func(t *testing.T) {
		ms := run("slow", latencyCheck(true))
		t.Logf("%+v", ms)
		if ms.Verdict != analysis.VerdictPass {
			t.Fatalf("verdict %s, want Pass: %s", ms.Verdict, ms.Message)
		}
		if !near(ms.Value, 400) || !near(ms.PrimaryValue, 400) || ms.PValue == "" || ms.Estimate == "" {
			t.Errorf("%+v, want both medians about 400 with an estimate and p", ms)
		}
	})
}

// near reports whether the number s is within 10% of want.
func near(s string, want float64) bool {
	var v float64
	if _, err := fmt.Sscan(s, &v); err != nil {
		return false
	}
	return v > want*0.9 && v < want*1.1
}
