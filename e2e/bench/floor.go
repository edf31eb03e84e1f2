package main

import (
	"context"
	"fmt"
	"os"
	"sync"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/sluice-dev/sluice/pkg/workload/deployment"
)

// floorStrategy is the row of the Kubernetes work alone: what a blue/green
// release asks of the cluster, done by the bench with no manager running.
// Each pair of Deployments is driven as Sluice drives a blue/green Rollout,
// at the same pace: on the image change the target is scaled up; once it is
// ready (the first shift: a blue/green canary takes no traffic while it is
// analysed) three analysis intervals pass; then the Service moves to it and
// the primary takes the new template; once that has rolled out the Service
// moves back, and after the 10 s drain the target is scaled to zero. What this row takes at N is
// the least any controller could take on the same control plane: the
// difference to the bluegreen row is Sluice's own (its status writes,
// events and reconciles).
const floorStrategy = "kubernetes"

// floorRelease measures floorStrategy for n pairs at once. Its requests are
// sent as the manager's user, so that the audit log counts them as it
// counts the manager's.
func (b *bench) floorRelease(ctx context.Context, e *env, n, runIdx int, last bool) (run, error) {
	var res run
	c := e.c.Client
	ns := fmt.Sprintf("floor-%d", runIdx)
	if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
		return res, err
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", e.managerKubeConfig)
	if err != nil {
		return res, err
	}
	cfg.QPS = -1 // as the manager: no client-side limit
	drv, err := client.New(cfg, client.Options{Scheme: c.Scheme()})
	if err != nil {
		return res, err
	}
	dw := newDeploymentWatcher(ctx, e, ns)
	defer dw.stop()

	t0 := time.Now()
	if err := parallel(n, func(i int) error {
		for _, o := range floorObjects(ns, i) {
			if err := c.Create(ctx, o); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		return res, err
	}
	if err := parallel(n, func(i int) error {
		return dw.waitFor(ctx, floorPrimary(i), rolledOut(""), 10*time.Minute)
	}); err != nil {
		return res, err
	}
	res.initialized = time.Since(t0)
	// The driver's first requests learn the API's resources (discovery):
	// not a release's reads.
	if err := drv.Get(ctx, client.ObjectKey{Namespace: ns, Name: floorTarget(0)}, &corev1.Service{}); err != nil {
		return res, err
	}
	if err := drv.Get(ctx, client.ObjectKey{Namespace: ns, Name: floorTarget(0)}, &appsv1.Deployment{}); err != nil {
		return res, err
	}
	time.Sleep(2 * time.Second)

	api0 := procCPU(e.apiPid)
	tChange := time.Now()
	stopProfile := func() error { return nil }
	if b.profileDir != "" && last {
		stopProfile = b.profileAPIServer(e, floorStrategy, n)
	}
	var (
		wg                    sync.WaitGroup
		mu                    sync.Mutex
		scaled, shifted, done time.Time
		first                 error
	)
	latest := func(t *time.Time) {
		mu.Lock()
		if now := time.Now(); now.After(*t) {
			*t = now
		}
		mu.Unlock()
	}
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := b.drivePair(ctx, drv, dw, ns, i, func() { latest(&scaled) }, func() { latest(&shifted) }); err != nil {
				mu.Lock()
				if first == nil {
					first = fmt.Errorf("pair %d: %w", i, err)
				}
				mu.Unlock()
				return
			}
			latest(&done)
		}()
	}
	// The user's change, as in the other rows.
	if err := parallel(n, func(i int) error {
		return c.Patch(ctx, &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: floorTarget(i), Namespace: ns}},
			client.RawPatch(types.StrategicMergePatchType, []byte(imageChange)))
	}); err != nil {
		return res, err
	}
	wg.Wait()
	if first != nil {
		return res, first
	}
	tDone := time.Now()
	res.apiServerCPU = procCPU(e.apiPid) - api0
	if err := stopProfile(); err != nil {
		return res, err
	}
	res.progressing = scaled.Sub(tChange)
	res.firstShift = shifted.Sub(tChange)
	res.succeeded = done.Sub(tChange)
	time.Sleep(time.Second)
	counts, err := countAudit(e.audit, tChange, tDone.Add(time.Second))
	if err != nil {
		return res, err
	}
	res.reads = float64(counts.reads) / float64(n)
	res.writes = float64(counts.writes) / float64(n)
	fmt.Fprintf(os.Stderr, "  writes a release: %s\n", perRelease(counts.written, n))
	return res, nil
}

