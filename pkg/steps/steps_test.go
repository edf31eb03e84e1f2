package steps

import (
	"fmt"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	sluicev1 "github.com/sluice-dev/sluice/api/v1alpha1"
)

func TestPlanExpandsEachWayOfListingWeights(t *testing.T) {
	tests := []struct {
		name string
		spec *sluicev1.RolloutSpec
		want string
	}{
		{"blue/green iterations hold weight zero", spec(), "0c 0c"},
		{"stepWeights list one checked step each", spec(withCanaryWeights(5, 25, 50)), "5c 25c 50c"},
		{"stepWeight climbs to maxWeight and ends on it", spec(func(s *sluicev1.RolloutSpec) {
			s.Strategy = sluicev1.Strategy{Canary: &sluicev1.CanaryStrategy{StepWeight: ptr.To[int32](20), MaxWeight: ptr.To[int32](50)}}
		}), "20c 40c 50c"},
		{"stepWeight without maxWeight climbs to 100", spec(func(s *sluicev1.RolloutSpec) {
			s.Strategy = sluicev1.Strategy{Canary: &sluicev1.CanaryStrategy{StepWeight: ptr.To[int32](50)}}
		}), "50c 100c"},
		{"pauses keep the previous weight", spec(withSteps(
			sluicev1.CanaryStep{SetWeight: ptr.To[int32](10)},
			sluicev1.CanaryStep{Pause: &sluicev1.PauseStep{Duration: &metav1.Duration{Duration: time.Minute}}},
			sluicev1.CanaryStep{SetWeight: ptr.To[int32](60)},
			sluicev1.CanaryStep{Pause: &sluicev1.PauseStep{}},
		)), "10c 10p1m0s 60c 60manual"},
		{"skipAnalysis has no steps", spec(skipAnalysis), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := ""
			for i, s := range Plan(tt.spec) {
				if i > 0 {
					got += " "
				}
				switch {
				case s.ManualPause:
					got += fmt.Sprintf("%dmanual", s.Weight)
				case s.Pause != nil:
					got += fmt.Sprintf("%dp%s", s.Weight, *s.Pause)
				case s.Check:
					got += fmt.Sprintf("%dc", s.Weight)
				}
			}
			if got != tt.want {
				t.Errorf("Plan = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestScaleDownDelayDefaultsToTenSecondsAndZeroMeansNone(t *testing.T) {
	for _, tt := range []struct {
		set  *int32
		want time.Duration
	}{
		{nil, 10 * time.Second},
		{ptr.To[int32](0), 0},
		{ptr.To[int32](45), 45 * time.Second},
		{ptr.To[int32](-3), 0}, // the API server rejects it; code-built specs get no drain
	} {
		s := spec(func(s *sluicev1.RolloutSpec) { s.ScaleDownDelaySeconds = tt.set })
		if got := ScaleDownDelay(s); got != tt.want {
			t.Errorf("ScaleDownDelay(%v) = %s, want %s", tt.set, got, tt.want)
		}
	}
}

// --- builders ---------------------------------------------------------------

type specOpt func(*sluicev1.RolloutSpec)

func spec(opts ...specOpt) *sluicev1.RolloutSpec {
	s := &sluicev1.RolloutSpec{Strategy: sluicev1.Strategy{BlueGreen: &sluicev1.BlueGreenStrategy{Iterations: 2}}}
	for _, o := range opts {
		o(s)
	}
	return s
}

func withCanaryWeights(ws ...int32) specOpt {
	return func(s *sluicev1.RolloutSpec) {
		s.Strategy = sluicev1.Strategy{Canary: &sluicev1.CanaryStrategy{StepWeights: ws}}
	}
}

func withSteps(steps ...sluicev1.CanaryStep) specOpt {
	return func(s *sluicev1.RolloutSpec) {
		s.Strategy = sluicev1.Strategy{Canary: &sluicev1.CanaryStrategy{Steps: steps}}
	}
}

func skipAnalysis(s *sluicev1.RolloutSpec) { s.SkipAnalysis = true }

// TestHoldEndsIsWhenTheCurrentStepMovesOn: what the plugin shows as the
// next check (or a timed pause's end) is the step's hold as the
// controller counts it, and nothing while no hold runs.
func TestHoldEndsIsWhenTheCurrentStepMovesOn(t *testing.T) {
	started := time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC)
	canary := func(steps ...sluicev1.CanaryStep) *sluicev1.RolloutSpec {
		return &sluicev1.RolloutSpec{
			Strategy: sluicev1.Strategy{Canary: &sluicev1.CanaryStrategy{Steps: steps}},
			Analysis: &sluicev1.Analysis{Interval: &metav1.Duration{Duration: 30 * time.Second}},
		}
	}
	weight := func(w int32) sluicev1.CanaryStep { return sluicev1.CanaryStep{SetWeight: &w} }
	pauseFor := func(d time.Duration) sluicev1.CanaryStep {
		return sluicev1.CanaryStep{Pause: &sluicev1.PauseStep{Duration: &metav1.Duration{Duration: d}}}
	}
	status := func(phase sluicev1.Phase, step int32, opts ...func(*sluicev1.RolloutStatus)) *sluicev1.RolloutStatus {
		st := &sluicev1.RolloutStatus{Phase: phase, CurrentStepIndex: step, StepStartedAt: &metav1.Time{Time: started}}
		for _, o := range opts {
			o(st)
		}
		return st
	}
	for _, tt := range []struct {
		name  string
		spec  *sluicev1.RolloutSpec
		st    *sluicev1.RolloutStatus
		ends  time.Duration
		check bool
		none  bool
	}{
		{name: "a weight step: checked one interval after its hold started", spec: canary(weight(10), weight(50)), st: status(sluicev1.PhaseProgressing, 1),
			ends: 30 * time.Second, check: true},
		{name: "a timed pause: ends after its duration, unchecked", spec: canary(weight(10), pauseFor(5*time.Minute)), st: status(sluicev1.PhaseProgressing, 1),
			ends: 5 * time.Minute},
		{name: "a pause until promoted: no time", spec: canary(weight(10), sluicev1.CanaryStep{Pause: &sluicev1.PauseStep{}}), st: status(sluicev1.PhaseProgressing, 1), none: true},
		{name: "a hold not started (the router has not confirmed the weight)", spec: canary(weight(10)),
			st: status(sluicev1.PhaseProgressing, 0, func(st *sluicev1.RolloutStatus) { st.StepStartedAt = nil }), none: true},
		{name: "a paused Rollout: its clocks stop", spec: canary(weight(10)), st: status(sluicev1.PhaseProgressing, 0, func(st *sluicev1.RolloutStatus) { st.Paused = true }), none: true},
		{name: "a suspended Rollout: its clocks stop", spec: func() *sluicev1.RolloutSpec { s := canary(weight(10)); s.Suspend = true; return s }(),
			st: status(sluicev1.PhaseProgressing, 0), none: true},
		{name: "no run under way", spec: canary(weight(10)), st: status(sluicev1.PhaseSucceeded, 0), none: true},
		{name: "a step the spec no longer has", spec: canary(weight(10)), st: status(sluicev1.PhaseProgressing, 3), none: true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ends, check, ok := HoldEnds(tt.spec, tt.st)
			if tt.none {
				if ok {
					t.Errorf("hold ends %v (check %v), want no time", ends, check)
				}
				return
			}
			if !ok || !ends.Equal(started.Add(tt.ends)) || check != tt.check {
				t.Errorf("hold ends %v, check %v, ok %v; want %v, check %v", ends, check, ok, started.Add(tt.ends), tt.check)
			}
		})
	}
}
