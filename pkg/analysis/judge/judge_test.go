package judge

import (
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

// normal draws n samples of mean + sd*N(0,1).
func normal(rng *rand.Rand, n int, mean, sd float64) []float64 {
	s := make([]float64, n)
	for i := range s {
		s[i] = mean + sd*rng.NormFloat64()
	}
	return s
}

func newRNG() *rand.Rand { return rand.New(rand.NewPCG(2026, 14)) }

func TestJudgeIdenticalSamples(t *testing.T) {
	rng := newRNG()
	for _, n := range []int{10, 60} {
		s := normal(rng, n, 100, 10)
		v := Judge(s, slices.Clone(s), Spec{Name: "latency", Tolerance: 0.1})
		if v.Outcome != Pass || v.Decision != DecisionPass {
			t.Errorf("n=%d: %+v, want Pass", n, v)
		}
		if v.P != 1 || v.Shift != 0 || v.RelativeShift != 0 || !v.HasRelativeShift {
			t.Errorf("n=%d: P=%v shift=%v relative=%v, want p=1 and no shift", n, v.P, v.Shift, v.RelativeShift)
		}
		if v.CanaryMedian != v.BaselineMedian || v.CanaryCount != n || v.BaselineCount != n {
			t.Errorf("n=%d: %+v", n, v)
		}
		// One-sided, half the permutations are at least this high.
		if v := Judge(s, s, Spec{Direction: Increase}); v.Outcome != Pass || v.P < 0.5 {
			t.Errorf("n=%d increase: %+v, want Pass with p >= 0.5", n, v)
		}
	}
}

// TestJudgeShift20Percent: the canary's latency is 20% above the primary's
// with little noise.
func TestJudgeShift20Percent(t *testing.T) {
	rng := newRNG()
	for _, n := range []int{10, 30} { // exact and normal approximation
		baseline := normal(rng, n, 100, 2)
		canary := normal(rng, n, 120, 2)
		for _, tc := range []struct {
			dir  Direction
			tol  float64
			want Outcome
		}{
			{Increase, 0.1, Fail},
			{Either, 0.1, Fail},
			{Increase, 0.3, Pass}, // worse, significantly, but within tolerance
			{Decrease, 0.1, Pass}, // higher is better here
			{Increase, 0, Fail},
		} {
			v := Judge(canary, baseline, Spec{Name: "latency", Direction: tc.dir, Tolerance: tc.tol})
			if v.Outcome != tc.want || string(v.Decision) != string(tc.want) {
				t.Errorf("n=%d %s tolerance %v: %s (%s), want %s", n, tc.dir, tc.tol, v.Outcome, v.Message, tc.want)
			}
			if math.Abs(v.RelativeShift-0.2) > 0.03 || !v.HasRelativeShift {
				t.Errorf("n=%d: relative shift %v, want about 0.2", n, v.RelativeShift)
			}
			if v.Exact != (n <= ExactMaxSamples) {
				t.Errorf("n=%d: exact=%v", n, v.Exact)
			}
			switch tc.dir {
			case Decrease:
				if v.P < 0.99 {
					t.Errorf("n=%d decrease: p=%v, want about 1 (the canary is better)", n, v.P)
				}
			default:
				if v.P > 0.001 {
					t.Errorf("n=%d %s: p=%v, want below 0.001", n, tc.dir, v.P)
				}
			}
		}
		// A success rate 20% lower is worse when lower is worse.
		if v := Judge(baseline, canary, Spec{Direction: Decrease, Tolerance: 0.1}); v.Outcome != Fail || v.Shift >= 0 {
			t.Errorf("n=%d success rate 20%% lower: %s, want Fail", n, v.Message)
		}
	}
}

// TestJudgeNoisyOverlap: a 15% shift drowned in noise is not significant
// and passes even though it is beyond the tolerance.
func TestJudgeNoisyOverlap(t *testing.T) {
	rng := newRNG()
	baseline := normal(rng, 10, 100, 50)
	canary := normal(rng, 10, 115, 50)
	v := Judge(canary, baseline, Spec{Name: "latency", Direction: Increase, Tolerance: 0.1})
	if v.Outcome != Pass {
		t.Errorf("%s: %s, want Pass", v.Message, v.Outcome)
	}
	if v.P < 0.05 {
		t.Errorf("p=%v: the premise (not significant) does not hold", v.P)
	}
}

// TestJudgeFalseAlarmRate: with both sides drawn from the same
// distribution, the test is significant at alpha in about alpha of the
// trials (at most alpha, up to chance, for the exact test, which is
// discrete), and the tolerance can only lower the false alarms.
func TestJudgeFalseAlarmRate(t *testing.T) {
	rng := newRNG()
	const trials = 2000
	for _, n := range []int{8, 20, 30, 60} {
		significant, failed := 0, 0
		for range trials {
			b, c := normal(rng, n, 100, 30), normal(rng, n, 100, 30)
			v := Judge(c, b, Spec{Direction: Increase, Tolerance: 0.1})
			if v.P < DefaultAlpha {
				significant++
			}
			if v.Outcome == Fail {
				failed++
			}
		}
		rate, failRate := float64(significant)/trials, float64(failed)/trials
		t.Logf("n=%d: p < 0.05 in %.3f of trials, Fail in %.3f", n, rate, failRate)
		// The binomial standard deviation of the rate is about 0.005.
		if rate < 0.03 || rate > 0.065 {
			t.Errorf("n=%d: p < 0.05 in %.3f of %d trials, want about 0.05", n, rate, trials)
		}
		if failRate > rate {
			t.Errorf("n=%d: Fail in %.3f of trials, more than significant (%.3f)", n, failRate, rate)
		}
	}
}

// TestJudgeWithinTolerance: a 5% shift with little noise is significant
// but within a 10% tolerance.
func TestJudgeWithinTolerance(t *testing.T) {
	rng := newRNG()
	baseline := normal(rng, 30, 100, 0.5)
	canary := normal(rng, 30, 105, 0.5)
	v := Judge(canary, baseline, Spec{Direction: Increase, Tolerance: 0.1})
	if v.Outcome != Pass || v.P >= 0.001 {
		t.Errorf("%s: %s, want Pass with p < 0.001", v.Message, v.Outcome)
	}
	if v := Judge(canary, baseline, Spec{Direction: Increase, Tolerance: 0.04}); v.Outcome != Fail {
		t.Errorf("tolerance 4%%: %s, want Fail", v.Message)
	}
}

func TestJudgeTooFewSamples(t *testing.T) {
	rng := newRNG()
	canary, baseline := normal(rng, 3, 200, 1), normal(rng, 30, 100, 1)
	for policy, want := range map[NoDataPolicy]Decision{
		"": DecisionFail, NoDataFail: DecisionFail, NoDataHold: DecisionHold, NoDataPass: DecisionPass,
	} {
		v := Judge(canary, baseline, Spec{Name: "latency", OnNoData: policy})
		if v.Outcome != TooFewSamples || v.Decision != want {
			t.Errorf("onNoData %q: %s/%s, want TooFewSamples/%s", policy, v.Outcome, v.Decision, want)
		}
		if v.P != 1 || v.Shift != 0 || v.CanaryCount != 3 || v.BaselineCount != 30 {
			t.Errorf("onNoData %q: %+v", policy, v)
		}
	}
	v := Judge(canary, baseline, Spec{Name: "latency", OnNoData: NoDataHold})
	if want := "latency: too few samples: canary 3, primary 30, need 5 each (onNoData: hold)"; v.Message != want {
		t.Errorf("message %q, want %q", v.Message, want)
	}
	if v := Judge(canary, baseline, Spec{MinSamples: 3, Direction: Increase}); v.Outcome != Fail {
		t.Errorf("minSamples 3: %s, want Fail", v.Message)
	}
}

func TestJudgeNoData(t *testing.T) {
	some := []float64{1, 2, 3, 4, 5, 6}
	for _, tc := range []struct {
		canary, baseline []float64
		policy           NoDataPolicy
		decision         Decision
		message          string
	}{
		{nil, some, NoDataHold, DecisionHold, "rps: no usable samples from canary (onNoData: hold)"},
		{some, []float64{}, NoDataPass, DecisionPass, "rps: no usable samples from primary (onNoData: pass)"},
		{nil, nil, NoDataFail, DecisionFail, "rps: no usable samples from canary or primary (onNoData: fail)"},
		{nil, some, "", DecisionFail, "rps: no usable samples from canary (onNoData: fail)"},
		{[]float64{math.NaN(), math.Inf(1)}, some, NoDataHold, DecisionHold,
			"rps: no usable samples from canary; 2 NaN/Inf canary samples dropped (onNoData: hold)"},
	} {
		v := Judge(tc.canary, tc.baseline, Spec{Name: "rps", OnNoData: tc.policy})
		if v.Outcome != NoData || v.Decision != tc.decision || v.Message != tc.message {
			t.Errorf("%v vs %v, onNoData %q: %s/%s %q, want NoData/%s %q",
				tc.canary, tc.baseline, tc.policy, v.Outcome, v.Decision, v.Message, tc.decision, tc.message)
		}
	}
}

// TestJudgeTies: samples that take only a few values (bucketed or rounded
// metrics).
func TestJudgeTies(t *testing.T) {
	rng := newRNG()
	buckets := func(n, offset int) []float64 {
		s := make([]float64, n)
		for i := range s {
			s[i] = float64(10 * (1 + rng.IntN(3) + offset))
		}
		return s
	}
	for _, n := range []int{12, 40} {
		baseline, same, worse := buckets(n, 0), buckets(n, 0), buckets(n, 1)
		if v := Judge(same, baseline, Spec{Direction: Increase, Tolerance: 0.1}); v.Outcome != Pass {
			t.Errorf("n=%d same buckets: %s, want Pass", n, v.Message)
		}
		v := Judge(worse, baseline, Spec{Direction: Increase, Tolerance: 0.1})
		if v.Outcome != Fail || v.Shift != 10 {
			t.Errorf("n=%d one bucket up: %s (shift %v), want Fail with shift 10", n, v.Message, v.Shift)
		}
	}
}

func TestJudgeAllEqual(t *testing.T) {
	five := []float64{5, 5, 5, 5, 5, 5, 5, 5, 5, 5}
	v := Judge(five, five, Spec{Direction: Increase})
	if v.Outcome != Pass || v.P != 1 || v.Shift != 0 {
		t.Errorf("all equal: %+v, want Pass with p=1 and no shift", v)
	}
	six := []float64{6, 6, 6, 6, 6, 6, 6, 6, 6, 6}
	v = Judge(six, five, Spec{Direction: Increase, Tolerance: 0.1})
	if v.Outcome != Fail || v.Shift != 1 || v.RelativeShift != 0.2 || v.P != 1.0/184756 {
		t.Errorf("six against five: %+v, want Fail, shift 1 (20%%), p=1/184756", v)
	}
	if v := Judge(six, five, Spec{Direction: Increase, Tolerance: 0.25}); v.Outcome != Pass {
		t.Errorf("six against five, tolerance 25%%: %s, want Pass", v.Message)
	}
	// The shift must exceed both tolerances.
	if v := Judge(six, five, Spec{Direction: Increase, Tolerance: 0.1, AbsTolerance: 1}); v.Outcome != Pass {
		t.Errorf("six against five, absolute tolerance 1: %s, want Pass", v.Message)
	}
	if v := Judge(six, five, Spec{Direction: Increase, Tolerance: 0.1, AbsTolerance: 0.9}); v.Outcome != Fail {
		t.Errorf("six against five, absolute tolerance 0.9: %s, want Fail", v.Message)
	}
}

// TestJudgeBaselineMedianZero: an error rate of 0 on the primary has no
// relative shift; any significant increase is beyond a relative tolerance,
// and AbsTolerance sets a floor.
func TestJudgeBaselineMedianZero(t *testing.T) {
	zeros := make([]float64, 10)
	errs := []float64{0.02, 0.01, 0.03, 0.02, 0.02, 0.01, 0.02, 0.03, 0.02, 0.02}
	v := Judge(errs, zeros, Spec{Name: "errors", Direction: Increase, Tolerance: 0.1})
	if v.Outcome != Fail || v.HasRelativeShift || v.RelativeShift != 0 || v.Shift != 0.02 {
		t.Errorf("%+v, want Fail without a relative shift", v)
	}
	if !strings.HasPrefix(v.Message, "errors: canary +0.02 vs primary median 0 (p<0.001, tolerance 10%") {
		t.Errorf("message %q", v.Message)
	}
	v = Judge(errs, zeros, Spec{Name: "errors", Direction: Increase, Tolerance: 0.1, AbsTolerance: 0.05})
	if v.Outcome != Pass {
		t.Errorf("absolute tolerance 0.05: %s, want Pass", v.Message)
	}
	if want := "errors: canary +0.02 vs primary median 0 (p<0.001, tolerance 10% and 0.05)"; v.Message != want {
		t.Errorf("message %q, want %q", v.Message, want)
	}
}

// TestJudgeDropsNonFinite: NaN and ±Inf are dropped, counted and reported,
// and the callers' slices are left alone.
func TestJudgeDropsNonFinite(t *testing.T) {
	nan, inf := math.NaN(), math.Inf(1)
	canary := []float64{120, nan, 121, 119, -inf, 122, 118, inf, 120, 121}
	baseline := []float64{100, 101, 99, 100, nan, 102, 98, 100}
	before := slices.Clone(canary)
	v := Judge(canary, baseline, Spec{Name: "latency", Direction: Increase, Tolerance: 0.1})
	if v.CanaryCount != 7 || v.CanaryDropped != 3 || v.BaselineCount != 7 || v.BaselineDropped != 1 {
		t.Errorf("counts %+v", v)
	}
	if v.Outcome != Fail || v.CanaryMedian != 120 || v.BaselineMedian != 100 {
		t.Errorf("%+v, want Fail with medians 120 and 100", v)
	}
	if !strings.HasSuffix(v.Message, "; 3 canary and 1 primary NaN/Inf samples dropped") {
		t.Errorf("message %q", v.Message)
	}
	for i := range canary {
		if math.Float64bits(canary[i]) != math.Float64bits(before[i]) {
			t.Fatalf("canary samples modified: %v", canary)
		}
	}
	// Dropping can leave too few.
	v = Judge([]float64{1, nan, nan, nan, nan, 2}, baseline, Spec{})
	if v.Outcome != TooFewSamples || v.CanaryCount != 2 || v.CanaryDropped != 4 {
		t.Errorf("%+v, want TooFewSamples", v)
	}
}

func TestJudgeMessage(t *testing.T) {
	// Primary 10..100 (median 55), canary 11 higher: shift 11 (+20%), U =
	// 64 of 100, one-sided exact p = 29099/184756 = 0.1575 (enumerated).
	var baseline, canary []float64
	for i := 1; i <= 10; i++ {
		baseline = append(baseline, float64(10*i))
		canary = append(canary, float64(10*i+11))
	}
	v := Judge(canary, baseline, Spec{Name: "latency", Direction: Increase, Tolerance: 0.1})
	if want := "latency: canary +20.0% vs primary (p=0.157, tolerance 10%)"; v.Message != want {
		t.Errorf("message %q, want %q", v.Message, want)
	}
	if v.Outcome != Pass || math.Abs(v.P-29099.0/184756) > 1e-12 || v.Shift != 11 || !v.Exact {
		t.Errorf("%+v", v)
	}
	// Lower is worse, canary 11 lower than 66, no name.
	v = Judge(baseline, canary, Spec{Direction: Decrease, Tolerance: 0.05})
	if want := "canary -16.7% vs primary (p=0.157, tolerance 5%)"; v.Message != want {
		t.Errorf("message %q, want %q", v.Message, want)
	}
	for p, want := range map[float64]string{0.0021: "p=0.0021", 0.5: "p=0.5", 1: "p=1", 0.0009: "p<0.001", 0.0496: "p=0.0496"} {
		if got := formatP(p); got != want {
			t.Errorf("formatP(%v) = %q, want %q", p, got, want)
		}
	}
}

func TestJudgeInvalidSpec(t *testing.T) {
	s := []float64{1, 2, 3, 4, 5}
	for _, spec := range []Spec{
		{Direction: "up"},
		{OnNoData: "ignore"},
		{Tolerance: -0.1},
		{Tolerance: math.NaN()},
		{Tolerance: math.Inf(1)},
		{AbsTolerance: -1},
		{Alpha: 1},
		{Alpha: -0.05},
		{Alpha: math.NaN()},
		{MinSamples: -1},
	} {
		if spec.Validate() == nil {
			t.Errorf("%+v: Validate accepts it", spec)
		}
		v := Judge(s, s, spec)
		if v.Outcome != Invalid || v.Decision != DecisionFail || !strings.Contains(v.Message, "invalid spec") {
			t.Errorf("%+v: %+v, want Invalid/Fail", spec, v)
		}
	}
	if err := (Spec{Direction: Decrease, Tolerance: 0.1, Alpha: 0.01, MinSamples: 3, OnNoData: NoDataHold}).Validate(); err != nil {
		t.Errorf("valid spec: %v", err)
	}
}

// TestJudgeAlpha: the same evidence fails at alpha 0.05 and passes at 0.01.
func TestJudgeAlpha(t *testing.T) {
	// U = 22 of 25 for 5 and 5: one-sided exact p = P(U <= 3) = 7/252.
	x, y := withU(5, 5, 22)
	for i := range x {
		x[i] += 100
	}
	for i := range y {
		y[i] += 100
	}
	v := Judge(x, y, Spec{Direction: Increase})
	if math.Abs(v.P-7.0/252) > 1e-12 || v.Outcome != Fail {
		t.Fatalf("%+v, want Fail with p = 7/252", v)
	}
	if v := Judge(x, y, Spec{Direction: Increase, Alpha: 0.01}); v.Outcome != Pass {
		t.Errorf("alpha 0.01: %s, want Pass", v.Message)
	}
	// Significant means p < alpha, not p <= alpha.
	if v := Judge(x, y, Spec{Direction: Increase, Alpha: 7.0 / 252}); v.Outcome != Pass {
		t.Errorf("alpha = p: %s, want Pass", v.Message)
	}
}
