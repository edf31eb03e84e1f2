package rollout

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/log"

	sluicev1 "github.com/sluice-dev/sluice/api/v1alpha1"
	"github.com/sluice-dev/sluice/pkg/steps"
	"github.com/sluice-dev/sluice/pkg/traffic"
	"github.com/sluice-dev/sluice/pkg/workload"
)

// finalizer makes Sluice put traffic in a sane state before a Rollout's
// objects are garbage-collected.
const finalizer = "sluice.dev/finalizer"

// handoverDrain is how long Sluice's objects outlive the handover of traffic
// to the target, so that gateways and kube-proxy apply the new routes and
// endpoints before the primary's pods start terminating.
const handoverDrain = 5 * time.Second

// finalize runs when a Rollout is deleted, in the order that never leaves
// clients without a ready backend: the target is scaled back up to the
// primary's size and waited for until ready; then the apex Service and the
// routes are moved to it and handed back to the user; and only after a short
// drain is the finalizer removed, so that the primary and Sluice's other
// objects are garbage-collected. A target that never becomes ready holds the
// deletion (Stalled, with an event) rather than cause an outage.
func (r *Reconciler) finalize(ctx context.Context, ro *sluicev1.Rollout) (ctrl.Result, error) {
	if !controllerutil.ContainsFinalizer(ro, finalizer) {
		return ctrl.Result{}, nil
	}
	t, target, primary, err := r.finalizeTarget(ctx, ro)
	if err != nil {
		return ctrl.Result{}, err
	}
	// A Rollout hands back only what it took over. When another Rollout
	// holds the primary, this one never did (a second Rollout of the same
	// target, made by mistake, stalled on PrimaryConflict): the target, the
	// Services and the routes are the other's, and stay as they are.
	theirs := primary != nil && traffic.ControlledByAnother(primary.Object(), ro)
	router, routerErr := r.Routers(ro)
	if theirs {
		// Said, so that whoever deleted it does not wonder why the target
		// stayed parked: it is the other Rollout's to release.
		holder := metav1.GetControllerOf(primary.Object())
		r.Recorder.Eventf(ro, nil, corev1.EventTypeNormal, "NothingHandedBack", "Finalize",
			"deleted without touching the target %s: its primary %s is %s %s's, and so are its Services and routes",
			ro.Spec.TargetRef.Name, primary.Object().GetName(), holder.Kind, holder.Name)
	} else if target != nil {
		if ro.Status.HandedBackAt == nil {
			if err := r.resumeTargetAutoscaler(ctx, ro); err != nil {
				return ctrl.Result{}, err
			}
			if wait, err := r.revertTarget(ctx, ro, target, primary); err != nil || wait > 0 {
				return ctrl.Result{RequeueAfter: wait}, err
			}
			if err := traffic.ReleaseApex(ctx, r.Client, r.APIReader, t); err != nil {
				return ctrl.Result{}, err
			}
			// Routes move to the apex Service only once its endpoints are
			// the target's ready pods: a gateway that switched before the
			// EndpointSlice did would answer 503 for a moment (seen in e2e).
			if ok, why, err := r.apexServesTarget(ctx, ro, t); err != nil || !ok {
				if err == nil {
					log.FromContext(ctx).V(1).Info("waiting for the apex Service's endpoints", "why", why)
				}
				return ctrl.Result{RequeueAfter: endpointsRetry}, err
			}
			if routerErr == nil {
				if err := router.Finalize(ctx, t, true); err != nil {
					return ctrl.Result{}, staleOnConflict(err)
				}
			}
			r.Recorder.Eventf(ro, nil, corev1.EventTypeNormal, "Reverted", "Finalize",
				"traffic handed back to %s %s; Sluice's objects are removed in %s", workloadKind(ro).Kind(), target.Object().GetName(), handoverDrain)
			now := metav1.NewTime(time.Now())
			if err := r.setTerminating(ctx, ro, "traffic handed back to the target: draining before Sluice's objects are removed", func(st *sluicev1.RolloutStatus) {
				st.HandedBackAt = &now
				meta.RemoveStatusCondition(&st.Conditions, sluicev1.ConditionStalled)
			}); err != nil {
				return ctrl.Result{}, err
			}
		}
		if left := time.Until(ro.Status.HandedBackAt.Add(handoverDrain)); left > 0 {
			return ctrl.Result{RequeueAfter: left}, nil
		}
	} else {
		// The target itself was deleted: there is nothing to hand traffic
		// to, and Sluice's objects go with the Rollout. What it adopted is
		// the team's and is handed back: the apex Service, and the routes
		// pointing at it.
		if err := traffic.ReleaseAdoptedApex(ctx, r.Client, r.APIReader, t); err != nil {
			return ctrl.Result{}, err
		}
		if routerErr == nil {
			if err := router.Finalize(ctx, t, false); err != nil {
				return ctrl.Result{}, staleOnConflict(err)
			}
		}
	}
	if err := r.handOverCopies(ctx, ro); err != nil {
		return ctrl.Result{}, err
	}
	// A merge patch replaces the whole list: locked, so that the list as
	// read is the list written over (another controller's finalizer added
	// or removed since is kept as it stands).
	patch := client.MergeFromWithOptions(ro.DeepCopy(), client.MergeFromWithOptimisticLock{})
	controllerutil.RemoveFinalizer(ro, finalizer)
	if err := r.Patch(ctx, ro, patch); apierrors.IsConflict(err) {
		return ctrl.Result{}, errors.Join(err, errStale)
	} else if err != nil && !apierrors.IsNotFound(err) {
		return ctrl.Result{}, fmt.Errorf("removing the finalizer: %w", err)
	}
	return ctrl.Result{}, nil
}

