package rollout

import (
	"context"
	"errors"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/predicate"

	sluicev1 "github.com/sluice-dev/sluice/api/v1alpha1"
	"github.com/sluice-dev/sluice/pkg/autoscaling"
	"github.com/sluice-dev/sluice/pkg/traffic"
	"github.com/sluice-dev/sluice/pkg/workload"
)

// The target's autoscaler (spec.autoscalerRef): the primary gets its own
// copy, created with the primary and given the user's spec again at each
// promotion; the user's autoscaler is paused while the target is parked,
// where its kind needs that. A Rollout without autoscalerRef costs no
// request here.

// autoscalerTarget is what the autoscaling seam works on for a Rollout.
func autoscalerTarget(ro *sluicev1.Rollout) autoscaling.Target {
	name := ro.Spec.TargetRef.Name
	return autoscaling.Target{
		Rollout: ro, Deployment: name, Primary: workload.PrimaryName(name),
		Labels: map[string]string{RolloutLabel: ro.Name, traffic.ManagedByLabel: traffic.ManagedByValue},
	}
}

// observeAutoscaler reads the user's autoscaler and the primary's copy;
// what only the user can fix (a missing autoscaler or CRD) blocks the Rollout.
func (r *Reconciler) observeAutoscaler(ctx context.Context, sc *scope) error {
	ref := sc.ro.Spec.AutoscalerRef
	if ref == nil || r.Autoscalers == nil {
		return nil
	}
	if !scalable(sc.kind) {
		// The API server refuses this (CEL); a CRD from before that rule
		// does not.
		sc.block("InvalidTarget", fmt.Sprintf("autoscalerRef names %s %s, but a %s has no replica count to scale: remove autoscalerRef",
			ref.Kind, ref.Name, sc.kind.Kind()))
		return nil
	}
	a, err := r.Autoscalers.For(ref)
	if blockedBy(sc, err) {
		return nil
	}
	if err != nil {
		return err
	}
	if err := r.ensureAutoscalerWatch(a); err != nil {
		return err
	}
	st, err := a.Observe(ctx, autoscalerTarget(sc.ro))
	if blockedBy(sc, err) {
		return nil
	}
	if err != nil {
		return err
	}
	sc.scaler, sc.scaled = a, st
	sc.obs.AutoscalerMinReplicas = st.Source.MinReplicas
	return nil
}

// blockedBy blocks the Rollout when err is a stall of the autoscaling seam.
func blockedBy(sc *scope, err error) bool {
	var stalled *autoscaling.StalledError
	if !errors.As(err, &stalled) {
		return false
	}
	sc.block(stalled.Reason, stalled.Message)
	return true
}

// syncAutoscaler creates the primary's copy once the primary exists and
// keeps it in sync; with a release it takes the user's current spec.
func (r *Reconciler) syncAutoscaler(ctx context.Context, sc *scope, rel autoscaling.Release) error {
	if sc.scaler == nil || sc.primary == nil {
		return nil
	}
	if err := sc.scaler.Sync(ctx, autoscalerTarget(sc.ro), sc.scaled, rel); err != nil {
		return err
	}
	// Recorded, so that removing autoscalerRef later releases it.
	sc.autoscaler, sc.autoscalerSet = autoscalerIdentity(sc.ro.Spec.AutoscalerRef), true
	return nil
}

// restoreAutoscaler gives the copy back the spec of revision rev.
func (r *Reconciler) restoreAutoscaler(ctx context.Context, sc *scope, rev string) error {
	if sc.scaler == nil {
		return nil
	}
	return sc.scaler.Restore(ctx, autoscalerTarget(sc.ro), sc.scaled, rev)
}

// pauseTargetAutoscaler pauses the user's autoscaler while the target is
// parked and resumes it while a run scales the target up.
func (r *Reconciler) pauseTargetAutoscaler(ctx context.Context, sc *scope, parked bool) error {
	if sc.scaler == nil {
		return nil
	}
	return sc.scaler.Pause(ctx, sc.scaled, parked)
}

