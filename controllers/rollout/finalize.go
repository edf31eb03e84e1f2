package rollout

import (
	"context"
	"fmt"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	sluicev1 "github.com/sluice-dev/sluice/api/v1alpha1"
	"github.com/sluice-dev/sluice/controllers/rollout/statemachine"
	"github.com/sluice-dev/sluice/pkg/traffic"
)

// finalizer makes Sluice put traffic in a sane state before a Rollout's
// objects are garbage-collected.
const finalizer = "sluice.dev/finalizer"

// finalize runs when a Rollout is deleted. With revertOnDeletion the target is
// scaled back up, and once it is ready the apex Service and the routes point
// at it and are handed back; without it, only adopted routes are handed back
// and the generated objects go with the Rollout.
func (r *Reconciler) finalize(ctx context.Context, ro *sluicev1.Rollout) (ctrl.Result, error) {
	if !controllerutil.ContainsFinalizer(ro, finalizer) {
		return ctrl.Result{}, nil
	}
	t, target, primary, err := r.finalizeTarget(ctx, ro)
	if err != nil {
		return ctrl.Result{}, err
	}
	revert := ro.Spec.RevertOnDeletion && target != nil
	if revert {
		if wait, err := r.revertTarget(ctx, ro, target, primary); err != nil || wait > 0 {
			return ctrl.Result{RequeueAfter: wait}, err
		}
		if err := traffic.ReleaseApex(ctx, r.Client, t); err != nil {
			return ctrl.Result{}, err
		}
	}
	if router, err := r.Routers(ro); err == nil {
		if err := router.Finalize(ctx, t, revert); err != nil {
			return ctrl.Result{}, err
		}
	}
	if revert {
		r.Recorder.Eventf(ro, nil, corev1.EventTypeNormal, "Reverted", "Finalize",
			"traffic handed back to Deployment %s; Sluice's objects are being removed", target.Name)
	}
	patch := client.MergeFrom(ro.DeepCopy())
	controllerutil.RemoveFinalizer(ro, finalizer)
	if err := r.Patch(ctx, ro, patch); err != nil && !apierrors.IsNotFound(err) {
		return ctrl.Result{}, fmt.Errorf("removing the finalizer: %w", err)
	}
	return ctrl.Result{}, nil
}

// finalizeTarget reads what finalization needs without creating anything.
func (r *Reconciler) finalizeTarget(ctx context.Context, ro *sluicev1.Rollout) (traffic.Target, *appsv1.Deployment, *appsv1.Deployment, error) {
	name := ro.Spec.TargetRef.Name
	t := traffic.Target{Rollout: ro, Apex: name, Primary: primaryName(name), Canary: name + "-canary"}
	var target, primary *appsv1.Deployment
	for _, p := range []struct {
		name string
		into **appsv1.Deployment
	}{{name, &target}, {t.Primary, &primary}} {
		d := &appsv1.Deployment{}
		err := r.Get(ctx, client.ObjectKey{Namespace: ro.Namespace, Name: p.name}, d)
		if apierrors.IsNotFound(err) {
			continue
		}
		if err != nil {
			return t, nil, nil, err
		}
		*p.into = d
	}
	switch {
	case target != nil:
		t.CanarySelector, t.PrimarySelector, _ = selectors(target)
	case primary != nil && primary.Spec.Selector != nil:
		t.PrimarySelector = primary.Spec.Selector.MatchLabels
		t.CanarySelector = canarySelectorFromPrimary(t.PrimarySelector)
	}
	return t, target, primary, nil
}

// revertTarget scales the target to the primary's size and reports how long
// to wait for it to be ready (0 when it is, or when the progress deadline
// since the deletion has passed and waiting longer would not help).
func (r *Reconciler) revertTarget(ctx context.Context, ro *sluicev1.Rollout, target, primary *appsv1.Deployment) (time.Duration, error) {
	if replicasOf(target) == 0 {
		want := int32(1)
		if primary != nil && replicasOf(primary) > 0 {
			want = replicasOf(primary)
		}
		if err := r.setReplicas(ctx, target, want); err != nil {
			return 0, err
		}
		r.Recorder.Eventf(ro, nil, corev1.EventTypeNormal, "Reverting", "Finalize",
			"Rollout deleted with revertOnDeletion: scaling Deployment %s back to %d", target.Name, want)
	}
	if ready, _ := deploymentReady(target); ready {
		return 0, nil
	}
	deadline := statemachine.DefaultProgressDeadline
	if s := ro.Spec.ProgressDeadlineSeconds; s != nil {
		deadline = time.Duration(*s) * time.Second
	}
	if left := time.Until(ro.DeletionTimestamp.Add(deadline)); left > 0 {
		if ro.Status.Phase != sluicev1.PhaseTerminating {
			patch := client.MergeFrom(ro.DeepCopy())
			ro.Status.Phase = sluicev1.PhaseTerminating
			ro.Status.Message = "waiting for the target to be ready before handing traffic back"
			if err := r.Status().Patch(ctx, ro, patch); err != nil && !apierrors.IsNotFound(err) {
				return 0, err
			}
		}
		// The target's status change wakes us; this is the fallback.
		return min(left, 5*time.Second), nil
	}
	return 0, nil
}
