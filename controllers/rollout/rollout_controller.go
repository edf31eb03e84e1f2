// Package rollout holds the Rollout reconciler: it observes the cluster, asks
// the pure state machine what to do, and does it.
package rollout

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/metadata"
	"k8s.io/client-go/tools/events"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"

	sluicev1 "github.com/sluice-dev/sluice/api/v1alpha1"
	"github.com/sluice-dev/sluice/controllers/rollout/statemachine"
	"github.com/sluice-dev/sluice/internal/ownwrites"
	"github.com/sluice-dev/sluice/pkg/analysis"
	"github.com/sluice-dev/sluice/pkg/autoscaling"
	"github.com/sluice-dev/sluice/pkg/notify"
	"github.com/sluice-dev/sluice/pkg/traffic"
	"github.com/sluice-dev/sluice/pkg/traffic/routers"
	"github.com/sluice-dev/sluice/pkg/webhooks"
	"github.com/sluice-dev/sluice/pkg/workload"
)

// RouterFor returns the router a Rollout asks for, or an error saying why it
// is not available (the Rollout is then Stalled).
type RouterFor func(ro *sluicev1.Rollout) (traffic.Router, error)

// Reconciler reconciles Rollouts.
type Reconciler struct {
	client.Client
	// APIReader reads ConfigMaps and Secrets uncached: the cache keeps only
	// their metadata, without annotations.
	APIReader client.Reader
	// Sharded says the cache holds only this shard's Rollouts (--shard):
	// the few reads that must see every Rollout of a namespace go to the
	// API server.
	Sharded  bool
	Recorder events.EventRecorder
	Clock    clock.PassiveClock
	Routers  RouterFor
	// RouteClient writes the Services and is the routers' client: an
	// ownwrites.Client, whose reads of a Service or route that our own
	// write left behind fail with errStale, so that a reconcile woken
	// before the cache has a switch does not make it again (r.Client when
	// nil).
	RouteClient client.Client
	// RolloutMetadata writes the Rollouts' status and reads back their
	// metadata only (statuspatch.go); r.Status() when nil.
	RolloutMetadata metadata.Getter
	Metrics         analysis.Querier
	Webhooks        *webhooks.Client
	// Notifier sends each event to the notification targets, and to the
	// Rollout's alerts, never blocking.
	Notifier *notify.Dispatcher
	// AlertHTTP posts alerts: its connections must pass the egress policy
	// and it must not follow redirects (alert URLs are tenants' choice).
	AlertHTTP *http.Client
	// Autoscalers handles the targets' autoscalers (spec.autoscalerRef).
	Autoscalers *autoscaling.Set
	// MaxConcurrentReconciles is how many Rollouts are reconciled at once
	// (DefaultMaxConcurrentReconciles when 0).
	MaxConcurrentReconciles int

	// calls runs the hooks and checks off the workers (calls.go).
	calls *hookCalls
	// writes keeps reconciles off cached copies that our own writes left
	// behind (ownwrites.go).
	writes *ownWrites
	// workloadWrites keeps them off cached primaries and targets that our
	// own writes left behind, and off a cache that has not shown a primary
	// we created yet.
	workloadWrites ownwrites.Versions[types.NamespacedName]
	// revisions spares a reconcile hashing a target's template that has
	// not changed (revisions.go).
	revisions revisions
	// pruned keeps config copies from being pruned more than once for a
	// state at rest (copyprune.go).
	pruned marks
	// refusalTold marks the refusal told of a Rollout stalled for another
	// reason, whose status does not hold it (stalledOnRefusal).
	refusalTold marks

	// watch starts a watch on a kind; watched records the kinds already
	// watched, so that only the route and autoscaler kinds in use are.
	watch   func(obj client.Object, h handler.EventHandler, p ...predicate.Predicate) error
	watchMu sync.Mutex
	watched map[string]bool
	// sums are the content checksums of the ConfigMaps and Secrets the
	// targets use, by resourceVersion (configsum.go).
	sums checksums
}

// maxDecisions bounds the decide/act rounds of one reconcile.
const maxDecisions = 6

// statusPatchTimeout bounds the status patch that ends every reconcile.
const statusPatchTimeout = 10 * time.Second

// staleRetry is when to look again after finding a cached copy behind the
// API server (the cache catches up within milliseconds); staleRetryMax,
// after finding the Rollout's own behind several times in a row
// (ownWrites.lookAgain).
const (
	staleRetry    = 200 * time.Millisecond
	staleRetryMax = 3200 * time.Millisecond
)

// awaitCache marks the Rollout as awaiting the update that brings its
// cache up (awaitedRollout), and says when to look again if none comes.
// That update may have come between the look that found the cache behind
// and the mark, and woken nothing: a second look at the cached Rollout
// sees it then. A Rollout whose own copy is current (its cached primary,
// target, Service or route is behind, and their own events wake it) looks
// again after staleRetry; one whose copy is still behind, later with each
// look in a row (ownWrites.lookAgain).
func (r *Reconciler) awaitCache(ctx context.Context, key types.NamespacedName) time.Duration {
	r.writes.await(key)
	ro := &sluicev1.Rollout{}
	if err := r.Get(ctx, key, ro, client.UnsafeDisableDeepCopy); err != nil || !r.writes.isBehind(key, ro.ResourceVersion) {
		return staleRetry
	}
	return r.writes.lookAgain(key)
}

// errStale says a cached copy (the Rollout, its primary or its target, a
// Service or route that RouteClient wrote) is behind the API server.
var errStale = ownwrites.ErrBehind

// isCurrent reports whether the cached copy of a Rollout is the API
// server's latest; one uncached read, made only before hooks or checks.
func (r *Reconciler) isCurrent(ctx context.Context, ro *sluicev1.Rollout) (bool, error) {
	live := &metav1.PartialObjectMetadata{}
	live.SetGroupVersionKind(sluicev1.GroupVersion.WithKind("Rollout"))
	if err := r.APIReader.Get(ctx, client.ObjectKeyFromObject(ro), live); err != nil {
		return false, fmt.Errorf("reading the Rollout: %w", err)
	}
	return live.ResourceVersion == ro.ResourceVersion, nil
}

