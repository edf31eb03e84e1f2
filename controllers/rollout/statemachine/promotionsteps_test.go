package statemachine

import (
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	sluicev1 "github.com/sluice-dev/sluice/api/v1alpha1"
)

func withStepWeightPromotion(step int32) specOpt {
	return func(s *sluicev1.RolloutSpec) {
		s.Strategy = sluicev1.Strategy{Canary: &sluicev1.CanaryStrategy{StepWeights: []int32{10, 50}, StepWeightPromotion: ptr.To(step)}}
	}
}

// TestStepWeightPromotionMovesTrafficBackToThePrimaryInSteps: with
// stepWeightPromotion, Finalising gives the primary (ready at the new
// revision) its traffic back in steps, each held one analysis interval,
// instead of all at once; then it drains as usual.
func TestStepWeightPromotionMovesTrafficBackToThePrimaryInSteps(t *testing.T) {
	finalising := func(opts ...statusOpt) *sluicev1.RolloutStatus {
		return status(sluicev1.PhaseFinalising, append([]statusOpt{atStep(2, 100)}, opts...)...)
	}
	atNewRevision := primaryAt("rev2", true)
	tests := []struct {
		name string
		spec *sluicev1.RolloutSpec
		st   *sluicev1.RolloutStatus
		obs  Observation
		want want
	}{
		{
			name: "without it, all traffic goes back at once",
			spec: spec(withCanaryWeights(10, 50)), st: finalising(),
			obs:  observe("rev2", routed(100), atNewRevision),
			want: want{phase: sluicev1.PhaseFinalising, weight: ptr.To[int32](0), canaryUp: ptr.To(true)},
		},
		{
			name: "the first step back starts at once",
			spec: spec(withStepWeightPromotion(30)), st: finalising(),
			obs: observe("rev2", routed(100), atNewRevision),
			want: want{phase: sluicev1.PhaseFinalising, weight: ptr.To[int32](70), canaryUp: ptr.To(true), requeue: time.Minute,
				message: "70% on the canary"},
		},
		{
			name: "a step back is held one interval",
			spec: spec(withStepWeightPromotion(30)), st: finalising(atStep(2, 70), stepStarted(20*time.Second)),
			obs: observe("rev2", routed(70), atNewRevision),
			want: want{phase: sluicev1.PhaseFinalising, weight: ptr.To[int32](70), canaryUp: ptr.To(true), requeue: 40 * time.Second,
				noEvents: true},
		},
		{
			name: "after the interval, the next step back",
			spec: spec(withStepWeightPromotion(30)), st: finalising(atStep(2, 70), stepStarted(time.Minute)),
			obs:  observe("rev2", routed(70), atNewRevision),
			want: want{phase: sluicev1.PhaseFinalising, weight: ptr.To[int32](40), canaryUp: ptr.To(true), requeue: time.Minute},
		},
		{
			name: "the last step back goes to 0, and the drain follows",
			spec: spec(withStepWeightPromotion(30)), st: finalising(atStep(2, 10), stepStarted(time.Minute)),
			obs:  observe("rev2", routed(10), atNewRevision),
			want: want{phase: sluicev1.PhaseFinalising, weight: ptr.To[int32](0), canaryUp: ptr.To(true)},
		},
		{
			name: "a weight the router does not hold yet is waited for, the clock not started",
			spec: spec(withStepWeightPromotion(30)), st: finalising(atStep(2, 70), stepStarted(time.Minute)),
			obs:  observe("rev2", routed(100), atNewRevision),
			want: want{phase: sluicev1.PhaseFinalising, weight: ptr.To[int32](70), canaryUp: ptr.To(true)},
		},
		{
			name: "a primary that loses ready replicas holds the steps where they are",
			spec: spec(withStepWeightPromotion(30)), st: finalising(atStep(2, 70), stepStarted(time.Minute)),
			obs:  observe("rev2", routed(70), primaryAt("rev2", false)),
			want: want{phase: sluicev1.PhaseFinalising, weight: ptr.To[int32](70), canaryUp: ptr.To(true), message: "waiting for the primary to be ready again"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := Decide(Input{Spec: tt.spec, Generation: 3, Status: tt.st, Obs: tt.obs, Now: t0})
			checkDecision(t, d, tt.want)
		})
	}
	// The clock of a step back is recorded when it starts.
	d := Decide(Input{Spec: spec(withStepWeightPromotion(30)), Generation: 3, Status: finalising(), Obs: observe("rev2", routed(100), atNewRevision), Now: t0})
	if got := d.Status.StepStartedAt; got == nil || !got.Equal(&metav1.Time{Time: t0}) {
		t.Errorf("stepStartedAt = %v, want now", got)
	}
}
