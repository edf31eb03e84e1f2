package rollout_test

import (
	"fmt"
	"slices"
	"testing"

	appsv1 "k8s.io/api/apps/v1"

	sluicev1 "github.com/sluice-dev/sluice/api/v1alpha1"
)

// inOrder checks that each pair's first reason is told before its second,
// both at their first occurrence from the index given.
func inOrder(events []string, from int, before, after string) error {
	b := slices.Index(events[from:], before)
	a := slices.Index(events[from:], after)
	if b < 0 || a < 0 || b > a {
		return fmt.Errorf("events %v: want %s told before %s", events[from:], before, after)
	}
	return nil
}

// An SRE reads a release in `kubectl events`: what Sluice decided comes
// before what it then did about it. The primary is created because the
// Rollout is being installed, set to the new revision because it is being
// promoted, and given its stable template back because the release was
// aborted; told the other way round, the cause reads as an afterthought.
func TestEventsTellWhatSluiceDecidedBeforeWhatItDidAboutIt(t *testing.T) {
	s := newStory(t)
	s.deploy("podinfo", "podinfo:1.0")
	s.initialized("podinfo", iterations(1), progressDeadline(2))
	s.waitEvent("podinfo", "Initialized")
	if err := inOrder(s.eventReasons("podinfo"), 0, "Initializing", "PrimaryUpdated"); err != nil {
		t.Errorf("installation: %v", err)
	}

	s.setImage("podinfo", "podinfo:2.0")
	s.waitPhase("podinfo", sluicev1.PhaseSucceeded, storyTimeout)
	s.waitEvent("podinfo", "Promoted")
	events := s.eventReasons("podinfo")
	release := slices.Index(events, "NewRevision")
	if err := inOrder(events, max(release, 0), "Promoting", "PrimaryUpdated"); err != nil {
		t.Errorf("promotion: %v", err)
	}

	s.holdWhen(func(d *appsv1.Deployment) bool { return d.Name == "podinfo-primary" && image(d) == "podinfo:3.0" })
	s.setImage("podinfo", "podinfo:3.0")
	s.waitStalled("podinfo", "PromotionStalled")
	s.ask("podinfo", sluicev1.ActionAbort, "sre")
	s.waitEvent("podinfo", "PrimaryRestored")
	events = s.eventReasons("podinfo")
	if err := inOrder(events, max(slices.Index(events, "PromotionStalled"), 0), "Aborted", "PrimaryRestoring"); err != nil {
		t.Errorf("abort: %v", err)
	}
}
