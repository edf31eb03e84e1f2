package judge

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

// bruteHodgesLehmann sorts every difference.
func bruteHodgesLehmann(x, y []float64) float64 {
	var d []float64
	for _, a := range x {
		for _, b := range y {
			d = append(d, a-b)
		}
	}
	slices.Sort(d)
	n := len(d)
	if n%2 == 1 {
		return clampFinite(d[n/2])
	}
	return clampFinite(midpoint(d[n/2-1], d[n/2]))
}

func TestHodgesLehmannAgainstSorting(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	draws := []func() float64{
		func() float64 { return rng.NormFloat64() },
		func() float64 { return float64(rng.IntN(4)) },        // ties
		func() float64 { return math.Exp(rng.NormFloat64()) }, // skewed
		func() float64 { return rng.NormFloat64() * 1e300 },   // differences overflow
		func() float64 { return rng.NormFloat64() * 1e-310 },  // subnormal
	}
	for trial := 0; trial < 500; trial++ {
		draw := draws[trial%len(draws)]
		x, y := make([]float64, 1+rng.IntN(25)), make([]float64, 1+rng.IntN(25))
		for i := range x {
			x[i] = draw()
		}
		for j := range y {
			y[j] = draw()
		}
		got, want := HodgesLehmann(x, y), bruteHodgesLehmann(x, y)
		if got != want {
			t.Fatalf("x=%v y=%v: %v, sorting every difference gives %v", x, y, got, want)
		}
		if back := HodgesLehmann(y, x); back != -got {
			t.Fatalf("x=%v y=%v: swapped gives %v, want %v", x, y, back, -got)
		}
	}
}

func TestHodgesLehmannKnown(t *testing.T) {
	for _, tc := range []struct {
		x, y []float64
		want float64
	}{
		// A pure shift is found exactly.
		{[]float64{11, 12, 13, 14}, []float64{1, 2, 3, 4}, 10},
		// Differences 1-5, 1-6, 2-5, 2-6 = -4, -5, -3, -4: median -4.
		{[]float64{1, 2}, []float64{5, 6}, -4},
		// Differences 10-1, 10-2, 10-3, 100-1, 100-2, 100-3: median
		// (10-1 + 100-3)/2 = 53; an outlier moves it only so far.
		{[]float64{10, 100}, []float64{1, 2, 3}, 53},
		// One sample each: their difference.
		{[]float64{3.5}, []float64{1}, 2.5},
		// -MaxFloat64 - MaxFloat64/2 overflows to -Inf, and the median of
		// it and MaxFloat64/2 is clamped.
		{[]float64{-math.MaxFloat64, math.MaxFloat64}, []float64{0.5 * math.MaxFloat64}, -math.MaxFloat64},
	} {
		if got := HodgesLehmann(tc.x, tc.y); got != tc.want {
			t.Errorf("HodgesLehmann(%v, %v) = %v, want %v", tc.x, tc.y, got, tc.want)
		}
	}
	if got := HodgesLehmann(nil, []float64{1}); !math.IsNaN(got) {
		t.Errorf("empty x: %v, want NaN", got)
	}
}

func TestOrderKey(t *testing.T) {
	values := []float64{math.Inf(-1), -math.MaxFloat64, -1, -math.SmallestNonzeroFloat64, math.Copysign(0, -1), 0,
		math.SmallestNonzeroFloat64, 1, math.MaxFloat64, math.Inf(1)}
	for i, v := range values {
		if back := fromOrderKey(orderKey(v)); math.Float64bits(back) != math.Float64bits(v) {
			t.Errorf("fromOrderKey(orderKey(%v)) = %v", v, back)
		}
		if i > 0 && orderKey(values[i-1]) >= orderKey(v) {
			t.Errorf("orderKey(%v) >= orderKey(%v)", values[i-1], v)
		}
	}
	if k := orderKey(math.NaN()); k >= orderKey(math.Inf(-1)) && k <= orderKey(math.Inf(1)) {
		t.Errorf("NaN's key lies between -Inf's and +Inf's")
	}
}
