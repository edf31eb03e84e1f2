package recorder

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/go-logr/logr/testr"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/fake"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"

	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/sluice-dev/sluice/internal/testenv"
)

var cfg *rest.Config

func TestMain(m *testing.M) {
	env, err := testenv.Start()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	cfg = env.Config
	code := m.Run()
	_ = env.Stop()
	os.Exit(code)
}

// fixture is a namespace with a ConfigMap for events to be about, and a
// running recorder whose API requests go through wrap (nil: directly).
type fixture struct {
	t    *testing.T
	kube kubernetes.Interface
	ns   string
	obj  *corev1.ConfigMap
	rec  *Recorder
	stop func()
}

var nsCounter atomic.Int32

func newFixture(t *testing.T, wrap func(http.RoundTripper) http.RoundTripper) *fixture {
	t.Helper()
	ctx := context.Background()
	kube := kubernetes.NewForConfigOrDie(cfg)
	ns := fmt.Sprintf("rec-%d", nsCounter.Add(1))
	if _, err := kube.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	obj, err := kube.CoreV1().ConfigMaps(ns).Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "shop"}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	obj.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("ConfigMap"))
	rc := rest.CopyConfig(cfg)
	rc.WrapTransport = wrap
	f := &fixture{t: t, kube: kube, ns: ns, obj: obj, rec: New(kubernetes.NewForConfigOrDie(rc).EventsV1(), clientgoscheme.Scheme, "sluice", testr.New(t))}
	f.start()
	t.Cleanup(func() { f.stop() })
	return f
}

func (f *fixture) start() {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = f.rec.Start(ctx) }()
	f.stop = func() { cancel(); <-done; f.stop = func() {} }
}

// notes lists the Events of the namespace as "type reason note xcount".
func (f *fixture) notes() []string {
	f.t.Helper()
	list, err := f.kube.EventsV1().Events(f.ns).List(context.Background(), metav1.ListOptions{})
	if err != nil {
		f.t.Fatal(err)
	}
	var out []string
	for _, e := range list.Items {
		count := int32(1)
		if e.Series != nil {
			count = e.Series.Count
		}
		out = append(out, fmt.Sprintf("%s %s %s x%d", e.Type, e.Reason, e.Note, count))
	}
	sort.Strings(out)
	return out
}

func (f *fixture) waitNotes(want ...string) {
	f.t.Helper()
	sort.Strings(want)
	deadline := time.Now().Add(30 * time.Second)
	for {
		got := f.notes()
		if strings.Join(got, "\n") == strings.Join(want, "\n") {
			return
		}
		if time.Now().After(deadline) {
			f.t.Fatalf("events:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func TestEachEventIsWrittenWithWhatItSaysAndWhomItConcerns(t *testing.T) {
	f := newFixture(t, nil)
	related := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "tls", Namespace: f.ns, UID: "1234"}}
	related.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("Secret"))
	f.rec.Eventf(f.obj, nil, corev1.EventTypeNormal, "WeightChanged", "Release", "step %d/2: canary weight %d%%", 1, 20)
	f.rec.Eventf(f.obj, nil, corev1.EventTypeNormal, "WeightChanged", "Release", "step %d/2: canary weight %d%%", 2, 60)
	f.rec.Eventf(f.obj, related, corev1.EventTypeWarning, "RolledBack", "Release", "certificate expired")
	// The same reason saying something else is an event of its own.
	f.waitNotes("Normal WeightChanged step 1/2: canary weight 20% x1", "Normal WeightChanged step 2/2: canary weight 60% x1",
		"Warning RolledBack certificate expired x1")

	list, err := f.kube.EventsV1().Events(f.ns).List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range list.Items {
		if e.Regarding.Kind != "ConfigMap" || e.Regarding.Name != "shop" || e.Regarding.UID != f.obj.UID {
			t.Errorf("event %s regards %+v, want the ConfigMap shop", e.Name, e.Regarding)
		}
		if e.ReportingController != "sluice" || !strings.HasPrefix(e.ReportingInstance, "sluice-") || e.Action != "Release" || e.EventTime.IsZero() {
			t.Errorf("event %s: controller %q, instance %q, action %q, time %v", e.Name, e.ReportingController, e.ReportingInstance, e.Action, e.EventTime)
		}
		if (e.Type == corev1.EventTypeWarning) != (e.Related != nil && e.Related.Name == "tls" && e.Related.Kind == "Secret") {
			t.Errorf("event %s (%s) has related %+v", e.Name, e.Type, e.Related)
		}
	}
}

