package dashboard

import (
	"context"
	"fmt"
	"time"

	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/dynamic/dynamicinformer"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/tools/cache"

	sluicev1 "github.com/sluice-dev/sluice/api/v1alpha1"
)

var rolloutsResource = sluicev1.GroupVersion.WithResource("rollouts")

// Sources of watch problems, as the page names them.
const (
	sourceRollouts = "rollouts"
	sourceEvents   = "events"
)

// watch starts the two watches every tab shares, one on the Rollouts in
// scope and one on the events about Rollouts, and feeds the store until ctx
// ends. They run with the user's credentials: what RBAC hides, the page
// reports as a problem instead of showing.
func (s *Server) watch(ctx context.Context) error {
	rollouts := dynamicinformer.NewFilteredDynamicInformer(s.opts.Dynamic, rolloutsResource,
		s.opts.Namespace, 0, cache.Indexers{}, nil).Informer()
	if err := rollouts.SetWatchErrorHandlerWithContext(s.problemHandler(sourceRollouts)); err != nil {
		return err
	}
	if _, err := rollouts.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    s.rolloutChanged,
		UpdateFunc: func(_, obj any) { s.rolloutChanged(obj) },
		DeleteFunc: s.rolloutDeleted,
	}); err != nil {
		return err
	}

	onlyRollouts := fields.OneTermEqualSelector("regarding.kind", "Rollout").String()
	factory := informers.NewSharedInformerFactoryWithOptions(s.opts.Kube, 0, informers.WithNamespace(s.opts.Namespace),
		informers.WithTweakListOptions(func(o *metav1.ListOptions) { o.FieldSelector = onlyRollouts }))
	events := factory.Events().V1().Events().Informer()
	if err := events.SetWatchErrorHandlerWithContext(s.problemHandler(sourceEvents)); err != nil {
		return err
	}
	if _, err := events.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { s.eventChanged(obj, false) },
		UpdateFunc: func(_, obj any) { s.eventChanged(obj, false) },
		DeleteFunc: func(obj any) { s.eventChanged(obj, true) },
	}); err != nil {
		return err
	}

	go rollouts.RunWithContext(ctx)
	go events.RunWithContext(ctx)
	go s.awaitSync(ctx, rollouts.HasSynced)
	return nil
}

// slowSync is how long the first list of Rollouts may take before the page
// says why it has none yet.
const slowSync = 5 * time.Second

// awaitSync marks the store synced once the Rollouts are listed. The
// informer retries an unreachable API server quietly, so when the list is
// slow to come, one direct list finds out why and the page shows it.
func (s *Server) awaitSync(ctx context.Context, synced cache.InformerSynced) {
	sctx, cancel := context.WithTimeout(ctx, slowSync)
	ok := cache.WaitForCacheSync(sctx.Done(), synced)
	cancel()
	if !ok && ctx.Err() == nil {
		_, err := s.opts.Dynamic.Resource(rolloutsResource).Namespace(s.opts.Namespace).List(ctx, metav1.ListOptions{Limit: 1})
		if err != nil && !synced() {
			s.store.setProblem(sourceRollouts, err.Error())
		}
		ok = cache.WaitForCacheSync(ctx.Done(), synced)
	}
	if ok {
		s.store.setProblem(sourceRollouts, "")
		s.store.setSynced()
	}
}

// problemHandler reports a failing list or watch (Forbidden, a lost
// connection) to the tabs instead of logging it to the terminal; the
// informer retries on its own.
func (s *Server) problemHandler(source string) cache.WatchErrorHandlerWithContext {
	return func(ctx context.Context, _ *cache.Reflector, err error) {
		if ctx.Err() == nil {
			s.store.setProblem(source, err.Error())
		}
	}
}

func (s *Server) rolloutChanged(obj any) {
	u, ok := obj.(*unstructured.Unstructured)
	if !ok {
		return
	}
	ro := &sluicev1.Rollout{}
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, ro); err != nil {
		s.store.setProblem(sourceRollouts, fmt.Sprintf("decoding rollout %s/%s: %v", u.GetNamespace(), u.GetName(), err))
		return
	}
	s.store.setProblem(sourceRollouts, "")
	s.store.setRollout(ro)
}

func (s *Server) rolloutDeleted(obj any) {
	if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = d.Obj
	}
	if u, ok := obj.(*unstructured.Unstructured); ok {
		s.store.deleteRollout(u.GetNamespace(), u.GetName())
	}
}

func (s *Server) eventChanged(obj any, gone bool) {
	if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = d.Obj
	}
	if e, ok := obj.(*eventsv1.Event); ok {
		s.store.setProblem(sourceEvents, "")
		s.store.setEvent(e, gone)
	}
}