// releaseAutoscaler undoes what Sluice did for an autoscaler the Rollout no
// longer names (autoscalerRef removed, or naming another one): the primary's
// copy is deleted, so that it stops scaling the primary, and Sluice's pause
// is lifted from it. It runs before the copy of a newly named autoscaler is
// made, so that two never scale the primary at once. The primary keeps the
// replicas it has.
func (r *Reconciler) releaseAutoscaler(ctx context.Context, sc *scope) error {
	old := sc.ro.Status.Autoscaler
	if old == nil || r.Autoscalers == nil {
		return nil
	}
	if sameAutoscaler(sc.ro.Spec.AutoscalerRef, old) {
		return nil
	}
	a, err := r.Autoscalers.For(old)
	var stalled *autoscaling.StalledError
	switch {
	case errors.As(err, &stalled):
		// Its kind is no longer served: nothing of it is left to undo.
	case err != nil:
		return err
	default:
		ro := sc.ro.DeepCopy()
		ro.Spec.AutoscalerRef = old
		undone, err := a.Release(ctx, autoscalerTarget(ro))
		if err != nil {
			return err
		}
		if undone {
			sc.did(corev1.EventTypeNormal, "AutoscalerReleased", "Autoscale",
				"%s %s is no longer the Rollout's autoscaler: the primary's copy %s deleted and Sluice's pause lifted; the primary keeps its %d replicas",
				old.Kind, old.Name, autoscaling.CopyName(old.Name), sc.primary.Replicas())
		}
	}
	sc.autoscaler, sc.autoscalerSet = autoscalerIdentity(sc.ro.Spec.AutoscalerRef), true
	return nil
}

// autoscalerIdentity is what names an autoscaler in ref (nil for nil).
func autoscalerIdentity(ref *sluicev1.AutoscalerRef) *sluicev1.AutoscalerRef {
	if ref == nil {
		return nil
	}
	return &sluicev1.AutoscalerRef{APIVersion: ref.APIVersion, Kind: ref.Kind, Name: ref.Name}
}

// sameAutoscaler reports whether a and b name the same autoscaler.
func sameAutoscaler(a, b *sluicev1.AutoscalerRef) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.APIVersion == b.APIVersion && a.Kind == b.Kind && a.Name == b.Name
}

// resumeTargetAutoscaler lifts Sluice's pause from the user's autoscaler
// when the Rollout is deleted, before the target is scaled back up: a
// paused autoscaler would hold the target at zero.
func (r *Reconciler) resumeTargetAutoscaler(ctx context.Context, ro *sluicev1.Rollout) error {
	if ro.Spec.AutoscalerRef == nil || r.Autoscalers == nil {
		return nil
	}
	a, err := r.Autoscalers.For(ro.Spec.AutoscalerRef)
	var stalled *autoscaling.StalledError
	if errors.As(err, &stalled) {
		return nil
	}
	if err != nil {
		return err
	}
	return a.Resume(ctx, autoscalerTarget(ro))
}

// ensureAutoscalerWatch starts watching an autoscaler kind the first time a
// Rollout uses it: the user's autoscalers wake the Rollouts that name them,
// the copies their owner.
func (r *Reconciler) ensureAutoscalerWatch(a *autoscaling.Autoscaler) error {
	kind := a.Kind.Kind()
	h := r.enqueueOwnerOrIndex(autoscalerIndex, func(o client.Object) []string { return []string{kind + "/" + o.GetName()} })
	// Status updates (an HPA writes its own every sync) change nothing Sluice reads.
	return r.ensureWatch("autoscaler/"+kind, []client.Object{a.New()}, h,
		predicate.Or[client.Object](predicate.GenerationChangedPredicate{}, predicate.AnnotationChangedPredicate{}, predicate.LabelChangedPredicate{}))
}