// +kubebuilder:rbac:groups=sluice.dev,resources=rollouts,verbs=get;list;watch;update;patch
// +kubebuilder:rbac:groups=sluice.dev,resources=rollouts/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=sluice.dev,resources=metrictemplates;clustermetrictemplates,verbs=get;list;watch
// +kubebuilder:rbac:groups=sluice.dev,resources=alertproviders,verbs=get
// +kubebuilder:rbac:groups=external.metrics.k8s.io,resources=*,verbs=get;list
// +kubebuilder:rbac:groups=apps,resources=deployments;daemonsets,verbs=get;list;watch;create;update;patch
// +kubebuilder:rbac:groups="",resources=services;configmaps;secrets,verbs=get;list;watch;create;update;patch
// ConfigMaps and Secrets also delete: the primary's copies no pod reads any
// more (copyprune.go), and only those.
// +kubebuilder:rbac:groups="",resources=configmaps;secrets,verbs=delete
// +kubebuilder:rbac:groups=discovery.k8s.io,resources=endpointslices,verbs=get;list;watch
// +kubebuilder:rbac:groups=policy,resources=poddisruptionbudgets,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups=sluice.dev,resources=rollouts/finalizers,verbs=update
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch
// +kubebuilder:rbac:groups=gateway.networking.k8s.io,resources=httproutes;grpcroutes,verbs=get;list;watch;create;update;patch
// +kubebuilder:rbac:groups=networking.istio.io,resources=virtualservices,verbs=get;list;watch;create;update;patch
// DestinationRules also delete: one Sluice generated goes when the Rollout
// adopts the user's for the same host under another name.
// +kubebuilder:rbac:groups=networking.istio.io,resources=destinationrules,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups=autoscaling,resources=horizontalpodautoscalers,verbs=get;list;watch;create;update;patch
// +kubebuilder:rbac:groups=keda.sh,resources=scaledobjects,verbs=get;list;watch;create;update;patch
// +kubebuilder:rbac:groups=apiextensions.k8s.io,resources=customresourcedefinitions,verbs=get;list;watch
// +kubebuilder:rbac:groups=coordination.k8s.io,resources=leases,verbs=get;list;watch;create;update;patch;delete

// Reconcile brings one Rollout a step further.
func (r *Reconciler) Reconcile(ctx context.Context, req ctrl.Request) (res ctrl.Result, retErr error) {
	defer func() {
		if res.RequeueAfter == staleRetry {
			// Looking again once the cache has caught up: the Rollout's
			// next update wakes it then (awaitedRollout), the timer only if
			// that update never comes.
			res.RequeueAfter = r.awaitCache(ctx, req.NamespacedName)
		} else {
			r.writes.lookedCurrent(req.NamespacedName)
		}
	}()
	ro := &sluicev1.Rollout{}
	if err := r.Get(ctx, req.NamespacedName, ro); err != nil {
		if apierrors.IsNotFound(err) {
			forgetMetrics(req.Namespace, req.Name)
			r.calls.forget(req.NamespacedName)
			r.writes.forget(req.NamespacedName)
			r.revisions.forget(req.NamespacedName)
			r.pruned.forget(req.NamespacedName)
			r.refusalTold.forget(req.NamespacedName)
		}
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if r.writes.isBehind(req.NamespacedName, ro.ResourceVersion) {
		// The cache has not caught up with our last write yet: look again
		// once it has (its watch event, passed by awaitedRollout, or the
		// timer) rather than decide from the state before it.
		return ctrl.Result{RequeueAfter: staleRetry}, nil
	}
	if !ro.DeletionTimestamp.IsZero() {
		r.calls.forget(req.NamespacedName)
		res, err := r.finalize(ctx, ro)
		if errors.Is(err, errStale) {
			// A route our own write left behind in the cache: finalize
			// again once the cache has it (every step is idempotent).
			return ctrl.Result{RequeueAfter: staleRetry}, nil
		}
		if refused(err) {
			return r.deletionRefused(ctx, ro, err)
		}
		if apierrors.IsNotFound(err) {
			// What finalize hands back or removes went while it worked (a
			// namespace being deleted deletes the target with the
			// Rollout): nothing went wrong, and the next pass reads again
			// what is left.
			log.FromContext(ctx).V(1).Info("an object went while the Rollout was finalized; looking again", "error", err.Error())
			return ctrl.Result{RequeueAfter: staleRetry}, nil
		}
		return res, err
	}
	if !controllerutil.ContainsFinalizer(ro, finalizer) {
		// Locked: a merge patch replaces the whole list, and another
		// controller's finalizer added since it was read must stay.
		patch, from := client.MergeFromWithOptions(ro.DeepCopy(), client.MergeFromWithOptimisticLock{}), ro.ResourceVersion
		controllerutil.AddFinalizer(ro, finalizer)
		if err := r.Patch(ctx, ro, patch); apierrors.IsConflict(err) {
			return ctrl.Result{RequeueAfter: staleRetry}, nil
		} else if err != nil {
			return ctrl.Result{}, fmt.Errorf("adding the finalizer: %w", err)
		}
		r.writes.wrote(req.NamespacedName, from, ro.ResourceVersion)
	}
	// The status as read: what the API server holds until this reconcile
	// writes (only the status is kept, not a copy of the whole Rollout).
	base := ro.Status.DeepCopy()
	var sc *scope
	actionTaken, asked := false, askedActionOf(ro)
	// The answers of the hooks and checks ended so far; a decision made
	// with them and recorded tells a draining manager they are recorded.
	answered, decided, rev := r.calls.ended(req.NamespacedName), false, ""
	// One status patch per reconcile, whatever happened.
	defer func() {
		if retErr == nil {
			ro.Status.ObservedGeneration = ro.Generation
		}
		// What the API server holds: the status read, or the one this
		// reconcile recorded before moving the route (recordFirst).
		recorded := base
		if sc != nil && sc.recorded != nil {
			recorded = sc.recorded
		}
		if equality.Semantic.DeepEqual(*recorded, ro.Status) {
			if decided {
				r.calls.decided(req.NamespacedName, answered, callsKey(ro, rev))
			}
			if actionTaken && retErr == nil {
				// Acted on with nothing to record (ignored, or a pause
				// asked of a paused Rollout): done all the same. Cleared
				// even while the manager stops, like a recorded one.
				cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), statusPatchTimeout)
				defer cancel()
				retErr = r.clearAction(cctx, ro, asked)
			}
			return
		}
		if !actionTaken && onlyMessages(recorded, &ro.Status) {
			// A wait's message moves with each step of the Deployment
			// controller; written each time, it is most of a release's
			// writes under load. Written at most every messageHold.
			if wait := messageHold - r.writes.sinceLast(req.NamespacedName, r.Clock.Now()); wait > 0 {
				if decided {
					r.calls.decided(req.NamespacedName, answered, callsKey(ro, rev))
				}
				if res.RequeueAfter == 0 || res.RequeueAfter > wait {
					res.RequeueAfter = wait
				}
				return
			}
		}
		// The work this reconcile did (a hook called, a weight set) must be
		// recorded even when the manager is shutting down, or a restarted
		// manager would do it again.
		pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), statusPatchTimeout)
		defer cancel()
		// Optimistic lock: a reconcile that started from a stale copy must
		// not overwrite a newer status.
		from := ro.ResourceVersion
		err := r.patchStatus(pctx, ro, recorded)
		if err == nil {
			r.writes.wrote(req.NamespacedName, from, ro.ResourceVersion)
			r.writes.statusWritten(req.NamespacedName, r.Clock.Now())
		}
		switch {
		case apierrors.IsConflict(err):
			res, retErr = ctrl.Result{RequeueAfter: staleRetry}, nil
		case err != nil:
			retErr = errors.Join(retErr, fmt.Errorf("patching status: %w", err))
		default:
			if decided {
				r.calls.decided(req.NamespacedName, answered, callsKey(ro, rev))
			}
			if actionTaken {
				// The action is recorded in the status: clear the request.
				retErr = errors.Join(retErr, r.clearAction(pctx, ro, asked))
			}
		}
	}()

	sc, err := r.observe(ctx, ro)
	if sc != nil {
		// A copy our last write returned needs no uncached read before
		// hooks, checks, routes or scales.
		sc.fresh = r.writes.hasAll(req.NamespacedName, ro.ResourceVersion)
		sc.recorded = base
	}
	if errors.Is(err, errStale) {
		// A primary, target, Service or route our own write left behind
		// (or a Service just created): look again once
		// the cache has the write.
		return ctrl.Result{RequeueAfter: staleRetry}, nil
	}
	if refused(err) {
		return r.stalledOnRefusal(ctx, ro, base, err), nil
	}
	if err != nil {
		reconcileErrors.Inc()
		r.Recorder.Eventf(ro, nil, corev1.EventTypeWarning, "ReconcileError", "Reconcile", "%v", err)
		return ctrl.Result{}, err
	}
	d, err := r.decideAndAct(ctx, sc)
	actionTaken = sc.actionTaken
	decided, rev = !errors.Is(err, errStale), sc.callRevision
	if errors.Is(err, errStale) {
		// What was decided before the hooks is patched (and refused by the
		// optimistic lock if this copy is stale); look again shortly.
		ro.Status = d.Status
		return ctrl.Result{RequeueAfter: staleRetry}, nil
	}
	if sc.obs.Blocked != "" && !stalledFor(base, sc.obs.BlockedReason) {
		r.Recorder.Eventf(ro, nil, corev1.EventTypeWarning, sc.obs.BlockedReason, "Reconcile", "%s", sc.obs.Blocked)
	}
	ro.Status = d.Status
	r.completeStatus(sc, err == nil || refused(err))
	if err == nil && !sc.acted && stalledFor(base, ReasonRequestRefused) {
		// Nothing was tried again (the reconcile waits on hooks, say):
		// the refusal stands.
		ro.Status = carryRefusal(ro.Status, base)
	}
	if err == nil {
		if perr := r.pruneCopies(ctx, sc, &ro.Status); perr != nil {
			// Only copies are left: nothing of the release waits on it.
			log.FromContext(ctx).Info("config copies no pod reads kept", "error", perr.Error())
			r.Recorder.Eventf(ro, nil, corev1.EventTypeWarning, "ConfigCopiesKept", "Prune", "%v", perr)
		}
	}
	recordMetrics(ro, base, r.Clock.Now())
	if refused(err) {
		return r.stalledOnRefusal(ctx, ro, base, err), nil
	}
	if err == nil && sc.acted {
		// Tried again and accepted: a refusal from now on is new. One
		// that did not try (it waits on hooks, say) leaves it standing.
		r.refusalTold.forget(req.NamespacedName)
	}
	if err != nil {
		reconcileErrors.Inc()
		r.Recorder.Eventf(ro, nil, corev1.EventTypeWarning, "ReconcileError", "Reconcile", "%v", err)
		return ctrl.Result{}, err
	}
	if slices.Contains(crdReasons, sc.obs.BlockedReason) {
		// The CRD watch wakes us when it is installed, but discovery may
		// serve the new kind only a moment later: look again now and then.
		return ctrl.Result{RequeueAfter: routerRecheck}, nil
	}
	switch sc.obs.BlockedReason {
	case "ServiceConflict", "ConfigConflict":
		// The manager caches only its own Services, and its watch of
		// ConfigMaps and Secrets wakes a Rollout for those its target
		// reads, not for the copies' names: deleting the one in the way
		// sends it no event.
		return ctrl.Result{RequeueAfter: ConflictRecheck}, nil
	}
	return ctrl.Result{RequeueAfter: d.RequeueAfter}, nil
}

