package rollout

import (
	"context"
	"slices"

	istiov1 "istio.io/client-go/pkg/apis/networking/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/client-go/util/workqueue"

	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	sluicev1 "github.com/sluice-dev/sluice/api/v1alpha1"
	"github.com/sluice-dev/sluice/pkg/workload"
)

// Cache indexes that map a changed object to the Rollouts it concerns.
const (
	// targetIndex indexes Rollouts by the name of their target Deployment.
	targetIndex = "spec.targetRef.name"
	// configIndex indexes Rollouts by the "configmap/NAME" and
	// "secret/NAME" keys of the configuration their target uses.
	configIndex = "status.trackedConfigs"
	// routeIndex indexes Rollouts by the route they adopt:
	// "HTTPRoute/NAME", "GRPCRoute/NAME", "VirtualService/NAME" or
	// "DestinationRule/NAME".
	routeIndex = "spec.routing.routeRef"
	// autoscalerIndex indexes Rollouts by their target's autoscaler:
	// "HorizontalPodAutoscaler/NAME" or "ScaledObject/NAME".
	autoscalerIndex = "spec.autoscalerRef"
	// endpointsIndex indexes the EndpointSlices of Sluice's Services by the
	// Rollout they serve: a label selector scans every slice of the
	// namespace, which was 60 % of the manager's CPU with 1,000 Rollouts in
	// one namespace (docs/performance.md).
	endpointsIndex = "metadata.labels." + RolloutLabel
	// copiesIndex indexes the ConfigMaps and Secrets (metadata) by the
	// Rollout whose copies they are, for the prune at the end of each
	// release (copyprune.go), which a label selector would make a scan of
	// every ConfigMap and Secret of the namespace.
	copiesIndex = "metadata.labels." + RolloutLabel
)

func indexRollouts(ctx context.Context, mgr ctrl.Manager) error {
	idx := mgr.GetFieldIndexer()
	if err := idx.IndexField(ctx, &sluicev1.Rollout{}, targetIndex, func(o client.Object) []string {
		return []string{o.(*sluicev1.Rollout).Spec.TargetRef.Name}
	}); err != nil {
		return err
	}
	if err := idx.IndexField(ctx, &sluicev1.Rollout{}, routeIndex, func(o client.Object) []string {
		return adoptedRouteKeys(o.(*sluicev1.Rollout))
	}); err != nil {
		return err
	}
	if err := idx.IndexField(ctx, &sluicev1.Rollout{}, autoscalerIndex, func(o client.Object) []string {
		if ref := o.(*sluicev1.Rollout).Spec.AutoscalerRef; ref != nil {
			return []string{ref.Kind + "/" + ref.Name}
		}
		return nil
	}); err != nil {
		return err
	}
	if err := idx.IndexField(ctx, &discoveryv1.EndpointSlice{}, endpointsIndex, func(o client.Object) []string {
		if name := o.GetLabels()[RolloutLabel]; name != "" {
			return []string{name}
		}
		return nil
	}); err != nil {
		return err
	}
	byRollout := func(o client.Object) []string {
		if name := o.GetLabels()[RolloutLabel]; name != "" {
			return []string{name}
		}
		return nil
	}
	for _, kind := range []workload.ConfigKind{workload.KindConfigMap, workload.KindSecret} {
		if err := idx.IndexField(ctx, configMetadata(kind), copiesIndex, byRollout); err != nil {
			return err
		}
	}
	return idx.IndexField(ctx, &sluicev1.Rollout{}, configIndex, func(o client.Object) []string {
		return trackedKeys(o.(*sluicev1.Rollout))
	})
}

func adoptedRouteKeys(ro *sluicev1.Rollout) []string {
	r := ro.Spec.Routing
	switch {
	case r == nil:
		return nil
	case r.GatewayAPI != nil && r.GatewayAPI.HTTPRouteRef != nil:
		return []string{"HTTPRoute/" + r.GatewayAPI.HTTPRouteRef.Name}
	case r.GatewayAPI != nil && r.GatewayAPI.GRPCRouteRef != nil:
		return []string{"GRPCRoute/" + r.GatewayAPI.GRPCRouteRef.Name}
	case r.Istio != nil:
		var keys []string
		if ref := r.Istio.VirtualServiceRef; ref != nil {
			keys = append(keys, "VirtualService/"+ref.Name)
		}
		if refs := r.Istio.DestinationRuleRefs; refs != nil {
			keys = append(keys, "DestinationRule/"+refs.Primary.Name, "DestinationRule/"+refs.Canary.Name)
		}
		return keys
	}
	return nil
}

