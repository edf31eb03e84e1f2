package statemachine

import (
	"testing"
	"time"
)

// BenchmarkDecide measures one decision in the middle of a canary run: the
// state machine's cost per reconcile, without any I/O.
func BenchmarkDecide(b *testing.B) {
	s := spec(withCanaryWeights(5, 10, 25, 50, 75), withMetric())
	st := status("Progressing", atStep(2, 25), stepStarted(30*time.Second))
	obs := observe("rev2", routed(25))
	b.ReportAllocs()
	for b.Loop() {
		_ = Decide(Input{Spec: s, Generation: 1, Status: st, Obs: obs, Now: t0})
	}
}
