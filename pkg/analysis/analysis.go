// Package analysis runs a Rollout's metric checks: it asks a provider for one
// number per metric and judges it against the metric's threshold range, or,
// for a compare check, for the series of the canary and of the primary and
// lets the judge (pkg/analysis/judge) compare them.
package analysis

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync"
	"time"

	"github.com/prometheus/common/model"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	sluicev1 "github.com/sluice-dev/sluice/api/v1alpha1"
	"github.com/sluice-dev/sluice/pkg/analysis/provider"
)

// ErrNoData is returned (wrapped) by a provider whose query has no result;
// it is provider.ErrNoData, which the provider packages return.
var ErrNoData = provider.ErrNoData

// Verdicts recorded per metric on the Rollout's status.
const (
	VerdictPass   = "Pass"
	VerdictFail   = "Fail"
	VerdictNoData = "NoData"
	VerdictError  = "Error"
	// VerdictWait: the check's query still reads back to when the
	// target served another revision (status.previousCanaryUntil); it was
	// not asked, and holds the step whatever its onNoData.
	VerdictWait = "Wait"
)

// Querier returns the value of one metric check of a Rollout.
type Querier interface {
	Query(ctx context.Context, ro *sluicev1.Rollout, check sluicev1.MetricCheck) (float64, error)
}

// Result is the outcome of one round of metric checks.
type Result struct {
	Metrics []sluicev1.MetricStatus
	// Failed lists the checks that failed or errored; Held those without
	// data under the hold policy, and those that wait (VerdictWait).
	Failed []string
	Held   []string
	// RetryAt is when the waiting checks will all have a window of this
	// revision only, so the step can be checked again then rather than an
	// interval later; zero when a check holds for no data (no one can say
	// when data comes) or none holds.
	RetryAt time.Time
}

// DefaultConcurrency bounds the queries of one Run that are in flight at once.
const DefaultConcurrency = 4

// DefaultCheckTimeout bounds each check of a Run, whatever its Querier does,
// so that a slow provider cannot hold a reconcile worker (and with it other
// Rollouts) for long.
const DefaultCheckTimeout = 30 * time.Second

// Run evaluates every metric of the Rollout, at most DefaultConcurrency at a
// time, each within DefaultCheckTimeout. A query error fails its check: a
// canary is never promoted on an answer Sluice did not get.
func Run(ctx context.Context, q Querier, ro *sluicev1.Rollout, now time.Time) Result {
	return RunWith(ctx, q, ro, now, DefaultConcurrency, DefaultCheckTimeout)
}

// RunWith is Run with its bounds given: concurrency queries in flight at
// most (1 or less means one at a time) and a timeout per check (none when
// zero). The results keep the order of the spec's metrics.
func RunWith(ctx context.Context, q Querier, ro *sluicev1.Rollout, now time.Time, concurrency int, timeout time.Duration) Result {
	var res Result
	if ro.Spec.Analysis == nil || len(ro.Spec.Analysis.Metrics) == 0 {
		return res
	}
	checks := ro.Spec.Analysis.Metrics
	if concurrency < 1 {
		concurrency = 1
	}
	statuses := make([]sluicev1.MetricStatus, len(checks))
	clears := make([]time.Time, len(checks))
	sem := make(chan struct{}, concurrency)
	var wg sync.WaitGroup
	for i, check := range checks {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			statuses[i], clears[i] = evaluate(ctx, q, ro, check, now, timeout)
		}()
	}
	wg.Wait()
	noData := false
	for i, check := range checks {
		ms := statuses[i]
		ms.CheckedAt = &metav1.Time{Time: now}
		res.Metrics = append(res.Metrics, ms)
		switch {
		case ms.Verdict == VerdictFail || ms.Verdict == VerdictError:
			res.Failed = append(res.Failed, ms.Message)
		case ms.Verdict == VerdictWait:
			res.Held = append(res.Held, ms.Message)
			if clears[i].After(res.RetryAt) {
				res.RetryAt = clears[i]
			}
		case ms.Verdict == VerdictNoData && policy(check) == sluicev1.NoDataHold:
			res.Held = append(res.Held, ms.Message)
			noData = true
		case ms.Verdict == VerdictNoData && policy(check) != sluicev1.NoDataPass:
			res.Failed = append(res.Failed, ms.Message)
		}
	}
	if noData {
		res.RetryAt = time.Time{}
	}
	return res
}

// evaluate runs one check; a panicking Querier is an error, not a crash.
// A check that waits also says when it can be asked (zero otherwise).
func evaluate(ctx context.Context, q Querier, ro *sluicev1.Rollout, check sluicev1.MetricCheck, now time.Time, timeout time.Duration) (ms sluicev1.MetricStatus, clears time.Time) {
	defer func() {
		if r := recover(); r != nil {
			ms = Judge(check, 0, fmt.Errorf("the metrics provider panicked: %v", r))
		}
	}()
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	ctx = withTemplateMemo(ctx)
	if check.Compare != nil {
		return compare(ctx, q, ro, check, now)
	}
	if ms, clears := waitForTheWindow(ctx, q, ro, check, now); !clears.IsZero() {
		return ms, clears
	}
	v, err := q.Query(ctx, ro, check)
	return Judge(check, v, err), time.Time{}
}

