package manager_test

import (
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"net/http"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap/zapcore"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	sluicev1 "github.com/sluice-dev/sluice/api/v1alpha1"
	"github.com/sluice-dev/sluice/internal/manager"
	"github.com/sluice-dev/sluice/internal/testenv"
)

// secretSize is the size of each benchmark Secret's data.
const secretSize = 10 << 10

// BenchmarkManagerHeapWithSecrets starts the manager as shipped against a
// cluster holding N Secrets of 10 KiB each (in four namespaces) and reports,
// once its controller has started (so every informer has synced), the
// process's heap after a GC (heap-inuse-MiB, and the manager's share:
// heap-added-MiB over the heap before it started), the highest heap in use
// sampled while it synced (peak-heap-MiB), what it allocated to sync
// (alloc-MiB) and the bytes it read from the API server (recv-MiB).
// `make bench` runs secrets=2000; TestTheHeapBenchmarkRuns keeps a small
// run of it in `make test`.
func BenchmarkManagerHeapWithSecrets(b *testing.B) {
	for _, n := range []int{200, 2000} {
		b.Run(fmt.Sprintf("secrets=%d", n), func(b *testing.B) {
			env, c := startEnv(b)
			createSecrets(b, c, n)
			var m heapFigures
			for range b.N {
				m = measureManagerHeap(b, env)
			}
			m.report(b)
		})
	}
}

// TestTheHeapBenchmarkRuns runs the benchmark's measure with 200 Secrets, so
// that `make test` keeps it working, and checks that the manager does not
// download their data: it watches them as metadata only.
func TestTheHeapBenchmarkRuns(t *testing.T) {
	const n = 200
	env, c := startEnv(t)
	createSecrets(t, c, n)
	m := measureManagerHeap(t, env)
	t.Logf("with %d Secrets of 10 KiB: %+v", n, m)
	if m.recvMiB <= 0 || m.heapInuseMiB <= 0 {
		t.Errorf("nothing measured: %+v", m)
	}
	if data := mib(n * secretSize); m.recvMiB > data/4 {
		t.Errorf("the manager read %.2f MiB from the API server, the Secrets hold %.2f MiB of data: want it to read far less", m.recvMiB, data)
	}
}

// heapFigures are what measureManagerHeap reports, in MiB.
type heapFigures struct {
	heapInuseMiB, heapAddedMiB, peakHeapMiB, allocMiB, recvMiB float64
}

func (m heapFigures) report(b *testing.B) {
	b.ReportMetric(m.heapInuseMiB, "heap-inuse-MiB")
	b.ReportMetric(m.heapAddedMiB, "heap-added-MiB")
	b.ReportMetric(m.peakHeapMiB, "peak-heap-MiB")
	b.ReportMetric(m.allocMiB, "alloc-MiB")
	b.ReportMetric(m.recvMiB, "recv-MiB")
}

func mib(n uint64) float64 { return float64(n) / (1 << 20) }

func startEnv(tb testing.TB) (*testenv.Env, client.Client) {
	tb.Helper()
	// Errors only: a benchmark that hides them measures nothing.
	ctrl.SetLogger(zap.New(zap.WriteTo(os.Stderr), zap.Level(zapcore.ErrorLevel)))
	env, err := testenv.Start()
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = env.Stop() })
	cfg := rest.CopyConfig(env.Config)
	cfg.QPS = -1
	c, err := client.New(cfg, client.Options{Scheme: manager.Scheme()})
	if err != nil {
		tb.Fatal(err)
	}
	return env, c
}

// createSecrets writes n Secrets of secretSize random bytes into four
// namespaces, a few at a time.
func createSecrets(tb testing.TB, c client.Client, n int) {
	tb.Helper()
	ctx := context.Background()
	const namespaces = 4
	for i := range namespaces {
		if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("heap-%d", i)}}); err != nil {
			tb.Fatal(err)
		}
	}
	var wg sync.WaitGroup
	var failed atomic.Pointer[error]
	next := atomic.Int64{}
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n || failed.Load() != nil {
					return
				}
				data := make([]byte, secretSize)
				_, _ = rand.Read(data)
				err := c.Create(ctx, &corev1.Secret{
					ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("secret-%d", i), Namespace: fmt.Sprintf("heap-%d", i%namespaces)},
					Data:       map[string][]byte{"payload": data},
				})
				if err != nil {
					failed.Store(&err)
				}
			}
		}()
	}
	wg.Wait()
	if err := failed.Load(); err != nil {
		tb.Fatal(*err)
	}
}

