package plugin

import (
	"bytes"
	"os"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	sluicev1 "github.com/sluice-dev/sluice/api/v1alpha1"
)

func TestReleaseOutcome(t *testing.T) {
	ready := func(s metav1.ConditionStatus, gen int64) metav1.Condition {
		return metav1.Condition{Type: sluicev1.ConditionReady, Status: s, ObservedGeneration: gen}
	}
	reconciling := metav1.Condition{Type: sluicev1.ConditionReconciling, Status: metav1.ConditionTrue}
	for _, tc := range []struct {
		name     string
		observed int64
		phase    sluicev1.Phase
		conds    []metav1.Condition
		want     outcome
	}{
		{"succeeded ends the wait", 2, sluicev1.PhaseSucceeded, nil, outcomeSucceeded},
		{"failed ends the wait", 2, sluicev1.PhaseFailed, nil, outcomeFailed},
		{"initialized and ready ends the wait", 2, sluicev1.PhaseInitialized, []metav1.Condition{ready(metav1.ConditionTrue, 2)}, outcomeSucceeded},
		{"initialized but not ready waits", 2, sluicev1.PhaseInitialized, []metav1.Condition{ready(metav1.ConditionFalse, 2)}, outcomeRunning},
		{"initialized with Ready of an older generation waits", 2, sluicev1.PhaseInitialized, []metav1.Condition{ready(metav1.ConditionTrue, 1)}, outcomeRunning},
		{"initialized while reconciling waits", 2, sluicev1.PhaseInitialized, []metav1.Condition{ready(metav1.ConditionTrue, 2), reconciling}, outcomeRunning},
		{"succeeded of an older generation waits", 1, sluicev1.PhaseSucceeded, nil, outcomeRunning},
		{"failed of an older generation waits", 1, sluicev1.PhaseFailed, nil, outcomeRunning},
		{"progressing waits", 2, sluicev1.PhaseProgressing, nil, outcomeRunning},
		{"not reconciled yet waits", 0, "", nil, outcomeRunning},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ro := &sluicev1.Rollout{ObjectMeta: metav1.ObjectMeta{Generation: 2}}
			ro.Status = sluicev1.RolloutStatus{ObservedGeneration: tc.observed, Phase: tc.phase, Conditions: tc.conds}
			if got := releaseOutcome(ro); got != tc.want {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
}

func TestStepMark(t *testing.T) {
	for _, tc := range []struct {
		phase   sluicev1.Phase
		current int32
		want    string // marks of steps 0..3
	}{
		{sluicev1.PhaseProgressing, 1, "[x][>][ ][ ]"},
		{sluicev1.PhaseWaitingPromotion, 3, "[x][x][x][>]"},
		{sluicev1.PhaseWaiting, 0, "[ ][ ][ ][ ]"},
		{sluicev1.PhasePromoting, 3, "[x][x][x][x]"},
		{sluicev1.PhaseSucceeded, 0, "[x][x][x][x]"},
		{sluicev1.PhaseFailed, 2, "[ ][ ][!][ ]"},
		{sluicev1.PhaseInitialized, 0, "[ ][ ][ ][ ]"},
	} {
		t.Run(string(tc.phase), func(t *testing.T) {
			st := &sluicev1.RolloutStatus{Phase: tc.phase, CurrentStepIndex: tc.current}
			got := ""
			for i := 0; i < 4; i++ {
				got += stepMark(st, i)
			}
			if got != tc.want {
				t.Errorf("got %s, want %s", got, tc.want)
			}
		})
	}
}

func TestFormatRange(t *testing.T) {
	for _, tc := range []struct {
		r    *sluicev1.ThresholdRange
		want string
	}{
		{&sluicev1.ThresholdRange{Min: ptr.To(99.0)}, ">= 99"},
		{&sluicev1.ThresholdRange{Max: ptr.To(500.0)}, "<= 500"},
		{&sluicev1.ThresholdRange{Min: ptr.To(0.5), Max: ptr.To(1.5)}, "0.5..1.5"},
	} {
		if got := formatRange(tc.r); got != tc.want {
			t.Errorf("formatRange = %q, want %q", got, tc.want)
		}
	}
}

func TestACompareMetricShowsTheCanaryAgainstThePrimary(t *testing.T) {
	ro := &sluicev1.Rollout{}
	ro.Spec.Analysis = &sluicev1.Analysis{Metrics: []sluicev1.MetricCheck{
		{Name: "latency", TemplateRef: &sluicev1.MetricTemplateReference{Name: "latency"},
			ThresholdRange: &sluicev1.ThresholdRange{Max: ptr.To(500.0)},
			Compare:        &sluicev1.Compare{Direction: sluicev1.CompareIncrease, Tolerance: "10%"}},
		{Name: "success", TemplateRef: &sluicev1.MetricTemplateReference{Name: "success"},
			Compare: &sluicev1.Compare{Direction: sluicev1.CompareDecrease, Tolerance: "1%"}},
	}}
	ro.Status.Metrics = []sluicev1.MetricStatus{
		{Name: "latency", Value: "240.8", PrimaryValue: "192.1", Estimate: "+22.1%", PValue: "1.45e-11", Verdict: "Fail",
			Message: "latency: canary +22.1% vs primary (p<0.001, tolerance 10%)"},
	}
	var b bytes.Buffer
	(&view{ro: ro}).metrics(&b, style{width: 200})
	for _, want := range []string{
		"240.8 vs primary 192.1 (+22.1%, p=1.45e-11)",
		"<= 500, <= +10% vs primary",
		">= -1% vs primary",
		"latency: canary +22.1% vs primary (p<0.001, tolerance 10%)",
	} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("metrics lack %q:\n%s", want, b.String())
		}
	}
}

