package statemachine

import (
	"slices"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	sluicev1 "github.com/sluice-dev/sluice/api/v1alpha1"
)

// fuzzSpec is a RolloutSpec the CRD would admit, built from fuzzed
// primitives: kind picks the strategy, w1..w3 are its weights.
func fuzzSpec(kind, w1, w2, w3 uint8, pause int64, threshold int32, flags uint16) *sluicev1.RolloutSpec {
	weights := stepWeights(w1, w2, w3)
	s := spec()
	switch kind % 5 {
	case 0:
		s.Strategy = sluicev1.Strategy{Canary: &sluicev1.CanaryStrategy{StepWeights: weights}}
	case 1:
		step, maxW := int32(w1%100)+1, int32(w2%100)+1
		s.Strategy = sluicev1.Strategy{Canary: &sluicev1.CanaryStrategy{StepWeight: &step, MaxWeight: ptr.To(max(step, maxW))}}
	case 2:
		var steps []sluicev1.CanaryStep
		for i, w := range weights {
			steps = append(steps, sluicev1.CanaryStep{SetWeight: ptr.To(w)})
			if flags&(1<<i) != 0 {
				steps = append(steps, sluicev1.CanaryStep{Pause: &sluicev1.PauseStep{Duration: duration(pause)}})
			}
		}
		s.Strategy = sluicev1.Strategy{Canary: &sluicev1.CanaryStrategy{Steps: steps}}
	case 3:
		s.Strategy = sluicev1.Strategy{BlueGreen: &sluicev1.BlueGreenStrategy{Iterations: int32(w1%10) + 1, Mirror: flags&8 != 0}}
	case 4:
		s.Strategy = sluicev1.Strategy{ABTesting: &sluicev1.ABTestingStrategy{Iterations: int32(w1%10) + 1,
			Match: []sluicev1.RequestMatch{{}}}}
	}
	s.Analysis.Threshold = max(threshold, 1)
	if flags&16 != 0 {
		withMetric()(s)
	}
	for i, t := range []sluicev1.HookType{sluicev1.HookConfirmRollout, sluicev1.HookPreRollout, sluicev1.HookConfirmPromotion, sluicev1.HookPostRollout} {
		if flags&(32<<i) != 0 {
			withHook(t)(s)
		}
	}
	s.Suspend, s.SkipAnalysis = flags&512 != 0, flags&1024 != 0
	if pause != 0 {
		// 0..3600, as the CRD admits; unset (the default) otherwise.
		s.ScaleDownDelaySeconds = ptr.To(int32(uint64(pause) % 3601))
	}
	return s
}

