package judge

import (
	"cmp"
	"math"
	"slices"
)

// ExactMaxSamples is the largest sample count per side for which
// [MannWhitney] computes the exact p-value; above it, it uses the normal
// approximation.
const ExactMaxSamples = 20

// Alternative is the alternative hypothesis of a Mann-Whitney test, about
// the first sample x against the second sample y.
type Alternative int

// Alternatives.
const (
	// TwoSided: x tends to be larger or smaller than y.
	TwoSided Alternative = iota
	// Greater: x tends to be larger than y.
	Greater
	// Less: x tends to be smaller than y.
	Less
)

// MannWhitneyResult is the outcome of a Mann-Whitney U test.
type MannWhitneyResult struct {
	// U is the statistic of the first sample: the number of pairs (x[i],
	// y[j]) with x[i] > y[j], ties counting 1/2. It lies in [0, n1*n2].
	U float64
	// P is the p-value under the test's alternative, in [0, 1].
	P float64
	// Exact is true when P comes from the exact distribution of U, false
	// when from the normal approximation.
	Exact bool
	// Ties is true when some value occurs more than once in the pooled
	// samples.
	Ties bool
}

// MannWhitney tests whether x and y come from the same distribution
// against alt. The samples must be finite and non-empty (MannWhitney
// returns P = 1 otherwise).
//
// When neither sample has more than ExactMaxSamples values the p-value is
// exact: from the distribution of U over every split of the pooled values
// into groups of len(x) and len(y) (without ties, the classic Mann-Whitney
// distribution; with ties, the permutation distribution of U with tied
// pairs counting 1/2, which the normal approximation is poor at for small
// samples full of ties). Otherwise it comes from the normal approximation
// with tie correction and continuity correction.
func MannWhitney(x, y []float64, alt Alternative) MannWhitneyResult {
	n1, n2 := len(x), len(y)
	if n1 == 0 || n2 == 0 {
		return MannWhitneyResult{P: 1}
	}
	r1, tieTerm, groups := rankSum(x, y)
	u := r1 - float64(n1)*float64(n1+1)/2
	res := MannWhitneyResult{U: u, Ties: tieTerm > 0}
	switch {
	case n1 > ExactMaxSamples || n2 > ExactMaxSamples:
		res.P = normalP(n1, n2, u, tieTerm, alt)
	case res.Ties:
		res.Exact = true
		res.P = tailP(tiedCounts(n1, groups), int(math.Round(2*u)), alt)
	default:
		res.Exact = true
		res.P = tailP(exactCounts(n1, n2), int(math.Round(u)), alt)
	}
	res.P = min(max(res.P, 0), 1)
	return res
}

// rankSum returns the sum of the ranks of x's values in the pooled sample
// (tied values share the average of their ranks), the tie term
// sum(t^3 - t) over the groups of t equal values, and the sizes of those
// groups from the smallest value up.
func rankSum(x, y []float64) (r1, tieTerm float64, groups []int) {
	type obs struct {
		v     float64
		fromX bool
	}
	all := make([]obs, 0, len(x)+len(y))
	for _, v := range x {
		all = append(all, obs{v, true})
	}
	for _, v := range y {
		all = append(all, obs{v, false})
	}
	slices.SortFunc(all, func(a, b obs) int { return cmp.Compare(a.v, b.v) })
	for i := 0; i < len(all); {
		j := i
		for j+1 < len(all) && all[j+1].v == all[i].v {
			j++
		}
		// Ranks are 1-based: positions i..j hold ranks i+1..j+1.
		avg := float64(i+j+2) / 2
		for k := i; k <= j; k++ {
			if all[k].fromX {
				r1 += avg
			}
		}
		if t := float64(j - i + 1); t > 1 {
			tieTerm += t*t*t - t
		}
		groups = append(groups, j-i+1)
		i = j + 1
	}
	return r1, tieTerm, groups
}

