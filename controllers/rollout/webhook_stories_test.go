package rollout_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
	"sigs.k8s.io/controller-runtime/pkg/client"

	sluicev1 "github.com/sluice-dev/sluice/api/v1alpha1"
	"github.com/sluice-dev/sluice/internal/manager"
	"github.com/sluice-dev/sluice/pkg/webhooks"
)

// loadtester is the loadtester's gate API served in-process on loopback,
// keeping its state in a file like the real one.
type loadtester struct {
	s   *story
	srv *httptest.Server
}

func (s *story) startLoadtester() *loadtester {
	s.t.Helper()
	gates, err := webhooks.NewGateServer(webhooks.ServerOptions{StateFile: filepath.Join(s.t.TempDir(), "gates.json")})
	s.must(err)
	srv := httptest.NewServer(gates)
	s.t.Cleanup(srv.Close)
	return &loadtester{s: s, srv: srv}
}

// url is the address of one of the loadtester's endpoints.
func (l *loadtester) url(path string) string { return l.srv.URL + path }

// post calls a control endpoint (/gate/open, /rollback/open...) for a rollout
// of the story's namespace, as an approver would with curl.
func (l *loadtester) post(path, rollout string) {
	l.s.t.Helper()
	body, _ := json.Marshal(webhooks.Payload{Name: rollout, Namespace: l.s.ns})
	resp, err := http.Post(l.url(path), "application/json", bytes.NewReader(body))
	l.s.must(err)
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		l.s.t.Fatalf("POST %s = %s", path, resp.Status)
	}
}

// recorder serves a hook that always passes and counts its calls.
func (s *story) recorder() (*hookRecorder, string) {
	h := &hookRecorder{}
	srv := httptest.NewServer(h)
	s.t.Cleanup(srv.Close)
	return h, srv.URL
}

func (h *hookRecorder) phases() []sluicev1.Phase {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []sluicev1.Phase
	for _, p := range h.calls {
		out = append(out, p.Phase)
	}
	return out
}

// eventNotes lists the messages of the events of one reason about a Rollout.
func (s *story) eventNotes(name, reason string) []string {
	s.t.Helper()
	var list eventsv1.EventList
	s.must(k8sClient.List(s.ctx, &list, client.InNamespace(s.ns)))
	var out []string
	for _, e := range list.Items {
		if e.Regarding.Kind == "Rollout" && e.Regarding.Name == name && e.Reason == reason {
			out = append(out, e.Note)
		}
	}
	return out
}

func TestAClosedConfirmRolloutGateHoldsTheCanaryAtZeroUntilOpened(t *testing.T) {
	s := newStory(t)
	lt := s.startLoadtester()
	post, postURL := s.recorder()
	s.deploy("podinfo", "podinfo:1.0")
	s.initialized("podinfo",
		webhook("approval", sluicev1.HookConfirmRollout, lt.url("/gate/check")),
		webhook("notify-done", sluicev1.HookPostRollout, postURL))

	s.setImage("podinfo", "podinfo:2.0")

	s.eventually(storyTimeout, "the release held at the closed gate", func() error {
		ro := s.getRollout("podinfo")
		if ro.Status.Phase != sluicev1.PhaseWaiting {
			return fmt.Errorf("phase %s", ro.Status.Phase)
		}
		c := meta.FindStatusCondition(ro.Status.Conditions, sluicev1.ConditionGate)
		if c == nil || c.Status != "True" || !strings.Contains(c.Message, "confirm-rollout") {
			return fmt.Errorf("GateClosed condition = %+v", c)
		}
		return nil
	})
	if n := replicas(s.getDeployment("podinfo")); n != 0 {
		t.Errorf("canary replicas = %d while the gate is closed, want 0", n)
	}
	if ro := s.getRollout("podinfo"); ro.Status.CanaryWeight != 0 {
		t.Errorf("canary weight = %d while the gate is closed, want 0", ro.Status.CanaryWeight)
	}
	s.expectKStatus("podinfo", status.InProgressStatus)

	lt.post("/gate/open", "podinfo")

	s.waitEvent("podinfo", "GateOpened")
	s.waitPhase("podinfo", sluicev1.PhaseSucceeded, storyTimeout)
	if img := s.getDeployment("podinfo-primary").Spec.Template.Spec.Containers[0].Image; img != "podinfo:2.0" {
		t.Errorf("primary image = %s, want podinfo:2.0", img)
	}
	s.eventually(storyTimeout, "the post-rollout hook called once after the success", func() error {
		if n := post.count(); n != 1 {
			return fmt.Errorf("%d post-rollout calls", n)
		}
		return nil
	})
	s.waitEvent("podinfo", "PostRolloutHooks")
	s.expectKStatus("podinfo", status.CurrentStatus)
}