// recvCounter counts the response bytes read through next into bytes.
type recvCounter struct {
	next  http.RoundTripper
	bytes *atomic.Int64
}

func (c recvCounter) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := c.next.RoundTrip(r)
	if resp != nil && resp.Body != nil {
		resp.Body = &countingBody{ReadCloser: resp.Body, n: c.bytes}
	}
	return resp, err
}

type countingBody struct {
	io.ReadCloser
	n *atomic.Int64
}

func (b *countingBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	b.n.Add(int64(n))
	return n, err
}

// measureManagerHeap starts a manager with the shipped options, waits until
// its controller reconciles (it starts only once every watch has synced),
// and measures the heap with the manager still running.
func measureManagerHeap(tb testing.TB, env *testenv.Env) heapFigures {
	tb.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	c, err := client.New(env.Config, client.Options{Scheme: manager.Scheme()})
	if err != nil {
		tb.Fatal(err)
	}
	// A Rollout whose first reconcile (the finalizer) says the manager is up.
	ns := fmt.Sprintf("heap-probe-%d", time.Now().UnixNano())
	if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
		tb.Fatal(err)
	}
	probe := &sluicev1.Rollout{
		ObjectMeta: metav1.ObjectMeta{Name: "probe", Namespace: ns},
		Spec: sluicev1.RolloutSpec{
			TargetRef: sluicev1.TargetRef{Kind: "Deployment", Name: "probe"},
			Service:   sluicev1.ServiceSpec{Port: 80},
			Strategy:  sluicev1.Strategy{BlueGreen: &sluicev1.BlueGreenStrategy{Iterations: 1}},
		},
	}
	if err := c.Create(ctx, probe); err != nil {
		tb.Fatal(err)
	}

	var recv atomic.Int64
	cfg := rest.CopyConfig(env.Config)
	// As cmd/manager sets it by default.
	cfg.QPS = -1
	cfg.WrapTransport = func(rt http.RoundTripper) http.RoundTripper { return recvCounter{next: rt, bytes: &recv} }
	var ms runtime.MemStats
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&ms)
	before, alloc0 := ms.HeapAlloc, ms.TotalAlloc

	mgr, err := manager.New(cfg, manager.Options{
		MetricsAddr: "0", HealthProbeAddr: "0", AllowRestart: true,
		PrometheusTimeout: 10 * time.Second, GatewayFlavor: "envoy",
	})
	if err != nil {
		tb.Fatal(err)
	}
	done := make(chan struct{})
	go func() { defer close(done); _ = mgr.Start(ctx) }()
	defer func() { cancel(); <-done }()

	var peak uint64
	deadline := time.Now().Add(5 * time.Minute)
	for {
		runtime.ReadMemStats(&ms)
		peak = max(peak, ms.HeapInuse)
		ro := &sluicev1.Rollout{}
		if err := c.Get(ctx, client.ObjectKeyFromObject(probe), ro); err != nil {
			tb.Fatal(err)
		}
		if len(ro.Finalizers) > 0 {
			break
		}
		if time.Now().After(deadline) {
			tb.Fatal("the manager did not reconcile the probe Rollout within 5 minutes")
		}
		time.Sleep(20 * time.Millisecond)
	}
	runtime.ReadMemStats(&ms)
	alloc := ms.TotalAlloc - alloc0
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&ms)
	m := heapFigures{
		heapInuseMiB: mib(ms.HeapInuse),
		heapAddedMiB: float64(int64(ms.HeapAlloc)-int64(before)) / (1 << 20),
		peakHeapMiB:  mib(peak),
		allocMiB:     mib(alloc),
		recvMiB:      float64(recv.Load()) / (1 << 20),
	}
	// The manager must still hold what it cached when the heap is read.
	runtime.KeepAlive(mgr)
	return m
}