// ReasonRequestRefused is the Stalled reason of a request the API server
// refused (refused).
const ReasonRequestRefused = "RequestRefused"

// RefusedRecheck is how often a Rollout stalled on a refused request
// (RequestRefused) tries again: what refused it (an admission policy, a
// quota, RBAC) sends the manager no event when it changes.
const RefusedRecheck = 30 * time.Second

// refused reports whether err holds an answer of the API server that trying
// again will not change by itself: a request forbidden (by RBAC, a quota,
// an admission policy or webhook, a namespace being deleted) or refused as
// invalid, malformed or too large. Retried with an error's backoff, it was
// told only in ReconcileError events further and further apart.
func refused(err error) bool {
	return err != nil && (apierrors.IsForbidden(err) || apierrors.IsInvalid(err) ||
		apierrors.IsBadRequest(err) || apierrors.IsRequestEntityTooLargeError(err))
}

// stalledOnRefusal stops the Rollout where the API server refused one of its
// requests, and says so where the user looks: Stalled with reason
// RequestRefused and the API server's answer in the status (kstatus:
// Failed), one Warning event when it starts. What was done and decided
// before the refusal is kept (the status is written as usual); the same
// decision is tried again in RefusedRecheck. A Rollout stalled for another
// reason (a rollback's) keeps that reason, and only the event tells, once
// for as long as the same refusal lasts.
func (r *Reconciler) stalledOnRefusal(ctx context.Context, ro *sluicev1.Rollout, base *sluicev1.RolloutStatus, err error) ctrl.Result {
	reconcileErrors.Inc()
	msg := fmt.Sprintf("the API server refused a request, and trying again will not change that by itself: %v; Sluice tries again every %s", err, RefusedRecheck)
	st := &ro.Status
	if c := meta.FindStatusCondition(st.Conditions, sluicev1.ConditionStalled); c == nil || c.Status != metav1.ConditionTrue {
		now := metav1.NewTime(r.Clock.Now())
		since := now
		if c := meta.FindStatusCondition(base.Conditions, sluicev1.ConditionStalled); c != nil && c.Status == metav1.ConditionTrue && c.Reason == ReasonRequestRefused {
			since = c.LastTransitionTime
		}
		st.Message = msg
		meta.SetStatusCondition(&st.Conditions, metav1.Condition{Type: sluicev1.ConditionStalled, Status: metav1.ConditionTrue,
			Reason: ReasonRequestRefused, Message: msg, ObservedGeneration: ro.Generation, LastTransitionTime: since})
		meta.SetStatusCondition(&st.Conditions, metav1.Condition{Type: sluicev1.ConditionReady, Status: metav1.ConditionFalse,
			Reason: ReasonRequestRefused, Message: msg, ObservedGeneration: ro.Generation, LastTransitionTime: now})
		meta.RemoveStatusCondition(&st.Conditions, sluicev1.ConditionReconciling)
	}
	// Told when it starts: the status says so from then on, or, stalled
	// for another reason, this manager remembers it.
	key := client.ObjectKeyFromObject(ro)
	if !stalledFor(base, ReasonRequestRefused) && !r.refusalTold.has(key, msg) {
		log.FromContext(ctx).Info("stalled: the API server refused a request", "error", err.Error())
		r.Recorder.Eventf(ro, nil, corev1.EventTypeWarning, ReasonRequestRefused, "Reconcile", "%s", msg)
	}
	r.refusalTold.mark(key, msg)
	return ctrl.Result{RequeueAfter: RefusedRecheck}
}