func TestAConfirmPromotionGateHoldsWhileRolloutHooksKeepRunning(t *testing.T) {
	s := newStory(t)
	lt := s.startLoadtester()
	load, loadURL := s.recorder()
	s.deploy("podinfo", "podinfo:1.0")
	s.initialized("podinfo", iterations(2),
		webhook("load", sluicev1.HookRollout, loadURL),
		webhook("approval", sluicev1.HookConfirmPromotion, lt.url("/gate/check")))

	s.setImage("podinfo", "podinfo:2.0")

	s.waitPhase("podinfo", sluicev1.PhaseWaitingPromotion, storyTimeout)
	atHold := load.count()
	s.eventually(storyTimeout, "rollout hooks called again while the promotion is held", func() error {
		if n := load.count(); n < atHold+2 {
			return fmt.Errorf("%d rollout hook calls, %d at the hold", n, atHold)
		}
		return nil
	})
	ro := s.getRollout("podinfo")
	if ro.Status.Phase != sluicev1.PhaseWaitingPromotion {
		t.Fatalf("phase = %s while the gate is closed, want WaitingPromotion", ro.Status.Phase)
	}
	if img := s.getDeployment("podinfo-primary").Spec.Template.Spec.Containers[0].Image; img != "podinfo:1.0" {
		t.Errorf("primary image = %s before the gate opened, want podinfo:1.0", img)
	}
	if !slices.Contains(load.phases(), sluicev1.PhaseWaitingPromotion) {
		t.Errorf("rollout hook phases %v: none sent while WaitingPromotion", load.phases())
	}
	s.expectKStatus("podinfo", status.InProgressStatus)

	lt.post("/gate/open", "podinfo")

	s.waitPhase("podinfo", sluicev1.PhaseSucceeded, storyTimeout)
	if img := s.getDeployment("podinfo-primary").Spec.Template.Spec.Containers[0].Image; img != "podinfo:2.0" {
		t.Errorf("primary image = %s after the gate opened, want podinfo:2.0", img)
	}
	s.expectKStatus("podinfo", status.CurrentStatus)
}

func TestARollbackGateOpenedMidRunRollsBackAndPostRolloutRunsAfterSuccessAndFailure(t *testing.T) {
	s := newStory(t)
	lt := s.startLoadtester()
	load, loadURL := s.recorder()
	post, postURL := s.recorder()
	s.deploy("podinfo", "podinfo:1.0")
	s.initialized("podinfo", iterations(2),
		webhook("load", sluicev1.HookRollout, loadURL),
		webhook("abort", sluicev1.HookRollback, lt.url("/rollback/check")),
		webhook("notify-done", sluicev1.HookPostRollout, postURL))

	// A release with the rollback gate closed succeeds.
	s.setImage("podinfo", "podinfo:2.0")
	s.waitPhase("podinfo", sluicev1.PhaseSucceeded, storyTimeout)
	s.eventually(storyTimeout, "post-rollout called after the success", func() error {
		if n := post.count(); n != 1 {
			return fmt.Errorf("%d post-rollout calls", n)
		}
		return nil
	})

	// A long release, rolled back through the loadtester mid-run.
	s.eventually(storyTimeout, "the Rollout updated to 60 iterations", func() error {
		ro := s.getRollout("podinfo")
		ro.Spec.Strategy.BlueGreen.Iterations = 60
		return k8sClient.Update(s.ctx, ro)
	})
	s.setImage("podinfo", "podinfo:3.0")
	s.eventually(storyTimeout, "the second release runs its steps", func() error {
		ro := s.getRollout("podinfo")
		if ro.Status.Phase != sluicev1.PhaseProgressing || ro.Status.CurrentStepIndex < 1 {
			return fmt.Errorf("phase %s, step %d", ro.Status.Phase, ro.Status.CurrentStepIndex)
		}
		return nil
	})
	stepAtAsk := s.getRollout("podinfo").Status.CurrentStepIndex

	lt.post("/rollback/open", "podinfo")

	failed := s.waitPhase("podinfo", sluicev1.PhaseFailed, storyTimeout)
	s.waitEvent("podinfo", "RollbackRequested")
	if stepAtAsk >= 60 || failed.Status.FailedRevision == "" || failed.Status.FailedRevision == failed.Status.StableRevision {
		t.Errorf("failed at step %d with failedRevision %q, stable %q", stepAtAsk, failed.Status.FailedRevision, failed.Status.StableRevision)
	}
	if img := s.getDeployment("podinfo-primary").Spec.Template.Spec.Containers[0].Image; img != "podinfo:2.0" {
		t.Errorf("primary image = %s after the rollback, want podinfo:2.0", img)
	}
	s.eventually(storyTimeout, "canary scaled to zero after the rollback", func() error {
		if n := replicas(s.getDeployment("podinfo")); n != 0 {
			return fmt.Errorf("canary replicas = %d", n)
		}
		return nil
	})
	s.eventually(storyTimeout, "post-rollout called after the failure too", func() error {
		if n := post.count(); n != 2 {
			return fmt.Errorf("%d post-rollout calls", n)
		}
		return nil
	})
	if load.count() == 0 {
		t.Errorf("rollout hooks never ran")
	}
	s.expectKStatus("podinfo", status.FailedStatus)
}

