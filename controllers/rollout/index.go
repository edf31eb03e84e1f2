package rollout

import (
	"context"

	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	sluicev1 "github.com/sluice-dev/sluice/api/v1alpha1"
)

// Cache indexes that map a changed object to the Rollouts it concerns.
const (
	// targetIndex indexes Rollouts by the name of their target Deployment.
	targetIndex = "spec.targetRef.name"
	// configIndex indexes Rollouts by the "configmap/NAME" and
	// "secret/NAME" keys of the configuration their target uses.
	configIndex = "status.trackedConfigs"
)

func indexRollouts(ctx context.Context, mgr ctrl.Manager) error {
	idx := mgr.GetFieldIndexer()
	if err := idx.IndexField(ctx, &sluicev1.Rollout{}, targetIndex, func(o client.Object) []string {
		return []string{o.(*sluicev1.Rollout).Spec.TargetRef.Name}
	}); err != nil {
		return err
	}
	return idx.IndexField(ctx, &sluicev1.Rollout{}, configIndex, func(o client.Object) []string {
		return trackedKeys(o.(*sluicev1.Rollout))
	})
}

func configIndexKeys(kind configKind) func(client.Object) []string {
	return func(o client.Object) []string { return []string{configRef{Kind: kind, Name: o.GetName()}.key()} }
}

// enqueueByIndex maps an object to the Rollouts in its namespace whose index
// holds one of the object's keys.
func (r *Reconciler) enqueueByIndex(index string, keys func(client.Object) []string) handler.EventHandler {
	return handler.EnqueueRequestsFromMapFunc(func(ctx context.Context, o client.Object) []reconcile.Request {
		var reqs []reconcile.Request
		for _, k := range keys(o) {
			var list sluicev1.RolloutList
			if err := r.List(ctx, &list, client.InNamespace(o.GetNamespace()), client.MatchingFields{index: k}); err != nil {
				ctrl.LoggerFrom(ctx).Error(err, "listing Rollouts by index", "index", index, "key", k)
				continue
			}
			for _, ro := range list.Items {
				reqs = append(reqs, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&ro)})
			}
		}
		return reqs
	})
}
