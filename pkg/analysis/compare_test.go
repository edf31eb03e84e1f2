package analysis

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	sluicev1 "github.com/sluice-dev/sluice/api/v1alpha1"
)

// noisy returns n samples around base, spread by up to ±spread (a fixed,
// irregular pattern whose median is 0, so tests are repeatable and a
// multiple of 10 samples has the median base).
func noisy(base, spread float64, n int) []float64 {
	pattern := []float64{0.3, -0.8, 0.9, -0.1, 0.5, -0.5, 0.1, -0.9, 0.8, -0.3}
	out := make([]float64, n)
	for i := range out {
		out[i] = base * (1 + spread*pattern[i%len(pattern)])
	}
	return out
}

func latencyCheck(mut ...func(*sluicev1.MetricCheck)) sluicev1.MetricCheck {
	c := sluicev1.MetricCheck{Name: "latency", TemplateRef: &sluicev1.MetricTemplateReference{Name: "latency"},
		Compare: &sluicev1.Compare{Direction: sluicev1.CompareIncrease, Tolerance: "10%"}}
	for _, m := range mut {
		m(&c)
	}
	return c
}

func TestJudgeCompareMapsTheJudgesVerdictIntoTheMetricStatus(t *testing.T) {
	slow := func(c *sluicev1.MetricCheck) { c.ThresholdRange = &sluicev1.ThresholdRange{Max: ptr.To(500.0)} }
	hold := func(c *sluicev1.MetricCheck) { c.Compare.OnNoData = sluicev1.NoDataHold }
	tests := []struct {
		name    string
		check   sluicev1.MetricCheck
		sides   Sides
		verdict string
		value   string
		primary string
		// estimate and p are checked when set; message must contain each.
		estimate string
		pSmall   bool
		message  []string
	}{
		{name: "a canary 20% slower than the primary fails although under the maximum",
			check: latencyCheck(slow), sides: Sides{Canary: noisy(240, 0.05, 20), Primary: noisy(200, 0.05, 20)},
			verdict: VerdictFail, value: "240", primary: "200", estimate: "+20.0%", pSmall: true,
			message: []string{"latency: canary +20.0% vs primary", "(p", "tolerance 10%"}},
		{name: "a canary as slow as a slow primary passes",
			check: latencyCheck(), sides: Sides{Canary: noisy(400, 0.1, 20), Primary: noisy(400, 0.1, 20)},
			verdict: VerdictPass, value: "400", primary: "400", estimate: "+0.0%",
			message: []string{"latency: canary ", "0.0% vs primary"}},
		{name: "a canary 5% slower, inside the tolerance, passes",
			check: latencyCheck(), sides: Sides{Canary: noisy(210, 0.02, 20), Primary: noisy(200, 0.02, 20)},
			verdict: VerdictPass, estimate: "+5.0%", pSmall: true},
		{name: "a faster canary passes a check where higher is worse",
			check: latencyCheck(), sides: Sides{Canary: noisy(100, 0.05, 20), Primary: noisy(200, 0.05, 20)},
			verdict: VerdictPass, estimate: "-50.0%"},
		{name: "both must pass: the range fails a canary the comparison lets through",
			check: latencyCheck(slow), sides: Sides{Canary: noisy(600, 0.05, 20), Primary: noisy(600, 0.05, 20)},
			verdict: VerdictFail, value: "600",
			message: []string{"latency = 600 (canary median) is above the maximum 500; latency: canary "}},
		{name: "a primary without data is no data, decided by compare.onNoData",
			check: latencyCheck(hold), sides: Sides{Canary: noisy(200, 0.05, 20), PrimaryErr: fmt.Errorf("x: %w", ErrNoData)},
			verdict: VerdictNoData, value: "200",
			message: []string{"no usable samples from primary (onNoData: hold)"}},
		{name: "too few samples is no data",
			check: latencyCheck(), sides: Sides{Canary: noisy(200, 0.05, 3), Primary: noisy(200, 0.05, 20)},
			verdict: VerdictNoData, message: []string{"too few samples: canary 3, primary 20, need 5 each (onNoData: fail)"}},
		{name: "a query error on one side is an error",
			check: latencyCheck(), sides: Sides{Canary: noisy(200, 0.05, 20), PrimaryErr: errors.New("connection refused")},
			verdict: VerdictError, message: []string{"latency: primary: connection refused"}},
		{name: "a querier without series is an error",
			check: latencyCheck(), sides: Sides{Err: errors.New("cannot return a series")},
			verdict: VerdictError, message: []string{"latency: cannot return a series"}},
		{name: "a malformed tolerance is an error, never a pass",
			check:   latencyCheck(func(c *sluicev1.MetricCheck) { c.Compare.Tolerance = "ten" }),
			sides:   Sides{Canary: noisy(200, 0.05, 20), Primary: noisy(200, 0.05, 20)},
			verdict: VerdictError, message: []string{`tolerance "ten" is not a percentage`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ms := JudgeCompare(tt.check, tt.sides)
			if ms.Verdict != tt.verdict {
				t.Fatalf("verdict %s, want %s: %+v", ms.Verdict, tt.verdict, ms)
			}
			if tt.value != "" && ms.Value != tt.value {
				t.Errorf("value %q, want the canary's median %q", ms.Value, tt.value)
			}
			if tt.primary != "" && ms.PrimaryValue != tt.primary {
				t.Errorf("primaryValue %q, want %q", ms.PrimaryValue, tt.primary)
			}
			if tt.estimate != "" && ms.Estimate != tt.estimate {
				t.Errorf("estimate %q, want %q", ms.Estimate, tt.estimate)
			}
			if tt.pSmall && !(ms.PValue != "" && ms.PValue < "0.05" || strings.Contains(ms.PValue, "e-")) {
				t.Errorf("pValue %q, want a small one", ms.PValue)
			}
			for _, m := range tt.message {
				if !strings.Contains(ms.Message, m) {
					t.Errorf("message %q does not say %q", ms.Message, m)
				}
			}
		})
	}
}

