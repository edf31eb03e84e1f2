package analysis

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/common/model"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	sluicev1 "github.com/sluice-dev/sluice/api/v1alpha1"
	"github.com/sluice-dev/sluice/pkg/analysis/judge"
)

// Side is the workload one rendering of a compare check's query is for.
type Side string

// Sides of a compare check.
const (
	SideCanary  Side = "canary"
	SidePrimary Side = "primary"
)

// DefaultCompareStep is the spacing of a compare check's samples when
// compare.step is unset.
const DefaultCompareStep = 30 * time.Second

// DefaultTolerance is a compare check's tolerance when compare.tolerance is
// unset (the API defaults it to "10%" as well).
const DefaultTolerance = 0.10

// Window is the time range a compare check reads, sampled every Step.
type Window struct {
	Start, End time.Time
	Step       time.Duration
}

// SeriesQuerier is a Querier that can also return a compare check's values
// over a window for one side (oldest first), or an error wrapping
// ErrNoData when the query has no result.
type SeriesQuerier interface {
	Querier
	Series(ctx context.Context, ro *sluicev1.Rollout, check sluicev1.MetricCheck, side Side, w Window) ([]float64, error)
}

// CompareWindow is the window of a compare check run at now: the check's
// interval, else the analysis interval, else DefaultMetricInterval, ending
// at now, and widened when needed to hold minSamples steps, since a window
// that cannot hold them could never be judged. It starts no earlier than
// the current run (status.runStartedAt): before it the canary's Service
// served the previous run's canary, all the traffic during its promotion,
// and those samples would vouch for a version they never measured. A run
// younger than the window has fewer samples; too few are onNoData's to
// decide, as for a canary that has no traffic yet.
func CompareWindow(ro *sluicev1.Rollout, check sluicev1.MetricCheck, now time.Time) Window {
	step := DefaultCompareStep
	if c := check.Compare; c != nil && c.Step != nil && c.Step.Duration > 0 {
		step = c.Step.Duration
	}
	minSamples := compareMinSamples(check)
	length := DefaultMetricInterval
	switch {
	case check.Interval != nil && check.Interval.Duration > 0:
		length = check.Interval.Duration
	case ro.Spec.Analysis != nil && ro.Spec.Analysis.Interval != nil && ro.Spec.Analysis.Interval.Duration > 0:
		length = ro.Spec.Analysis.Interval.Duration
	}
	// A range query returns a point at start and at every step up to end.
	if need := time.Duration(minSamples-1) * step; length < need {
		length = need
	}
	start := now.Add(-length)
	if run := ro.Status.RunStartedAt; run != nil && run.After(start) {
		// A start after now is a clock skewed against the leader that
		// recorded it: read no sample from before this manager's now.
		start = run.Time
		if start.After(now) {
			start = now
		}
	}
	return Window{Start: start, End: now, Step: step}
}

// compareMinSamples is the fewest samples a side of a compare check needs.
func compareMinSamples(check sluicev1.MetricCheck) int {
	if c := check.Compare; c != nil && c.MinSamples > 0 {
		return int(c.MinSamples)
	}
	return judge.DefaultMinSamples
}