// drivePair is one release of floorStrategy.
func (b *bench) drivePair(ctx context.Context, drv client.Client, dw *deploymentWatcher, ns string, i int, scaled, shifted func()) error {
	const timeout = 15 * time.Minute
	target, primary := floorTarget(i), floorPrimary(i)
	if err := dw.waitFor(ctx, target, func(d *appsv1.Deployment) bool {
		return d.Spec.Template.Spec.Containers[0].Image == "app:2"
	}, timeout); err != nil {
		return err
	}
	if err := patch(ctx, drv, &appsv1.Deployment{}, ns, target, `{"spec":{"replicas":1}}`); err != nil {
		return err
	}
	scaled()
	if err := dw.waitFor(ctx, target, rolledOut("app:2"), timeout); err != nil {
		return err
	}
	shifted()
	if err := sleep(ctx, 3*b.interval); err != nil {
		return err
	}
	if err := patch(ctx, drv, &corev1.Service{}, ns, target, fmt.Sprintf(`{"spec":{"selector":{"app":%q}}}`, target)); err != nil {
		return err
	}
	if err := patch(ctx, drv, &appsv1.Deployment{}, ns, primary, imageChange); err != nil {
		return err
	}
	if err := dw.waitFor(ctx, primary, rolledOut("app:2"), timeout); err != nil {
		return err
	}
	if err := patch(ctx, drv, &corev1.Service{}, ns, target, fmt.Sprintf(`{"spec":{"selector":{"app":%q}}}`, primary)); err != nil {
		return err
	}
	if err := sleep(ctx, 10*time.Second); err != nil { // Sluice's default drain
		return err
	}
	return patch(ctx, drv, &appsv1.Deployment{}, ns, target, `{"spec":{"replicas":0}}`)
}

func patch(ctx context.Context, c client.Client, obj client.Object, ns, name, body string) error {
	obj.SetNamespace(ns)
	obj.SetName(name)
	// A merge patch for a Service's selector (a map: the key is replaced),
	// a strategic one for a Deployment's container (merged by name).
	pt := types.MergePatchType
	if _, ok := obj.(*appsv1.Deployment); ok {
		pt = types.StrategicMergePatchType
	}
	return c.Patch(ctx, obj, client.RawPatch(pt, []byte(body)))
}

func sleep(ctx context.Context, d time.Duration) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}

// rolledOut is the readiness Sluice asks of a Deployment (all replicas
// updated and available, none old), at an image when one is given.
func rolledOut(image string) func(*appsv1.Deployment) bool {
	return func(d *appsv1.Deployment) bool {
		if image != "" && d.Spec.Template.Spec.Containers[0].Image != image {
			return false
		}
		ok, _ := deployment.Ready(d, 100)
		return ok
	}
}

func floorTarget(i int) string  { return fmt.Sprintf("app-%d", i) }
func floorPrimary(i int) string { return fmt.Sprintf("app-%d-primary", i) }

// floorObjects are an initialised pair as Sluice leaves it: the target
// parked at zero, the primary serving, the Service on the primary.
func floorObjects(ns string, i int) []client.Object {
	dep := func(name string, replicas int32) *appsv1.Deployment {
		labels := map[string]string{"app": name}
		return &appsv1.Deployment{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
			Spec: appsv1.DeploymentSpec{
				Replicas: ptr.To(replicas), Selector: &metav1.LabelSelector{MatchLabels: labels},
				Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels},
					Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "app:1",
						Ports: []corev1.ContainerPort{{ContainerPort: 8080}}}}}},
			},
		}
	}
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: floorTarget(i), Namespace: ns},
		Spec: corev1.ServiceSpec{Selector: map[string]string{"app": floorPrimary(i)},
			Ports: []corev1.ServicePort{{Port: 80, TargetPort: intstr.FromInt32(8080)}}},
	}
	return []client.Object{dep(floorTarget(i), 0), dep(floorPrimary(i), 1), svc}
}

// deploymentWatcher follows a namespace's Deployments with one watch and
// wakes whoever waits on the one that changed.
type deploymentWatcher struct {
	cancel context.CancelFunc
	mu     sync.Mutex
	last   map[string]*appsv1.Deployment
	wake   map[string]chan struct{}
}

func newDeploymentWatcher(ctx context.Context, e *env, ns string) *deploymentWatcher {
	ctx, cancel := context.WithCancel(ctx)
	w := &deploymentWatcher{cancel: cancel, last: map[string]*appsv1.Deployment{}, wake: map[string]chan struct{}{}}
	watchNamespace(ctx, e, &appsv1.DeploymentList{}, ns, func(o runtime.Object) {
		d, ok := o.(*appsv1.Deployment)
		if !ok {
			return
		}
		w.mu.Lock()
		w.last[d.Name] = d
		ch := w.chanLocked(d.Name)
		w.mu.Unlock()
		select {
		case ch <- struct{}{}:
		default:
		}
	})
	return w
}

func (w *deploymentWatcher) chanLocked(name string) chan struct{} {
	ch := w.wake[name]
	if ch == nil {
		ch = make(chan struct{}, 1)
		w.wake[name] = ch
	}
	return ch
}

// waitFor waits until the named Deployment is seen in a state for which ok
// holds. One waiter per name at a time.
func (w *deploymentWatcher) waitFor(ctx context.Context, name string, ok func(*appsv1.Deployment) bool, timeout time.Duration) error {
	deadline := time.After(timeout)
	for {
		w.mu.Lock()
		d, ch := w.last[name], w.chanLocked(name)
		w.mu.Unlock()
		if d != nil && ok(d) {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-deadline:
			if d == nil {
				return fmt.Errorf("Deployment %s not seen in %s", name, timeout)
			}
			return fmt.Errorf("Deployment %s not as awaited in %s: %+v", name, timeout, d.Status)
		case <-ch:
		}
	}
}

func (w *deploymentWatcher) stop() { w.cancel() }
