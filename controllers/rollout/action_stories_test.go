package rollout_test

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	eventsv1 "k8s.io/api/events/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
	"sigs.k8s.io/controller-runtime/pkg/client"

	sluicev1 "github.com/sluice-dev/sluice/api/v1alpha1"
	"github.com/sluice-dev/sluice/internal/manager"
)

// ask sets the action annotations, as `kubectl sluice` does: with a new
// request id each time.
func (s *story) ask(name string, a sluicev1.Action, by string) {
	s.t.Helper()
	ro := s.getRollout(name)
	patch := client.MergeFrom(ro.DeepCopy())
	if ro.Annotations == nil {
		ro.Annotations = map[string]string{}
	}
	ro.Annotations[sluicev1.ActionAnnotation] = string(a)
	ro.Annotations[sluicev1.ActionByAnnotation] = by
	ro.Annotations[sluicev1.ActionIDAnnotation] = fmt.Sprintf("%s-%d", by, time.Now().UnixNano())
	s.must(k8sClient.Patch(s.ctx, ro, patch))
}

// eventNote returns the note of the last event with a reason ("" if none).
// eventNote returns the note of an event of that reason about the named
// object that contains want (any such event when want is ""), waiting up to
// 5s for it, else the latest note of that reason ("" when none): the manager
// records events in the background, after the status that a story waited
// for (reading at once made a drain story fail now and then).
func (s *story) eventNote(name, reason, want string) string {
	s.t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		var list eventsv1.EventList
		s.must(k8sClient.List(s.ctx, &list, client.InNamespace(s.ns)))
		latest := ""
		for _, e := range list.Items {
			if e.Regarding.Name != name || e.Reason != reason {
				continue
			}
			if strings.Contains(e.Note, want) {
				return e.Note
			}
			latest = e.Note
		}
		if time.Now().After(deadline) {
			return latest
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (s *story) expectActionCleared(name string) {
	s.t.Helper()
	s.eventually(storyTimeout, "the action annotation removed", func() error {
		if a, ok := s.getRollout(name).Annotations[sluicev1.ActionAnnotation]; ok {
			return fmt.Errorf("still %q", a)
		}
		return nil
	})
}

func TestPromoteEndsAManualPauseWithoutTouchingTheSpec(t *testing.T) {
	s := newStory(t)
	s.deploy("podinfo", "podinfo:1.0")
	s.initialized("podinfo", withRouter("gatewayAPI"), func(ro *sluicev1.Rollout) {
		ro.Spec.Strategy = sluicev1.Strategy{Canary: &sluicev1.CanaryStrategy{Steps: []sluicev1.CanaryStep{
			{SetWeight: ptr.To[int32](20)}, {Pause: &sluicev1.PauseStep{}}, {SetWeight: ptr.To[int32](50)},
		}}}
	})
	generation := s.getRollout("podinfo").Generation
	s.setImage("podinfo", "podinfo:2.0")
	s.eventually(storyTimeout, "the run to stop at the manual pause", func() error {
		ro := s.getRollout("podinfo")
		if !strings.Contains(ro.Status.Message, "paused until promoted") {
			return fmt.Errorf("%s: %s", ro.Status.Phase, ro.Status.Message)
		}
		return nil
	})
	time.Sleep(1500 * time.Millisecond)
	if ro := s.getRollout("podinfo"); ro.Status.CurrentStepIndex != 1 {
		t.Fatalf("the manual pause did not hold: step %d", ro.Status.CurrentStepIndex)
	}

	s.ask("podinfo", sluicev1.ActionPromote, "alice")
	ro := s.waitPhase("podinfo", sluicev1.PhaseSucceeded, storyTimeout)
	if ro.Generation != generation {
		t.Errorf("the spec changed (generation %d -> %d): a GitOps tool would revert it", generation, ro.Generation)
	}
	if note := s.eventNote("podinfo", "ActionPromote", "alice"); !strings.Contains(note, "alice") {
		t.Errorf("the promote event %q does not name who asked", note)
	}
	s.expectActionCleared("podinfo")
	s.expectKStatus("podinfo", status.CurrentStatus)
}

func TestPauseResumeAbortAndRetryAreCarriedOutAndNamed(t *testing.T) {
	s := newStory(t)
	s.deploy("podinfo", "podinfo:1.0")
	s.initialized("podinfo", iterations(30))
	s.setImage("podinfo", "podinfo:2.0")
	s.waitPhase("podinfo", sluicev1.PhaseProgressing, storyTimeout)

	s.ask("podinfo", sluicev1.ActionPause, "bob")
	s.eventually(5*time.Second, "the Paused condition", func() error {
		if !meta.IsStatusConditionTrue(s.getRollout("podinfo").Status.Conditions, sluicev1.ConditionPaused) {
			return fmt.Errorf("not paused")
		}
		return nil
	})
	s.expectActionCleared("podinfo")
	held := s.getRollout("podinfo").Status.CurrentStepIndex
	time.Sleep(2500 * time.Millisecond)
	if got := s.getRollout("podinfo").Status.CurrentStepIndex; got != held {
		t.Errorf("a paused Rollout moved from step %d to %d", held, got)
	}

	s.ask("podinfo", sluicev1.ActionResume, "bob")
	s.eventually(storyTimeout, "the run to carry on", func() error {
		ro := s.getRollout("podinfo")
		if ro.Status.Paused || ro.Status.CurrentStepIndex <= held {
			return fmt.Errorf("paused=%v step %d", ro.Status.Paused, ro.Status.CurrentStepIndex)
		}
		return nil
	})

	s.ask("podinfo", sluicev1.ActionAbort, "carol")
	ro := s.waitPhase("podinfo", sluicev1.PhaseFailed, 10*time.Second)
	if !strings.Contains(ro.Status.Message, "aborted by carol") {
		t.Errorf("message %q does not say who aborted", ro.Status.Message)
	}
	s.expectKStatus("podinfo", status.FailedStatus)

	// A new run: the canary scaled up and ready again, as after the image
	// change above.
	s.ask("podinfo", sluicev1.ActionRetry, "dave")
	s.waitPhase("podinfo", sluicev1.PhaseProgressing, storyTimeout)
	if note := s.eventNote("podinfo", "ActionRetry", "dave"); !strings.Contains(note, "dave") {
		t.Errorf("the retry event %q does not name who asked", note)
	}
}

// TestAnActionAskedAsTheLastIsClearedIsCarriedOut: bob pauses a release and
// asks to resume it while the manager, having recorded the pause, is about
// to remove the pause's annotation. The resume replaced the pause in the
// annotation first; removing the annotation then removed the resume, which
// was never carried out and never told: the Rollout stayed paused. (The
// same race under load lost carol's abort's retry in CI.) The manager
// removes only the request it carried out.
func TestAnActionAskedAsTheLastIsClearedIsCarriedOut(t *testing.T) {
	// The clear is the manager's only PATCH of the Rollout naming the
	// action annotation (a JSON patch escapes its slash).
	race := &patchRace{matches: func(body string) bool {
		return strings.Contains(body, strings.ReplaceAll(sluicev1.ActionAnnotation, "/", "~1")) ||
			strings.Contains(body, `"`+sluicev1.ActionAnnotation+`":null`)
	}}
	s := newStoryWrapped(t, manager.Options{}, func(rt http.RoundTripper) http.RoundTripper {
		race.next = rt
		return race
	})
	race.ns = s.ns
	s.deploy("podinfo", "podinfo:1.0")
	s.initialized("podinfo", iterations(30))
	s.setImage("podinfo", "podinfo:2.0")
	s.waitPhase("podinfo", sluicev1.PhaseProgressing, storyTimeout)

	race.arm(func() error {
		patch := []byte(`{"metadata":{"annotations":{"` + sluicev1.ActionAnnotation + `":"resume","` + sluicev1.ActionByAnnotation + `":"bob"}}}`)
		ro := &sluicev1.Rollout{ObjectMeta: metav1.ObjectMeta{Namespace: s.ns, Name: "podinfo"}}
		return k8sClient.Patch(s.ctx, ro, client.RawPatch(types.MergePatchType, patch))
	})
	s.ask("podinfo", sluicev1.ActionPause, "bob")

	s.eventually(storyTimeout, "the resume asked right before the pause's clear", func() error {
		if ran, err := race.ran(); !ran || err != nil {
			return fmt.Errorf("asked: %v, error: %v", ran, err)
		}
		return nil
	})
	s.eventually(storyTimeout, "the run to carry on", func() error {
		ro := s.getRollout("podinfo")
		if ro.Status.Paused || meta.IsStatusConditionTrue(ro.Status.Conditions, sluicev1.ConditionPaused) {
			return fmt.Errorf("still paused: %s", ro.Status.Message)
		}
		return nil
	})
	s.expectActionCleared("podinfo")
	if note := s.eventNote("podinfo", "ActionResume", "bob"); !strings.Contains(note, "bob") {
		t.Errorf("the resume asked as the pause was cleared was not carried out (event %q)", note)
	}
	if note := s.eventNote("podinfo", "ActionPause", "bob"); !strings.Contains(note, "bob") {
		t.Errorf("the pause was not told (event %q)", note)
	}
}

// TestAnActionAskedWithoutANameIsCarriedOutAndCleared: `kubectl annotate
// rollout podinfo sluice.dev/action=pause` sets no action-by annotation.
// The pause is carried out, told as asked by an unnamed user, and its
// annotation removed (the removal tests only what is there).
func TestAnActionAskedWithoutANameIsCarriedOutAndCleared(t *testing.T) {
	s := newStory(t)
	s.deploy("podinfo", "podinfo:1.0")
	s.initialized("podinfo", iterations(30))
	s.setImage("podinfo", "podinfo:2.0")
	s.waitPhase("podinfo", sluicev1.PhaseProgressing, storyTimeout)

	patch := []byte(`{"metadata":{"annotations":{"` + sluicev1.ActionAnnotation + `":"pause"}}}`)
	ro := &sluicev1.Rollout{ObjectMeta: metav1.ObjectMeta{Namespace: s.ns, Name: "podinfo"}}
	s.must(k8sClient.Patch(s.ctx, ro, client.RawPatch(types.MergePatchType, patch)))
	s.expectActionCleared("podinfo")
	if note := s.eventNote("podinfo", "ActionPause", "an unnamed user"); !strings.Contains(note, "an unnamed user") {
		t.Errorf("the pause event %q does not say it was asked by an unnamed user", note)
	}
	if !s.getRollout("podinfo").Status.Paused {
		t.Errorf("the Rollout is not paused")
	}
}

// TestAnActionIgnoredIsClearedAndLeftOutOfTheNextRelease: erin asks to
// promote a Rollout at rest. There is no run to promote: the action is
// ignored, and told. Its annotation stayed, as the status did not change:
// `kubectl sluice` and the dashboard showed it pending for as long as the
// Rollout rested, and each reconcile ignored it again. An action is cleared
// once acted on, carried out or ignored, and the next release owes it
// nothing.
func TestAnActionIgnoredIsClearedAndLeftOutOfTheNextRelease(t *testing.T) {
	s := newStory(t)
	s.deploy("podinfo", "podinfo:1.0")
	s.initialized("podinfo", iterations(3))

	s.ask("podinfo", sluicev1.ActionPromote, "erin")
	s.expectActionCleared("podinfo")
	if note := s.eventNote("podinfo", "ActionIgnored", "erin"); !strings.Contains(note, "no run is under way") {
		t.Errorf("the ignored promote was not told (event %q)", note)
	}

	s.setImage("podinfo", "podinfo:2.0")
	s.waitPhase("podinfo", sluicev1.PhaseSucceeded, storyTimeout)
	if reasons := s.eventReasons("podinfo"); slices.Contains(reasons, "ActionPromote") {
		t.Errorf("the release was promoted by the action ignored before it: events %v", reasons)
	}
}

// failFirstClear fails, once armed, the manager's first request to remove a
// Rollout's action annotations, after the status recorded the action: the
// connection drops.
type failFirstClear struct {
	next  http.RoundTripper
	ns    string
	armed atomic.Bool
}

func (f *failFirstClear) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Method == http.MethodPatch && r.Header.Get("Content-Type") == string(types.JSONPatchType) &&
		strings.HasSuffix(r.URL.Path, "/namespaces/"+f.ns+"/rollouts/podinfo") && f.armed.CompareAndSwap(true, false) {
		return nil, errLostWrite
	}
	return f.next.RoundTrip(r)
}

// TestAPromoteIsCarriedOutOnceWhenRemovingItsAnnotationFails: alice
// promotes a release held at the first of two manual pauses. The status
// records the promote, and the request removing its annotation is lost.
// The reconcile tried again saw the same promote and carried it out again:
// the second pause, which nobody promoted, ended too. The request's id
// (set by kubectl sluice) is recorded with the action in the status; seen
// again, the request's annotations are only removed.
func TestAPromoteIsCarriedOutOnceWhenRemovingItsAnnotationFails(t *testing.T) {
	lose := &failFirstClear{}
	s := newStoryWrapped(t, manager.Options{}, func(rt http.RoundTripper) http.RoundTripper {
		lose.next = rt
		return lose
	})
	lose.ns = s.ns
	s.deploy("podinfo", "podinfo:1.0")
	s.initialized("podinfo", withRouter("gatewayAPI"), func(ro *sluicev1.Rollout) {
		ro.Spec.Strategy = sluicev1.Strategy{Canary: &sluicev1.CanaryStrategy{Steps: []sluicev1.CanaryStep{
			{SetWeight: ptr.To[int32](20)}, {Pause: &sluicev1.PauseStep{}}, {Pause: &sluicev1.PauseStep{}}, {SetWeight: ptr.To[int32](50)},
		}}}
	})
	s.setImage("podinfo", "podinfo:2.0")
	s.eventually(storyTimeout, "the run to stop at the first manual pause", func() error {
		ro := s.getRollout("podinfo")
		if ro.Status.CurrentStepIndex != 1 || !strings.Contains(ro.Status.Message, "paused until promoted") {
			return fmt.Errorf("step %d, %s: %s", ro.Status.CurrentStepIndex, ro.Status.Phase, ro.Status.Message)
		}
		return nil
	})

	lose.armed.Store(true)
	s.ask("podinfo", sluicev1.ActionPromote, "alice")
	s.expectActionCleared("podinfo")
	if lose.armed.Load() {
		t.Fatalf("no removal of the annotation was lost: the story tested nothing")
	}
	time.Sleep(2 * time.Second)
	ro := s.getRollout("podinfo")
	if ro.Status.CurrentStepIndex != 2 {
		t.Errorf("one promote moved the release from the first pause to step %d, want the second pause (2): %s", ro.Status.CurrentStepIndex, ro.Status.Message)
	}
	if la := ro.Status.LastAction; la == nil || la.Action != sluicev1.ActionPromote || la.By != "alice" || la.ID == "" {
		t.Errorf("status.lastAction = %+v, want alice's promote with its id", la)
	}
	if n := s.eventCount("podinfo", "ActionPromote"); n != 1 {
		t.Errorf("the promote was told %d times, want once", n)
	}
}

// eventCount counts a Rollout's events of a reason, each as many times as
// it was recorded (an Event's series counts its repeats).
func (s *story) eventCount(name, reason string) int {
	s.t.Helper()
	var list eventsv1.EventList
	s.must(k8sClient.List(s.ctx, &list, client.InNamespace(s.ns)))
	n := 0
	for _, e := range list.Items {
		if e.Regarding.Name != name || e.Reason != reason {
			continue
		}
		n++
		if e.Series != nil {
			n += int(e.Series.Count) - 1
		}
	}
	return n
}
