package rollout_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/cli-utils/pkg/kstatus/status"

	sluicev1 "github.com/sluice-dev/sluice/api/v1alpha1"
)

// waitDraining waits until the Rollout is in phase with a drain recorded,
// and returns it with the drain's end.
func (s *story) waitDraining(name string, phase sluicev1.Phase, delay time.Duration) (*sluicev1.Rollout, time.Time) {
	s.t.Helper()
	var ro *sluicev1.Rollout
	s.eventually(storyTimeout, "the canary draining in "+string(phase), func() error {
		ro = s.getRollout(name)
		if ro.Status.Phase != phase || ro.Status.CanaryDrainingSince == nil {
			return fmt.Errorf("phase %s, canaryDrainingSince %v (%s)", ro.Status.Phase, ro.Status.CanaryDrainingSince, ro.Status.Message)
		}
		return nil
	})
	return ro, ro.Status.CanaryDrainingSince.Add(delay)
}

// expectCanaryKeptUntil checks, until end, that the target keeps its
// replicas and that the Rollout stays in phase. Each look counts only when
// it ended before end: Sluice may act at end, not before.
func (s *story) expectCanaryKeptUntil(name string, phase sluicev1.Phase, want int32, end time.Time) {
	s.t.Helper()
	looks := 0
	for time.Now().Before(end) {
		ro, target := s.getRollout(name), s.getDeployment(name)
		if !time.Now().Before(end) {
			break
		}
		looks++
		if ro.Status.Phase != phase {
			s.t.Fatalf("%s before the drain's end at %s: phase %s (%s), want %s", time.Until(end), end.Format(time.TimeOnly), ro.Status.Phase, ro.Status.Message, phase)
		}
		if n := replicas(target); n != want {
			s.t.Fatalf("%s before the drain's end: the canary asks for %d replicas, want it kept at %d", time.Until(end), n, want)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if looks == 0 {
		s.t.Fatalf("the drain ended before the story could look at it")
	}
}

func TestAfterAPromotionTheCanaryKeepsItsPodsWhileTheDataPlaneDrainsThenGoes(t *testing.T) {
	s := newStory(t)
	s.deploy("podinfo", "podinfo:1.0")
	s.initialized("podinfo", scaleDownDelay(3))

	s.setImage("podinfo", "podinfo:2.0")

	// The route holds no canary traffic: Finalising holds, and says why.
	ro, end := s.waitDraining("podinfo", sluicev1.PhaseFinalising, 3*time.Second)
	if err := s.apexSelects("podinfo", primaryPods); err != nil {
		t.Errorf("the drain started before traffic moved to the primary: %v", err)
	}
	if want := "traffic moved to the primary; keeping the canary's pods for 3s while the data plane drains"; ro.Status.Message != want {
		t.Errorf("message %q, want %q", ro.Status.Message, want)
	}
	if note := s.eventNote("podinfo", "Draining", "keeping the canary's pods for 3s"); !strings.Contains(note, "keeping the canary's pods for 3s") {
		t.Errorf("Draining event %q", note)
	}
	s.expectKStatus("podinfo", status.InProgressStatus)

	s.expectCanaryKeptUntil("podinfo", sluicev1.PhaseFinalising, 2, end)

	s.waitPhase("podinfo", sluicev1.PhaseSucceeded, storyTimeout)
	s.eventually(5*time.Second, "canary scaled to zero after the drain", func() error {
		if n := replicas(s.getDeployment("podinfo")); n != 0 {
			return fmt.Errorf("canary replicas = %d", n)
		}
		return nil
	})
	s.expectEvents("podinfo", "Promoted", 1)
	s.expectKStatus("podinfo", status.CurrentStatus)
}

func TestARolledBackCanaryKeepsItsPodsWhileTheDataPlaneDrainsThenGoes(t *testing.T) {
	s := newStory(t)
	s.deploy("podinfo", "podinfo:1.0")
	s.initialized("podinfo", iterations(100), scaleDownDelay(3))
	s.setImage("podinfo", "podinfo:2.0")
	s.waitPhase("podinfo", sluicev1.PhaseProgressing, storyTimeout)
	s.waitReplicas("podinfo", 2, "the canary up")

	s.ask("podinfo", sluicev1.ActionAbort, "sre")

	ro, end := s.waitDraining("podinfo", sluicev1.PhaseFailed, 3*time.Second)
	if !strings.Contains(ro.Status.Message, "aborted by sre") {
		t.Errorf("message %q: the drain must not hide why the run was rolled back", ro.Status.Message)
	}
	if note := s.eventNote("podinfo", "Draining", "keeping the canary's pods for 3s"); !strings.Contains(note, "keeping the canary's pods for 3s") {
		t.Errorf("Draining event %q", note)
	}
	s.expectCanaryKeptUntil("podinfo", sluicev1.PhaseFailed, 2, end)

	s.waitReplicas("podinfo", 0, "the canary scaled to zero after the drain")
	s.expectKStatus("podinfo", status.FailedStatus)
}

// TestANewRevisionDuringTheDrainEndsThePromotedReleaseFirst: the target
// changed again while the canary's pods drain after a promotion. The
// promoted release ends as any does: a Promoted event, and its post-rollout
// hook called once with its own revision, before the new revision's run
// starts. Before, the new run started at once: no Promoted event, and the
// promoted release's post-rollout hook was never called.
func TestANewRevisionDuringTheDrainEndsThePromotedReleaseFirst(t *testing.T) {
	s := newStory(t)
	post, postURL := s.recorder()
	s.deploy("podinfo", "podinfo:1.0")
	s.initialized("podinfo", scaleDownDelay(10), webhook("notify-done", sluicev1.HookPostRollout, postURL))

	s.setImage("podinfo", "podinfo:2.0")
	ro, _ := s.waitDraining("podinfo", sluicev1.PhaseFinalising, 10*time.Second)
	promoted := ro.Status.CanaryRevision
	s.setImage("podinfo", "podinfo:3.0")

	s.eventually(storyTimeout, "the promoted release's post-rollout hook called", func() error {
		if n := post.count(); n < 1 {
			return fmt.Errorf("%d post-rollout calls", n)
		}
		return nil
	})
	post.mu.Lock()
	first := post.calls[0]
	post.mu.Unlock()
	if first.Checksum != promoted {
		for _, r := range []string{"Promoted", "NewRevision", "RevisionChanged", "PostRolloutHooks", "PostRolloutHooksSkipped"} {
			t.Logf("%s: %q", r, s.eventNotes("podinfo", r))
		}
		t.Errorf("the first post-rollout call tells of revision %s, want the promoted %s", first.Checksum, promoted)
	}
	s.eventually(storyTimeout, "the promoted release told", func() error {
		if notes := s.eventNotes("podinfo", "Promoted"); len(notes) != 1 || !strings.Contains(notes[0], promoted) {
			return fmt.Errorf("Promoted events %q, want one for revision %s", notes, promoted)
		}
		return nil
	})

	s.waitPhase("podinfo", sluicev1.PhaseSucceeded, storyTimeout)
	ro = s.getRollout("podinfo")
	if ro.Status.StableRevision == promoted {
		t.Fatalf("stable revision %s: the third version was not released", promoted)
	}
	if img := s.getDeployment("podinfo-primary").Spec.Template.Spec.Containers[0].Image; img != "podinfo:3.0" {
		t.Errorf("primary image = %s, want podinfo:3.0", img)
	}
	s.eventually(storyTimeout, "one post-rollout call per release", func() error {
		post.mu.Lock()
		defer post.mu.Unlock()
		var got []string
		for _, c := range post.calls {
			got = append(got, c.Checksum)
		}
		if want := []string{promoted, ro.Status.StableRevision}; !slices.Equal(got, want) {
			return fmt.Errorf("post-rollout calls for revisions %v, want %v", got, want)
		}
		return nil
	})
}
