package rollout_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	goruntime "runtime"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap/zapcore"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	sluicev1 "github.com/sluice-dev/sluice/api/v1alpha1"
	"github.com/sluice-dev/sluice/internal/manager"
	"github.com/sluice-dev/sluice/internal/testenv"
)

var (
	env       *testenv.Env
	k8sClient client.Client
	nsCounter atomic.Int32
)

// storyShards is how many processes the package's stories run in (each
// with its own API server): they mostly wait on timers and on the
// manager, so one process keeps two cores a quarter busy.
const storyShards = 3

func TestMain(m *testing.M) {
	if code, sharded := testenv.RunInShards(storyShards); sharded {
		os.Exit(code)
	}
	if testenv.Listing() {
		os.Exit(m.Run())
	}
	// controller-runtime's global logger, which a stopping manager writes
	// to: errors only (a benchmark that hid them would measure nothing).
	// Unset, it prints a stack trace 30 s into the run.
	ctrl.SetLogger(zap.New(zap.WriteTo(io.MultiWriter(os.Stderr, errorLog)), zap.Level(zapcore.ErrorLevel)))
	crds, err := testenv.RouterCRDPaths()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	keda, err := testenv.KEDACRDPath()
	if err != nil {
		fmt.Fprintln(os.Stderr, "KEDA's ScaledObject CRD is needed by the autoscaler stories:", err)
		os.Exit(1)
	}
	env, err = testenv.Start(append(crds, keda)...)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	k8sClient, err = client.New(env.Config, client.Options{Scheme: manager.Scheme()})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	if err := env.Stop(); err != nil {
		fmt.Fprintln(os.Stderr, "stopping envtest:", err)
	}
	os.Exit(code)
}

// story is one user story against the real API server: its own namespace,
// a stand-in for the kubelet, and a running Sluice manager.
type story struct {
	t       *testing.T
	ctx     context.Context
	ns      string
	stopMgr func()
	// limit, when it returns true for a Deployment, caps its available
	// replicas at the count it returns.
	limit atomic.Pointer[func(*appsv1.Deployment) (int32, bool)]
	// opts are the manager's options (metrics, webhook client, clock).
	opts manager.Options
	// wrap, when set, wraps the manager's transport to the API server.
	wrap func(http.RoundTripper) http.RoundTripper
}

// newStory starts a story with a manager of default options.
func newStory(t *testing.T) *story { return newStoryWith(t, manager.Options{}) }

// newStoryWith starts a story whose manager has the given options; the
// addresses are always disabled and restarts allowed. The stories' hooks
// are served on loopback, which the egress policy denies by default: unless
// the options give allow entries of their own (an empty, non-nil list for
// the defaults), 127.0.0.1/32 is allowed, as an operator running hooks next
// to the manager would.
func newStoryWith(t *testing.T, opts manager.Options) *story {
	t.Helper()
	return newStoryWrapped(t, opts, nil)
}

// newStoryWrapped is newStoryWith whose manager talks to the API server
// through wrap (nil: directly), e.g. to count its requests.
func newStoryWrapped(t *testing.T, opts manager.Options, wrap func(http.RoundTripper) http.RoundTripper) *story {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	opts.MetricsAddr, opts.HealthProbeAddr, opts.AllowRestart = "0", "0", true
	if opts.WebhookEgressAllow == nil {
		opts.WebhookEgressAllow = []string{"127.0.0.1/32"}
	}
	s := &story{t: t, ctx: ctx, ns: fmt.Sprintf("story-%d", nsCounter.Add(1)), opts: opts, wrap: wrap}
	s.must(k8sClient.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: s.ns}}))
	testenv.RunFakeKubelet(ctx, k8sClient, s.ns, func(d *appsv1.Deployment) (int32, bool) {
		if l := s.limit.Load(); l != nil {
			return (*l)(d)
		}
		return 0, false
	})
	s.startManager()
	t.Cleanup(func() { s.stopManager() })
	return s
}

func (s *story) startManager() {
	s.t.Helper()
	cfg := env.Config
	if s.wrap != nil {
		cfg = rest.CopyConfig(env.Config)
		cfg.WrapTransport = s.wrap
	}
	mgr, err := manager.New(cfg, s.opts)
	s.must(err)
	ctx, cancel := context.WithCancel(s.ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := mgr.Start(ctx); err != nil {
			s.t.Errorf("manager: %v", err)
		}
	}()
	s.stopMgr = func() {
		cancel()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			// A manager fails its stop after 30 s (controller-runtime's
			// grace): what it waits on is in its goroutines now. Seen once,
			// stopping right after a start under load, and not reproduced since.
			buf := make([]byte, 16<<20)
			s.t.Logf("the manager has not stopped after 20 s; its goroutines:\n%s", buf[:goruntime.Stack(buf, true)])
			<-done
		}
	}
}

func (s *story) stopManager() {
	if s.stopMgr != nil {
		s.stopMgr()
		s.stopMgr = nil
	}
}