// waitForCleanSamples starts a compare check's window where its samples
// read only this run's revision. Each sample is the query evaluated at its
// own time, reading as far back as the query does with .interval the step
// (one step, or a range written into it): a sample earlier than
// status.previousCanaryUntil plus that reads the target's traffic from the
// revision before (see waitForTheWindow), and would make the canary's
// series look like it. When what is left of the window cannot hold
// minSamples yet, the check waits, verdict Wait, rather than count too few
// samples as no data: it is not the canary that lacks them. It is then
// returned with the time it has them; zero when it does not wait.
func waitForCleanSamples(ctx context.Context, q Querier, ro *sluicev1.Rollout, check sluicev1.MetricCheck, w *Window, now time.Time) (sluicev1.MetricStatus, time.Time) {
	until := ro.Status.PreviousCanaryUntil
	if until == nil {
		return sluicev1.MetricStatus{}, time.Time{}
	}
	lookback := w.Step
	if lr, ok := q.(LookbackReader); ok {
		perStep := check
		perStep.Interval = &metav1.Duration{Duration: w.Step}
		var err error
		if lookback, err = lr.Lookback(ctx, ro, perStep); err != nil {
			return sluicev1.MetricStatus{}, time.Time{}
		}
	}
	clean := until.Add(lookback)
	if !clean.After(w.Start) {
		return sluicev1.MetricStatus{}, time.Time{}
	}
	w.Start = clean
	n := compareMinSamples(check)
	ready := clean.Add(time.Duration(n-1) * w.Step)
	if !now.Before(ready) {
		return sluicev1.MetricStatus{}, time.Time{}
	}
	return sluicev1.MetricStatus{Name: check.Name, Verdict: VerdictWait, Message: fmt.Sprintf(
		"%s: waiting until %s for %d samples that hold only this revision (each reads %s back; the target served the one before until %s)",
		check.Name, ready.UTC().Format(time.RFC3339), n, model.Duration(lookback), until.UTC().Format(time.RFC3339))}, ready
}

// ParseTolerance reads a compare tolerance, "10%" or "2.5%", as a fraction
// (0.1, 0.025); empty is DefaultTolerance.
func ParseTolerance(s string) (float64, error) {
	if s == "" {
		return DefaultTolerance, nil
	}
	num, ok := strings.CutSuffix(strings.TrimSpace(s), "%")
	f, err := strconv.ParseFloat(num, 64)
	if !ok || err != nil || f < 0 || f > 1000 || math.IsNaN(f) {
		return 0, fmt.Errorf("tolerance %q is not a percentage from 0%% to 1000%%", s)
	}
	return f / 100, nil
}

// judgeSpec is the judge's spec of a compare check.
func judgeSpec(check sluicev1.MetricCheck) (judge.Spec, error) {
	c := check.Compare
	if c.Baseline != "" && c.Baseline != sluicev1.BaselinePrimary {
		return judge.Spec{}, fmt.Errorf("compare.baseline %q is not primary", c.Baseline)
	}
	tol, err := ParseTolerance(c.Tolerance)
	if err != nil {
		return judge.Spec{}, err
	}
	spec := judge.Spec{
		Name:       check.Name,
		Direction:  judge.Direction(c.Direction),
		Tolerance:  tol,
		MinSamples: int(c.MinSamples),
		OnNoData:   judge.NoDataPolicy(policy(check)),
	}
	if c.Alpha != nil {
		spec.Alpha = *c.Alpha
	}
	return spec, spec.Validate()
}

// compare runs a compare check: both sides' series over the window, at
// the same time, then the judge. One that waits says until when.
func compare(ctx context.Context, q Querier, ro *sluicev1.Rollout, check sluicev1.MetricCheck, now time.Time) (sluicev1.MetricStatus, time.Time) {
	sq, ok := q.(SeriesQuerier)
	if !ok {
		return JudgeCompare(check, Sides{Err: errors.New("this manager's metrics querier cannot return a series; compare needs one")}), time.Time{}
	}
	w := CompareWindow(ro, check, now)
	if ms, ready := waitForCleanSamples(ctx, q, ro, check, &w, now); !ready.IsZero() {
		return ms, ready
	}
	var s Sides
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer func() {
			if r := recover(); r != nil {
				s.PrimaryErr = fmt.Errorf("the metrics provider panicked: %v", r)
			}
		}()
		s.Primary, s.PrimaryErr = sq.Series(ctx, ro, check, SidePrimary, w)
	}()
	s.Canary, s.CanaryErr = sq.Series(ctx, ro, check, SideCanary, w)
	<-done
	return JudgeCompare(check, s), time.Time{}
}