// withoutRefusal is st without a RequestRefused stall, for the state
// machine to decide from: it keeps the reason of a Failed phase's stall.
func withoutRefusal(st sluicev1.RolloutStatus) sluicev1.RolloutStatus {
	if !stalledFor(&st, ReasonRequestRefused) {
		return st
	}
	out := *st.DeepCopy()
	meta.RemoveStatusCondition(&out.Conditions, sluicev1.ConditionStalled)
	return out
}

// carryRefusal is the status st, decided while the API server refused this
// Rollout's requests (from, the status recorded, is stalled on
// RequestRefused), with the stall as from records it. Recorded before the
// refused request is tried again (recordFirst), the decision without it
// would report the Rollout running again for the moment of each try; the
// stall goes when a reconcile ends with no refusal.
func carryRefusal(st sluicev1.RolloutStatus, from *sluicev1.RolloutStatus) sluicev1.RolloutStatus {
	if c := meta.FindStatusCondition(st.Conditions, sluicev1.ConditionStalled); c != nil && c.Status == metav1.ConditionTrue {
		// Stalled for a reason of the state machine's, which says more.
		return st
	}
	out := *st.DeepCopy()
	for _, t := range []string{sluicev1.ConditionReady, sluicev1.ConditionStalled} {
		if c := meta.FindStatusCondition(from.Conditions, t); c != nil {
			meta.SetStatusCondition(&out.Conditions, *c)
		}
	}
	meta.RemoveStatusCondition(&out.Conditions, sluicev1.ConditionReconciling)
	out.Message = from.Message
	return out
}

// ConflictRecheck is how often a Rollout stalled on a Service someone else
// has (ServiceConflict: one create, refused while it is there) or on the
// names of its config copies (ConfigConflict: cache reads) tries again.
const ConflictRecheck = 20 * time.Second

// routerRecheck is how often a Rollout stalled on a missing router or
// autoscaler CRD checks again, besides the wake-up by the CRD watch.
const routerRecheck = 20 * time.Second

// crdReasons are the Stalled reasons of a missing CRD.
var crdReasons = []string{"RouterUnavailable", autoscaling.ReasonUnavailable}

// decideAndAct asks the state machine what to do and does it, deciding again
// while acting changed what it observes (a weight confirmed by the router) or
// it was given the checks or gates it asked for; so a step costs one
// reconcile, and one more for each round of hooks and checks.
func (r *Reconciler) decideAndAct(ctx context.Context, sc *scope) (statemachine.Decision, error) {
	// What was done is told even when the decision is not (blocked, stale,
	// an error): it happened.
	defer r.tellDone(sc)
	now := r.Clock.Now()
	// Decided afresh: a refusal is recorded again (stalledOnRefusal) if the
	// API server refuses again.
	status := withoutRefusal(sc.ro.Status)
	var d statemachine.Decision
	given := map[string]bool{}
	for range maxDecisions {
		d = statemachine.Decide(statemachine.Input{
			Spec: &sc.ro.Spec, Generation: sc.ro.Generation, Status: &status, Obs: sc.obs, Now: now,
		})
		if d.Need != nil {
			need := *d.Need
			if !equality.Semantic.DeepEqual(status, sc.ro.Status) {
				// Calls are made from a recorded status, which their keys
				// derive from: record what was decided, then call.
				d.Status, d.Need, d.RequeueAfter = status, nil, staleRetry
				return d, nil
			}
			// Hooks and checks act on the world: not while a Service or
			// route is taken or missing, which only acting finds out
			// (ensureRoutes, done once per reconcile)...
			if err := r.ensureRoutes(ctx, sc); blockedWhileActing(sc, err) {
				continue
			} else if err != nil {
				d.Status, d.Need = status, nil
				return d, err
			}
			// ...and only from a current copy, or a copy missing our last
			// status patch would call them again.
			if !sc.fresh {
				fresh, err := r.isCurrent(ctx, sc.ro)
				if err != nil || !fresh {
					d.Status, d.Need = status, nil
					return d, errors.Join(err, errStale)
				}
				sc.fresh = true
			}
			sc.callRevision = callRevision(&sc.ro.Status, sc.revision, need)
			got, ok := r.calls.get(sc.ro, sc.callRevision, need)
			if !ok {
				// Asked in the background: their end wakes the Rollout.
				d.Status, d.Need, d.RequeueAfter = status, nil, pendingRecheck
				return d, nil
			}
			if !give(sc, need, got, given) {
				// Nothing new could be given: keep what was decided so far.
				d.Status, d.Need = status, nil
				return d, fmt.Errorf("the state machine asked twice for %+v", need)
			}
			continue
		}
		prev, action, taken := status, sc.obs.Action, sc.actionTaken
		status = d.Status
		sc.obs.Checks, sc.obs.Gates = nil, nil
		if sc.obs.Action != "" {
			// An action is carried out once, in the first decision.
			sc.obs.Action, sc.actionTaken = "", true
		}
		err := r.recordFirst(ctx, sc, status, d.Desired, now)
		if blockedWhileActing(sc, err) {
			status, sc.obs.Action, sc.actionTaken = prev, action, taken
			continue
		}
		if err != nil {
			// Nothing of this decision was recorded, moved or told.
			d.Status = sc.ro.Status
			return d, err
		}
		changed, err := r.act(ctx, sc, d.Desired)
		sc.acted = sc.acted || err == nil
		if apierrors.IsConflict(err) {
			// Written from a copy older than the API server's (someone
			// else wrote first, and the cache has not had it yet): the
			// write changed nothing. Decide again once it has, and tell
			// no error: nothing went wrong.
			err = errors.Join(err, errStale)
		}
		if blockedWhileActing(sc, err) {
			// Nothing of this decision was written or told: decide again
			// from where it started, blocked (the action with it). Routes
			// are ensured in the first round, so one is left for that.
			status, sc.obs.Action, sc.actionTaken = prev, action, taken
			continue
		}
		if errors.Is(err, errStale) {
			// Decided from a stale copy: nothing of it is kept or told,
			// and an action taken is left to be taken again.
			d.Status, sc.actionTaken = sc.ro.Status, false
			return d, err
		}
		r.emit(ctx, sc, &status, d.Events)
		r.tellDone(sc)
		if err != nil || !changed {
			return d, err
		}
	}
	return d, nil
}