func TestCompareWindowEndsNowAndHoldsMinSamples(t *testing.T) {
	now := time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)
	d := func(s string) *metav1.Duration {
		v, _ := time.ParseDuration(s)
		return &metav1.Duration{Duration: v}
	}
	ro := func(interval *metav1.Duration) *sluicev1.Rollout {
		return &sluicev1.Rollout{Spec: sluicev1.RolloutSpec{Analysis: &sluicev1.Analysis{Interval: interval}}}
	}
	tests := []struct {
		name       string
		ro         *sluicev1.Rollout
		check      sluicev1.MetricCheck
		length     time.Duration
		step       time.Duration
		wantPoints int
	}{
		{"the analysis interval, sampled every 30s", ro(d("5m")), latencyCheck(), 5 * time.Minute, 30 * time.Second, 11},
		{"the check's interval wins", ro(d("5m")), latencyCheck(func(c *sluicev1.MetricCheck) { c.Interval = d("2m") }),
			2 * time.Minute, 30 * time.Second, 5},
		{"a window too short for minSamples is widened", ro(d("1m")), latencyCheck(), 2 * time.Minute, 30 * time.Second, 5},
		{"the step is the check's", ro(d("1m")), latencyCheck(func(c *sluicev1.MetricCheck) { c.Compare.Step = d("5s") }),
			time.Minute, 5 * time.Second, 13},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := CompareWindow(tt.ro, tt.check, now)
			if !w.End.Equal(now) || w.End.Sub(w.Start) != tt.length || w.Step != tt.step {
				t.Errorf("window %s..%s step %s, want %s ending now, step %s", w.Start, w.End, w.Step, tt.length, tt.step)
			}
			if points := int(w.End.Sub(w.Start)/w.Step) + 1; points != tt.wantPoints {
				t.Errorf("%d points, want %d", points, tt.wantPoints)
			}
		})
	}
}

