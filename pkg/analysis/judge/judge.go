package judge

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// Defaults for a Spec's zero fields.
const (
	DefaultAlpha      = 0.05
	DefaultMinSamples = 5
)

// Direction says which way a metric gets worse.
type Direction string

// Directions.
const (
	// Increase: higher is worse (latency, error rate).
	Increase Direction = "increase"
	// Decrease: lower is worse (success rate, throughput).
	Decrease Direction = "decrease"
	// Either: any difference is worse. The empty Direction means Either.
	Either Direction = "either"
)

// NoDataPolicy says what a comparison without enough data decides. Its
// values are those of the Rollout API's onNoData.
type NoDataPolicy string

// No-data policies.
const (
	// NoDataFail fails the canary. The empty policy means NoDataFail, as in
	// the Rollout API.
	NoDataFail NoDataPolicy = "fail"
	// NoDataHold neither passes nor fails: judge again later.
	NoDataHold NoDataPolicy = "hold"
	// NoDataPass passes the canary.
	NoDataPass NoDataPolicy = "pass"
)

// Spec says how to judge one metric.
type Spec struct {
	// Name names the metric in the verdict's message ("latency").
	Name string
	// Direction is the way the metric gets worse; empty means Either.
	Direction Direction
	// Tolerance is how much worse the canary may be, relative to the
	// primary's median: 0.1 lets it be up to 10% worse. 0 fails on any
	// significant worsening. When the primary's median is 0 no relative
	// shift exists and any significant worsening exceeds Tolerance (see
	// AbsTolerance).
	Tolerance float64
	// AbsTolerance is how much worse the canary may be in the metric's own
	// unit, on top of Tolerance: the canary fails only when its shift
	// exceeds both. It matters mostly for metrics whose primary median is
	// 0 (an error rate of 0 against 0.0001). 0 means no such floor.
	AbsTolerance float64
	// Alpha is the significance level: a difference is significant when
	// the test's p-value is below it. 0 means DefaultAlpha.
	Alpha float64
	// MinSamples is the fewest usable samples each side needs to be
	// judged. 0 means DefaultMinSamples.
	MinSamples int
	// OnNoData decides the verdict when a side has no usable sample or
	// fewer than MinSamples; empty means NoDataFail.
	OnNoData NoDataPolicy
}

// Validate reports the first thing wrong with the spec.
func (s Spec) Validate() error {
	switch s.Direction {
	case "", Increase, Decrease, Either:
	default:
		return fmt.Errorf("direction %q is not increase, decrease or either", string(s.Direction))
	}
	switch s.OnNoData {
	case "", NoDataFail, NoDataHold, NoDataPass:
	default:
		return fmt.Errorf("onNoData %q is not fail, hold or pass", string(s.OnNoData))
	}
	if !(s.Tolerance >= 0) || math.IsInf(s.Tolerance, 0) {
		return errors.New("tolerance must be a finite number, 0 or more")
	}
	if !(s.AbsTolerance >= 0) || math.IsInf(s.AbsTolerance, 0) {
		return errors.New("absolute tolerance must be a finite number, 0 or more")
	}
	if !(s.Alpha >= 0 && s.Alpha < 1) {
		return errors.New("alpha must be above 0 and below 1 (0 for the default)")
	}
	if s.MinSamples < 0 {
		return errors.New("minSamples must be 0 or more")
	}
	return nil
}

func (s Spec) withDefaults() Spec {
	if s.Direction == "" {
		s.Direction = Either
	}
	if s.OnNoData == "" {
		s.OnNoData = NoDataFail
	}
	if s.Alpha == 0 {
		s.Alpha = DefaultAlpha
	}
	if s.MinSamples == 0 {
		s.MinSamples = DefaultMinSamples
	}
	return s
}

// Outcome is what the judge found.
type Outcome string

