package analysis

import (
	"context"
	"errors"
	"fmt"
	"math"
	"testing"
	"time"

	"k8s.io/utils/ptr"

	sluicev1 "github.com/sluice-dev/sluice/api/v1alpha1"
)

func TestJudgeComparesTheValueWithTheRange(t *testing.T) {
	check := sluicev1.MetricCheck{Name: "request-success-rate", ThresholdRange: &sluicev1.ThresholdRange{Min: ptr.To(99.0), Max: ptr.To(100.0)}}
	tests := []struct {
		name    string
		v       float64
		err     error
		verdict string
		message string
	}{
		{"inside the range passes", 99.5, nil, VerdictPass, ""},
		{"on the bound passes", 99, nil, VerdictPass, ""},
		{"below the minimum fails", 80, nil, VerdictFail, "request-success-rate = 80 is below the minimum 99"},
		{"above the maximum fails", 101, nil, VerdictFail, "request-success-rate = 101 is above the maximum 100"},
		{"no data is reported as such", 0, fmt.Errorf("query: %w", ErrNoData), VerdictNoData, "request-success-rate: no data (onNoData: fail)"},
		{"a query error is an error", 0, errors.New("connection refused"), VerdictError, "request-success-rate: connection refused"},
		{"NaN is an error", math.NaN(), nil, VerdictError, "request-success-rate: the query returned NaN"},
		{"infinity is an error", math.Inf(1), nil, VerdictError, "request-success-rate: the query returned +Inf"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ms := Judge(check, tt.v, tt.err)
			if ms.Verdict != tt.verdict || ms.Message != tt.message {
				t.Errorf("Judge = %s %q, want %s %q", ms.Verdict, ms.Message, tt.verdict, tt.message)
			}
		})
	}
}

// answers is a Querier with a fixed answer per metric name.
type answers map[string]struct {
	v   float64
	err error
}

func (a answers) Query(_ context.Context, _ *sluicev1.Rollout, c sluicev1.MetricCheck) (float64, error) {
	ans := a[c.Name]
	return ans.v, ans.err
}

func TestRunAppliesTheNoDataPolicyAndFailsClosedOnErrors(t *testing.T) {
	metric := func(name string, policy sluicev1.NoDataPolicy) sluicev1.MetricCheck {
		return sluicev1.MetricCheck{Name: name, OnNoData: policy, ThresholdRange: &sluicev1.ThresholdRange{Min: ptr.To(1.0)}}
	}
	ro := &sluicev1.Rollout{Spec: sluicev1.RolloutSpec{Analysis: &sluicev1.Analysis{Metrics: []sluicev1.MetricCheck{
		metric("ok", ""), metric("quiet-fail", ""), metric("quiet-hold", sluicev1.NoDataHold),
		metric("quiet-pass", sluicev1.NoDataPass), metric("down", ""),
	}}}}
	q := answers{
		"ok":         {v: 5},
		"quiet-fail": {err: ErrNoData}, "quiet-hold": {err: ErrNoData}, "quiet-pass": {err: ErrNoData},
		"down": {err: errors.New("prometheus unreachable")},
	}
	res := Run(context.Background(), q, ro, time.Now())
	if len(res.Metrics) != 5 {
		t.Fatalf("%d metric statuses, want 5", len(res.Metrics))
	}
	if len(res.Failed) != 2 || len(res.Held) != 1 {
		t.Errorf("failed %v held %v, want quiet-fail and down failed, quiet-hold held", res.Failed, res.Held)
	}
	if got := Run(context.Background(), NoProvider{}, ro, time.Now()); len(got.Failed) != 5 {
		t.Errorf("without a provider %d of 5 checks failed; a canary must never pass unchecked", len(got.Failed))
	}
}