// Sides are the answers of a compare check's two series queries.
type Sides struct {
	Canary, Primary       []float64
	CanaryErr, PrimaryErr error
	// Err is an error before any query (the check cannot be compared).
	Err error
}

// JudgeCompare turns the two series of a compare check into the metric's
// status: the judge's verdict (Pass, Fail; no or too few samples are
// NoData, decided by onNoData; an invalid spec or a query error is Error),
// with Value the canary's median, PrimaryValue the primary's, Estimate the
// canary's shift and PValue the test's p-value. A thresholdRange, if any,
// applies to the canary's median; both must pass.
func JudgeCompare(check sluicev1.MetricCheck, s Sides) sluicev1.MetricStatus {
	ms := sluicev1.MetricStatus{Name: check.Name}
	if err := firstError(s); err != nil {
		ms.Verdict, ms.Message = VerdictError, fmt.Sprintf("%s: %v", check.Name, err)
		return ms
	}
	spec, err := judgeSpec(check)
	if err != nil {
		ms.Verdict, ms.Message = VerdictError, fmt.Sprintf("%s: compare: %v", check.Name, err)
		return ms
	}
	v := judge.Judge(s.Canary, s.Primary, spec)
	ms.Message = v.Message
	if v.CanaryCount > 0 {
		ms.Value = formatValue(v.CanaryMedian)
	}
	if v.BaselineCount > 0 {
		ms.PrimaryValue = formatValue(v.BaselineMedian)
	}
	switch v.Outcome {
	case judge.Pass, judge.Fail:
		ms.Verdict = VerdictPass
		if v.Outcome == judge.Fail {
			ms.Verdict = VerdictFail
		}
		ms.Estimate = estimate(v)
		ms.PValue = strconv.FormatFloat(v.P, 'g', 3, 64)
	case judge.NoData, judge.TooFewSamples:
		ms.Verdict = VerdictNoData
		return ms
	default:
		ms.Verdict = VerdictError
		return ms
	}
	if out := outOfRange(check.ThresholdRange, v.CanaryMedian); out != "" {
		ms.Verdict = VerdictFail
		ms.Message = fmt.Sprintf("%s = %s (canary median) is %s; %s", check.Name, ms.Value, out, v.Message)
	}
	return ms
}

// firstError is the first query error of a compare check other than no
// data, which the judge decides (a side without samples).
func firstError(s Sides) error {
	switch {
	case s.Err != nil:
		return s.Err
	case s.CanaryErr != nil && !errors.Is(s.CanaryErr, ErrNoData):
		return fmt.Errorf("canary: %w", s.CanaryErr)
	case s.PrimaryErr != nil && !errors.Is(s.PrimaryErr, ErrNoData):
		return fmt.Errorf("primary: %w", s.PrimaryErr)
	}
	return nil
}

// estimate is the canary's shift: "+21.3%" of the primary's median, or in
// the metric's unit ("+0.002") when that median is 0.
func estimate(v judge.Verdict) string {
	if v.HasRelativeShift {
		pct := 100 * v.RelativeShift
		if math.Abs(pct) < 0.05 {
			pct = 0 // not "-0.0%"
		}
		return fmt.Sprintf("%+.1f%%", pct)
	}
	s := formatValue(v.Shift)
	if v.Shift >= 0 {
		s = "+" + s
	}
	return s
}

// formatValue shows six significant digits: what a person reads, not
// float noise.
func formatValue(v float64) string { return strconv.FormatFloat(v, 'g', 6, 64) }

// outOfRange says how v is outside r ("above the maximum 500"), or "".
func outOfRange(r *sluicev1.ThresholdRange, v float64) string {
	if r == nil {
		return ""
	}
	var out []string
	if r.Min != nil && v < *r.Min {
		out = append(out, fmt.Sprintf("below the minimum %v", *r.Min))
	}
	if r.Max != nil && v > *r.Max {
		out = append(out, fmt.Sprintf("above the maximum %v", *r.Max))
	}
	return strings.Join(out, " and ")
}