// Outcomes.
const (
	// Pass: the canary is not worse by more than the tolerance, or not
	// significantly.
	Pass Outcome = "Pass"
	// Fail: the canary is significantly worse by more than the tolerance.
	Fail Outcome = "Fail"
	// NoData: a side has no usable sample. Nothing was tested.
	NoData Outcome = "NoData"
	// TooFewSamples: both sides have samples but one has fewer than
	// MinSamples. Nothing was tested.
	TooFewSamples Outcome = "TooFewSamples"
	// Invalid: the spec is invalid. Nothing was tested.
	Invalid Outcome = "Invalid"
)

// Decision is what the verdict asks the rollout to do with the metric.
type Decision string

// Decisions.
const (
	DecisionPass Decision = "Pass"
	DecisionFail Decision = "Fail"
	DecisionHold Decision = "Hold"
)

// Verdict is the judge's finding on one metric.
type Verdict struct {
	// Outcome is what the judge found.
	Outcome Outcome
	// Decision follows from the Outcome: Pass and Fail decide themselves,
	// NoData and TooFewSamples decide by the spec's OnNoData, and Invalid
	// fails (a metric that cannot be judged must not promote a canary).
	Decision Decision
	// P is the Mann-Whitney p-value (one-sided for Increase and Decrease,
	// two-sided for Either); 1 when nothing was tested.
	P float64
	// Exact is true when P comes from the exact distribution, false when
	// from the normal approximation or when nothing was tested.
	Exact bool
	// Shift is the Hodges-Lehmann estimate of canary - primary, in the
	// metric's unit; 0 when nothing was tested.
	Shift float64
	// RelativeShift is Shift / |BaselineMedian| (+0.2 is 20% higher); 0
	// and HasRelativeShift false when the primary's median is 0 or nothing
	// was tested.
	RelativeShift    float64
	HasRelativeShift bool
	// CanaryMedian and BaselineMedian are the medians of each side's
	// usable samples; 0 for a side without any.
	CanaryMedian   float64
	BaselineMedian float64
	// CanaryCount and BaselineCount count each side's usable samples;
	// CanaryDropped and BaselineDropped its NaN and infinite ones.
	CanaryCount     int
	BaselineCount   int
	CanaryDropped   int
	BaselineDropped int
	// Message is one line for a human, fit for a status condition:
	// "latency: canary +21.3% vs primary (p=0.002, tolerance 10%)".
	Message string
}

// Judge compares the canary's samples of a metric with the primary's
// (baseline) samples of the same metric over the same window. The canary
// fails only when its shift is in the spec's bad direction, significant
// (p < Alpha) and larger than the tolerance. Judge does not modify its
// arguments.
func Judge(canary, baseline []float64, spec Spec) Verdict {
	v := Verdict{P: 1}
	c, cDropped := finite(canary)
	b, bDropped := finite(baseline)
	v.CanaryCount, v.CanaryDropped = len(c), cDropped
	v.BaselineCount, v.BaselineDropped = len(b), bDropped
	if len(c) > 0 {
		v.CanaryMedian = median(c)
	}
	if len(b) > 0 {
		v.BaselineMedian = median(b)
	}

	if err := spec.Validate(); err != nil {
		v.Outcome, v.Decision = Invalid, DecisionFail
		v.Message = prefix(spec.Name) + "invalid spec: " + err.Error()
		return v
	}
	spec = spec.withDefaults()

	if len(c) == 0 || len(b) == 0 {
		v.Outcome, v.Decision = NoData, noDataDecision(spec.OnNoData)
		v.Message = prefix(spec.Name) + noDataMessage(len(c), len(b)) + dropped(cDropped, bDropped) +
			" (onNoData: " + string(spec.OnNoData) + ")"
		return v
	}
	if len(c) < spec.MinSamples || len(b) < spec.MinSamples {
		v.Outcome, v.Decision = TooFewSamples, noDataDecision(spec.OnNoData)
		v.Message = fmt.Sprintf("%stoo few samples: canary %d, primary %d, need %d each%s (onNoData: %s)",
			prefix(spec.Name), len(c), len(b), spec.MinSamples, dropped(cDropped, bDropped), spec.OnNoData)
		return v
	}

	alt := TwoSided
	switch spec.Direction {
	case Increase:
		alt = Greater
	case Decrease:
		alt = Less
	}
	mw := MannWhitney(c, b, alt)
	v.P, v.Exact = mw.P, mw.Exact
	v.Shift = HodgesLehmann(c, b)
	if v.BaselineMedian != 0 {
		v.RelativeShift = clampFinite(v.Shift / math.Abs(v.BaselineMedian))
		v.HasRelativeShift = true
	}

	// With a one-sided test a significant p already implies a shift the
	// same way; the direction is checked on the shift anyway so the rule
	// reads as stated: worse, significant and beyond the tolerance.
	var worse bool
	switch spec.Direction {
	case Increase:
		worse = v.Shift > 0
	case Decrease:
		worse = v.Shift < 0
	default:
		worse = v.Shift != 0
	}
	beyond := math.Abs(v.Shift) > spec.AbsTolerance
	if v.HasRelativeShift {
		beyond = beyond && math.Abs(v.RelativeShift) > spec.Tolerance
	}
	if worse && v.P < spec.Alpha && beyond {
		v.Outcome, v.Decision = Fail, DecisionFail
	} else {
		v.Outcome, v.Decision = Pass, DecisionPass
	}
	v.Message = comparisonMessage(v, spec) + dropped(cDropped, bDropped)
	return v
}