// endpointsRetry is how often the handover looks at the apex Service's
// endpoints again (the EndpointSlice controller follows a selector change
// within a second; EndpointSlices are not watched, to keep the cache small).
const endpointsRetry = 200 * time.Millisecond

// apexServesTarget reports whether the apex Service's EndpointSlices list
// ready endpoints of the target's pods and none of the primary's. A cluster
// that keeps no EndpointSlice for the Service (no EndpointSlice controller)
// cannot tell, and is not waited for. Read uncached: it happens once per
// deletion.
func (r *Reconciler) apexServesTarget(ctx context.Context, ro *sluicev1.Rollout, t traffic.Target) (bool, string, error) {
	var slices discoveryv1.EndpointSliceList
	if err := r.APIReader.List(ctx, &slices, client.InNamespace(ro.Namespace),
		client.MatchingLabels{discoveryv1.LabelServiceName: t.Apex}); err != nil {
		return false, "", fmt.Errorf("reading the endpoints of Service %s: %w", t.Apex, err)
	}
	if len(slices.Items) == 0 {
		return true, "", nil
	}
	ready := 0
	for _, sl := range slices.Items {
		for _, ep := range sl.Endpoints {
			if ep.TargetRef != nil && strings.HasPrefix(ep.TargetRef.Name, t.Primary+"-") {
				return false, "the apex Service still lists the primary's pods", nil
			}
			if ep.Conditions.Ready == nil || *ep.Conditions.Ready {
				ready++
			}
		}
	}
	if ready == 0 {
		return false, "the apex Service lists no ready endpoint of the target yet", nil
	}
	return true, "", nil
}

// finalizeTarget reads what finalization needs without creating anything.
// The target and the primary are nil when not found.
func (r *Reconciler) finalizeTarget(ctx context.Context, ro *sluicev1.Rollout) (traffic.Target, workload.Workload, workload.Workload, error) {
	name := ro.Spec.TargetRef.Name
	t := routeTarget(ro)
	kind := workloadKind(ro)
	var target, primary workload.Workload
	for _, p := range []struct {
		name string
		into *workload.Workload
	}{{name, &target}, {t.Primary, &primary}} {
		obj := kind.New()
		// Read from the API server, not the cache: traffic is handed to the
		// target on what this read says, and a cache that lags a target
		// just gone unready would move it to pods that cannot serve. A
		// deletion is rare; two reads per pass cost nothing.
		var reader client.Reader = r.Client
		if r.APIReader != nil {
			reader = r.APIReader
		}
		err := reader.Get(ctx, client.ObjectKey{Namespace: ro.Namespace, Name: p.name}, obj)
		if apierrors.IsNotFound(err) {
			continue
		}
		if err != nil {
			return t, nil, nil, err
		}
		*p.into = kind.Wrap(obj)
	}
	switch {
	case target != nil:
		t.CanarySelector, t.PrimarySelector, _ = target.Selectors()
	case primary != nil && primary.MatchLabels() != nil:
		t.PrimarySelector = primary.MatchLabels()
		t.CanarySelector = canarySelectorFromPrimary(t.PrimarySelector)
	}
	return t, target, primary, nil
}

