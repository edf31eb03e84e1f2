package rollout_test

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"

	eventsv1 "k8s.io/api/events/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	sluicev1 "github.com/sluice-dev/sluice/api/v1alpha1"
	"github.com/sluice-dev/sluice/internal/manager"
)

// backupFinalizer is another controller's finalizer on the Rollout (a
// backup tool's, say), added and removed as that controller does its work.
const backupFinalizer = "backup.example.com/snapshot"

// TestAnotherControllersFinalizerIsNeitherLostNorBroughtBack: a backup
// controller adds its finalizer to the new Rollout just before Sluice adds
// its own, and removes it, its work done, just before Sluice removes its
// own on deletion. Sluice wrote the finalizers as it had read them: the
// first write dropped the backup's finalizer (whose cleanup then never
// ran); the second tried to put it back after the backup controller was
// done with it, which the API server refuses on an object being deleted,
// and the Rollout stalled with a Warning that the API server refused the
// deletion and would go on refusing. Finalizers are written with an
// optimistic lock: a list changed since it was read is read again.
func TestAnotherControllersFinalizerIsNeitherLostNorBroughtBack(t *testing.T) {
	race := &patchRace{matches: func(body string) bool { return strings.Contains(body, `"finalizers"`) }}
	s := newStoryWrapped(t, manager.Options{}, func(rt http.RoundTripper) http.RoundTripper {
		race.next = rt
		return race
	})
	race.ns = s.ns
	finalizers := func(list string) func() error {
		return func() error {
			patch := []byte(`{"metadata":{"finalizers":` + list + `}}`)
			ro := &sluicev1.Rollout{}
			ro.Namespace, ro.Name = s.ns, "podinfo"
			return k8sClient.Patch(s.ctx, ro, client.RawPatch(types.MergePatchType, patch))
		}
	}
	race.arm(finalizers(`["` + backupFinalizer + `"]`))
	s.deploy("podinfo", "podinfo:1.0")
	s.initialized("podinfo")
	if ran, err := race.ran(); !ran || err != nil {
		t.Fatalf("the backup's finalizer was not added right before Sluice's (added: %v, error: %v)", ran, err)
	}
	if got := s.getRollout("podinfo").Finalizers; !slices.Contains(got, backupFinalizer) || !slices.Contains(got, "sluice.dev/finalizer") {
		t.Errorf("finalizers %v: want the backup's and Sluice's", got)
	}

	// Both there (as they would be had the first write kept the backup's).
	s.must(finalizers(`["` + backupFinalizer + `","sluice.dev/finalizer"]`)())
	race.arm(finalizers(`["sluice.dev/finalizer"]`))
	s.must(k8sClient.Delete(s.ctx, s.getRollout("podinfo")))
	s.eventually(storyTimeout, "the Rollout gone", func() error {
		// One read: the Rollout may go between two.
		ro := &sluicev1.Rollout{}
		if err := k8sClient.Get(s.ctx, client.ObjectKey{Namespace: s.ns, Name: "podinfo"}, ro); err != nil {
			return client.IgnoreNotFound(err)
		}
		return fmt.Errorf("still there, finalizers %v", ro.Finalizers)
	})
	if ran, err := race.ran(); !ran || err != nil {
		t.Fatalf("the backup's finalizer was not removed right before Sluice's (removed: %v, error: %v)", ran, err)
	}
	var list eventsv1.EventList
	s.must(k8sClient.List(s.ctx, &list, client.InNamespace(s.ns)))
	for _, e := range list.Items {
		// Sluice's own: a loaded kube-apiserver's repair loop warns of its
		// own races (ClusterIPNotAllocated on a Service just created).
		if e.Type == "Warning" && e.ReportingController == "sluice" {
			t.Errorf("a Warning for a finalizer list that changed under the manager: %s: %s", e.Reason, e.Note)
		}
	}
}

// TestATargetDeletedWhileItIsHandedBackIsNoError: a namespace being deleted
// deletes the Rollout and its target at once, so the target can go between
// the finalizer's read of it and its scale-up. That was a Reconciler error
// with a stack trace in the manager's log; nothing went wrong: the next
// pass finds no target to hand traffic back to, and the Rollout goes.
func TestATargetDeletedWhileItIsHandedBackIsNoError(t *testing.T) {
	race := &patchRace{object: "deployments/podinfo", matches: func(body string) bool { return strings.Contains(body, `"replicas"`) }}
	s := newStoryWrapped(t, manager.Options{}, func(rt http.RoundTripper) http.RoundTripper {
		race.next = rt
		return race
	})
	race.ns = s.ns
	s.deploy("podinfo", "podinfo:1.0")
	s.initialized("podinfo")

	race.arm(func() error { return k8sClient.Delete(s.ctx, s.getDeployment("podinfo")) })
	s.must(k8sClient.Delete(s.ctx, s.getRollout("podinfo")))

	s.eventually(storyTimeout, "the Rollout gone", func() error {
		ro := &sluicev1.Rollout{}
		if err := k8sClient.Get(s.ctx, client.ObjectKey{Namespace: s.ns, Name: "podinfo"}, ro); err != nil {
			return client.IgnoreNotFound(err)
		}
		return fmt.Errorf("still there: %s", ro.Status.Message)
	})
	if ran, err := race.ran(); !ran || err != nil {
		t.Fatalf("the target was not deleted right before its scale-up (deleted: %v, error: %v)", ran, err)
	}
	if errs := s.errorsLogged(); len(errs) > 0 {
		t.Errorf("the manager logged errors for a target that went while it was handed back:\n%s", strings.Join(errs, "\n"))
	}
}
