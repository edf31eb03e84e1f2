package rollout

import (
	"context"
	"fmt"
	"maps"
	"slices"

	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	sluicev1 "github.com/sluice-dev/sluice/api/v1alpha1"
	"github.com/sluice-dev/sluice/pkg/traffic"
	"github.com/sluice-dev/sluice/pkg/workload"
)

// A PodDisruptionBudget written for the target covers the target's pods
// only; the primary's pods, which serve, carry other label values. Sluice
// gives each such budget a "-primary" copy over the primary's pods
// (workload.PrimaryPDB builds it); this file keeps the copies in sync.

// syncPrimaryPDBs makes the primary's PodDisruptionBudget copies match the
// budgets of the target's pods in the Rollout's namespace: it creates and
// updates the copies, and deletes the copies whose original is gone or no
// longer about the target's pods. It reads through the cache.
func (r *Reconciler) syncPrimaryPDBs(ctx context.Context, sc *scope) error {
	canary, primary, err := sc.target.Selectors()
	if err != nil {
		return err
	}
	m := workload.Relabel{Target: canary, Primary: primary}
	var list policyv1.PodDisruptionBudgetList
	if err := r.List(ctx, &list, client.InNamespace(sc.ro.Namespace)); err != nil {
		return fmt.Errorf("listing PodDisruptionBudgets: %w", err)
	}
	have := map[string]*policyv1.PodDisruptionBudget{}
	want := map[string]*policyv1.PodDisruptionBudget{}
	for i := range list.Items {
		p := &list.Items[i]
		have[p.Name] = p
		if c := workload.PrimaryPDB(p, sc.target.Template().Labels, m, sc.ro.Name); c != nil {
			want[c.Name] = c
		}
	}
	for _, name := range slices.Sorted(maps.Keys(want)) {
		if err := r.writePDB(ctx, sc.ro, want[name], have[name]); err != nil {
			return err
		}
	}
	for _, name := range slices.Sorted(maps.Keys(have)) {
		p := have[name]
		if want[name] != nil || !metav1.IsControlledBy(p, sc.ro) || !p.DeletionTimestamp.IsZero() {
			continue
		}
		if err := r.Delete(ctx, p); client.IgnoreNotFound(err) != nil {
			return fmt.Errorf("deleting PodDisruptionBudget %s: %w", name, err)
		}
	}
	return nil
}

// writePDB creates a copy, or updates cur (nil when absent) to it. A budget
// of that name that is not this Rollout's is left alone, with a warning.
func (r *Reconciler) writePDB(ctx context.Context, ro *sluicev1.Rollout, want, cur *policyv1.PodDisruptionBudget) error {
	if err := controllerutil.SetControllerReference(ro, want, r.Scheme()); err != nil {
		return err
	}
	switch {
	case cur == nil:
		// Another reconcile may have just created it: its watch event
		// brings the copy back here to be checked.
		if err := r.Create(ctx, want); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("creating PodDisruptionBudget %s: %w", want.Name, err)
		}
		return nil
	case !metav1.IsControlledBy(cur, ro):
		r.Recorder.Eventf(ro, cur, corev1.EventTypeWarning, "PDBConflict", "CopyPDB",
			"PodDisruptionBudget %s exists and is not managed by this Rollout: the primary's pods get no copy of the target's budget", cur.Name)
		return nil
	case equality.Semantic.DeepEqual(cur.Spec, want.Spec) && maps.Equal(cur.Labels, want.Labels):
		return nil
	}
	upd := cur.DeepCopy()
	upd.Spec, upd.Labels = want.Spec, want.Labels
	if err := r.Update(ctx, upd); err != nil {
		return fmt.Errorf("updating PodDisruptionBudget %s: %w", upd.Name, err)
	}
	return nil
}

// setupPrimaryPDBs registers the small controller that keeps the copies in
// sync between releases: when a budget is written, changed or deleted, or a
// copy is edited. promotePrimary syncs them too, so that they exist with the
// primary. A Rollout is synced only once its primary exists and while it is
// not being deleted (its copies then go with it).
func (r *Reconciler) setupPrimaryPDBs(mgr ctrl.Manager) error {
	return ctrl.NewControllerManagedBy(mgr).
		Named("rollout-pdb").
		For(&sluicev1.Rollout{}, builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		Watches(&policyv1.PodDisruptionBudget{}, handler.EnqueueRequestsFromMapFunc(rolloutOfController)).
		Watches(&policyv1.PodDisruptionBudget{}, handler.EnqueueRequestsFromMapFunc(r.rolloutsInNamespace)).
		Complete(reconcile.Func(r.reconcilePDBs))
}

// rolloutsInNamespace maps a user's PodDisruptionBudget to the Rollouts of
// its namespace (budgets change seldom; each Rollout checks it cheaply).
func (r *Reconciler) rolloutsInNamespace(ctx context.Context, o client.Object) []reconcile.Request {
	if o.GetLabels()[traffic.ManagedByLabel] == traffic.ManagedByValue {
		return nil
	}
	var list sluicev1.RolloutList
	if err := r.List(ctx, &list, client.InNamespace(o.GetNamespace())); err != nil {
		ctrl.LoggerFrom(ctx).Error(err, "listing Rollouts for a PodDisruptionBudget")
		return nil
	}
	reqs := make([]reconcile.Request, 0, len(list.Items))
	for i := range list.Items {
		reqs = append(reqs, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&list.Items[i])})
	}
	return reqs
}

// reconcilePDBs syncs one Rollout's copies when its primary exists.
func (r *Reconciler) reconcilePDBs(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	ro := &sluicev1.Rollout{}
	if err := r.Get(ctx, req.NamespacedName, ro); err != nil || !ro.DeletionTimestamp.IsZero() {
		return reconcile.Result{}, client.IgnoreNotFound(err)
	}
	kind := workloadKind(ro)
	name := ro.Spec.TargetRef.Name
	target, err := r.getWorkload(ctx, kind, client.ObjectKey{Namespace: ro.Namespace, Name: name})
	if err != nil {
		return reconcile.Result{}, client.IgnoreNotFound(err)
	}
	primary, err := r.getWorkload(ctx, kind, client.ObjectKey{Namespace: ro.Namespace, Name: workload.PrimaryName(name)})
	if err != nil {
		return reconcile.Result{}, client.IgnoreNotFound(err)
	}
	if !metav1.IsControlledBy(primary, ro) {
		return reconcile.Result{}, nil
	}
	sc := &scope{ro: ro, kind: kind, target: kind.Wrap(target), primary: kind.Wrap(primary)}
	if _, _, err := sc.target.Selectors(); err != nil {
		// The Rollout's own reconcile reports the invalid target.
		return reconcile.Result{}, nil
	}
	return reconcile.Result{}, r.syncPrimaryPDBs(ctx, sc)
}