// give hands the state machine the answers to what it asked for; it returns
// false when it had already given them all in this reconcile.
func give(sc *scope, need statemachine.Need, got answers, done map[string]bool) bool {
	progress := false
	if need.Checks && !done["checks"] {
		done["checks"], progress = true, true
		sc.obs.Checks = got.checks
	}
	for _, t := range need.Gates {
		if done[string(t)] {
			continue
		}
		done[string(t)], progress = true, true
		if sc.obs.Gates == nil {
			sc.obs.Gates = map[sluicev1.HookType]statemachine.GateResult{}
		}
		sc.obs.Gates[t] = got.gates[t]
	}
	return progress
}

// callRevision is the revision that calls of need, made from the recorded
// status st, tell of: the target's, except for the post-rollout hooks, which
// tell of the release that ended. The target may have moved on already: a
// new revision during the canary's drain ends the promoted release, whose
// hooks are then called from the recorded Finalising.
func callRevision(st *sluicev1.RolloutStatus, target string, need statemachine.Need) string {
	if need.Checks || !slices.Equal(need.Gates, []sluicev1.HookType{sluicev1.HookPostRollout}) {
		return target
	}
	var ended string
	switch st.Phase {
	case sluicev1.PhasePromoting, sluicev1.PhaseFinalising:
		ended = st.CanaryRevision
	case sluicev1.PhaseSucceeded:
		ended = st.StableRevision
	case sluicev1.PhaseFailed:
		ended = st.FailedRevision
	}
	if ended == "" {
		return target
	}
	return ended
}

// call makes the calls of need from ro, as recorded: the checks, and the
// webhooks of each gate type. It runs in the background (calls.go).
func (r *Reconciler) call(ctx context.Context, ro *sluicev1.Rollout, rev string, need statemachine.Need) answers {
	var got answers
	if need.Checks {
		got.checks = r.runChecks(ctx, ro, rev)
	}
	for _, t := range need.Gates {
		res := r.Webhooks.CallAll(ctx, ro, t, rev)
		got.add(answers{gates: map[sluicev1.HookType]statemachine.GateResult{
			t: {Open: res.AllPassed, Message: res.Message},
		}})
	}
	return got
}

// runChecks runs the rollback hooks, the rollout hooks and the metrics of a step.
func (r *Reconciler) runChecks(ctx context.Context, ro *sluicev1.Rollout, rev string) *statemachine.CheckResult {
	if rb := r.Webhooks.CallAll(ctx, ro, sluicev1.HookRollback, rev); rb.AnyPassed {
		return &statemachine.CheckResult{Rollback: true, Message: "rollback hook answered 2xx"}
	}
	if hooks := r.Webhooks.CallAll(ctx, ro, sluicev1.HookRollout, rev); !hooks.AllPassed {
		return &statemachine.CheckResult{Outcome: statemachine.CheckFail, Message: "rollout hook failed: " + hooks.Message}
	}
	res := analysis.Run(ctx, r.Metrics, ro, r.Clock.Now())
	out := &statemachine.CheckResult{Outcome: statemachine.CheckPass, Metrics: res.Metrics}
	switch {
	case len(res.Failed) > 0:
		out.Outcome, out.Message = statemachine.CheckFail, strings.Join(res.Failed, "; ")
	case len(res.Held) > 0:
		out.Outcome, out.Message, out.RetryAt = statemachine.CheckHold, strings.Join(res.Held, "; "), res.RetryAt
	}
	return out
}

// doneEvent is an event of something act did.
type doneEvent struct{ typ, reason, action, note string }

// did notes an event of something act did, to be told after the events of
// the decision that made it do it: `kubectl events` then reads cause first
// ("Initializing", then "PrimaryUpdated"; "Aborted", then "PrimaryRestoring").
func (sc *scope) did(typ, reason, action, format string, args ...any) {
	sc.done = append(sc.done, doneEvent{typ, reason, action, fmt.Sprintf(format, args...)})
}

// tellDone records the events did noted.
func (r *Reconciler) tellDone(sc *scope) {
	for _, e := range sc.done {
		r.Recorder.Eventf(sc.ro, nil, e.typ, e.reason, e.action, "%s", e.note)
	}
	sc.done = nil
}

// emit records the events and hands them to the notifier with the status
// they belong to. Event webhooks get keys from the status this reconcile
// started from (sc.ro's, as recorded) and each event's reason and ordinal.
func (r *Reconciler) emit(ctx context.Context, sc *scope, st *sluicev1.RolloutStatus, evs []statemachine.Event) {
	if len(evs) == 0 {
		return
	}
	ro := sc.ro
	now := ro.DeepCopy()
	now.Status = *st
	origin := webhooks.StateOf(ro, sc.revision)
	if sc.origin != nil {
		// The status started from was recorded over before the route moved.
		origin = *sc.origin
	}
	if sc.emitted == nil {
		sc.emitted = map[string]int{}
	}
	for _, e := range evs {
		r.Recorder.Eventf(ro, nil, e.Type, e.Reason, "Release", "%s", e.Message)
		if r.Notifier != nil {
			m := notify.MessageFor(now, e.Type, e.Reason, e.Message)
			m.Origin, m.Ordinal = origin, sc.emitted[e.Reason]
			r.Notifier.Dispatch(m)
			r.sendAlerts(ctx, sc, m)
		}
		sc.emitted[e.Reason]++
	}
}

// completeStatus adds to the decided status in sc.ro what the reconcile
// observed besides the decision: the alerts' condition, the configs and
// autoscaler tracked and, when the target was read, its generation.
func (r *Reconciler) completeStatus(sc *scope, targetRead bool) {
	ro := sc.ro
	r.setAlertsCondition(ro, sc.recorded, sc.alerts)
	if sc.configs != nil {
		ro.Status.TrackedConfigs = sc.configs
	}
	if sc.autoscalerSet {
		ro.Status.Autoscaler = sc.autoscaler
	}
	if sc.target != nil && targetRead {
		ro.Status.ObservedTargetGeneration = sc.target.Object().GetGeneration()
	}
}