// LookbackReader is a Querier that can tell how far back from now a
// check's query reads: its window (.interval, or a provider that queries a
// time range), a range written into the query ([5m]), or 0 for a query of
// the latest value only. A Querier without it is taken to read the check's
// window.
type LookbackReader interface {
	Lookback(ctx context.Context, ro *sluicev1.Rollout, check sluicev1.MetricCheck) (time.Duration, error)
}

// waitForTheWindow holds a threshold check whose query reads back, from
// now, to before status.previousCanaryUntil: the target's metrics there
// are the revision it served before this run (the last canary, all the
// traffic during its promotion; the application itself before Sluice took
// it over), and a query over them would judge that revision as this one:
// a good one would vouch for a bad successor, a bad one fail its fix. The
// check waits, asked nothing, until what it reads clears that time. A
// query that reads no window (the latest value of a gauge) is asked at
// once; if telling fails, the query is asked too and reports the error
// itself. A compare check starts its samples where they read only this
// revision instead (waitForCleanSamples). A check that waits is returned
// with the time its window clears; zero when it does not wait.
func waitForTheWindow(ctx context.Context, q Querier, ro *sluicev1.Rollout, check sluicev1.MetricCheck, now time.Time) (sluicev1.MetricStatus, time.Time) {
	until := ro.Status.PreviousCanaryUntil
	if until == nil {
		return sluicev1.MetricStatus{}, time.Time{}
	}
	length := window(check)
	if lr, ok := q.(LookbackReader); ok {
		var err error
		if length, err = lr.Lookback(ctx, ro, check); err != nil {
			return sluicev1.MetricStatus{}, time.Time{}
		}
	}
	if length <= 0 || !now.Add(-length).Before(until.Time) {
		return sluicev1.MetricStatus{}, time.Time{}
	}
	clears := until.Add(length)
	return sluicev1.MetricStatus{Name: check.Name, Verdict: VerdictWait, Message: fmt.Sprintf(
		"%s: waiting until %s for its %s window to hold only this revision (the target served the one before until %s)",
		check.Name, clears.UTC().Format(time.RFC3339), model.Duration(length), until.UTC().Format(time.RFC3339))}, clears
}

// Judge turns a query's answer into the metric's status.
func Judge(check sluicev1.MetricCheck, v float64, err error) sluicev1.MetricStatus {
	ms := sluicev1.MetricStatus{Name: check.Name}
	switch {
	case errors.Is(err, ErrNoData):
		ms.Verdict = VerdictNoData
		ms.Message = fmt.Sprintf("%s: no data (onNoData: %s)", check.Name, policy(check))
		if check.MinRequests != nil {
			// The guard empties the answer too: say so, or a quiet
			// canary reads as a broken query.
			ms.Message = fmt.Sprintf("%s: no data: the canary answered fewer than %d requests over the %s window, or none was counted (minRequests: %d, onNoData: %s)",
				check.Name, *check.MinRequests, model.Duration(window(check)), *check.MinRequests, policy(check))
		}
	case err != nil:
		ms.Verdict = VerdictError
		ms.Message = fmt.Sprintf("%s: %v", check.Name, err)
	case math.IsNaN(v) || math.IsInf(v, 0):
		ms.Verdict = VerdictError
		ms.Message = fmt.Sprintf("%s: the query returned %v", check.Name, v)
	default:
		ms.Value = formatValue(v)
		out := outOfRange(check.ThresholdRange, v)
		if out == "" {
			ms.Verdict = VerdictPass
			return ms
		}
		ms.Verdict = VerdictFail
		ms.Message = fmt.Sprintf("%s = %s is %s", check.Name, ms.Value, out)
	}
	return ms
}

// policy is what no data means for a check: compare.onNoData for a compare
// check that sets it, else the check's onNoData (fail when unset).
func policy(check sluicev1.MetricCheck) sluicev1.NoDataPolicy {
	if c := check.Compare; c != nil && c.OnNoData != "" {
		return c.OnNoData
	}
	if check.OnNoData == "" {
		return sluicev1.NoDataFail
	}
	return check.OnNoData
}

// NoProvider is the Querier used when no metrics provider is configured:
// every query errors, so a Rollout with metrics never promotes blind.
type NoProvider struct{}

// Query implements Querier.
func (NoProvider) Query(context.Context, *sluicev1.Rollout, sluicev1.MetricCheck) (float64, error) {
	return 0, errors.New("no metrics provider is configured in this manager")
}
