package judge

import (
	"math"
	"math/rand/v2"
	"testing"
)

// bruteU counts the pairs x[i] > y[j], ties counting 1/2: the definition of
// U, independent of ranks.
func bruteU(x, y []float64) float64 {
	var u float64
	for _, a := range x {
		for _, b := range y {
			switch {
			case a > b:
				u++
			case a == b:
				u += 0.5
			}
		}
	}
	return u
}

// permutationP is the exact permutation p-value of U(x, y) by enumerating
// every split of the pooled values into groups of len(x) and len(y); ties
// are handled by the definition of U, so it is exact with ties too. Only
// for tiny samples (2^(n1+n2) masks).
func permutationP(x, y []float64, alt Alternative) float64 {
	pool := append(append([]float64(nil), x...), y...)
	n1, n := len(x), len(x)+len(y)
	u0 := bruteU(x, y)
	var total, le, ge float64
	for mask := 0; mask < 1<<n; mask++ {
		var xs, ys []float64
		for i := 0; i < n; i++ {
			if mask&(1<<i) != 0 {
				xs = append(xs, pool[i])
			} else {
				ys = append(ys, pool[i])
			}
		}
		if len(xs) != n1 {
			continue
		}
		u := bruteU(xs, ys)
		total++
		if u <= u0+1e-9 {
			le++
		}
		if u >= u0-1e-9 {
			ge++
		}
	}
	switch alt {
	case Greater:
		return ge / total
	case Less:
		return le / total
	default:
		return min(1, 2*min(le, ge)/total)
	}
}

func binomial(n, k int) float64 {
	r := 1.0
	for i := 1; i <= k; i++ {
		r = r * float64(n-k+i) / float64(i)
	}
	return math.Round(r)
}

// TestExactCountsAgainstRecurrence checks the Gaussian-binomial counts
// against the textbook recurrence f(n1, n2, u) = f(n1-1, n2, u-n2) +
// f(n1, n2-1, u) (the largest value is in the first group, which then beats
// all n2 values of the second, or it is in the second group), and that
// they sum to C(n1+n2, n1) and are symmetric.
func TestExactCountsAgainstRecurrence(t *testing.T) {
	memo := map[[3]int]float64{}
	var f func(n1, n2, u int) float64
	f = func(n1, n2, u int) float64 {
		if u < 0 {
			return 0
		}
		if n1 == 0 || n2 == 0 {
			if u == 0 {
				return 1
			}
			return 0
		}
		key := [3]int{n1, n2, u}
		if v, ok := memo[key]; ok {
			return v
		}
		v := f(n1-1, n2, u-n2) + f(n1, n2-1, u)
		memo[key] = v
		return v
	}
	for n1 := 1; n1 <= ExactMaxSamples; n1++ {
		for n2 := 1; n2 <= ExactMaxSamples; n2++ {
			c := exactCounts(n1, n2)
			if len(c) != n1*n2+1 {
				t.Fatalf("(%d,%d): %d counts, want %d", n1, n2, len(c), n1*n2+1)
			}
			var sum float64
			for u, v := range c {
				if v != c[n1*n2-u] {
					t.Fatalf("(%d,%d): count(%d)=%v but count(%d)=%v, not symmetric", n1, n2, u, v, n1*n2-u, c[n1*n2-u])
				}
				if want := f(n1, n2, u); v != want {
					t.Fatalf("(%d,%d): count(%d)=%v, want %v", n1, n2, u, v, want)
				}
				sum += v
			}
			if want := binomial(n1+n2, n1); sum != want {
				t.Fatalf("(%d,%d): counts sum to %v, want C(%d,%d)=%v", n1, n2, sum, n1+n2, n1, want)
			}
		}
	}
}