// recordFirst records the decided status before act moves the route for
// it. Written after, a status write that never lands (the manager dies in
// between, the connection drops) leaves the route ahead of the recorded
// status, which the next reconcile would take for a route to put back:
// traffic would go back a step, then forward again once the step's checks
// passed a second time, and the step's events be told twice. The patch is
// locked to the copy's resourceVersion, so it also proves the copy current.
//
// What is recorded is the decision the router's answer will bring, when
// that answer changes nothing a failed route write would leave wrong
// (onlyRouterAnswers): then a move costs no status write more than when
// the status came after. Otherwise the decision as it is, and the one after
// the move is written when the reconcile ends. Nothing is recorded first
// for a move that the recorded status would make again (reachedFromRecord).
func (r *Reconciler) recordFirst(ctx context.Context, sc *scope, status sluicev1.RolloutStatus, want statemachine.Desired, now time.Time) error {
	if sc.obs.Blocked != "" || sc.router == nil || sc.actionTaken || sc.recorded == nil {
		// An action is recorded with its annotation's removal, at the end.
		return nil
	}
	// Only a move of the weights can go back: a route not there yet is
	// created at the primary's, and the request rules follow the canary's
	// readiness, not the status.
	if sc.routed == nil || sc.routed.Weights.Canary == want.CanaryWeight {
		return nil
	}
	// A Service or route taken or missing blocks before anything is recorded.
	if err := r.ensureRoutes(ctx, sc); err != nil {
		return err
	}
	obs := sc.obs
	obs.RoutedWeight = &want.CanaryWeight
	p := statemachine.Decide(statemachine.Input{
		Spec: &sc.ro.Spec, Generation: sc.ro.Generation, Status: &status, Obs: obs, Now: now,
	})
	if reachedFromRecord(sc, obs, p, now) {
		// A write lost after the move is decided again as it stands: the
		// status is written once, with what the move brings, at the end.
		return nil
	}
	if promoted, ok := promotedView(sc, obs, p); ok {
		// The route's move starts a promotion (blue/green's): the primary
		// is given the new template in this reconcile too, and the
		// promotion's wait is told as it will stand then.
		p = statemachine.Decide(statemachine.Input{
			Spec: &sc.ro.Spec, Generation: sc.ro.Generation, Status: &status, Obs: promoted, Now: now,
		})
	}
	if p.Need == nil && p.Desired.CanaryWeight == want.CanaryWeight && onlyRouterAnswers(&status, &p.Status) {
		status = p.Status
	}
	if stalledFor(sc.recorded, ReasonRequestRefused) {
		status = carryRefusal(status, sc.recorded)
	}
	ro := sc.ro
	if equality.Semantic.DeepEqual(status, ro.Status) {
		return nil
	}
	if sc.origin == nil {
		origin := webhooks.StateOf(ro, sc.revision)
		sc.origin = &origin
	}
	recorded := sc.recorded
	ro.Status = *status.DeepCopy()
	r.completeStatus(sc, true)
	ro.Status.ObservedGeneration = ro.Generation
	from := ro.ResourceVersion
	if err := r.patchStatus(ctx, ro, recorded); err != nil {
		ro.Status = *recorded.DeepCopy()
		if apierrors.IsConflict(err) {
			return errStale
		}
		return fmt.Errorf("recording the decision before moving the route: %w", err)
	}
	key := client.ObjectKeyFromObject(ro)
	r.writes.wrote(key, from, ro.ResourceVersion)
	r.writes.statusWritten(key, r.Clock.Now())
	// The reconcile's later decisions are compared with the status as sent.
	sc.recorded, sc.fresh = ro.Status.DeepCopy(), true
	return nil
}

// reachedFromRecord reports whether a reconcile starting from the recorded
// status and seeing the route moved (obs) decides what this one decides
// after the move (after): the same status, the same route and scale. A
// status write lost after the move then loses nothing, and none is needed
// before it. Finalising's move back to the primary is such a move: from
// Promoting, a primary at the canary's revision with the route away from
// the canary is a promotion done (primaryTookOver). A step forward and a
// rollback are not: from the recorded step, a route ahead of it is a route
// to put back.
func reachedFromRecord(sc *scope, obs statemachine.Observation, after statemachine.Decision, now time.Time) bool {
	if after.Need != nil || stalledFor(sc.recorded, ReasonRequestRefused) {
		return false
	}
	st := withoutRefusal(*sc.recorded)
	from := statemachine.Decide(statemachine.Input{
		Spec: &sc.ro.Spec, Generation: sc.ro.Generation, Status: &st, Obs: obs, Now: now,
	})
	return from.Need == nil && from.Desired == after.Desired && equality.Semantic.DeepEqual(from.Status, after.Status)
}

// promotedView is obs as act leaves it when the decision p gives the
// primary the target's revision (promotePrimary): at that revision, and
// not yet observed by its controller, as a workload whose spec was just
// written. ok is false when p writes no primary.
func promotedView(sc *scope, obs statemachine.Observation, p statemachine.Decision) (statemachine.Observation, bool) {
	rev := p.Desired.PrimaryRevision
	if p.Need != nil || sc.primary == nil || sc.target == nil || rev == "" || rev != sc.revision || rev == obs.PrimaryRevision {
		return obs, false
	}
	written := sc.primary.DeepCopy()
	written.Object().SetGeneration(written.Object().GetGeneration() + 1)
	obs.PrimaryRevision = rev
	obs.PrimaryReady, obs.PrimaryMessage = written.Ready(primaryThreshold(sc.ro))
	return obs, true
}

// onlyRouterAnswers reports whether the status decided once the router holds
// the new weight (predicted) differs from the one decided before (decided)
// only in what the state machine undoes while the router does not hold it:
// the messages, and within a run the start of the step's hold (a step is
// held only while the router holds its weight). A drain's start, say, is
// not: recorded before the route moved, a drain would count time in which
// the data plane still sent traffic to the pods it drains.
func onlyRouterAnswers(decided, predicted *sluicev1.RolloutStatus) bool {
	if decided.Phase != sluicev1.PhaseProgressing || predicted.Phase != sluicev1.PhaseProgressing {
		return onlyMessages(decided, predicted)
	}
	d, p := *decided, *predicted
	d.StepStartedAt, p.StepStartedAt = nil, nil
	return onlyMessages(&d, &p)
}