// exactCounts returns, for u = 0..n1*n2, the number of the C(n1+n2, n1)
// ways of splitting n1+n2 distinct values into groups of n1 and n2 whose
// first group has statistic U = u. These are the coefficients of the
// Gaussian binomial coefficient [n1+n2 choose n1] in q, built as the
// product over k = 1..m of (1 - q^(n+k)) / (1 - q^k), m = min(n1, n2),
// n = max(n1, n2); only the coefficients up to q^(n1*n2) are kept, which is
// exact since neither step moves weight to lower powers. Every partial
// product is again a Gaussian binomial, so the counts stay non-negative
// integers no larger than C(n1+n2, n1) (about 1.4e11 for 20 and 20, far
// inside the exact range of float64).
func exactCounts(n1, n2 int) []float64 {
	m, n := min(n1, n2), max(n1, n2)
	top := n1 * n2
	c := make([]float64, top+1)
	c[0] = 1
	for k := 1; k <= m; k++ {
		// Multiply by (1 - q^(n+k)): from the top down so each term reads
		// the old value of the lower one.
		for i := top; i >= n+k; i-- {
			c[i] -= c[i-n-k]
		}
		// Divide by (1 - q^k), i.e. multiply by 1 + q^k + q^2k + ...: from
		// the bottom up so each term reads the new value of the lower one.
		for i := k; i <= top; i++ {
			c[i] += c[i-k]
		}
	}
	return c
}

// tiedCounts returns, for s = 0..2*n1*n2, the number of the C(n1+n2, n1)
// ways of splitting the pooled values into groups of n1 and n2 whose
// first group has statistic 2U = s (doubled so ties, worth 1/2, stay
// integers). groups are the sizes of the groups of equal values from the
// smallest up. Going through the groups in order, taking k of a group of t
// values into the first sample adds 2k for each second-sample value below
// the group and k(t-k) for the tied pairs within it, in C(t, k) ways. The
// cost is about len(groups) * n1 * 2*n1*n2 * (t+1) steps, so only for small
// samples.
func tiedCounts(n1 int, groups []int) []float64 {
	n := 0
	for _, t := range groups {
		n += t
	}
	top := 2 * n1 * (n - n1)
	// dp[k][s]: ways to take k first-sample values from the groups so far
	// with 2U = s.
	dp := make([][]float64, n1+1)
	next := make([][]float64, n1+1)
	for k := range dp {
		dp[k] = make([]float64, top+1)
		next[k] = make([]float64, top+1)
	}
	dp[0][0] = 1
	below := 0 // values in the groups so far
	for _, t := range groups {
		for k := range next {
			clear(next[k])
		}
		choose := binomials(t)
		for k, row := range dp {
			// Second-sample values so far; a path with more than n-n1 of
			// them cannot be completed.
			yBelow := below - k
			if yBelow < 0 || yBelow > n-n1 {
				continue
			}
			for s, ways := range row {
				if ways == 0 {
					continue
				}
				for j := max(0, yBelow+t-(n-n1)); j <= t && k+j <= n1; j++ {
					next[k+j][s+2*j*yBelow+j*(t-j)] += ways * choose[j]
				}
			}
		}
		dp, next = next, dp
		below += t
	}
	return dp[n1]
}

// binomials returns C(t, 0..t).
func binomials(t int) []float64 {
	c := make([]float64, t+1)
	c[0] = 1
	for j := 1; j <= t; j++ {
		c[j] = c[j-1] * float64(t-j+1) / float64(j)
	}
	return c
}

// tailP is the p-value of the statistic value obs under the distribution
// given by counts (counts[v] ways to get v). These distributions are
// symmetric, so the two-sided p-value is twice the smaller tail.
func tailP(counts []float64, obs int, alt Alternative) float64 {
	var total, le, ge float64
	for v, ways := range counts {
		total += ways
		if v <= obs {
			le += ways
		}
		if v >= obs {
			ge += ways
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

// normalP is the p-value of U = u from the normal approximation: U has mean
// n1*n2/2 and, with N = n1+n2, variance
// n1*n2/12 * ((N+1) - sum(t^3-t) / (N*(N-1))), the sum running over the
// groups of t tied values; 1/2 is taken off the distance from the mean
// (continuity correction) before it is compared with the standard normal.
func normalP(n1, n2 int, u, tieTerm float64, alt Alternative) float64 {
	fn1, fn2 := float64(n1), float64(n2)
	nn := fn1 + fn2
	mean := fn1 * fn2 / 2
	variance := fn1 * fn2 / 12 * ((nn + 1) - tieTerm/(nn*(nn-1)))
	if !(variance > 0) {
		// Every value is the same: nothing tells the samples apart.
		return 1
	}
	sd := math.Sqrt(variance)
	switch alt {
	case Greater:
		return upperTail((u - mean - 0.5) / sd)
	case Less:
		return upperTail((mean - u - 0.5) / sd)
	default:
		z := (math.Abs(u-mean) - 0.5) / sd
		return min(1, 2*upperTail(z))
	}
}

// upperTail is P(Z > z) for a standard normal Z, accurate far into the
// tail.
func upperTail(z float64) float64 {
	return 0.5 * math.Erfc(z/math.Sqrt2)
}
