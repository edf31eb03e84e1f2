package judge

import (
	"encoding/binary"
	"math"
	"strings"
	"testing"
)

// fuzzSamples decodes b into at most 64 samples: 8 bytes make any float64
// (NaN and ±Inf included) when the first byte is odd, and a small integer
// (plenty of ties) otherwise.
func fuzzSamples(b []byte) []float64 {
	var s []float64
	for len(b) > 0 && len(s) < 64 {
		if b[0]%2 == 1 && len(b) >= 9 {
			s = append(s, math.Float64frombits(binary.LittleEndian.Uint64(b[1:9])))
			b = b[9:]
			continue
		}
		s = append(s, float64(b[0]/2%8))
		b = b[1:]
	}
	return s
}

func FuzzJudge(f *testing.F) {
	f.Add([]byte{2, 4, 6, 8, 10, 12}, []byte{4, 6, 8, 10, 12, 14}, uint8(0), 0.1, 0.05, uint8(0))
	f.Add([]byte{0, 0, 0, 0, 0}, []byte{2, 2, 2, 2, 2, 2}, uint8(1), 0.0, 0.0, uint8(1))
	f.Add([]byte{1, 0, 0, 0, 0, 0, 0, 0xf8, 0x7f, 2, 2, 2, 2, 2}, []byte{}, uint8(2), 0.3, 0.01, uint8(2))
	f.Add([]byte{1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xef, 0x7f, 1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xef, 0xff, 2, 4, 6},
		[]byte{1, 0, 0, 0, 0, 0, 0, 0xe0, 0x7f, 8, 10, 12, 14, 0}, uint8(3), 0.5, 0.2, uint8(3))
	directions := []Direction{"", Increase, Decrease, Either}
	f.Fuzz(func(t *testing.T, cb, bb []byte, dir uint8, tol, alpha float64, minSamples uint8) {
		canary, baseline := fuzzSamples(cb), fuzzSamples(bb)
		spec := Spec{
			Name:       "m",
			Direction:  directions[int(dir)%len(directions)],
			Tolerance:  tol,
			Alpha:      alpha,
			MinSamples: int(minSamples % 8),
			OnNoData:   NoDataHold,
		}
		v := Judge(canary, baseline, spec)
		check(t, v, len(canary), len(baseline))
		if v.Outcome == Invalid {
			if spec.Validate() == nil {
				t.Fatalf("Invalid verdict for a valid spec: %s", v.Message)
			}
			return
		}

		swapped := spec
		switch spec.Direction {
		case Increase:
			swapped.Direction = Decrease
		case Decrease:
			swapped.Direction = Increase
		}
		w := Judge(baseline, canary, swapped)
		check(t, w, len(baseline), len(canary))
		if w.Shift != -v.Shift {
			t.Fatalf("shift %v, swapped %v: not opposite", v.Shift, w.Shift)
		}
		if v.RelativeShift != 0 && w.RelativeShift != 0 && math.Signbit(w.RelativeShift) == math.Signbit(v.RelativeShift) {
			t.Fatalf("relative shift %v, swapped %v: same sign", v.RelativeShift, w.RelativeShift)
		}
		if w.CanaryCount != v.BaselineCount || w.BaselineCount != v.CanaryCount ||
			w.CanaryDropped != v.BaselineDropped || w.BaselineDropped != v.CanaryDropped ||
			w.CanaryMedian != v.BaselineMedian || w.BaselineMedian != v.CanaryMedian {
			t.Fatalf("swapped counts or medians do not match: %+v and %+v", v, w)
		}
		// Increase for x against y is Decrease for y against x: the same
		// one-sided test, the same p-value; Either is symmetric.
		if math.Abs(w.P-v.P) > 1e-12 {
			t.Fatalf("p %v, swapped %v", v.P, w.P)
		}
		if w.Outcome != v.Outcome && (v.Outcome == NoData || v.Outcome == TooFewSamples || w.Outcome == NoData || w.Outcome == TooFewSamples) {
			t.Fatalf("outcome %s, swapped %s", v.Outcome, w.Outcome)
		}
	})
}

// check asserts what holds of every verdict.
func check(t *testing.T, v Verdict, nc, nb int) {
	t.Helper()
	if !(v.P >= 0 && v.P <= 1) {
		t.Fatalf("p=%v outside [0, 1]: %+v", v.P, v)
	}
	for _, f := range []float64{v.Shift, v.RelativeShift, v.CanaryMedian, v.BaselineMedian} {
		if math.IsNaN(f) || math.IsInf(f, 0) {
			t.Fatalf("a number is not finite (a status could not hold it): %+v", v)
		}
	}
	if v.RelativeShift != 0 && (!v.HasRelativeShift || (v.RelativeShift > 0) != (v.Shift > 0)) {
		t.Fatalf("relative shift %v for shift %v: %+v", v.RelativeShift, v.Shift, v)
	}
	if v.CanaryCount+v.CanaryDropped != nc || v.BaselineCount+v.BaselineDropped != nb {
		t.Fatalf("counts %+v for %d and %d samples", v, nc, nb)
	}
	if v.Message == "" || strings.ContainsAny(v.Message, "\n\r") {
		t.Fatalf("message %q is not one line", v.Message)
	}
	switch v.Outcome {
	case Pass:
		if v.Decision != DecisionPass {
			t.Fatalf("%+v", v)
		}
	case Fail, Invalid:
		if v.Decision != DecisionFail {
			t.Fatalf("%+v", v)
		}
	case NoData:
		if v.CanaryCount != 0 && v.BaselineCount != 0 {
			t.Fatalf("NoData with samples on both sides: %+v", v)
		}
	case TooFewSamples:
	default:
		t.Fatalf("unknown outcome %q", v.Outcome)
	}
	if v.Outcome == Fail && v.Shift == 0 {
		t.Fatalf("Fail without a shift: %+v", v)
	}
}

func BenchmarkJudge60(b *testing.B) {
	rng := newRNG()
	canary, baseline := normal(rng, 60, 110, 10), normal(rng, 60, 100, 10)
	spec := Spec{Name: "latency", Direction: Increase, Tolerance: 0.05}
	b.ReportAllocs()
	for b.Loop() {
		Judge(canary, baseline, spec)
	}
}

func BenchmarkJudge20Exact(b *testing.B) {
	rng := newRNG()
	canary, baseline := normal(rng, 20, 110, 10), normal(rng, 20, 100, 10)
	spec := Spec{Name: "latency", Direction: Increase, Tolerance: 0.05}
	b.ReportAllocs()
	for b.Loop() {
		Judge(canary, baseline, spec)
	}
}

func BenchmarkJudge20ExactTies(b *testing.B) {
	rng := newRNG()
	canary, baseline := make([]float64, 20), make([]float64, 20)
	for i := range canary {
		canary[i], baseline[i] = float64(rng.IntN(10)), float64(rng.IntN(10))
	}
	spec := Spec{Name: "latency", Direction: Increase, Tolerance: 0.05}
	b.ReportAllocs()
	for b.Loop() {
		Judge(canary, baseline, spec)
	}
}
