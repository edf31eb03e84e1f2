package rollout_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	sluicev1 "github.com/sluice-dev/sluice/api/v1alpha1"
	"github.com/sluice-dev/sluice/controllers/rollout"
	"github.com/sluice-dev/sluice/internal/manager"
	"github.com/sluice-dev/sluice/pkg/traffic/routers"
)

// noWatch makes a manager's client a client.WithWatch for the interceptor;
// the reconciler never watches through its client.
type noWatch struct{ client.Client }

func (noWatch) Watch(context.Context, client.ObjectList, ...client.ListOption) (watch.Interface, error) {
	return nil, errors.New("the reconciler's client does not watch")
}

// readOnlyReconciler is a Reconciler on a cache of the story's namespace,
// whose client fails the test on any write: it is for running the observe
// step alone, which must only read.
func (s *story) readOnlyReconciler() (*rollout.Reconciler, client.Reader) {
	s.t.Helper()
	t := s.t
	mgr, err := ctrl.NewManager(env.Config, ctrl.Options{
		Scheme:                 manager.Scheme(),
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
		Cache:                  cache.Options{DefaultNamespaces: map[string]cache.Config{s.ns: {}}},
	})
	s.must(err)
	s.must(rollout.IndexRollouts(s.ctx, mgr))
	ctx, cancel := context.WithCancel(s.ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := mgr.Start(ctx); err != nil {
			t.Errorf("read-only manager: %v", err)
		}
	}()
	t.Cleanup(func() { cancel(); <-done })

	wrote := func(verb string, obj any) error {
		o, _ := obj.(client.Object)
		name := ""
		if o != nil {
			name = o.GetName()
		}
		t.Errorf("observing wrote: %s %T %s", verb, obj, name)
		return fmt.Errorf("observing must not %s %T %s", verb, obj, name)
	}
	c := interceptor.NewClient(noWatch{mgr.GetClient()}, interceptor.Funcs{
		Create: func(_ context.Context, _ client.WithWatch, obj client.Object, _ ...client.CreateOption) error {
			return wrote("create", obj)
		},
		Update: func(_ context.Context, _ client.WithWatch, obj client.Object, _ ...client.UpdateOption) error {
			return wrote("update", obj)
		},
		Patch: func(_ context.Context, _ client.WithWatch, obj client.Object, _ client.Patch, _ ...client.PatchOption) error {
			return wrote("patch", obj)
		},
		Apply: func(_ context.Context, _ client.WithWatch, obj runtime.ApplyConfiguration, _ ...client.ApplyOption) error {
			return wrote("apply", obj)
		},
		Delete: func(_ context.Context, _ client.WithWatch, obj client.Object, _ ...client.DeleteOption) error {
			return wrote("delete", obj)
		},
		DeleteAllOf: func(_ context.Context, _ client.WithWatch, obj client.Object, _ ...client.DeleteAllOfOption) error {
			return wrote("delete all of", obj)
		},
		SubResourceCreate: func(_ context.Context, _ client.Client, sub string, obj client.Object, _ client.Object, _ ...client.SubResourceCreateOption) error {
			return wrote("create "+sub+" of", obj)
		},
		SubResourceUpdate: func(_ context.Context, _ client.Client, sub string, obj client.Object, _ ...client.SubResourceUpdateOption) error {
			return wrote("update "+sub+" of", obj)
		},
		SubResourcePatch: func(_ context.Context, _ client.Client, sub string, obj client.Object, _ client.Patch, _ ...client.SubResourcePatchOption) error {
			return wrote("patch "+sub+" of", obj)
		},
		SubResourceApply: func(_ context.Context, _ client.Client, sub string, obj runtime.ApplyConfiguration, _ ...client.SubResourceApplyOption) error {
			return wrote("apply "+sub+" of", obj)
		},
	})
	return &rollout.Reconciler{
		Client:    c,
		APIReader: mgr.GetAPIReader(),
		Clock:     clock.RealClock{},
		Routers:   routers.New(c, mgr.GetRESTMapper()).For,
	}, mgr.GetClient()
}

// TestObservingARolloutOnlyReads: the observe step of a reconcile reads
// and writes nothing, with each router, before the Rollout's Services and
// routes exist (creating them is acting's) and once they do (it reads the
// route back).
func TestObservingARolloutOnlyReads(t *testing.T) {
	routerNames := map[string]string{
		"kubernetes": "kubernetes", "gatewayAPI": "gatewayAPI",
		"grpcRoute": "gatewayAPI/GRPCRoute", "istio": "istio",
	}
	for _, kind := range []string{"kubernetes", "gatewayAPI", "grpcRoute", "istio"} {
		t.Run(kind, func(t *testing.T) {
			s := newStory(t)
			// No Sluice running: nothing creates the Services and routes.
			s.stopManager()
			s.deploy("podinfo", "podinfo:1.0")
			opts := []rolloutOpt{withRouter(kind)}
			if kind != "kubernetes" {
				opts = append(opts, withCanaryWeights(50))
			}
			s.rollout("podinfo", opts...)
			r, cached := s.readOnlyReconciler()
			s.eventually(storyTimeout, "the target in the read-only cache", func() error {
				return cached.Get(s.ctx, client.ObjectKey{Namespace: s.ns, Name: "podinfo"}, &appsv1.Deployment{})
			})

			obs, err := r.Observe(s.ctx, s.getRollout("podinfo"))
			s.must(err)
			if obs.Router != routerNames[kind] || obs.Blocked != "" || obs.RoutedWeight != nil {
				t.Errorf("observed before any route exists: %v, want the %s router, not blocked, no routed weight", obs, routerNames[kind])
			}
			for _, name := range []string{"podinfo", "podinfo-primary", "podinfo-canary"} {
				if err := k8sClient.Get(s.ctx, client.ObjectKey{Namespace: s.ns, Name: name}, &corev1.Service{}); !apierrors.IsNotFound(err) {
					t.Errorf("Service %s after observing: %v, want not found", name, err)
				}
			}
			if kind != "kubernetes" {
				if err := k8sClient.Get(s.ctx, client.ObjectKey{Namespace: s.ns, Name: "podinfo"}, routeObject(kind)); !apierrors.IsNotFound(err) {
					t.Errorf("route after observing: %v, want not found", err)
				}
			}

			// Sluice creates them; observing reads the route back, and
			// still writes nothing.
			s.startManager()
			s.waitPhase("podinfo", sluicev1.PhaseInitialized, storyTimeout)
			s.stopManager()
			s.eventually(storyTimeout, "observing the route Sluice set", func() error {
				obs, err := r.Observe(s.ctx, s.getRollout("podinfo"))
				if err != nil {
					return err
				}
				if obs.Router != routerNames[kind] || obs.Blocked != "" || obs.RoutedWeight == nil || *obs.RoutedWeight != 0 {
					return fmt.Errorf("observed %v, want the %s router holding all traffic on the primary", obs, routerNames[kind])
				}
				return nil
			})
		})
	}
}