// A run that started less than a window ago is judged on its own samples:
// before it, the canary's Service served the previous run's canary (during
// its promotion, all the traffic), and those samples say nothing of this
// one.
func TestCompareWindowStartsNoEarlierThanTheRun(t *testing.T) {
	now := time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)
	check := latencyCheck(func(c *sluicev1.MetricCheck) {
		c.Interval = &metav1.Duration{Duration: 20 * time.Second}
		c.Compare.Step = &metav1.Duration{Duration: 2 * time.Second}
	})
	for _, tt := range []struct {
		name      string
		started   time.Time
		wantStart time.Time
	}{
		{"a run younger than the window: its start", now.Add(-12 * time.Second), now.Add(-12 * time.Second)},
		{"a run older than the window: the whole window", now.Add(-time.Hour), now.Add(-20 * time.Second)},
		{"a run started after now (a skewed clock): no sample before now", now.Add(time.Second), now},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ro := &sluicev1.Rollout{Status: sluicev1.RolloutStatus{RunStartedAt: &metav1.Time{Time: tt.started}}}
			w := CompareWindow(ro, check, now)
			if !w.Start.Equal(tt.wantStart) || !w.End.Equal(now) {
				t.Errorf("window %s..%s, want %s..%s", w.Start.Format(time.TimeOnly), w.End.Format(time.TimeOnly),
					tt.wantStart.Format(time.TimeOnly), now.Format(time.TimeOnly))
			}
		})
	}
}