// finite returns the finite values of v and how many others it had.
func finite(v []float64) ([]float64, int) {
	out := make([]float64, 0, len(v))
	for _, f := range v {
		if !math.IsNaN(f) && !math.IsInf(f, 0) {
			out = append(out, f)
		}
	}
	return out, len(v) - len(out)
}

func noDataDecision(p NoDataPolicy) Decision {
	switch p {
	case NoDataPass:
		return DecisionPass
	case NoDataHold:
		return DecisionHold
	default:
		return DecisionFail
	}
}

func prefix(name string) string {
	if name == "" {
		return ""
	}
	return name + ": "
}

func noDataMessage(nc, nb int) string {
	switch {
	case nc == 0 && nb == 0:
		return "no usable samples from canary or primary"
	case nc == 0:
		return "no usable samples from canary"
	default:
		return "no usable samples from primary"
	}
}

func dropped(c, b int) string {
	switch {
	case c == 0 && b == 0:
		return ""
	case b == 0:
		return fmt.Sprintf("; %d NaN/Inf canary samples dropped", c)
	case c == 0:
		return fmt.Sprintf("; %d NaN/Inf primary samples dropped", b)
	default:
		return fmt.Sprintf("; %d canary and %d primary NaN/Inf samples dropped", c, b)
	}
}

// comparisonMessage is "latency: canary +21.3% vs primary (p=0.002,
// tolerance 10%)", or with the shift in the metric's unit when the
// primary's median is 0.
func comparisonMessage(v Verdict, spec Spec) string {
	var sb strings.Builder
	sb.WriteString(prefix(spec.Name))
	sb.WriteString("canary ")
	if v.HasRelativeShift {
		sb.WriteString(fmt.Sprintf("%+.1f%% vs primary", 100*v.RelativeShift))
	} else {
		sb.WriteString(signed(v.Shift) + " vs primary median 0")
	}
	sb.WriteString(" (" + formatP(v.P) + ", tolerance " + number(100*spec.Tolerance) + "%")
	if spec.AbsTolerance > 0 {
		sb.WriteString(" and " + number(spec.AbsTolerance))
	}
	sb.WriteString(")")
	return sb.String()
}

// formatP is "p=0.002", "p=0.0496", "p=1" or "p<0.001".
func formatP(p float64) string {
	if p < 0.001 {
		return "p<0.001"
	}
	return "p=" + strconv.FormatFloat(p, 'g', 3, 64)
}

// number formats f with at most 4 significant digits: 10, 2.5, 0.0001.
func number(f float64) string {
	return strconv.FormatFloat(f, 'g', 4, 64)
}

func signed(f float64) string {
	if f >= 0 {
		return "+" + number(f)
	}
	return number(f)
}