func TestAFailingPreRolloutHookCountsAsAFailedCheck(t *testing.T) {
	s := newStory(t)
	lt := s.startLoadtester()
	post, postURL := s.recorder()
	s.deploy("podinfo", "podinfo:1.0")
	s.initialized("podinfo",
		webhook("smoke", sluicev1.HookPreRollout, lt.url("/gate/halt")),
		webhook("notify-done", sluicev1.HookPostRollout, postURL))

	s.setImage("podinfo", "podinfo:2.0")

	s.waitEvent("podinfo", "CheckFailed")
	ro := s.waitPhase("podinfo", sluicev1.PhaseFailed, storyTimeout)
	if ro.Status.FailedChecks != 2 {
		t.Errorf("failedChecks = %d, want the threshold 2", ro.Status.FailedChecks)
	}
	for _, note := range s.eventNotes("podinfo", "CheckFailed") {
		if !strings.Contains(note, "pre-rollout hook failed") || !strings.Contains(note, "403 Forbidden: halted") {
			t.Errorf("CheckFailed event %q does not say the pre-rollout hook failed with the loadtester's answer", note)
		}
	}
	s.expectEvents("podinfo", "CheckFailed", 2)
	s.waitEvent("podinfo", "ThresholdReached")
	if ro.Status.CanaryWeight != 0 {
		t.Errorf("canary weight = %d, want 0: no traffic before pre-rollout passes", ro.Status.CanaryWeight)
	}
	s.eventually(storyTimeout, "post-rollout called after the failure", func() error {
		if n := post.count(); n != 1 {
			return fmt.Errorf("%d post-rollout calls", n)
		}
		return nil
	})
	s.expectKStatus("podinfo", status.FailedStatus)
}

