// Package judge compares a canary with its primary (the baseline) on one
// metric: given the per-interval samples of each side over the same window,
// it says whether the canary is worse by more than the metric allows, and
// whether that is a real difference or just noise.
//
// # Method
//
// Two numbers are computed from the samples.
//
// The first is a p-value from the Mann-Whitney U test (also called the
// Wilcoxon rank-sum test). All samples of both sides are put in one sorted
// list and each gets its rank; if the canary and the primary behave the
// same, the canary's ranks are spread evenly through the list, and U counts
// how far from even they are (how many canary-primary pairs the canary
// "wins"). The p-value is the chance of a U at least this lopsided when
// both sides really come from the same distribution: a small p-value means
// the difference is unlikely to be chance. The test is one-sided when the
// metric has a bad direction (higher latency, lower success rate) and
// two-sided otherwise.
//
// The p-value is computed in one of two ways:
//
//   - exactly when neither side has more than [ExactMaxSamples] samples:
//     from the distribution of U over every way the pooled samples could
//     have been split between the two sides. Without ties this is the
//     classic Mann-Whitney distribution; with ties (equal values, common
//     for rounded or bucketed metrics) it is the permutation distribution
//     of U with tied pairs counting 1/2. Both are counted, not simulated.
//   - with the normal approximation above that: U is compared with the
//     normal distribution of the same mean and variance, the variance
//     corrected for ties (samples of equal value share the average of
//     their ranks), with a continuity correction of 1/2. At 30 samples a
//     side it is within about 0.005 of the exact p-value when the samples
//     take ten or so distinct values, and a few hundredths off when they
//     take only three or four.
//
// The second number is the size of the difference: the Hodges-Lehmann
// estimate of the shift, the median of all pairwise differences
// canary[i] - primary[j]. It is what the canary adds to the metric, in the
// metric's unit; divided by the primary's median it gives the relative
// shift (+0.21 is "21% higher than the primary").
//
// A canary fails only when all three hold: the shift is in the bad
// direction, the test says it is significant (p < alpha), and the shift is
// larger than the tolerance. Significance alone is not enough, since with
// many samples a harmless 1% difference is significant; size alone is not
// enough, since a few noisy samples can show a large shift by chance.
//
// # Why a nonparametric test
//
// Latencies, error rates and the like are rarely normally distributed: they
// are skewed, bounded below by zero, and have long tails and outliers (one
// slow interval during a node's garbage collection). A t-test assumes
// normal data and compares means, which a single outlier can move as far as
// it likes. The rank test assumes nothing about the shape of the
// distribution and only looks at the order of the samples, so an outlier
// counts as "the largest sample" however large it is; the Hodges-Lehmann
// shift is a median and is just as hard to drag around. The price is a
// little power when the data happen to be normal, which is a good trade for
// a judge whose false alarms abort rollouts.
//
// # Data that cannot be judged
//
// NaN and infinite samples are dropped and counted. A side with no usable
// sample gives the outcome [NoData]; both sides with some but one with fewer
// than the spec's MinSamples gives [TooFewSamples]. Either way nothing is
// tested, and the spec's OnNoData policy decides the verdict's Decision
// (fail, hold or pass).
//
// The package is pure: it does no I/O and imports nothing outside the
// standard library.
package judge