func TestAMetricShowsTheRequestsItNeedsToBeJudged(t *testing.T) {
	ro := &sluicev1.Rollout{}
	ro.Spec.Analysis = &sluicev1.Analysis{Metrics: []sluicev1.MetricCheck{
		{Name: sluicev1.MetricRequestSuccessRate, ThresholdRange: &sluicev1.ThresholdRange{Min: ptr.To(99.0)}, MinRequests: ptr.To[int64](100)},
		{Name: sluicev1.MetricRequestDuration, ThresholdRange: &sluicev1.ThresholdRange{Max: ptr.To(500.0)}},
	}}
	ro.Status.Metrics = []sluicev1.MetricStatus{{Name: sluicev1.MetricRequestSuccessRate, Verdict: "NoData",
		Message: "request-success-rate: no data: the canary answered fewer than 100 requests over the 1m window, or none was counted (minRequests: 100, onNoData: hold)"}}
	var b bytes.Buffer
	(&view{ro: ro}).metrics(&b, style{width: 300})
	lines := strings.Split(b.String(), "\n")
	line := func(name string) string {
		for _, l := range lines {
			if strings.Contains(l, name+" ") {
				return l
			}
		}
		return ""
	}
	if l := line(sluicev1.MetricRequestSuccessRate); !strings.Contains(l, ">= 99, on 100+ requests") || !strings.Contains(l, "fewer than 100 requests") {
		t.Errorf("the guarded check reads %q; want its range with the requests it needs, and why it has no verdict", l)
	}
	if l := line(sluicev1.MetricRequestDuration); !strings.Contains(l, "<= 500") || strings.Contains(l, "requests") {
		t.Errorf("the unguarded check reads %q; want its range alone", l)
	}
}

func TestDescribeStepSaysWhatEachStepDoes(t *testing.T) {
	ro := &sluicev1.Rollout{}
	canarySteps(10, 0, 40)(ro)
	ro.Spec.Strategy.Canary.Steps = append(ro.Spec.Strategy.Canary.Steps,
		sluicev1.CanaryStep{Pause: &sluicev1.PauseStep{Duration: &metav1.Duration{Duration: 30 * time.Second}}})
	ro.Spec.Analysis = &sluicev1.Analysis{Interval: &metav1.Duration{Duration: 2 * time.Minute}}
	v := &view{ro: ro}
	var b bytes.Buffer
	v.steps(&b, style{width: 80})
	for _, want := range []string{"set weight 10%, hold 2m, check", "pause at 10% until promoted", "set weight 40%", "pause at 40% for 30s"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("step list lacks %q:\n%s", want, b.String())
		}
	}
}