func (s *story) must(err error) {
	s.t.Helper()
	if err != nil {
		s.t.Fatal(err)
	}
}

// --- builders ---------------------------------------------------------------

type deployOpt func(*appsv1.Deployment)

func withConfigMapEnv(cm, key string) deployOpt {
	return func(d *appsv1.Deployment) {
		c := &d.Spec.Template.Spec.Containers[0]
		c.Env = append(c.Env, corev1.EnvVar{Name: strings.ToUpper(key), ValueFrom: &corev1.EnvVarSource{
			ConfigMapKeyRef: &corev1.ConfigMapKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: cm}, Key: key},
		}})
	}
}

func (s *story) deploy(name, image string, opts ...deployOpt) {
	s.t.Helper()
	d := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: s.ns, Labels: map[string]string{"app": name}},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To[int32](2),
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": name}},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": name}},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{
					Name: "app", Image: image, Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 9898}},
				}}},
			},
		},
	}
	for _, o := range opts {
		o(d)
	}
	s.must(k8sClient.Create(s.ctx, d))
}

type rolloutOpt func(*sluicev1.Rollout)

func iterations(n int32) rolloutOpt {
	return func(ro *sluicev1.Rollout) { ro.Spec.Strategy.BlueGreen.Iterations = n }
}

func progressDeadline(sec int32) rolloutOpt {
	return func(ro *sluicev1.Rollout) { ro.Spec.ProgressDeadlineSeconds = &sec }
}

func scaleDownDelay(seconds int32) rolloutOpt {
	return func(ro *sluicev1.Rollout) { ro.Spec.ScaleDownDelaySeconds = &seconds }
}

func webhook(name string, t sluicev1.HookType, url string) rolloutOpt {
	return func(ro *sluicev1.Rollout) {
		ro.Spec.Analysis.Webhooks = append(ro.Spec.Analysis.Webhooks, sluicev1.Webhook{Name: name, Type: t, URL: url})
	}
}

func (s *story) rollout(name string, opts ...rolloutOpt) {
	s.t.Helper()
	ro := &sluicev1.Rollout{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: s.ns},
		Spec: sluicev1.RolloutSpec{
			TargetRef: sluicev1.TargetRef{APIVersion: "apps/v1", Kind: "Deployment", Name: name},
			Service:   sluicev1.ServiceSpec{Port: 9898},
			Strategy:  sluicev1.Strategy{BlueGreen: &sluicev1.BlueGreenStrategy{Iterations: 2}},
			Analysis:  &sluicev1.Analysis{Interval: &metav1.Duration{Duration: time.Second}, Threshold: 2},
			// Every story drains, for a second rather than the default 10s.
			ScaleDownDelaySeconds: ptr.To[int32](1),
		},
	}
	for _, o := range opts {
		o(ro)
	}
	s.must(k8sClient.Create(s.ctx, ro))
}

// --- observations -----------------------------------------------------------

// eventually retries f until it returns nil or the timeout passes.
func (s *story) eventually(timeout time.Duration, what string, f func() error) {
	s.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("%s: not within %s: %v", what, timeout, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (s *story) getRollout(name string) *sluicev1.Rollout {
	s.t.Helper()
	ro := &sluicev1.Rollout{}
	s.must(k8sClient.Get(s.ctx, client.ObjectKey{Namespace: s.ns, Name: name}, ro))
	return ro
}

func (s *story) getDeployment(name string) *appsv1.Deployment {
	s.t.Helper()
	d := &appsv1.Deployment{}
	s.must(k8sClient.Get(s.ctx, client.ObjectKey{Namespace: s.ns, Name: name}, d))
	return d
}

// teamService creates the team's own apex Service name, as they ran it
// before Sluice: it selects app=name on port 9898, with their annotations.
func (s *story) teamService(name string, annotations map[string]string) {
	s.t.Helper()
	s.must(k8sClient.Create(s.ctx, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: s.ns, Annotations: annotations},
		Spec: corev1.ServiceSpec{
			Selector: map[string]string{"app": name},
			Ports:    []corev1.ServicePort{{Name: "http", Port: 9898, TargetPort: intstr.FromInt32(9898)}},
		},
	}))
}

func (s *story) getService(name string) *corev1.Service {
	s.t.Helper()
	svc := &corev1.Service{}
	s.must(k8sClient.Get(s.ctx, client.ObjectKey{Namespace: s.ns, Name: name}, svc))
	return svc
}