// act brings the cluster to the desired state: it makes the writes a
// decision asks for (the finalizer, the status patch and the clearing of an
// action are Reconcile's), Services and routes first. It reports whether it
// changed something the state machine observes, so that it may decide again
// at once. It writes nothing while blocked; a Service or route it finds
// taken or missing returns a *blockedError, before anything else is written.
func (r *Reconciler) act(ctx context.Context, sc *scope, want statemachine.Desired) (bool, error) {
	if sc.obs.Blocked != "" || sc.router == nil {
		return false, nil
	}
	if err := r.ensureRoutes(ctx, sc); err != nil {
		return false, err
	}
	route := traffic.Route{Weights: traffic.ForCanary(want.CanaryWeight), Experiment: want.Experiment}
	if want.Experiment {
		route.Revision = sc.revision
	}
	// A copy of the Rollout that misses our last status patch would write
	// an older route or scale: write only from a current one.
	if !sc.fresh && r.wouldWrite(sc, want, route) {
		fresh, err := r.isCurrent(ctx, sc.ro)
		if err != nil {
			return false, err
		}
		if !fresh {
			return false, errStale
		}
		sc.fresh = true
	}
	changed := false
	if err := r.releaseAutoscaler(ctx, sc); err != nil {
		return false, err
	}
	if sc.target != nil && want.PrimaryRevision != "" && want.PrimaryRevision != sc.obs.PrimaryRevision {
		if err := r.promotePrimary(ctx, sc, want.PrimaryRevision); err != nil {
			return false, err
		}
		// Decide again from the primary as written, so that the status
		// says what the promotion now waits for rather than what the
		// primary was before: told later, the true words are a status
		// write more.
		changed = sc.obs.PrimaryRevision == want.PrimaryRevision
	}
	if err := r.syncAutoscaler(ctx, sc, autoscaling.Release{}); err != nil {
		return false, err
	}
	if sc.routed == nil || *sc.routed != route {
		applied, err := sc.router.Apply(ctx, sc.route, route)
		if err != nil {
			return false, fmt.Errorf("setting the route with the %s router: %w", sc.router.Name(), err)
		}
		if applied.Drifted {
			sc.did(corev1.EventTypeWarning, "RouteRestored", "Route",
				"the %s route was changed outside Sluice; restored %s", sc.router.Name(), route)
		}
		if sc.obs.RoutedWeight == nil || *sc.obs.RoutedWeight != applied.Route.Weights.Canary {
			changed = true
		}
		sc.routed = &applied.Route
		sc.obs.RoutedWeight = &applied.Route.Weights.Canary
		if applied.Route != route {
			log.FromContext(ctx).Info("router holds another route than asked", "asked", route.String(), "holds", applied.Route.String())
		}
	}
	if sc.target != nil {
		// Paused before the target is parked, resumed before it is scaled up.
		if err := r.pauseTargetAutoscaler(ctx, sc, !want.CanaryUp); err != nil {
			return changed, err
		}
		before := sc.obs.TargetReplicas
		if err := r.scaleTarget(ctx, sc, want); err != nil {
			return changed, err
		}
		if now := sc.target.Replicas(); now != before {
			// Parked, or scaled up (its wait is the Deployment controller's
			// now, not "scaled to zero"): decide again, so that the status
			// records it in this reconcile's patch rather than the next one's.
			sc.obs.TargetReplicas = now
			changed = true
		}
	}
	return changed, nil
}

// blockedError says that acting found what only the user can fix: a
// Service or route taken by someone else, an adopted route missing. The
// Rollout is Stalled with its reason and message.
type blockedError struct{ reason, msg string }

func (e *blockedError) Error() string { return e.msg }

// blockedWhileActing reports whether err is a *blockedError, and then
// blocks sc with it.
func blockedWhileActing(sc *scope, err error) bool {
	var b *blockedError
	if !errors.As(err, &b) {
		return false
	}
	sc.block(b.reason, b.msg)
	return true
}

// routeClient is the client of the Services' reads and writes.
func (r *Reconciler) routeClient() client.Client {
	if r.RouteClient != nil {
		return r.RouteClient
	}
	return r.Client
}

// ensureRoutes creates or updates the Services and the router's objects
// (routes, DestinationRules), once per reconcile, before anything else is
// written or called. A route that exists keeps its weights, so a copy of
// the Rollout that missed our last status patch ensures them as well as a
// current one.
func (r *Reconciler) ensureRoutes(ctx context.Context, sc *scope) error {
	if sc.ensured || sc.obs.Blocked != "" || sc.router == nil {
		return nil
	}
	// As observed, endpoints included: a router's apex Service moves to
	// the primary's pods only once they serve.
	sc.route.PrimaryReady = sc.obs.PrimaryReady
	if err := traffic.EnsureServices(ctx, r.routeClient(), r.APIReader, sc.route); err != nil {
		var conflict *traffic.ServiceConflictError
		if errors.As(err, &conflict) {
			return &blockedError{reason: "ServiceConflict", msg: err.Error()}
		}
		return staleOnConflict(err)
	}
	if err := sc.router.EnsureRoutes(ctx, sc.route); err != nil {
		var stalled *traffic.StalledError
		if errors.As(err, &stalled) {
			return &blockedError{reason: stalled.Reason, msg: stalled.Message}
		}
		return staleOnConflict(fmt.Errorf("ensuring routes with the %s router: %w", sc.router.Name(), err))
	}
	sc.ensured = true
	return nil
}

// SetupWithManager registers the controller and its watches. Route kinds
// are watched later, when a Rollout first uses their router.
func (r *Reconciler) SetupWithManager(mgr ctrl.Manager) error {
	if err := indexRollouts(context.Background(), mgr); err != nil {
		return err
	}
	r.calls = newHookCalls(r.call)
	r.writes = newOwnWrites()
	exportRolloutGauges(mgr)
	workers := r.MaxConcurrentReconciles
	if workers <= 0 {
		workers = DefaultMaxConcurrentReconciles
	}
	b := ctrl.NewControllerManagedBy(drainFirst{Manager: mgr, calls: r.calls}).
		// Status patches are Sluice's own: only spec and annotation changes
		// of a Rollout need a reconcile, and the update that brings the
		// cache up for a reconcile that found it behind.
		For(&sluicev1.Rollout{}, builder.WithPredicates(predicate.Or(predicate.GenerationChangedPredicate{}, predicate.AnnotationChangedPredicate{}, deleting, r.awaitedRollout())))
	for _, k := range workloadKinds {
		// The primaries, and the targets by name.
		b = b.Watches(k.New(), r.enqueueOwnerOrIndex(targetIndex, func(o client.Object) []string { return []string{o.GetName()} }))
	}
	c, err := b.
		Watches(&corev1.Service{}, handler.EnqueueRequestsFromMapFunc(rolloutOfController)).
		// Metadata only: their data never reaches the manager over the watch
		// (configsum.go); a change shows as a new resourceVersion.
		WatchesMetadata(&corev1.ConfigMap{}, r.enqueueByIndex(configIndex, configIndexKeys(workload.KindConfigMap))).
		WatchesMetadata(&corev1.Secret{}, r.enqueueByIndex(configIndex, configIndexKeys(workload.KindSecret))).
		// The EndpointSlices of Sluice's Services (the cache holds no
		// others) carry the Services' labels, the Rollout's name among
		// them: a pod listed wakes the Rollout waiting for it.
		Watches(&discoveryv1.EndpointSlice{}, handler.EnqueueRequestsFromMapFunc(rolloutOfLabel)).
		// A router or autoscaler CRD installed later wakes the Rollouts
		// stalled on it (metadata only: the cache holds no CRD schemas).
		Watches(crdMetadata(), r.enqueueStalledOnCRD(), builder.WithPredicates(r.isWatchedCRD())).
		// The end of a Rollout's hook calls or checks (calls.go).
		WatchesRawSource(source.Channel(r.calls.wake, &handler.EnqueueRequestForObject{})).
		WithOptions(controller.Options{MaxConcurrentReconciles: workers}).
		Named("rollout").
		Build(r)
	if err != nil {
		return err
	}
	// PodDisruptionBudget copies for the primary (pdb.go).
	if err := r.setupPrimaryPDBs(mgr); err != nil {
		return err
	}
	r.watch = func(obj client.Object, h handler.EventHandler, p ...predicate.Predicate) error {
		return c.Watch(source.Kind(mgr.GetCache(), obj, h, p...))
	}
	return nil
}