// revertTarget scales the target up to at least the primary's size and
// reports how long to wait for it to be ready (0 once it is). Past the
// progress deadline it keeps waiting, Stalled with an event: handing
// traffic to a target that cannot serve would be an outage.
func (r *Reconciler) revertTarget(ctx context.Context, ro *sluicev1.Rollout, target, primary workload.Workload) (time.Duration, error) {
	kind := workloadKind(ro)
	name := target.Object().GetName()
	want := max(target.Replicas(), 1)
	if primary != nil {
		want = max(want, primary.Replicas())
	}
	if target.Replicas() < want {
		scaled, changed, err := r.setReplicas(ctx, kind, target, want)
		if err != nil {
			return 0, err
		}
		target = scaled
		if changed {
			r.Recorder.Eventf(ro, nil, corev1.EventTypeNormal, "Reverting", "Finalize",
				"Rollout deleted: scaling %s %s back to %d before traffic is handed back to it", kind.Kind(), name, want)
		}
	}
	ready, why := target.Ready(100)
	if ready {
		return 0, nil
	}
	deadline := steps.ProgressDeadline(&ro.Spec)
	left := time.Until(ro.DeletionTimestamp.Add(deadline))
	msg := fmt.Sprintf("waiting for %s %s to be ready before traffic is handed back to it: %s", kind.Kind(), name, why)
	stalled := left <= 0
	if stalled {
		msg = fmt.Sprintf("%s %s is not ready %s after the Rollout was deleted (%s): the primary keeps serving and the deletion waits; fix the %s, or remove the finalizer %s by hand to delete anyway",
			kind.Kind(), name, deadline, why, kind.Kind(), finalizer)
	}
	if ro.Status.Phase != sluicev1.PhaseTerminating || ro.Status.Message != msg {
		if stalled && !stalledFor(&ro.Status, "HandoverBlocked") {
			r.Recorder.Eventf(ro, nil, corev1.EventTypeWarning, "HandoverBlocked", "Finalize", "%s", msg)
		}
		err := r.setTerminating(ctx, ro, msg, func(st *sluicev1.RolloutStatus) {
			if stalled {
				meta.SetStatusCondition(&st.Conditions, metav1.Condition{Type: sluicev1.ConditionStalled, Status: metav1.ConditionTrue,
					Reason: "HandoverBlocked", Message: msg, ObservedGeneration: ro.Generation})
			} else if stalledFor(st, ReasonRequestRefused) {
				// The scale-up went through (deletionRefused).
				meta.RemoveStatusCondition(&st.Conditions, sluicev1.ConditionStalled)
			}
		})
		if err != nil {
			return 0, err
		}
	}
	// The target's status change wakes us; this is the fallback.
	if stalled {
		return 30 * time.Second, nil
	}
	return min(left, 5*time.Second), nil
}

// deletionRefused holds the deletion of ro where the API server refused a
// request of its finalizer (a quota or a policy refusing the target's
// scale-up, say): the primary keeps serving, the Rollout is Stalled with
// reason RequestRefused and the API server's words, with one Warning event
// when it starts, and the finalizer tries again every RefusedRecheck,
// without the backoff of an error and without writing while the answer
// stays the same.
func (r *Reconciler) deletionRefused(ctx context.Context, ro *sluicev1.Rollout, err error) (ctrl.Result, error) {
	reconcileErrors.Inc()
	msg := fmt.Sprintf("the API server refused a request of the deletion, and trying again will not change that by itself: %v; the primary keeps serving, and Sluice tries again every %s", err, RefusedRecheck)
	if stalledFor(&ro.Status, ReasonRequestRefused) && ro.Status.Message == msg {
		return ctrl.Result{RequeueAfter: RefusedRecheck}, nil
	}
	if !stalledFor(&ro.Status, ReasonRequestRefused) {
		log.FromContext(ctx).Info("deletion stalled: the API server refused a request", "error", err.Error())
		r.Recorder.Eventf(ro, nil, corev1.EventTypeWarning, ReasonRequestRefused, "Finalize", "%s", msg)
	}
	if err := r.setTerminating(ctx, ro, msg, func(st *sluicev1.RolloutStatus) {
		meta.SetStatusCondition(&st.Conditions, metav1.Condition{Type: sluicev1.ConditionStalled, Status: metav1.ConditionTrue,
			Reason: ReasonRequestRefused, Message: msg, ObservedGeneration: ro.Generation})
	}); err != nil {
		return ctrl.Result{}, err
	}
	return ctrl.Result{RequeueAfter: RefusedRecheck}, nil
}

// setTerminating patches the status of a Rollout being deleted.
func (r *Reconciler) setTerminating(ctx context.Context, ro *sluicev1.Rollout, msg string, also func(*sluicev1.RolloutStatus)) error {
	patch := client.MergeFrom(ro.DeepCopy())
	ro.Status.Phase = sluicev1.PhaseTerminating
	ro.Status.Message = msg
	also(&ro.Status)
	if err := r.Status().Patch(ctx, ro, patch); err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("patching status: %w", err)
	}
	return nil
}

// staleOnConflict marks a write refused for its resourceVersion (a Service
// or route edited since the cache's copy was read) as stale: the reconcile
// or finalize runs again once the cache has the edit, and tells no error,
// for nothing went wrong.
func staleOnConflict(err error) error {
	if apierrors.IsConflict(err) {
		return errors.Join(err, errStale)
	}
	return err
}