// stepWeights are up to three increasing weights from 1 to 100.
func stepWeights(ws ...uint8) []int32 {
	var out []int32
	for _, w := range ws {
		out = append(out, int32(w%100)+1)
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// duration is a positive duration, nil for 0.
func duration(d int64) *metav1.Duration {
	if d == 0 {
		return nil
	}
	if d < 0 {
		d = -d
	}
	return &metav1.Duration{Duration: time.Duration(d % int64(48*time.Hour))}
}

// ago is t0 minus seconds, nil for 0 (negative seconds are in the future).
func ago(seconds int64) *metav1.Time {
	if seconds == 0 {
		return nil
	}
	return &metav1.Time{Time: t0.Add(-time.Duration(seconds%(1<<30)) * time.Second)}
}

// FuzzDecide holds, for any spec the CRD admits, any status (the API server
// validates none of it) and any observation: Decide never panics and always
// asks for a canary weight from 0 to 100, and never moves traffic to a side
// with no available pod from one with some.
func FuzzDecide(f *testing.F) {
	f.Add(uint8(0), uint8(10), uint8(50), uint8(90), int64(0), int32(2), uint16(0),
		string(sluicev1.PhaseProgressing), int32(10), int32(0), int32(0), int64(30), int64(90), true, true, int32(10), int32(2), int32(2), "rev2", "")
	f.Add(uint8(2), uint8(20), uint8(40), uint8(100), int64(time.Minute), int32(1), uint16(0xffff),
		string(sluicev1.PhasePromoting), int32(100), int32(3), int32(1), int64(600), int64(-5), false, true, int32(100), int32(4), int32(1), "rev3", "promote-full")
	f.Add(uint8(3), uint8(1), uint8(0), uint8(0), int64(0), int32(5), uint16(16),
		"", int32(-1), int32(-7), int32(99), int64(0), int64(0), true, false, int32(-3), int32(0), int32(0), "rev1", "abort")
	f.Add(uint8(4), uint8(0), uint8(0), uint8(0), int64(0), int32(0), uint16(1<<9),
		"no such phase", int32(1<<30), int32(1<<30), int32(-1), int64(1), int64(1), true, true, int32(1<<30), int32(-1), int32(1<<30), "", "retry")
	// A seed in each phase: the fuzzer rarely spells one by mutation.
	for _, phase := range []sluicev1.Phase{sluicev1.PhaseInitializing, sluicev1.PhaseInitialized, sluicev1.PhaseWaiting, sluicev1.PhaseProgressing,
		sluicev1.PhaseWaitingPromotion, sluicev1.PhasePromoting, sluicev1.PhaseFinalising, sluicev1.PhaseSucceeded, sluicev1.PhaseFailed} {
		f.Add(uint8(0), uint8(20), uint8(50), uint8(0), int64(0), int32(2), uint16(0),
			string(phase), int32(20), int32(0), int32(0), int64(30), int64(90), true, true, int32(20), int32(2), int32(2), "rev2", "")
	}
	f.Fuzz(func(t *testing.T, kind, w1, w2, w3 uint8, pause int64, threshold int32, flags uint16,
		phase string, weight, step, failed int32, stepAge, checkAge int64, canaryReady, primaryReady bool,
		routedWeight, canaryAvail, primaryAvail int32, revision, act string) {
		sp := fuzzSpec(kind, w1, w2, w3, pause, threshold, flags)
		st := status(sluicev1.Phase(phase), atStep(step, weight), failedChecks(failed))
		st.StepStartedAt, st.LastCheckAt, st.WaitingSince = ago(stepAge), ago(checkAge), ago(stepAge/2)
		st.PromotionStartedAt, st.RunStartedAt = ago(checkAge/3), ago(stepAge*2)
		st.Paused, st.PreRolloutPassed, st.PostRolloutPending, st.FullPromotion = flags&1 != 0, flags&2 != 0, flags&4 != 0, flags&2048 != 0
		st.TargetScaledDown = flags&4096 != 0
		st.CanaryDrainingSince = ago(checkAge / 5)
		obs := observe(revision, primaryAt("rev1", primaryReady), canaryAvailable(canaryAvail), primaryReplicas(primaryAvail, primaryAvail),
			targetReplicas(canaryAvail), autoscalerMin(int32(w3)), routed(routedWeight), action(sluicev1.Action(act)))
		// As the observer reads them: a workload is ready only with an
		// available pod.
		obs.CanaryReady, obs.TargetFound, obs.PrimaryRestorable = canaryReady && canaryAvail > 0, flags&8192 != 0 || revision != "", flags&16384 != 0
		obs.PrimaryReady = obs.PrimaryReady && primaryAvail > 0
		if flags&32768 != 0 {
			obs.RoutedWeight = nil
			obs.Checks = &CheckResult{Outcome: []Outcome{CheckPass, CheckFail, CheckHold}[int(w2)%3], Rollback: w3%2 == 0,
				RetryAt: t0.Add(time.Duration(checkAge - stepAge))}
		}
		d := Decide(Input{Spec: sp, Generation: int64(flags), Status: st, Obs: obs, Now: t0})
		if w := d.Desired.CanaryWeight; w < 0 || w > 100 {
			t.Errorf("desired canary weight %d, want 0 to 100 (phase %q)", w, d.Status.Phase)
		}
		// DESIGN.md's first invariant: traffic goes only to pods that are
		// ready. A weight change never moves a share from the side with
		// available pods to a side with none (counts as the API server
		// keeps them, never negative; with no route read back there is no
		// share to move yet).
		if obs.RoutedWeight != nil && canaryAvail >= 0 && primaryAvail >= 0 {
			from, to := percent(*obs.RoutedWeight), d.Desired.CanaryWeight
			if to > from && canaryAvail == 0 && primaryAvail > 0 {
				t.Errorf("phase %q to %q: the canary's weight moves from %d%% to %d%% with no canary pod available (%d primary pods)",
					phase, d.Status.Phase, from, to, primaryAvail)
			}
			if to < from && primaryAvail == 0 && canaryAvail > 0 {
				t.Errorf("phase %q to %q: the canary's weight moves from %d%% to %d%% with no primary pod available (%d canary pods)",
					phase, d.Status.Phase, from, to, canaryAvail)
			}
		}
		// The second: the pods that serve never shrink because of Sluice. A
		// canary the route sends traffic to keeps its pods; but for a
		// target seen parked since its run ended, whose count is its
		// owner's (drainsCanary), which a route edited by hand at rest
		// would have to reach.
		if obs.RoutedWeight != nil && percent(*obs.RoutedWeight) > 0 && canaryAvail > 0 && obs.TargetFound && !st.TargetScaledDown && !d.Desired.CanaryUp {
			t.Errorf("phase %q to %q: the canary takes %d%% of the traffic on %d pods and is scaled down",
				phase, d.Status.Phase, percent(*obs.RoutedWeight), canaryAvail)
		}
		if r := d.RequeueAfter; r != 0 && r < time.Second {
			t.Errorf("requeue after %s: a Rollout is never woken more often than each second", r)
		}
	})
}

// TestAWeightOutsideZeroToHundredIsNeverAskedOfTheRouter: the API server
// validates no status field and a route may be edited by hand, so a weight
// read from either is brought within 0..100 before anything acts on it
// (found by FuzzDecide: an edited phase and weight reached Desired as -1).
func TestAWeightOutsideZeroToHundredIsNeverAskedOfTheRouter(t *testing.T) {
	for _, tt := range []struct {
		name string
		st   *sluicev1.RolloutStatus
		obs  Observation
		want int32
	}{
		{"a negative weight in an initializing status", status(sluicev1.PhaseInitializing, atStep(0, -1)),
			observe("rev1", primaryAt("rev0", false)), 0},
		{"a weight above 100 in a paused run", status(sluicev1.PhaseProgressing, atStep(0, 250), func(st *sluicev1.RolloutStatus) { st.Paused = true }),
			observe("rev2", routed(250)), 100},
		{"a route read back above 100 during an abort of a promotion", status(sluicev1.PhasePromoting, atStep(2, 100), promotionStarted(time.Minute)),
			observe("rev2", routed(180), primaryAt("rev2", false), action(sluicev1.ActionAbort)), 100},
	} {
		t.Run(tt.name, func(t *testing.T) {
			d := Decide(Input{Spec: spec(withCanaryWeights(10, 50)), Generation: 1, Status: tt.st, Obs: tt.obs, Now: t0})
			if d.Desired.CanaryWeight != tt.want || d.Status.CanaryWeight < 0 || d.Status.CanaryWeight > 100 {
				t.Errorf("desired weight %d, status weight %d; want %d and a status weight within 0..100",
					d.Desired.CanaryWeight, d.Status.CanaryWeight, tt.want)
			}
		})
	}
}
