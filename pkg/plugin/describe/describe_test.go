package describe

import (
	"testing"

	"k8s.io/utils/ptr"

	sluicev1 "github.com/sluice-dev/sluice/api/v1alpha1"
)

func TestStrategyNameSaysHowTheCanaryIsSized(t *testing.T) {
	for _, tt := range []struct {
		strategy sluicev1.Strategy
		want     string
	}{
		{sluicev1.Strategy{Canary: &sluicev1.CanaryStrategy{StepWeights: []int32{10}}}, "canary"},
		{sluicev1.Strategy{Canary: &sluicev1.CanaryStrategy{StepWeights: []int32{10}, ScaleWithWeight: true}}, "canary, sized by its weight"},
		{sluicev1.Strategy{Canary: &sluicev1.CanaryStrategy{StepWeights: []int32{10}, ScaleWithWeight: true, MinReplicas: ptr.To[int32](1)}}, "canary, sized by its weight, at least 1 replica"},
		{sluicev1.Strategy{Canary: &sluicev1.CanaryStrategy{StepWeights: []int32{10}, ScaleWithWeight: true, MinReplicas: ptr.To[int32](3)}}, "canary, sized by its weight, at least 3 replicas"},
		{sluicev1.Strategy{BlueGreen: &sluicev1.BlueGreenStrategy{Iterations: 1}}, "blue/green"},
		{sluicev1.Strategy{BlueGreen: &sluicev1.BlueGreenStrategy{Iterations: 1, Mirror: true}}, "blue/green with mirroring"},
		{sluicev1.Strategy{ABTesting: &sluicev1.ABTestingStrategy{Iterations: 1}}, "A/B testing"},
	} {
		if got := StrategyName(&sluicev1.RolloutSpec{Strategy: tt.strategy}); got != tt.want {
			t.Errorf("StrategyName(%+v) = %q, want %q", tt.strategy, got, tt.want)
		}
	}
}