func (s *story) waitPhase(name string, phase sluicev1.Phase, timeout time.Duration) *sluicev1.Rollout {
	s.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ro := s.getRollout(name)
		if ro.Status.Phase == phase {
			return ro
		}
		if time.Now().After(deadline) {
			// The events tell what the manager decided meanwhile (an
			// action ignored, a wait, an error).
			s.t.Fatalf("Rollout %s reaches %s: not within %s: phase %q (%s); events %v",
				name, phase, timeout, ro.Status.Phase, ro.Status.Message, s.eventReasons(name))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (s *story) setImage(name, image string) {
	s.t.Helper()
	s.editDeployment(name, func(d *appsv1.Deployment) { d.Spec.Template.Spec.Containers[0].Image = image })
}

// editDeployment changes Deployment name with a merge patch, as kubectl
// edit would. Not an update: the stand-in kubelet and the manager write the
// Deployment too, and an update sent between their write and the read before
// it is refused with a conflict.
func (s *story) editDeployment(name string, edit func(*appsv1.Deployment)) {
	s.t.Helper()
	d := s.getDeployment(name)
	patch := client.MergeFrom(d.DeepCopy())
	edit(d)
	s.must(k8sClient.Patch(s.ctx, d, patch))
}

func replicas(d *appsv1.Deployment) int32 {
	if d.Spec.Replicas == nil {
		return 1
	}
	return *d.Spec.Replicas
}

// eventReasons lists the reasons of the events about a Rollout, oldest
// first by eventTime, as `kubectl events` shows them (the list itself comes
// in the order of the events' names).
func (s *story) eventReasons(name string) []string {
	s.t.Helper()
	var list eventsv1.EventList
	s.must(k8sClient.List(s.ctx, &list, client.InNamespace(s.ns)))
	var mine []eventsv1.Event
	for _, e := range list.Items {
		if e.Regarding.Kind == "Rollout" && e.Regarding.Name == name {
			mine = append(mine, e)
		}
	}
	sort.SliceStable(mine, func(i, j int) bool { return mine[i].EventTime.Before(&mine[j].EventTime) })
	out := make([]string, len(mine))
	for i, e := range mine {
		out[i] = e.Reason
	}
	return out
}

func (s *story) waitEvent(name, reason string) {
	s.t.Helper()
	s.eventually(storyTimeout, "event "+reason, func() error {
		for _, r := range s.eventReasons(name) {
			if r == reason {
				return nil
			}
		}
		return fmt.Errorf("events so far: %v", s.eventReasons(name))
	})
}

// expectEvents checks that the Rollout name has want events of reason. The
// manager posts its events apart from its status writes, each on its own:
// a story that saw the phase a decision wrote can be ahead of the decision's
// events, so it waits for want of them first.
func (s *story) expectEvents(name, reason string, want int) {
	s.t.Helper()
	s.eventually(storyTimeout, fmt.Sprintf("%d %s events", want, reason), func() error {
		if n := countOf(s.eventReasons(name), reason); n < want {
			return fmt.Errorf("%d so far: %v", n, s.eventReasons(name))
		}
		return nil
	})
	if n := countOf(s.eventReasons(name), reason); n != want {
		s.t.Errorf("%d %s events, want %d: %v", n, reason, want, s.eventReasons(name))
	}
}

// expectKStatus checks the status contract: what kstatus (Flux, Argo CD's
// readiness, kubectl wait) computes from the Rollout.
func (s *story) expectKStatus(name string, want status.Status) {
	s.t.Helper()
	// Waited for, as kstatus-based tools (Flux, kubectl wait) poll: the
	// status write that records a spec change comes after the actions it
	// took, which a story may see first.
	s.eventually(storyTimeout, fmt.Sprintf("kstatus of Rollout %s is %s at its generation", name, want), func() error {
		ro := s.getRollout(name)
		ro.SetGroupVersionKind(sluicev1.GroupVersion.WithKind("Rollout"))
		raw, err := runtime.DefaultUnstructuredConverter.ToUnstructured(ro)
		if err != nil {
			return err
		}
		res, err := status.Compute(&unstructured.Unstructured{Object: raw})
		if err != nil {
			return err
		}
		if res.Status != want {
			return fmt.Errorf("kstatus %s (%s), want %s; conditions %+v", res.Status, res.Message, want, ro.Status.Conditions)
		}
		if ro.Status.ObservedGeneration != ro.Generation {
			return fmt.Errorf("observedGeneration %d != generation %d", ro.Status.ObservedGeneration, ro.Generation)
		}
		return nil
	})
}

// errorLog keeps the lines (JSON) the managers of every story log at error
// level, for a story to check that nothing it did was logged as an error.
var errorLog = &lines{}

type lines struct {
	mu  sync.Mutex
	all []string
}

func (l *lines) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, line := range strings.Split(strings.TrimRight(string(p), "\n"), "\n") {
		l.all = append(l.all, line)
	}
	return len(p), nil
}

// errorsLogged are the errors the manager logged about the story's
// namespace.
func (s *story) errorsLogged() []string {
	errorLog.mu.Lock()
	defer errorLog.mu.Unlock()
	var out []string
	for _, line := range errorLog.all {
		if strings.Contains(line, `"namespace":"`+s.ns+`"`) {
			out = append(out, line)
		}
	}
	return out
}
