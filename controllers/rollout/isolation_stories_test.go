package rollout_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	sluicev1 "github.com/sluice-dev/sluice/api/v1alpha1"
	"github.com/sluice-dev/sluice/internal/manager"
	"github.com/sluice-dev/sluice/pkg/webhooks"
)

// hangingHook is a webhook that never answers: each call waits until the
// caller gives up (its timeout) or the test ends. It records which Rollouts
// have called it.
type hangingHook struct {
	mu      sync.Mutex
	callers map[string]int
}

func (h *hangingHook) ServeHTTP(_ http.ResponseWriter, r *http.Request) {
	var p webhooks.Payload
	_ = json.NewDecoder(r.Body).Decode(&p)
	h.mu.Lock()
	h.callers[p.Name]++
	h.mu.Unlock()
	<-r.Context().Done()
}

// rollouts is how many Rollouts have called the hook.
func (h *hangingHook) rollouts() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.callers)
}

func (s *story) hangingHook() (*hangingHook, string) {
	h := &hangingHook{callers: map[string]int{}}
	srv := httptest.NewServer(h)
	// Close waits for the handlers: closing their connections ends them.
	s.t.Cleanup(func() {
		srv.CloseClientConnections()
		srv.Close()
	})
	return h, srv.URL
}

func hookWith(name string, t sluicev1.HookType, url string, timeout time.Duration, retries int32) rolloutOpt {
	return func(ro *sluicev1.Rollout) {
		ro.Spec.Analysis.Webhooks = append(ro.Spec.Analysis.Webhooks, sluicev1.Webhook{
			Name: name, Type: t, URL: url, Timeout: &metav1.Duration{Duration: timeout}, Retries: retries,
		})
	}
}

func threshold(n int32) rolloutOpt {
	return func(ro *sluicev1.Rollout) { ro.Spec.Analysis.Threshold = n }
}

// TestTenRolloutsWithHangingHooksDoNotDelayAnotherRolloutsRollback is one
// tenant stalling everyone, as issue 12 saw it: ten Rollouts whose
// pre-rollout hook never answers (each call waits out its 3s timeout, and
// once more for its retry) must not hold up the rollback of an unrelated
// Rollout whose own pre-rollout hook fails at once. Its rollback is timed
// alone first, then among the ten; the second may take longer by one hook
// timeout and an interval, and some slack for a loaded machine, no more
// (while hooks ran inside the reconciles it took well over 13s). The
// hanging hooks fail closed: each counts as a failed check, and no canary
// behind them gets traffic.
func TestTenRolloutsWithHangingHooksDoNotDelayAnotherRolloutsRollback(t *testing.T) {
	const (
		hookTimeout = 3 * time.Second
		interval    = time.Second
		// What a loaded 2-core machine may add to the same work.
		slack      = 8 * time.Second
		neighbours = 10
	)
	// Fewer workers than hanging neighbours (4, the old default): the
	// victim must not depend on a worker being free of hooks.
	s := newStoryWith(t, manager.Options{MaxConcurrentReconciles: 4})
	hang, hangURL := s.hangingHook()
	failing := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "smoke test failed", http.StatusInternalServerError)
	}))
	t.Cleanup(failing.Close)

	s.deploy("victim", "podinfo:1.0")
	s.initialized("victim", webhook("smoke", sluicev1.HookPreRollout, failing.URL))

	// The rollback with no neighbours.
	start := time.Now()
	s.setImage("victim", "podinfo:2.0")
	first := s.waitPhase("victim", sluicev1.PhaseFailed, storyTimeout)
	alone := time.Since(start)
	t.Logf("rolled back alone in %s", alone.Round(time.Millisecond))

	for i := range neighbours {
		name := fmt.Sprintf("slow-%d", i)
		s.deploy(name, "podinfo:1.0")
		// A threshold they never reach: their hooks go on hanging.
		s.rollout(name, threshold(1000), hookWith("smoke", sluicev1.HookPreRollout, hangURL, hookTimeout, 1))
	}
	for i := range neighbours {
		s.waitPhase(fmt.Sprintf("slow-%d", i), sluicev1.PhaseInitialized, storyTimeout)
	}
	for i := range neighbours {
		s.setImage(fmt.Sprintf("slow-%d", i), "podinfo:2.0")
	}
	s.eventually(storyTimeout, "every neighbour waiting on its hanging hook", func() error {
		if n := hang.rollouts(); n < neighbours {
			return fmt.Errorf("%d of %d neighbours have called their hook", n, neighbours)
		}
		return nil
	})

	// The same rollback among them.
	start = time.Now()
	s.setImage("victim", "podinfo:3.0")
	bound := alone + hookTimeout + interval + slack
	s.eventually(bound, "the victim rolled back among hanging neighbours", func() error {
		ro := s.getRollout("victim")
		if ro.Status.Phase != sluicev1.PhaseFailed || ro.Status.FailedRevision == first.Status.FailedRevision {
			return fmt.Errorf("phase %s, failed revision %q (%s)", ro.Status.Phase, ro.Status.FailedRevision, ro.Status.Message)
		}
		return nil
	})
	t.Logf("rolled back among %d hanging neighbours in %s", neighbours, time.Since(start).Round(time.Millisecond))

	// The neighbours' hooks never answered: failed checks, no traffic.
	for i := range neighbours {
		name := fmt.Sprintf("slow-%d", i)
		s.eventually(storyTimeout, name+" charged a failed check for its hanging hook", func() error {
			ro := s.getRollout(name)
			if ro.Status.FailedChecks < 1 || !strings.Contains(ro.Status.Message, "pre-rollout hook failed") {
				return fmt.Errorf("failedChecks %d, phase %s (%s)", ro.Status.FailedChecks, ro.Status.Phase, ro.Status.Message)
			}
			if ro.Status.Phase != sluicev1.PhaseProgressing || ro.Status.CanaryWeight != 0 {
				return fmt.Errorf("phase %s, canary weight %d: want Progressing at 0%% behind the hook", ro.Status.Phase, ro.Status.CanaryWeight)
			}
			return nil
		})
	}
}