// TestMannWhitneyExactAgainstEnumeration compares the exact p-values with
// a brute-force enumeration of every split of the pooled samples.
func TestMannWhitneyExactAgainstEnumeration(t *testing.T) {
	rng := rand.New(rand.NewPCG(14, 4))
	for trial := 0; trial < 300; trial++ {
		n1, n2 := 1+rng.IntN(6), 1+rng.IntN(6)
		x, y := make([]float64, n1), make([]float64, n2)
		// Distinct values: a random permutation of 0..n-1, scaled.
		perm := rng.Perm(n1 + n2)
		for i := range x {
			x[i] = float64(perm[i]) * 1.5
		}
		for j := range y {
			y[j] = float64(perm[n1+j]) * 1.5
		}
		for _, alt := range []Alternative{TwoSided, Greater, Less} {
			got := MannWhitney(x, y, alt)
			if !got.Exact || got.Ties {
				t.Fatalf("x=%v y=%v: Exact=%v Ties=%v, want exact without ties", x, y, got.Exact, got.Ties)
			}
			if u := bruteU(x, y); got.U != u {
				t.Fatalf("x=%v y=%v: U=%v, want %v", x, y, got.U, u)
			}
			if want := permutationP(x, y, alt); math.Abs(got.P-want) > 1e-12 {
				t.Fatalf("x=%v y=%v alt=%v: P=%v, want %v", x, y, alt, got.P, want)
			}
		}
	}
}

// withU builds n1 and n2 distinct values whose U (of the first) is u: the
// second sample is 0..n2-1 and each value of the first sits above a chosen
// number of them.
func withU(n1, n2, u int) (x, y []float64) {
	y = make([]float64, n2)
	for j := range y {
		y[j] = float64(j)
	}
	x = make([]float64, n1)
	for i := range x {
		above := min(u, n2)
		u -= above
		// Below 1/2 apart, so the values stay distinct and between the
		// same values of y.
		x[i] = float64(above) - 0.5 + 0.01*float64(i)
	}
	if u != 0 {
		panic("u too large")
	}
	return x, y
}

// TestMannWhitneyCriticalValues checks the exact test against the
// published table of critical values of U (two-sided, alpha 0.05): the
// test rejects at the critical value and not one above it.
func TestMannWhitneyCriticalValues(t *testing.T) {
	table := []struct{ n1, n2, crit int }{
		{5, 5, 2}, {6, 6, 5}, {7, 7, 8}, {8, 8, 13}, {9, 9, 17}, {10, 10, 23},
		{11, 11, 30}, {12, 12, 37}, {13, 13, 45}, {14, 14, 55}, {15, 15, 64},
		{16, 16, 75}, {17, 17, 87}, {18, 18, 99}, {19, 19, 113}, {20, 20, 127},
		{5, 10, 8}, {10, 20, 55},
	}
	for _, tc := range table {
		x, y := withU(tc.n1, tc.n2, tc.crit)
		at := MannWhitney(x, y, TwoSided)
		if at.U != float64(tc.crit) || !at.Exact {
			t.Fatalf("(%d,%d): U=%v exact=%v, want %d exact", tc.n1, tc.n2, at.U, at.Exact, tc.crit)
		}
		x, y = withU(tc.n1, tc.n2, tc.crit+1)
		above := MannWhitney(x, y, TwoSided)
		if !(at.P <= 0.05) || !(above.P > 0.05) {
			t.Errorf("(%d,%d): p(U=%d)=%.5f, p(U=%d)=%.5f; the table's critical value is %d",
				tc.n1, tc.n2, tc.crit, at.P, tc.crit+1, above.P, tc.crit)
		}
	}
}