func TestARepeatedEventIsOneEventThatCountsItsRepeats(t *testing.T) {
	f := newFixture(t, nil)
	for range 3 {
		f.rec.Eventf(f.obj, nil, corev1.EventTypeWarning, "ServiceConflict", "Reconcile", "Service shop-primary belongs to another controller")
	}
	f.waitNotes("Warning ServiceConflict Service shop-primary belongs to another controller x3")
	// A repeat after the Event was written adds to its series.
	f.rec.Eventf(f.obj, nil, corev1.EventTypeWarning, "ServiceConflict", "Reconcile", "Service shop-primary belongs to another controller")
	f.waitNotes("Warning ServiceConflict Service shop-primary belongs to another controller x4")
}

func TestALongNoteIsCutToWhatTheAPIServerTakes(t *testing.T) {
	f := newFixture(t, nil)
	long := strings.Repeat("é", 600) // 1,200 bytes
	f.rec.Eventf(f.obj, nil, corev1.EventTypeWarning, "ReconcileError", "Reconcile", "%s", long)
	f.waitNotes("Warning ReconcileError " + strings.Repeat("é", 512) + " x1")
}

// failingEventWrites answers the first n event writes with 503, as an API
// server that is restarting or overloaded does.
func failingEventWrites(n int32) (func(http.RoundTripper) http.RoundTripper, *atomic.Int32) {
	var failed atomic.Int32
	return func(rt http.RoundTripper) http.RoundTripper {
		return roundTripFunc(func(req *http.Request) (*http.Response, error) {
			if req.Method != http.MethodGet && strings.Contains(req.URL.Path, "/events") && failed.Add(1) <= n {
				return &http.Response{StatusCode: http.StatusServiceUnavailable, Header: http.Header{"Content-Type": {"text/plain"}},
					Body: http.NoBody, Request: req}, nil
			}
			return rt.RoundTrip(req)
		})
	}, &failed
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func TestNoEventIsLostWhileTheAPIServerCannotTakeThem(t *testing.T) {
	wrap, attempts := failingEventWrites(40)
	f := newFixture(t, wrap)
	var want []string
	for i := range 30 {
		f.rec.Eventf(f.obj, nil, corev1.EventTypeNormal, "WeightChanged", "Release", "step %d", i)
		want = append(want, fmt.Sprintf("Normal WeightChanged step %d x1", i))
	}
	f.waitNotes(want...)
	if attempts.Load() < 40 {
		t.Fatalf("%d event writes were tried, want the 40 refused ones among them", attempts.Load())
	}
	if n := f.rec.FailedWrites(); n != 0 {
		t.Errorf("%d events given up on, want none", n)
	}
}

// metric reads a metric of the recorder as the manager's /metrics shows it.
func metric(t *testing.T, name string) float64 {
	t.Helper()
	families, err := ctrlmetrics.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		m := f.GetMetric()[0]
		if m.GetGauge() != nil {
			return m.GetGauge().GetValue()
		}
		return m.GetCounter().GetValue()
	}
	t.Fatalf("the manager's metrics have no %s", name)
	return 0
}