func TestColoursOnlyOnATerminal(t *testing.T) {
	if styleFor(&bytes.Buffer{}, func(string) string { return "" }).color {
		t.Error("colours on for a buffer")
	}
	f, err := os.CreateTemp(t.TempDir(), "out")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = f.Close() }()
	if s := styleFor(f, func(string) string { return "" }); s.color || s.width != 80 {
		t.Errorf("a file is not a terminal: got %+v", s)
	}
	if got := (style{}).paint(red, "x"); got != "x" {
		t.Errorf("paint without colours = %q", got)
	}
	if got := (style{color: true}).paint(red, "x"); got != "\x1b[31mx\x1b[0m" {
		t.Errorf("paint with colours = %q", got)
	}
}

func TestTableCutsTheLastColumnToTheWidth(t *testing.T) {
	tb := &table{indent: "  ", header: []string{"A", "MESSAGE"}}
	tb.add(plain("name", strings.Repeat("long words ", 20))...)
	var b bytes.Buffer
	tb.write(&b, style{width: 40, color: true})
	for _, l := range strings.Split(strings.TrimRight(b.String(), "\n"), "\n") {
		visible := strings.NewReplacer("\x1b[1m", "", "\x1b[0m", "").Replace(l)
		if len([]rune(visible)) > 40 {
			t.Errorf("line longer than 40: %q", visible)
		}
	}
	if !strings.Contains(b.String(), "...") {
		t.Errorf("cut not marked:\n%s", b.String())
	}
}

func TestActionPatchOnlyTouchesTheAnnotations(t *testing.T) {
	b, err := actionPatch(sluicev1.ActionPromoteFull, "alice@example.com", "3f9a")
	if err != nil {
		t.Fatal(err)
	}
	want := `{"metadata":{"annotations":{"sluice.dev/action":"promote-full","sluice.dev/action-by":"alice@example.com","sluice.dev/action-id":"3f9a"}}}`
	if string(b) != want {
		t.Errorf("patch = %s, want %s", b, want)
	}
}

func TestEachActionRequestHasItsOwnID(t *testing.T) {
	a, b := newActionID(), newActionID()
	if len(a) != 16 || a == b {
		t.Errorf("ids %q and %q: want two different 16-character ids", a, b)
	}
}

// TestAVerdictIsColouredByWhatItDoesToTheStep: red for what counts as a
// failed check (an Error was shown yellow, like a hold), yellow for what
// holds the step.
func TestAVerdictIsColouredByWhatItDoesToTheStep(t *testing.T) {
	for verdict, want := range map[string]string{
		"Pass": green, "Fail": red, "Error": red, "NoData": yellow, "Wait": yellow, "": "",
	} {
		if got := verdictColor(verdict); got != want {
			t.Errorf("verdict %q: colour %q, want %q", verdict, got, want)
		}
	}
}

func TestHoldLeftSaysWhenTheStepMovesOn(t *testing.T) {
	now := time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC)
	for _, tt := range []struct {
		ends  time.Duration
		check bool
		want  string
	}{
		{39 * time.Second, true, "checks in 39s"},
		{4*time.Minute + 30*time.Second, false, "ends in 4m30s"},
		{0, true, "checks due"},
		{-5 * time.Second, false, "ends due"},
	} {
		if got := holdLeft(now.Add(tt.ends), tt.check, now); got != tt.want {
			t.Errorf("holdLeft(%s, check %v) = %q, want %q", tt.ends, tt.check, got, tt.want)
		}
	}
}

// A canary whose share is held on the primary (it has no available pod)
// gets no traffic: the list, the status line and the view say so rather
// than show the weight of its step as if it were served.
func TestAHeldShareShowsAsNoTrafficOnTheCanary(t *testing.T) {
	ro := &sluicev1.Rollout{Status: sluicev1.RolloutStatus{Phase: sluicev1.PhaseProgressing, CanaryWeight: 20, CanaryShareHeld: true}}
	if got := weightText(&ro.Status); got != "0% (20% held)" {
		t.Errorf("weight column %q, want %q", got, "0% (20% held)")
	}
	var b bytes.Buffer
	(&view{ro: ro}).traffic(&b, style{width: defaultWidth})
	for _, want := range [][]string{
		{"primary", "100%"},
		{"canary", " 0%"},
		{"the canary's 20% is held on the primary: it has no available pod"},
	} {
		if lineWith(b.String(), want...) == "" {
			t.Errorf("no line with %q in:\n%s", want, b.String())
		}
	}
	ro.Status.CanaryShareHeld = false
	if got := weightText(&ro.Status); got != "20%" {
		t.Errorf("weight column %q once the share is back, want 20%%", got)
	}
}