// TestMannWhitneyTextbook checks values worked out by hand.
func TestMannWhitneyTextbook(t *testing.T) {
	x := []float64{1, 2, 3, 4, 5}
	y := []float64{6, 7, 8, 9, 10}
	// Complete separation of 5 and 5: only 1 of the C(10,5) = 252 splits
	// is this extreme in one direction.
	for _, tc := range []struct {
		alt  Alternative
		want float64
	}{{TwoSided, 2.0 / 252}, {Less, 1.0 / 252}, {Greater, 1}} {
		got := MannWhitney(x, y, tc.alt)
		if got.U != 0 || math.Abs(got.P-tc.want) > 1e-15 {
			t.Errorf("alt %v: U=%v P=%v, want 0 and %v", tc.alt, got.U, got.P, tc.want)
		}
	}

	// 25 and 25, completely separated: too many for the exact test, so the
	// normal approximation: mean 312.5, variance 625*51/12 = 2656.25,
	// z = (312.5 - 0.5)/sqrt(2656.25) = 6.0537, p = 2*(1 - Phi(z)).
	x, y = make([]float64, 25), make([]float64, 25)
	for i := range x {
		x[i], y[i] = float64(i), float64(100+i)
	}
	got := MannWhitney(x, y, TwoSided)
	if got.Exact || got.U != 0 || math.Abs(got.P-1.4156562248495634e-09)/1.4156562248495634e-09 > 1e-9 {
		t.Errorf("25 vs 25 separated: %+v, want normal approximation with P=1.41566e-09", got)
	}
	// One-sided, half of it. The other way, 1 - Phi(-(312.5 + 0.5)/sd):
	// with the continuity correction the two one-sided p-values add up to
	// a little more than 1.
	if got := MannWhitney(x, y, Less); math.Abs(got.P-1.4156562248495634e-09/2)/(1.4156562248495634e-09/2) > 1e-9 {
		t.Errorf("25 vs 25 separated, less: P=%v, want 7.078e-10", got.P)
	}
	if got := MannWhitney(x, y, Greater); math.Abs(got.P-0.9999999993726476) > 1e-15 {
		t.Errorf("25 vs 25 separated, greater: P=%v, want 0.9999999993726476", got.P)
	}
	if got := MannWhitney(y, x, Greater); math.Abs(got.P-1.4156562248495634e-09/2)/(1.4156562248495634e-09/2) > 1e-9 {
		t.Errorf("25 vs 25 separated, swapped, greater: P=%v, want 7.078e-10", got.P)
	}

	// Each side constant, 10 sixes against 10 fives: exact, and only one of
	// the C(20,10) = 184756 splits has every six in the first sample.
	x, y = make([]float64, 10), make([]float64, 10)
	for i := range x {
		x[i], y[i] = 6, 5
	}
	got = MannWhitney(x, y, Greater)
	if !got.Exact || !got.Ties || got.U != 100 || math.Abs(got.P-1.0/184756) > 1e-18 {
		t.Errorf("10 sixes against 10 fives: %+v, want exact with ties, U=100, P=1/184756", got)
	}

	// The same with 25 a side: the normal approximation, two tie groups of
	// 25, sum(t^3-t) = 31200, variance 625/12*(51 - 31200/2450) = 1992.98,
	// z = (625 - 312.5 - 0.5)/sqrt(1992.98) = 6.9888, p = 1 - Phi(z).
	x, y = make([]float64, 25), make([]float64, 25)
	for i := range x {
		x[i], y[i] = 6, 5
	}
	got = MannWhitney(x, y, Greater)
	if got.Exact || !got.Ties || got.U != 625 || math.Abs(got.P-1.3862365462168991e-12)/1.3862365462168991e-12 > 1e-6 {
		t.Errorf("25 sixes against 25 fives: %+v, want normal approximation with ties, U=625, P=1.386e-12", got)
	}

	// A published example of the normal approximation with continuity
	// correction (ClickHouse's mannWhitneyUTest documentation): 10, 11, 12
	// against 1, 2, 3, greater, gives U = 9 and p = 0.04042779918503192.
	// MannWhitney itself is exact at this size (1/20), so ask normalP.
	if p := normalP(3, 3, 9, 0, Greater); math.Abs(p-0.04042779918503192) > 1e-12 {
		t.Errorf("normal approximation, 3 against 3 separated: %v, want 0.04042779918503192", p)
	}
	if got := MannWhitney([]float64{10, 11, 12}, []float64{1, 2, 3}, Greater); got.U != 9 || got.P != 1.0/20 {
		t.Errorf("3 against 3 separated: %+v, want U=9 and exact P=1/20", got)
	}

	// Everything equal: no evidence either way.
	for _, alt := range []Alternative{TwoSided, Greater, Less} {
		if got := MannWhitney([]float64{3, 3, 3}, []float64{3, 3}, alt); got.P != 1 || got.U != 3 {
			t.Errorf("all equal, alt %v: %+v, want U=3 P=1", alt, got)
		}
	}
	if got := MannWhitney(nil, []float64{1}, TwoSided); got.P != 1 {
		t.Errorf("empty x: P=%v, want 1", got.P)
	}
}