func TestParseToleranceReadsPercentages(t *testing.T) {
	for in, want := range map[string]float64{"": 0.1, "10%": 0.1, "2.5%": 0.025, "0%": 0, "1000%": 10} {
		if got, err := ParseTolerance(in); err != nil || got != want {
			t.Errorf("ParseTolerance(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"0.1", "-5%", "1001%", "ten%", "%"} {
		if _, err := ParseTolerance(in); err == nil {
			t.Errorf("ParseTolerance(%q) accepted it", in)
		}
	}
}

// seriesAnswers is a SeriesQuerier with one series per check and side; it
// records the windows it was asked for.
type seriesAnswers struct {
	answers
	series  map[string][]float64 // "check/side"
	mu      sync.Mutex
	windows []Window
}

func (s *seriesAnswers) Series(_ context.Context, _ *sluicev1.Rollout, c sluicev1.MetricCheck, side Side, w Window) ([]float64, error) {
	s.mu.Lock()
	s.windows = append(s.windows, w)
	s.mu.Unlock()
	v, ok := s.series[c.Name+"/"+string(side)]
	if !ok {
		return nil, fmt.Errorf("no series: %w", ErrNoData)
	}
	return v, nil
}

func TestRunJudgesCompareChecksOnBothSidesSeries(t *testing.T) {
	now := time.Now()
	named := func(name string, mut ...func(*sluicev1.MetricCheck)) sluicev1.MetricCheck {
		c := latencyCheck(mut...)
		c.Name = name
		return c
	}
	holdOnNoData := func(c *sluicev1.MetricCheck) { c.Compare.OnNoData = sluicev1.NoDataHold }
	ro := &sluicev1.Rollout{Spec: sluicev1.RolloutSpec{Analysis: &sluicev1.Analysis{
		Interval: &metav1.Duration{Duration: 5 * time.Minute},
		Metrics:  []sluicev1.MetricCheck{named("slower"), named("same"), named("quiet", holdOnNoData)},
	}}}
	q := &seriesAnswers{series: map[string][]float64{
		"slower/canary": noisy(240, 0.05, 10), "slower/primary": noisy(200, 0.05, 10),
		"same/canary": noisy(400, 0.1, 10), "same/primary": noisy(400, 0.1, 10),
		"quiet/canary": noisy(400, 0.1, 10),
	}}
	res := Run(context.Background(), q, ro, now)
	verdicts := map[string]string{}
	for _, m := range res.Metrics {
		verdicts[m.Name] = m.Verdict
	}
	if verdicts["slower"] != VerdictFail || verdicts["same"] != VerdictPass || verdicts["quiet"] != VerdictNoData {
		t.Errorf("verdicts %v, want slower Fail, same Pass, quiet NoData", verdicts)
	}
	if len(res.Failed) != 1 || !strings.Contains(res.Failed[0], "slower: canary +20.0% vs primary (p") {
		t.Errorf("failed %q, want the slower canary with its estimate and p", res.Failed)
	}
	if len(res.Held) != 1 {
		t.Errorf("held %q, want the quiet check held by compare.onNoData", res.Held)
	}
	for _, w := range q.windows {
		if !w.End.Equal(now) || w.End.Sub(w.Start) != 5*time.Minute || w.Step != DefaultCompareStep {
			t.Errorf("window %+v, want the analysis interval ending now every 30s", w)
		}
	}
	if len(q.windows) != 6 {
		t.Errorf("%d series queries, want one per side of each check", len(q.windows))
	}

	// A querier that cannot return series errors the check, never passes it.
	plain := answers{}
	if got := Run(context.Background(), plain, ro, now); len(got.Failed) != 3 ||
		!strings.Contains(got.Metrics[0].Message, "cannot return a series; compare needs one") {
		t.Errorf("without series: %+v", got)
	}
}

func TestACompareQueryIsRenderedOncePerSide(t *testing.T) {
	ro := &sluicev1.Rollout{
		ObjectMeta: metav1.ObjectMeta{Name: "podinfo-release", Namespace: "shop"},
		Spec:       sluicev1.RolloutSpec{TargetRef: sluicev1.TargetRef{Kind: "Deployment", Name: "podinfo"}},
		Status:     sluicev1.RolloutStatus{CanaryRevision: "7d9f8b6c5", StableRevision: "5c6d7f8b9"},
	}
	check := latencyCheck(func(c *sluicev1.MetricCheck) { c.Interval = &metav1.Duration{Duration: 5 * time.Minute} })
	q := `{{ .side }} {{ .target }} {{ .revision }} {{ .service }}-{{ .side }} {{ .interval }} {{ .namespace }}/{{ .name }}`
	for _, tt := range []struct {
		name string
		got  func() (string, error)
		want string
	}{
		{"a plain check is the canary over the interval", func() (string, error) { return Render(q, ro, check) },
			"canary podinfo 7d9f8b6c5 podinfo-canary 5m shop/podinfo-release"},
		{"the canary side, over the step", func() (string, error) { return RenderSide(q, ro, check, SideCanary, 30*time.Second) },
			"canary podinfo 7d9f8b6c5 podinfo-canary 30s shop/podinfo-release"},
		{"the primary side, over the step", func() (string, error) { return RenderSide(q, ro, check, SidePrimary, 30*time.Second) },
			"primary podinfo-primary 5c6d7f8b9 podinfo-primary 30s shop/podinfo-release"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.got()
			if err != nil || got != tt.want {
				t.Errorf("rendered %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}

// TestTheWorkedExampleOfTheDocsHolds keeps docs/metrics.md's example of a
// compare check honest.
func TestTheWorkedExampleOfTheDocsHolds(t *testing.T) {
	primary := []float64{205, 198, 212, 201, 196, 209, 203, 207, 199, 214, 202}
	canary := []float64{251, 238, 262, 244, 249, 271, 240, 256, 247, 259, 243}
	same := []float64{214, 201, 208, 199, 222, 205, 197, 211, 203, 206, 200}
	check := latencyCheck(func(c *sluicev1.MetricCheck) { c.ThresholdRange = &sluicev1.ThresholdRange{Max: ptr.To(500.0)} })
	doc, err := os.ReadFile("../../docs/metrics.md")
	if err != nil {
		t.Fatal(err)
	}
	slower := JudgeCompare(check, Sides{Canary: canary, Primary: primary})
	want := fmt.Sprintf(`{name: latency, verdict: %s, value: %q, primaryValue: %q,
                 estimate: %q, pValue: %q,
                 message: %q}`, slower.Verdict, slower.Value, slower.PrimaryValue, slower.Estimate, slower.PValue, slower.Message)
	if slower.Verdict != VerdictFail || !strings.Contains(string(doc), want) {
		t.Errorf("docs/metrics.md does not show the status of its example:\n%s", want)
	}
	passes := JudgeCompare(check, Sides{Canary: same, Primary: primary})
	if passes.Verdict != VerdictPass || !strings.Contains(string(doc), "gives "+passes.Estimate+" with p = "+passes.PValue[:4]) {
		t.Errorf("docs/metrics.md does not show the passing example: %+v", passes)
	}
}
