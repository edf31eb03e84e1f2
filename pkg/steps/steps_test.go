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