// TestMannWhitneyExactWithTies compares the exact p-values of samples
// full of ties with a brute-force enumeration of every split.
func TestMannWhitneyExactWithTies(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 7))
	for trial := 0; trial < 60; trial++ {
		n1, n2 := 1+rng.IntN(8), 1+rng.IntN(8)
		x, y := make([]float64, n1), make([]float64, n2)
		for i := range x {
			x[i] = float64(rng.IntN(3) + trial%2)
		}
		for j := range y {
			y[j] = float64(rng.IntN(3))
		}
		for _, alt := range []Alternative{TwoSided, Greater, Less} {
			got := MannWhitney(x, y, alt)
			if !got.Exact {
				t.Fatalf("x=%v y=%v: not exact", x, y)
			}
			if u := bruteU(x, y); got.U != u {
				t.Fatalf("x=%v y=%v: U=%v, want %v", x, y, got.U, u)
			}
			if want := permutationP(x, y, alt); math.Abs(got.P-want) > 1e-12 {
				t.Fatalf("x=%v y=%v alt=%v: P=%v, want %v", x, y, alt, got.P, want)
			}
		}
	}
}

// TestTieCorrectedVariance checks the normal approximation's mean and
// tie-corrected variance against the moments of the exact permutation
// distribution of U (which tiedCounts is checked against enumeration for
// above): they must agree to rounding, so a wrong tie correction fails.
func TestTieCorrectedVariance(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 9))
	for trial := 0; trial < 40; trial++ {
		n1, n2 := 2+rng.IntN(30), 2+rng.IntN(30)
		x, y := make([]float64, n1), make([]float64, n2)
		levels := 1 + rng.IntN(8)
		for i := range x {
			x[i] = float64(rng.IntN(levels))
		}
		for j := range y {
			y[j] = float64(rng.IntN(levels))
		}
		_, tieTerm, groups := rankSum(x, y)
		counts := tiedCounts(n1, groups)
		var total, sum, sumSq float64
		for s, ways := range counts {
			u := float64(s) / 2
			total += ways
			sum += ways * u
			sumSq += ways * u * u
		}
		mean := sum / total
		variance := sumSq/total - mean*mean
		fn1, fn2, nn := float64(n1), float64(n2), float64(n1+n2)
		wantMean := fn1 * fn2 / 2
		wantVar := fn1 * fn2 / 12 * ((nn + 1) - tieTerm/(nn*(nn-1)))
		if math.Abs(mean-wantMean) > 1e-9*wantMean || math.Abs(variance-wantVar) > 1e-6*max(1, wantVar) {
			t.Fatalf("n1=%d n2=%d groups=%v: permutation mean %v variance %v, formula %v and %v",
				n1, n2, groups, mean, variance, wantMean, wantVar)
		}
	}
}

// TestMannWhitneyNormalWithTies checks the tie-corrected normal
// approximation, used above ExactMaxSamples, against the exact permutation
// distribution of samples with many ties (30 and 30 values from 0..9).
func TestMannWhitneyNormalWithTies(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 7))
	worst := 0.0
	for trial := 0; trial < 30; trial++ {
		x, y := make([]float64, 30), make([]float64, 30)
		for i := range x {
			x[i] = float64(min(9, rng.IntN(10)+trial%4))
			y[i] = float64(rng.IntN(10))
		}
		r1, _, groups := rankSum(x, y)
		u := r1 - 30*31/2
		for _, alt := range []Alternative{TwoSided, Greater, Less} {
			got := MannWhitney(x, y, alt)
			if got.Exact || !got.Ties || got.U != u {
				t.Fatalf("x=%v y=%v: %+v, want the normal approximation with ties and U=%v", x, y, got, u)
			}
			want := tailP(tiedCounts(30, groups), int(2*u), alt)
			worst = max(worst, math.Abs(got.P-want))
			if math.Abs(got.P-want) > 0.02 {
				t.Errorf("x=%v y=%v alt=%v: P=%.4f, exact permutation P=%.4f", x, y, alt, got.P, want)
			}
		}
	}
	t.Logf("largest difference from the exact permutation p-value: %.4f", worst)
}
