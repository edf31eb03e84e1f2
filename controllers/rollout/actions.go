package rollout

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	"github.com/sluice-dev/sluice/controllers/rollout/statemachine"
	"github.com/sluice-dev/sluice/pkg/autoscaling"
	"github.com/sluice-dev/sluice/pkg/workload"
)

// promotePrimary gives the primary the target's template and configuration
// at revision rev: config copies first, so new primary pods find them.
func (r *Reconciler) promotePrimary(ctx context.Context, sc *scope, rev string) error {
	if sc.primary != nil && rev == sc.ro.Status.StableRevision && rev != sc.revision {
		return r.restorePrimary(ctx, sc, rev)
	}
	if rev != sc.revision {
		// The target moved on; the state machine restarts the run.
		return nil
	}
	copied, err := r.copyConfigs(ctx, sc)
	if err != nil {
		return err
	}
	// Never fewer replicas than serve now, on either side.
	replicas := sc.target.Replicas()
	if sc.primary != nil {
		replicas = max(replicas, sc.primary.Replicas())
	}
	replicas = max(replicas, 1)
	want := sc.kind.BuildPrimary(sc.target, workload.Primary{Selector: sc.route.PrimarySelector, Copied: copied, Revision: rev, Replicas: replicas})
	if err := controllerutil.SetControllerReference(sc.ro, want.Object(), r.Scheme()); err != nil {
		return err
	}
	if sc.primary == nil {
		if err := r.Create(ctx, want.Object()); err != nil {
			return fmt.Errorf("creating primary %s %s: %w", sc.kind.Kind(), want.Object().GetName(), err)
		}
		r.workloadWrites.Created(workloadKey(sc.kind, want))
	} else {
		p := sc.primary.DeepCopy()
		stable := sc.ro.Status.StableRevision
		if workload.RevisionOf(p) == stable && p.Object().GetAnnotations()[workload.StableRevisionAnnotation] != stable {
			// Snapshots an older Sluice listed for an earlier stable
			// revision: an abort must not write them back.
			workload.SetStableConfigs(p.Object(), nil)
		}
		if err := workload.KeepStableTemplate(p, stable); err != nil {
			return err
		}
		p.TakeSpec(want)
		workload.SetAnnotation(p, RevisionAnnotation, rev)
		if err := r.updateWorkload(ctx, sc.kind, p); err != nil {
			return fmt.Errorf("updating primary %s %s: %w", sc.kind.Kind(), p.Object().GetName(), err)
		}
		want = p
	}
	// The target's PodDisruptionBudgets guard the primary's pods too (pdb.go).
	if err := r.syncPrimaryPDBs(ctx, sc); err != nil {
		return err
	}
	sc.primary = want
	sc.obs.PrimaryRevision = rev
	sc.obs.PrimaryReady, sc.obs.PrimaryMessage = want.Ready(primaryThreshold(sc.ro))
	sc.did(corev1.EventTypeNormal, "PrimaryUpdated", "Promote",
		"primary %s %s set to revision %s", sc.kind.Kind(), want.Object().GetName(), rev)
	// A change of the user's autoscaler is released with the revision.
	return r.syncAutoscaler(ctx, sc, autoscaling.Release{Revision: rev, Stable: sc.ro.Status.StableRevision})
}

// restorePrimary puts the stable revision's template, kept on the primary
// when its promotion started, back on the primary (an abort during a
// promotion). The replicas stay as they are.
func (r *Reconciler) restorePrimary(ctx context.Context, sc *scope, rev string) error {
	p := sc.primary.DeepCopy()
	tmpl, err := workload.StableTemplate(p, rev)
	if err != nil || tmpl == nil {
		// Observe reported it as not restorable; the state machine stalls.
		return err
	}
	// The stable pods read the stable configuration again: the copies
	// first, so that pods the template change starts find it.
	if err := r.restoreConfigs(ctx, sc, p); err != nil {
		return err
	}
	*p.Template() = *tmpl
	workload.SetAnnotation(p, RevisionAnnotation, rev)
	if err := r.updateWorkload(ctx, sc.kind, p); err != nil {
		return fmt.Errorf("restoring primary %s %s to revision %s: %w", sc.kind.Kind(), p.Object().GetName(), rev, err)
	}
	sc.primary = p
	sc.obs.PrimaryRevision = rev
	sc.obs.PrimaryReady, sc.obs.PrimaryMessage = p.Ready(primaryThreshold(sc.ro))
	sc.did(corev1.EventTypeNormal, "PrimaryRestoring", "Rollback",
		"primary %s %s given back the template of revision %s", sc.kind.Kind(), p.Object().GetName(), rev)
	return r.restoreAutoscaler(ctx, sc, rev)
}