// TestHooksAimedAtTheManagersSurroundingsAreRefusedByDefault runs the
// manager with the default egress policy: hooks pointing at loopback, at the
// cloud metadata server and at the API server's Service fail as checks,
// each naming what was refused and why, and none is called.
func TestHooksAimedAtTheManagersSurroundingsAreRefusedByDefault(t *testing.T) {
	s := newStoryWith(t, manager.Options{WebhookEgressAllow: []string{}})
	local, localURL := s.recorder()
	kubernetes := &corev1.Service{}
	s.must(k8sClient.Get(s.ctx, client.ObjectKey{Namespace: "default", Name: "kubernetes"}, kubernetes))
	apiServer := net.JoinHostPort(kubernetes.Spec.ClusterIP, strconv.Itoa(int(kubernetes.Spec.Ports[0].Port)))
	s.deploy("podinfo", "podinfo:1.0")
	s.initialized("podinfo",
		webhook("local", sluicev1.HookPreRollout, localURL),
		webhook("metadata", sluicev1.HookPreRollout, "http://169.254.169.254/latest/meta-data/"),
		webhook("kube", sluicev1.HookPreRollout, "https://"+apiServer+"/api/v1/secrets"))

	s.setImage("podinfo", "podinfo:2.0")

	s.waitEvent("podinfo", "CheckFailed")
	s.waitPhase("podinfo", sluicev1.PhaseFailed, storyTimeout)
	for _, note := range s.eventNotes("podinfo", "CheckFailed") {
		for _, want := range []string{
			"local: egress to " + strings.TrimPrefix(localURL, "http://") + " refused: loopback addresses are denied (--webhook-egress-allow to permit)",
			"metadata: egress to 169.254.169.254:80 refused: link-local addresses are denied",
			"kube: egress to " + apiServer + " refused: it is the Kubernetes API server",
		} {
			if !strings.Contains(note, want) {
				t.Errorf("CheckFailed event %q lacks %q", note, want)
			}
		}
	}
	if n := local.count(); n != 0 {
		t.Errorf("the loopback hook was called %d times, want none", n)
	}
}

// TestAHookCallWhoseResultWasNotRecordedIsRepeatedWithTheSameKey loses the
// result of a call as a manager killed before its status patch would: the
// Rollout's spec is changed while the call is in flight, so its answer,
// given for the old spec, is dropped unrecorded. The call is made again from
// the same status, with the same idempotency key; later calls have keys of
// their own. A change of the Rollout's metadata alone keeps the answer.
func TestAHookCallWhoseResultWasNotRecordedIsRepeatedWithTheSameKey(t *testing.T) {
	s := newStory(t)
	var mu sync.Mutex
	var keys []string
	var passes []string
	srv := httptest.NewServer(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		var p webhooks.Payload
		_ = json.NewDecoder(r.Body).Decode(&p)
		if h := r.Header.Get(webhooks.IdempotencyHeader); h != p.IdempotencyKey || h == "" {
			t.Errorf("Idempotency-Key header %q, payload idempotencyKey %q: want the same key in both", h, p.IdempotencyKey)
		}
		mu.Lock()
		keys = append(keys, p.IdempotencyKey)
		passes = append(passes, p.Metadata["pass"])
		n := len(keys)
		mu.Unlock()
		ro := &sluicev1.Rollout{ObjectMeta: metav1.ObjectMeta{Name: p.Name, Namespace: p.Namespace}}
		change := ""
		switch n {
		case 1:
			change = `{"spec":{"analysis":{"webhooks":[{"name":"load","type":"rollout","url":"http://` + r.Host + `","metadata":{"pass":"2"}}]}}}`
		case 2:
			change = `{"metadata":{"annotations":{"example.com/touched":"during-the-call"}}}`
		}
		if change != "" {
			if err := k8sClient.Patch(context.Background(), ro, client.RawPatch(types.MergePatchType, []byte(change))); err != nil {
				t.Errorf("changing the Rollout during the call: %v", err)
			}
		}
	}))
	t.Cleanup(srv.Close)
	s.deploy("podinfo", "podinfo:1.0")
	s.initialized("podinfo", iterations(2), func(ro *sluicev1.Rollout) {
		ro.Spec.Analysis.Webhooks = []sluicev1.Webhook{{Name: "load", Type: sluicev1.HookRollout, URL: srv.URL, Metadata: map[string]string{"pass": "1"}}}
	})

	s.setImage("podinfo", "podinfo:2.0")
	s.waitPhase("podinfo", sluicev1.PhaseSucceeded, storyTimeout)

	mu.Lock()
	defer mu.Unlock()
	if len(keys) != 3 {
		t.Fatalf("%d rollout hook calls (keys %v), want 3: one per iteration and the unrecorded first one again", len(keys), keys)
	}
	if !slices.Equal(passes, []string{"1", "2", "2"}) {
		t.Errorf("calls sent the metadata %v, want the changed spec's from the repeated call on", passes)
	}
	if keys[1] != keys[0] {
		t.Errorf("the repeated call has key %s, the call it repeats %s: want the same", keys[1], keys[0])
	}
	if keys[2] == keys[0] {
		t.Errorf("the second iteration's call has the first one's key %s", keys[2])
	}
}