// rolloutOfController maps an object a Rollout controls (a primary, a
// Service) to that Rollout. It does what the builder's Owns does, without
// the REST mapping Owns looks up for every event to learn whether the
// owner is namespaced (a Rollout always is): that lookup was 6 % of the
// manager's allocations while releasing (docs/performance.md).
func rolloutOfController(_ context.Context, o client.Object) []reconcile.Request {
	ref := metav1.GetControllerOfNoCopy(o)
	if ref == nil || ref.Kind != "Rollout" || ref.APIVersion != sluicev1.GroupVersion.String() {
		return nil
	}
	return []reconcile.Request{{NamespacedName: types.NamespacedName{Namespace: o.GetNamespace(), Name: ref.Name}}}
}

// rolloutOfLabel maps an object labelled with its Rollout's name to it.
func rolloutOfLabel(_ context.Context, o client.Object) []reconcile.Request {
	name := o.GetLabels()[RolloutLabel]
	if name == "" {
		return nil
	}
	return []reconcile.Request{{NamespacedName: types.NamespacedName{Namespace: o.GetNamespace(), Name: name}}}
}

// StripRollout is the cache transform for Rollouts. It drops the managed
// fields and kubectl's last-applied-configuration: a Rollout applied with
// kubectl (or by a GitOps tool that applies client-side) carries a second
// copy of its whole spec there, and Sluice never reads it. Sluice changes
// a Rollout only by patches computed from its cached copy (the finalizer)
// and by status writes, so the annotation is never written back without it.
func StripRollout(obj any) (any, error) {
	ro, ok := obj.(*sluicev1.Rollout)
	if !ok {
		return obj, nil
	}
	ro.ManagedFields = nil
	delete(ro.Annotations, corev1.LastAppliedConfigAnnotation)
	return ro, nil
}

// deleting passes the update that marks a Rollout for deletion.
var deleting = predicate.Funcs{UpdateFunc: func(e event.UpdateEvent) bool { return !e.ObjectNew.GetDeletionTimestamp().IsZero() }}

// DefaultMaxConcurrentReconciles is how many Rollouts are reconciled at
// once by default. Hooks and checks do not hold a worker (calls.go): a
// reconcile waits on API requests and the router only, and a loaded API
// server makes those slow (200 ms a reconcile with 300 releases at once on
// two cores): with 16 workers a Rollout then waited 1.6 s in the queue on
// average, with 64 0.3 s, and the fleet released 26 % sooner
// (docs/performance.md).
const DefaultMaxConcurrentReconciles = 64

// ensureRouteWatch starts watching a router's kinds the first time a Rollout
// uses it.
func (r *Reconciler) ensureRouteWatch(routerName string) error {
	return r.ensureWatch("router/"+routerName, routers.Watched(routerName), r.enqueueForRoute())
}

// ensureWatch starts watching objs with h, once per key.
func (r *Reconciler) ensureWatch(key string, objs []client.Object, h handler.EventHandler, p ...predicate.Predicate) error {
	r.watchMu.Lock()
	defer r.watchMu.Unlock()
	if r.watched[key] || r.watch == nil {
		return nil
	}
	for _, obj := range objs {
		if err := r.watch(obj, h, p...); err != nil {
			return fmt.Errorf("watching %T %s: %w", obj, obj.GetObjectKind().GroupVersionKind().Kind, err)
		}
	}
	if r.watched == nil {
		r.watched = map[string]bool{}
	}
	r.watched[key] = true
	return nil
}

// stalledFor reports whether a status already says Stalled for reason.
func stalledFor(st *sluicev1.RolloutStatus, reason string) bool {
	c := meta.FindStatusCondition(st.Conditions, sluicev1.ConditionStalled)
	return c != nil && c.Status == metav1.ConditionTrue && c.Reason == reason
}

// trackedKeys returns the sorted keys of a Rollout's tracked configs.
func trackedKeys(ro *sluicev1.Rollout) []string {
	keys := make([]string, 0, len(ro.Status.TrackedConfigs))
	for k := range ro.Status.TrackedConfigs {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// crdMetadata is the metadata-only object of the CRD watch.
func crdMetadata() *metav1.PartialObjectMetadata {
	m := &metav1.PartialObjectMetadata{}
	m.SetGroupVersionKind(apiextensionsv1.SchemeGroupVersion.WithKind("CustomResourceDefinition"))
	return m
}

// isWatchedCRD passes the CRDs of the router and autoscaler kinds.
func (r *Reconciler) isWatchedCRD() predicate.Predicate {
	return predicate.NewPredicateFuncs(func(o client.Object) bool {
		return routers.IsRouterCRD(o.GetName()) || (r.Autoscalers != nil && r.Autoscalers.IsCRD(o.GetName()))
	})
}

// enqueueStalledOnCRD wakes every Rollout stalled on a missing CRD.
func (r *Reconciler) enqueueStalledOnCRD() handler.EventHandler {
	return handler.EnqueueRequestsFromMapFunc(func(ctx context.Context, _ client.Object) []reconcile.Request {
		var list sluicev1.RolloutList
		if err := r.List(ctx, &list); err != nil {
			log.FromContext(ctx).Error(err, "listing Rollouts stalled on a missing CRD")
			return nil
		}
		var reqs []reconcile.Request
		for i := range list.Items {
			if slices.ContainsFunc(crdReasons, func(reason string) bool { return stalledFor(&list.Items[i].Status, reason) }) {
				reqs = append(reqs, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&list.Items[i])})
			}
		}
		return reqs
	})
}

// wouldWrite reports whether acting on want changes anything in the cluster.
func (r *Reconciler) wouldWrite(sc *scope, want statemachine.Desired, route traffic.Route) bool {
	if sc.routed == nil || *sc.routed != route {
		return true
	}
	if sc.target == nil {
		return false
	}
	if want.PrimaryRevision != "" && want.PrimaryRevision != sc.obs.PrimaryRevision {
		return true
	}
	if sc.scaler != nil && sc.scaler.NeedsPause(sc.scaled, !want.CanaryUp) {
		return true
	}
	if !want.CanaryUp {
		return sc.target.Replicas() > 0
	}
	up, _ := scaledUp(sc, want)
	return up != nil
}