// enqueueForRoute maps a route to the Rollout that owns it or adopts it.
func (r *Reconciler) enqueueForRoute() handler.EventHandler {
	return r.enqueueOwnerOrIndex(routeIndex, func(o client.Object) []string {
		kind := "HTTPRoute"
		switch o.(type) {
		case *istiov1.VirtualService:
			kind = "VirtualService"
		case *gwv1.GRPCRoute:
			kind = "GRPCRoute"
		case *istiov1.DestinationRule:
			kind = "DestinationRule" // adopted ones; generated ones by their owner
		}
		return []string{kind + "/" + o.GetName()}
	})
}

// enqueueOwnerOrIndex maps an object to the Rollout that controls it and to
// the Rollouts whose index holds one of its keys.
func (r *Reconciler) enqueueOwnerOrIndex(index string, keys func(client.Object) []string) handler.EventHandler {
	return r.enqueueIndexed(index, keys, true)
}

func configIndexKeys(kind workload.ConfigKind) func(client.Object) []string {
	return func(o client.Object) []string {
		return []string{workload.ConfigRef{Kind: kind, Name: o.GetName()}.Key()}
	}
}

// enqueueByIndex maps an object to the Rollouts in its namespace whose index
// holds one of the object's keys.
func (r *Reconciler) enqueueByIndex(index string, keys func(client.Object) []string) handler.EventHandler {
	return r.enqueueIndexed(index, keys, false)
}

// enqueueIndexed maps an event's objects to the Rollouts in their namespace
// whose index holds one of their keys and, with owner, to the Rollout that
// controls them. One handler for both, so that each event of a watched
// kind is handed to one listener, not two; and the keys of an update's old
// and new copies (nearly always the same: they are made of the name) are
// looked up once.
func (r *Reconciler) enqueueIndexed(index string, keys func(client.Object) []string, owner bool) handler.EventHandler {
	enqueue := func(ctx context.Context, q workqueue.TypedRateLimitingInterface[reconcile.Request], objs ...client.Object) {
		var looked []string
		for _, o := range objs {
			if owner {
				for _, req := range rolloutOfController(ctx, o) {
					q.Add(req)
				}
			}
			for _, k := range keys(o) {
				if slices.Contains(looked, k) {
					continue
				}
				looked = append(looked, k)
				for _, req := range r.rolloutsByIndex(ctx, index, o.GetNamespace(), k) {
					q.Add(req)
				}
			}
		}
	}
	return handler.Funcs{
		CreateFunc: func(ctx context.Context, e event.CreateEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			enqueue(ctx, q, e.Object)
		},
		UpdateFunc: func(ctx context.Context, e event.UpdateEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			enqueue(ctx, q, e.ObjectNew, e.ObjectOld)
		},
		DeleteFunc: func(ctx context.Context, e event.DeleteEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			enqueue(ctx, q, e.Object)
		},
		GenericFunc: func(ctx context.Context, e event.GenericEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			enqueue(ctx, q, e.Object)
		},
	}
}

// rolloutsByIndex is the Rollouts in namespace ns whose index holds key.
func (r *Reconciler) rolloutsByIndex(ctx context.Context, index, ns, key string) []reconcile.Request {
	// Only the names are read, so the cached Rollouts are not deep-copied:
	// that was a copy of each for every event of a workload or config
	// object it uses.
	var list sluicev1.RolloutList
	if err := r.List(ctx, &list, client.InNamespace(ns), client.MatchingFields{index: key}, client.UnsafeDisableDeepCopy); err != nil {
		ctrl.LoggerFrom(ctx).Error(err, "listing Rollouts by index", "index", index, "key", key)
		return nil
	}
	reqs := make([]reconcile.Request, 0, len(list.Items))
	for i := range list.Items {
		reqs = append(reqs, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&list.Items[i])})
	}
	return reqs
}
