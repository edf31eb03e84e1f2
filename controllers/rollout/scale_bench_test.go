package rollout_test

import (
	"context"
	"fmt"
	"net/http"
	"runtime"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	sluicev1 "github.com/sluice-dev/sluice/api/v1alpha1"
	"github.com/sluice-dev/sluice/internal/manager"
	"github.com/sluice-dev/sluice/internal/testenv"
)

// writeCounter counts the manager's write requests to the API server.
type writeCounter struct {
	next   http.RoundTripper
	writes atomic.Int64
}

func (w *writeCounter) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Method != http.MethodGet {
		w.writes.Add(1)
	}
	return w.next.RoundTrip(r)
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkRolloutsAtScale drives N Rollouts at once on the real API server:
// initialization, then a blue/green release of every one. It reports the
// wall time of each, the manager's API writes per release, the process's CPU
// time (manager and test clients; the API server and etcd are other
// processes) and the heap in use afterwards.
func BenchmarkRolloutsAtScale(b *testing.B) {
	for _, n := range []int{10, 100, 1000} {
		b.Run(fmt.Sprintf("rollouts=%d", n), func(b *testing.B) {
			for range b.N {
				runAtScale(b, n)
			}
		})
	}
}

func runAtScale(b *testing.B, n int) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ns := fmt.Sprintf("scale-%d-%d", n, nsCounter.Add(1))
	must := func(err error) {
		if err != nil {
			b.Fatal(err)
		}
	}
	must(k8sClient.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}))
	testenv.RunFakeKubelet(ctx, k8sClient, ns, nil)

	counter := &writeCounter{}
	cfg := rest.CopyConfig(env.Config)
	cfg.QPS, cfg.Burst = 200, 400
	cfg.WrapTransport = func(rt http.RoundTripper) http.RoundTripper { counter.next = rt; return counter }
	mgr, err := manager.New(cfg, manager.Options{MetricsAddr: "0", HealthProbeAddr: "0", AllowRestart: true})
	must(err)
	done := make(chan struct{})
	go func() { defer close(done); _ = mgr.Start(ctx) }()
	defer func() { cancel(); <-done }()

	for i := range n {
		name := fmt.Sprintf("app-%d", i)
		labels := map[string]string{"app": name}
		must(k8sClient.Create(ctx, &appsv1.Deployment{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
			Spec: appsv1.DeploymentSpec{
				Replicas: ptr.To[int32](1), Selector: &metav1.LabelSelector{MatchLabels: labels},
				Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels},
					Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "app:1"}}}},
			},
		}))
		must(k8sClient.Create(ctx, &sluicev1.Rollout{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
			Spec: sluicev1.RolloutSpec{
				TargetRef: sluicev1.TargetRef{Kind: "Deployment", Name: name},
				Service:   sluicev1.ServiceSpec{Port: 80},
				Strategy:  sluicev1.Strategy{BlueGreen: &sluicev1.BlueGreenStrategy{Iterations: 1}},
				Analysis:  &sluicev1.Analysis{Interval: &metav1.Duration{Duration: time.Second}, Threshold: 1},
				// The drain is a fixed wait, not work: without it the
				// times stay comparable with earlier runs.
				ScaleDownDelaySeconds: ptr.To[int32](0),
			},
		}))
	}
	start, cpu0 := time.Now(), cpuTime()
	waitAll(b, ctx, ns, n, sluicev1.PhaseInitialized)
	b.ReportMetric(time.Since(start).Seconds(), "s-to-initialize-all")

	writes0 := counter.writes.Load()
	start = time.Now()
	for i := range n {
		// The fake kubelet and the manager write these Deployments too, so
		// an update races them: read again on a conflict, as kubectl does.
		must(retry.RetryOnConflict(retry.DefaultRetry, func() error {
			d := &appsv1.Deployment{}
			if err := k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: fmt.Sprintf("app-%d", i)}, d); err != nil {
				return err
			}
			d.Spec.Template.Spec.Containers[0].Image = "app:2"
			return k8sClient.Update(ctx, d)
		}))
	}
	waitAll(b, ctx, ns, n, sluicev1.PhaseSucceeded)
	b.ReportMetric(time.Since(start).Seconds(), "s-to-release-all")
	b.ReportMetric(float64(counter.writes.Load()-writes0)/float64(n), "manager-writes/release")
	b.ReportMetric((cpuTime() - cpu0).Seconds(), "cpu-s")
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	b.ReportMetric(float64(ms.HeapInuse)/(1<<20), "heap-MiB")
}

func waitAll(b *testing.B, ctx context.Context, ns string, n int, phase sluicev1.Phase) {
	deadline := time.Now().Add(10 * time.Minute)
	for time.Now().Before(deadline) {
		var list sluicev1.RolloutList
		if err := k8sClient.List(ctx, &list, client.InNamespace(ns)); err != nil {
			b.Fatal(err)
		}
		count, phases := 0, map[sluicev1.Phase]int{}
		for _, ro := range list.Items {
			phases[ro.Status.Phase]++
			if ro.Status.Phase == phase {
				count++
			}
		}
		if count == n {
			return
		}
		if time.Now().Second()%10 == 0 {
			b.Logf("waiting for %s: %v", phase, phases)
		}
		time.Sleep(200 * time.Millisecond)
	}
	b.Fatalf("not all %d Rollouts reached %s", n, phase)
}
