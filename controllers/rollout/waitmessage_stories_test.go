package rollout_test

import (
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	"k8s.io/client-go/util/retry"

	sluicev1 "github.com/sluice-dev/sluice/api/v1alpha1"
	"github.com/sluice-dev/sluice/internal/manager"
)

// statusWrites counts the manager's writes of one Rollout's status.
type statusWrites struct {
	next http.RoundTripper
	path atomic.Pointer[string]
	n    atomic.Int32
}

func (c *statusWrites) RoundTrip(r *http.Request) (*http.Response, error) {
	if p := c.path.Load(); p != nil && r.Method == http.MethodPatch && strings.HasSuffix(r.URL.Path, *p) {
		c.n.Add(1)
	}
	return c.next.RoundTrip(r)
}

// TestALongWaitShowsItsProgressInTheMessageWithoutAWriteForEachStep: the
// canary waits to be ready for 12 s while its Deployment's status moves
// every 300 ms (one of two replicas updated, then both). The Rollout's
// message follows the wait, but a change of words only is written at most
// every 5 s: on a busy cluster a wait's words move with each step of the
// Deployment controller, and written each time they were a fifth of a
// release's writes. The last words are shown within those 5 s.
func TestALongWaitShowsItsProgressInTheMessageWithoutAWriteForEachStep(t *testing.T) {
	writes := &statusWrites{}
	s := newStoryWrapped(t, manager.Options{}, func(rt http.RoundTripper) http.RoundTripper {
		writes.next = rt
		return writes
	})
	path := "/namespaces/" + s.ns + "/rollouts/podinfo/status"
	writes.path.Store(&path)
	s.deploy("podinfo", "podinfo:1.0")
	s.initialized("podinfo", progressDeadline(600))
	s.holdWhen(func(d *appsv1.Deployment) bool { return d.Name == "podinfo" })
	s.setImage("podinfo", "podinfo:2.0")
	s.waitPhase("podinfo", sluicev1.PhaseProgressing, storyTimeout)
	s.eventually(storyTimeout, "the wait for the canary in the message", func() error {
		return messageHas(s.getRollout("podinfo"), "waiting for the canary to be ready: 2/2 replicas updated, 0 available")
	})

	// The fake kubelet reports both replicas updated again within 50ms.
	const wait = 12 * time.Second
	before := writes.n.Load()
	start := time.Now()
	for time.Since(start) < wait {
		// The stand-in kubelet may write between this read and the update.
		s.must(retry.RetryOnConflict(retry.DefaultRetry, func() error {
			d := s.getDeployment("podinfo")
			d.Status.UpdatedReplicas = 1
			return k8sClient.Status().Update(s.ctx, d)
		}))
		time.Sleep(300 * time.Millisecond)
	}
	during := writes.n.Load() - before
	t.Logf("%d status writes in the %s wait", during, wait)
	if during > 3 {
		t.Errorf("%d status writes in a %s wait whose words changed every 300ms, want at most 3 (one every 5s)", during, wait)
	}
	if during < 1 {
		t.Errorf("no status write in a %s wait: the message never showed its progress", wait)
	}
	s.eventually(7*time.Second, "the wait's last words in the message", func() error {
		return messageHas(s.getRollout("podinfo"), "2/2 replicas updated, 0 available")
	})
	if ro := s.getRollout("podinfo"); ro.Status.Phase != sluicev1.PhaseProgressing || ro.Status.CurrentStepIndex != 0 {
		t.Errorf("phase %s step %d while the canary was never ready, want Progressing at its first step", ro.Status.Phase, ro.Status.CurrentStepIndex)
	}
}

func messageHas(ro *sluicev1.Rollout, words string) error {
	if !strings.Contains(ro.Status.Message, words) {
		return fmt.Errorf("message %q, want it to say %q", ro.Status.Message, words)
	}
	return nil
}