// scaleTarget runs the target (the canary) or scales it to zero.
//
// Up, it runs at least the primary's size (so it can carry any weight it
// will get; with scaleWithWeight, only what its step's weight needs) and at
// least want.CanaryMinReplicas, never fewer than it has (an autoscaler may
// have grown it). Its pods carry the checksum of the
// configuration they read, so a ConfigMap or Secret change restarts them.
//
// Down, the primary first takes the target's count when its owner set it on
// the parked target (PassOwnerReplicas); a count left over from a run only
// ever raises the primary, never lowers it. A primary with its own
// autoscaler (autoscalerRef) is left to it.
func (r *Reconciler) scaleTarget(ctx context.Context, sc *scope, want statemachine.Desired) error {
	cur := sc.target.Replicas()
	if !want.CanaryUp {
		if cur == 0 {
			return nil
		}
		if sc.primary != nil && sc.ro.Spec.AutoscalerRef == nil {
			n := max(sc.primary.Replicas(), cur)
			if want.PassOwnerReplicas {
				n = cur
			}
			if n != sc.primary.Replicas() {
				p, _, err := r.setReplicas(ctx, sc.kind, sc.primary, n)
				if err != nil {
					return err
				}
				sc.primary = p
			}
		}
		t, _, err := r.setReplicas(ctx, sc.kind, sc.target, 0)
		sc.target = t
		return err
	}
	up, n := scaledUp(sc, want)
	if up == nil {
		return nil
	}
	patch, from := client.MergeFrom(sc.target.DeepCopy().Object()), sc.target.Object().GetResourceVersion()
	sc.target = up
	if err := r.Patch(ctx, sc.target.Object(), patch); err != nil {
		return fmt.Errorf("scaling %s %s to %d: %w", sc.kind.Kind(), sc.target.Object().GetName(), n, err)
	}
	r.workloadWrites.Wrote(workloadKey(sc.kind, up), from, up.Object().GetResourceVersion())
	// New pods must be ready before any check counts.
	sc.obs.CanaryReady, sc.obs.CanaryMessage = sc.target.Ready(canaryThreshold(sc.ro))
	return nil
}

// scaledUp returns the target as scaleTarget runs it up, and the count it
// asks for; nil when that changes nothing. A kind without a replica count
// (a DaemonSet) runs on every node it selects once asked for any count, so
// asking it for more than it runs changes nothing.
func scaledUp(sc *scope, want statemachine.Desired) (workload.Workload, int32) {
	cur := sc.target.Replicas()
	n := max(cur, want.CanaryMinReplicas)
	if cur == 0 {
		n = max(n, 1)
		// Sized by its weight (scaleWithWeight), the canary starts with
		// what the state machine asks for, and grows step by step.
		if sc.primary != nil && !statemachine.ScalesWithWeight(&sc.ro.Spec) {
			n = max(n, sc.primary.Replicas())
		}
	}
	restart := workload.NeedsConfigRestart(sc.target.Template(), sc.configs)
	if n == cur && !restart {
		return nil, n
	}
	up := sc.target.DeepCopy()
	up.SetReplicas(n)
	if stamp := workload.ConfigStamp(sc.configs); restart || cur == 0 {
		tmpl := up.Template()
		if tmpl.Annotations == nil {
			tmpl.Annotations = map[string]string{}
		}
		tmpl.Annotations[ConfigStampAnnotation] = stamp
	}
	if equality.Semantic.DeepEqual(up.Object(), sc.target.Object()) {
		return nil, n
	}
	return up, n
}

// setReplicas scales w, of kind k, to n pods. It returns w as the API
// server holds it after, and whether that changed it (asking a DaemonSet
// that runs for another count does not). w itself is left as it is: it may
// be the cache's own (getWorkload).
func (r *Reconciler) setReplicas(ctx context.Context, k workload.Kind, w workload.Workload, n int32) (workload.Workload, bool, error) {
	upd := w.DeepCopy()
	upd.SetReplicas(n)
	if equality.Semantic.DeepEqual(w.Object(), upd.Object()) {
		return w, false, nil
	}
	if err := r.Patch(ctx, upd.Object(), client.MergeFrom(w.Object())); err != nil {
		return w, false, fmt.Errorf("scaling %s %s to %d: %w", k.Kind(), w.Object().GetName(), n, err)
	}
	r.workloadWrites.Wrote(workloadKey(k, w), w.Object().GetResourceVersion(), upd.Object().GetResourceVersion())
	return upd, true, nil
}

// updateWorkload writes w, of kind k, whole, locked to its resourceVersion,
// and remembers the version it moved past: until the cache has the write,
// a reconcile looks again rather than decide from the copy before it.
func (r *Reconciler) updateWorkload(ctx context.Context, k workload.Kind, w workload.Workload) error {
	from := w.Object().GetResourceVersion()
	if err := r.Update(ctx, w.Object()); err != nil {
		return err
	}
	r.workloadWrites.Wrote(workloadKey(k, w), from, w.Object().GetResourceVersion())
	return nil
}

// workloadKey names a workload in Reconciler.workloadWrites, its kind with
// it: a Deployment and a DaemonSet may share a name.
func workloadKey(k workload.Kind, w workload.Workload) types.NamespacedName {
	return workloadKeyOf(k, w.Object().GetNamespace(), w.Object().GetName())
}

func workloadKeyOf(k workload.Kind, namespace, name string) types.NamespacedName {
	return types.NamespacedName{Namespace: namespace, Name: k.Kind() + "/" + name}
}
