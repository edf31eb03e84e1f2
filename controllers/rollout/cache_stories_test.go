package rollout_test

import (
	"fmt"
	"strings"
	"testing"

	"sigs.k8s.io/controller-runtime/pkg/client"

	sluicev1 "github.com/sluice-dev/sluice/api/v1alpha1"
)

// The manager caches whole only the workloads Rollouts target or own
// (rollout.CachedWorkloads): a Deployment no Rollout had when the manager
// listed it is cached as its name alone. A Rollout created for it later
// reads it from the API server, so its primary still runs the target's
// template; and a manager restarted with the Rollout in place caches the
// target whole from the start, so it never reads it from the API server.
func TestATargetCachedBeforeItHadARolloutIsReadWholeAndARestartCachesItWhole(t *testing.T) {
	s, log := newLoggedStory(t)
	targetGets := func(since int) []string {
		var gets []string
		for _, r := range log.since(since) {
			if strings.HasPrefix(r, "GET ") && strings.Contains(r, "/deployments/podinfo ") {
				gets = append(gets, r)
			}
		}
		return gets
	}
	s.deploy("podinfo", "podinfo:1.0")
	s.eventually(storyTimeout, "podinfo is available", func() error {
		if d := s.getDeployment("podinfo"); d.Status.AvailableReplicas != 2 {
			return fmt.Errorf("%d available", d.Status.AvailableReplicas)
		}
		return nil
	})
	// A manager started now lists podinfo while no Rollout targets it. A
	// Rollout of a missing target shows when the new manager's caches
	// have synced: its controller reconciles nothing before.
	s.stopManager()
	s.startManager()
	s.rollout("probe")
	probeObserved := func() {
		s.eventually(storyTimeout, "the manager observes the probe Rollout", func() error {
			if ro := s.getRollout("probe"); ro.Status.ObservedGeneration != ro.Generation {
				return fmt.Errorf("observed generation %d of %d", ro.Status.ObservedGeneration, ro.Generation)
			}
			return nil
		})
	}
	probeObserved()

	start := log.len()
	s.initialized("podinfo", iterations(1))
	if gets := targetGets(start); len(gets) == 0 {
		t.Error("the Rollout never read its target from the API server, though the manager had cached it before the Rollout existed")
	}
	primary := s.getDeployment("podinfo-primary")
	if c := primary.Spec.Template.Spec.Containers; len(c) != 1 || c[0].Image != "podinfo:1.0" {
		t.Fatalf("the primary does not run the target's template: %+v", c)
	}
	s.setImage("podinfo", "podinfo:2.0")
	s.waitPhase("podinfo", sluicev1.PhaseSucceeded, storyTimeout)

	// Restarted with the Rollout in place: the target is cached whole.
	s.stopManager()
	start = log.len()
	s.startManager()
	probe := s.getRollout("probe")
	patch := client.MergeFrom(probe.DeepCopy())
	probe.Spec.Strategy.BlueGreen.Iterations = 3
	s.must(k8sClient.Patch(s.ctx, probe, patch))
	probeObserved()
	s.setImage("podinfo", "podinfo:3.0")
	s.eventually(storyTimeout, "podinfo:3.0 is released", func() error {
		ro, image := s.getRollout("podinfo"), s.getDeployment("podinfo-primary").Spec.Template.Spec.Containers[0].Image
		if image != "podinfo:3.0" || ro.Status.Phase != sluicev1.PhaseSucceeded {
			return fmt.Errorf("the primary runs %s, phase %s", image, ro.Status.Phase)
		}
		return nil
	})
	if gets := targetGets(start); len(gets) > 0 {
		t.Errorf("the restarted manager read the target from the API server %d times: it had not cached it whole\n%s", len(gets), strings.Join(gets, "\n"))
	}
}