func TestTheEventsWaitingToBeWrittenAndThoseGivenUpOnAreMetrics(t *testing.T) {
	// Refused for a while (503): queued, then written.
	wrap, attempts := failingEventWrites(3)
	f := newFixture(t, wrap)
	for i := range 3 {
		f.rec.Eventf(f.obj, nil, corev1.EventTypeNormal, "WeightChanged", "Release", "step %d", i)
	}
	deadline := time.Now().Add(10 * time.Second)
	for attempts.Load() < 3 {
		if time.Now().After(deadline) {
			t.Fatalf("%d event writes tried, want 3", attempts.Load())
		}
		time.Sleep(10 * time.Millisecond)
	}
	// Each refused write is queued again to be retried seconds later.
	if got := metric(t, "sluice_events_queued"); got != 3 {
		t.Errorf("sluice_events_queued = %v while the API server refuses the 3 events, want 3", got)
	}
	f.waitNotes("Normal WeightChanged step 0 x1", "Normal WeightChanged step 1 x1", "Normal WeightChanged step 2 x1")
	if got := metric(t, "sluice_events_queued"); got != 0 {
		t.Errorf("sluice_events_queued = %v with every event written, want 0", got)
	}
	if got := metric(t, "sluice_events_failed_total"); got != 0 {
		t.Errorf("sluice_events_failed_total grew by %v for events written after retries, want 0", got)
	}

	// Forbidden: given up on at once, and counted (by the recorder started
	// last, as a manager runs one).
	forbidden := func(rt http.RoundTripper) http.RoundTripper {
		return roundTripFunc(func(req *http.Request) (*http.Response, error) {
			if req.Method != http.MethodGet && strings.Contains(req.URL.Path, "/events") {
				return &http.Response{StatusCode: http.StatusForbidden, Header: http.Header{"Content-Type": {"text/plain"}},
					Body: http.NoBody, Request: req}, nil
			}
			return rt.RoundTrip(req)
		})
	}
	g := newFixture(t, forbidden)
	g.rec.Eventf(g.obj, nil, corev1.EventTypeNormal, "Promoted", "Release", "revision 2 promoted")
	g.rec.Eventf(g.obj, nil, corev1.EventTypeNormal, "Draining", "Release", "keeping the canary's pods")
	deadline = time.Now().Add(10 * time.Second)
	for metric(t, "sluice_events_failed_total") != 2 {
		if time.Now().After(deadline) {
			t.Fatalf("sluice_events_failed_total = %v for 2 events refused as forbidden, want 2", metric(t, "sluice_events_failed_total"))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestQueuedEventsAreWrittenWhenTheManagerStops(t *testing.T) {
	f := newFixture(t, nil)
	var want []string
	for i := range 100 {
		f.rec.Eventf(f.obj, nil, corev1.EventTypeNormal, "WeightChanged", "Release", "step %d", i)
		want = append(want, fmt.Sprintf("Normal WeightChanged step %d x1", i))
	}
	f.stop()
	if got := len(f.notes()); got != 100 {
		t.Fatalf("%d of 100 events written by the time the recorder stopped", got)
	}
	f.waitNotes(want...)
}

// TestTheRecorderRemembersABoundedNumberOfEvents: the memory it holds does
// not grow with the fleet.
func TestTheRecorderRemembersABoundedNumberOfEvents(t *testing.T) {
	rec := New(fake.NewClientset().EventsV1(), clientgoscheme.Scheme, "sluice", testr.New(t))
	obj := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "shop", Namespace: "default", UID: "1"}}
	obj.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("ConfigMap"))
	for i := range 3 * maxRecent {
		rec.Eventf(obj, nil, corev1.EventTypeNormal, "WeightChanged", "Release", "step %d", i)
	}
	if len(rec.recent) != maxRecent || rec.order.Len() != maxRecent {
		t.Errorf("the recorder remembers %d events (list %d), want at most %d", len(rec.recent), rec.order.Len(), maxRecent)
	}
	if len(rec.queue) != 3*maxRecent {
		t.Errorf("%d events queued, want all %d (forgetting an event must not drop its write)", len(rec.queue), 3*maxRecent)
	}
}

// logLines keeps what a recorder logs: "error <msg>" or "info <msg>".
type logLines struct {
	mu    sync.Mutex
	lines []string
}

func (l *logLines) Init(logr.RuntimeInfo)               {}
func (l *logLines) Enabled(level int) bool              { return level == 0 }
func (l *logLines) WithValues(...any) logr.LogSink      { return l }
func (l *logLines) WithName(string) logr.LogSink        { return l }
func (l *logLines) Info(_ int, msg string, _ ...any)    { l.add("info " + msg) }
func (l *logLines) Error(_ error, msg string, _ ...any) { l.add("error " + msg) }
func (l *logLines) add(line string)                     { l.mu.Lock(); l.lines = append(l.lines, line); l.mu.Unlock() }
func (l *logLines) all() []string                       { l.mu.Lock(); defer l.mu.Unlock(); return slices.Clone(l.lines) }

// An event about an object of a namespace being deleted cannot be written
// (the API server takes nothing new there) and no one could read it: it
// is given up on and counted, and said at info, not as an error with a
// stack trace each time an SRE deletes a namespace mid-release.
func TestAnEventInANamespaceBeingDeletedIsGivenUpOnWithoutAnError(t *testing.T) {
	f := newFixture(t, nil)
	f.stop()
	logs := &logLines{}
	f.rec = New(f.kube.EventsV1(), clientgoscheme.Scheme, "sluice", logr.New(logs))
	f.start()
	// No namespace controller runs here: the namespace stays Terminating.
	if err := f.kube.CoreV1().Namespaces().Delete(context.Background(), f.ns, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}

	f.rec.Eventf(f.obj, nil, corev1.EventTypeNormal, "Reverting", "Release", "moving traffic back")

	deadline := time.Now().Add(10 * time.Second)
	for f.rec.FailedWrites() != 1 {
		if time.Now().After(deadline) {
			t.Fatalf("%d events given up on, want the 1 refused in a namespace being deleted; logged: %q", f.rec.FailedWrites(), logs.all())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if got := logs.all(); !slices.Equal(got, []string{"info event not written: its namespace is being deleted"}) {
		t.Errorf("logged %q, want the one event not written said at info", got)
	}
}
