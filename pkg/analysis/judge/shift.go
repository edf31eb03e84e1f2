package judge

import (
	"math"
	"slices"
)

// HodgesLehmann returns the Hodges-Lehmann estimate of the shift of x
// against y: the median of the n1*n2 differences x[i] - y[j] (the mean of
// the two middle ones when there is an even number). The samples must be
// finite; HodgesLehmann returns NaN when one is empty. A difference that
// overflows is ±Inf and the estimate is clamped to ±math.MaxFloat64.
//
// The differences are not materialised: with both samples sorted, the
// number of differences at most d is counted in O(n1+n2), and the k-th
// smallest difference is found by a binary search over the float64 values
// themselves (ordered by their bit patterns), at most 64 counts. So the
// cost is O((n1+n2) log(n1+n2)) time and O(n1+n2) memory, and the result
// is the same as sorting all the differences.
func HodgesLehmann(x, y []float64) float64 {
	n1, n2 := len(x), len(y)
	if n1 == 0 || n2 == 0 {
		return math.NaN()
	}
	xs, ys := slices.Clone(x), slices.Clone(y)
	slices.Sort(xs)
	slices.Sort(ys)
	total := n1 * n2
	var est float64
	if total%2 == 1 {
		est = kthDifference(xs, ys, total/2+1)
	} else {
		est = midpoint(kthDifference(xs, ys, total/2), kthDifference(xs, ys, total/2+1))
	}
	return clampFinite(est)
}

// kthDifference returns the k-th smallest (1-based) of the differences
// xs[i] - ys[j] of two sorted samples.
func kthDifference(xs, ys []float64, k int) float64 {
	lo, hi := orderKey(math.Inf(-1)), orderKey(math.Inf(1))
	for lo < hi {
		mid := lo + (hi-lo)/2
		if countAtMost(xs, ys, fromOrderKey(mid)) >= k {
			hi = mid
		} else {
			lo = mid + 1
		}
	}
	return fromOrderKey(lo)
}

// countAtMost counts the pairs with xs[i] - ys[j] <= d. Floating-point
// subtraction is monotone in each operand, so for each i the j that
// qualify are a suffix of ys, and that suffix only shrinks as i grows.
func countAtMost(xs, ys []float64, d float64) int {
	count, j := 0, 0
	for _, xv := range xs {
		for j < len(ys) && xv-ys[j] > d {
			j++
		}
		count += len(ys) - j
	}
	return count
}

// orderKey maps a float64 to a uint64 with the same order (-0 just below
// +0); the NaNs land outside [orderKey(-Inf), orderKey(+Inf)].
func orderKey(f float64) uint64 {
	b := math.Float64bits(f)
	if b>>63 == 1 {
		return ^b
	}
	return b | 1<<63
}

// fromOrderKey inverts orderKey.
func fromOrderKey(k uint64) float64 {
	if k>>63 == 1 {
		return math.Float64frombits(k &^ (1 << 63))
	}
	return math.Float64frombits(^k)
}

// median returns the median of a finite sample, or NaN for an empty one.
func median(v []float64) float64 {
	if len(v) == 0 {
		return math.NaN()
	}
	s := slices.Clone(v)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return midpoint(s[n/2-1], s[n/2])
}

// midpoint is (a+b)/2 without overflowing; it is symmetric, so
// midpoint(-b, -a) == -midpoint(a, b). Opposite infinities give 0.
func midpoint(a, b float64) float64 {
	m := a/2 + b/2
	if math.IsNaN(m) {
		return 0
	}
	return m
}

// clampFinite clamps ±Inf to ±math.MaxFloat64.
func clampFinite(f float64) float64 {
	return max(min(f, math.MaxFloat64), -math.MaxFloat64)
}
