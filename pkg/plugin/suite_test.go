package plugin

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	sluicev1 "github.com/sluice-dev/sluice/api/v1alpha1"
	"github.com/sluice-dev/sluice/internal/testenv"
)

// The test API server, a client as admin, and the kubeconfig file the plugin
// is pointed at with --kubeconfig (its user is testAdmin).
var (
	k8s        client.Client
	kubeconfig string
	nsCounter  atomic.Int32
)

// testAdmin is the user testenv's kubeconfig authenticates as.
const testAdmin = "sluice-test-admin"

func TestMain(m *testing.M) {
	os.Exit(runSuite(m))
}

func runSuite(m *testing.M) int {
	env, err := testenv.Start()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer func() { _ = env.Stop() }()
	scheme := runtime.NewScheme()
	_ = clientgoscheme.AddToScheme(scheme)
	_ = sluicev1.AddToScheme(scheme)
	k8s, err = client.New(env.Config, client.Options{Scheme: scheme})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	cfg, err := env.KubeConfig()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	dir, err := os.MkdirTemp("", "kubectl-sluice-test")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer func() { _ = os.RemoveAll(dir) }()
	kubeconfig = filepath.Join(dir, "kubeconfig")
	if err := os.WriteFile(kubeconfig, cfg, 0o600); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return m.Run()
}

// result is what a user sees of one run of the plugin.
type result struct {
	stdout, stderr string
	code           int
}

// plugin runs kubectl-sluice with args against the test API server.
func plugin(t *testing.T, args ...string) result {
	t.Helper()
	var out, errOut bytes.Buffer
	code := Run(context.Background(), append(args, "--kubeconfig", kubeconfig),
		genericiooptions.IOStreams{In: strings.NewReader(""), Out: &out, ErrOut: &errOut})
	return result{stdout: out.String(), stderr: errOut.String(), code: code}
}

// pluginAsync runs kubectl-sluice in the background; its output is read line
// by line from the returned reader, and its exit code arrives on the channel.
func pluginAsync(ctx context.Context, args ...string) (io.Reader, <-chan result) {
	pr, pw := io.Pipe()
	var errOut bytes.Buffer
	done := make(chan result, 1)
	go func() {
		code := Run(ctx, append(args, "--kubeconfig", kubeconfig),
			genericiooptions.IOStreams{In: strings.NewReader(""), Out: pw, ErrOut: &errOut})
		_ = pw.Close()
		done <- result{stderr: errOut.String(), code: code}
	}()
	return pr, done
}

// newNamespace creates a namespace of its own for a test.
func newNamespace(t *testing.T) string {
	t.Helper()
	ns := fmt.Sprintf("plugin-%d", nsCounter.Add(1))
	if err := k8s.Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
		t.Fatal(err)
	}
	return ns
}

// rolloutOption changes a test Rollout before it is created.
type rolloutOption func(*sluicev1.Rollout)

// canarySteps gives the Rollout explicit canary steps: a positive number is a
// setWeight, 0 a manual pause.
func canarySteps(weights ...int32) rolloutOption {
	return func(ro *sluicev1.Rollout) {
		var steps []sluicev1.CanaryStep
		for _, w := range weights {
			if w == 0 {
				steps = append(steps, sluicev1.CanaryStep{Pause: &sluicev1.PauseStep{}})
				continue
			}
			steps = append(steps, sluicev1.CanaryStep{SetWeight: ptr.To(w)})
		}
		ro.Spec.Strategy.Canary = &sluicev1.CanaryStrategy{Steps: steps}
		ro.Spec.Routing = &sluicev1.Routing{GatewayAPI: &sluicev1.GatewayAPIRouting{}}
	}
}

// metric adds a metric check with its range.
func metric(name string, min, max *float64) rolloutOption {
	return func(ro *sluicev1.Rollout) {
		analysis(ro).Metrics = append(analysis(ro).Metrics, sluicev1.MetricCheck{
			Name: name, ThresholdRange: &sluicev1.ThresholdRange{Min: min, Max: max},
		})
	}
}

// webhook adds a webhook.
func webhook(name string, typ sluicev1.HookType) rolloutOption {
	return func(ro *sluicev1.Rollout) {
		analysis(ro).Webhooks = append(analysis(ro).Webhooks, sluicev1.Webhook{
			Name: name, Type: typ, URL: "http://loadtester.test/gate/" + name,
		})
	}
}

func analysis(ro *sluicev1.Rollout) *sluicev1.Analysis {
	if ro.Spec.Analysis == nil {
		ro.Spec.Analysis = &sluicev1.Analysis{}
	}
	return ro.Spec.Analysis
}

// createRollout creates a Rollout (blue/green unless an option says
// otherwise) and returns it as the API server has it.
func createRollout(t *testing.T, ns, name string, opts ...rolloutOption) *sluicev1.Rollout {
	t.Helper()
	ro := &sluicev1.Rollout{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: sluicev1.RolloutSpec{
			TargetRef: sluicev1.TargetRef{APIVersion: "apps/v1", Kind: "Deployment", Name: name},
			Service:   sluicev1.ServiceSpec{Port: 80},
			Strategy:  sluicev1.Strategy{BlueGreen: &sluicev1.BlueGreenStrategy{Iterations: 2}},
		},
	}
	for _, o := range opts {
		o(ro)
	}
	if ro.Spec.Strategy.Canary != nil {
		ro.Spec.Strategy.BlueGreen = nil
	}
	if err := k8s.Create(context.Background(), ro); err != nil {
		t.Fatal(err)
	}
	return ro
}

// setStatus writes a Rollout's status through the status subresource, as
// the controller does, with observedGeneration current.
func setStatus(t *testing.T, ro *sluicev1.Rollout, mutate func(*sluicev1.RolloutStatus)) {
	t.Helper()
	ctx := context.Background()
	cur := &sluicev1.Rollout{}
	if err := k8s.Get(ctx, client.ObjectKeyFromObject(ro), cur); err != nil {
		t.Fatal(err)
	}
	cur.Status.ObservedGeneration = cur.Generation
	mutate(&cur.Status)
	if err := k8s.Status().Update(ctx, cur); err != nil {
		t.Fatal(err)
	}
}

// condition builds a status condition.
func condition(typ string, status metav1.ConditionStatus, reason, msg string) metav1.Condition {
	return metav1.Condition{Type: typ, Status: status, Reason: reason, Message: msg, LastTransitionTime: metav1.Now()}
}

// recordEvent creates an events.k8s.io/v1 event about a Rollout, as the
// controller's recorder does.
func recordEvent(t *testing.T, ro *sluicev1.Rollout, typ, reason, note string) {
	t.Helper()
	ev := &eventsv1.Event{
		ObjectMeta: metav1.ObjectMeta{Namespace: ro.Namespace, GenerateName: ro.Name + "-"},
		EventTime:  metav1.NowMicro(),
		Regarding: corev1.ObjectReference{
			APIVersion: sluicev1.GroupVersion.String(), Kind: "Rollout",
			Namespace: ro.Namespace, Name: ro.Name, UID: ro.UID,
		},
		ReportingController: "sluice.dev/rollout-controller", ReportingInstance: "sluice-test",
		Action: "Release", Type: typ, Reason: reason, Note: note,
	}
	if err := k8s.Create(context.Background(), ev); err != nil {
		t.Fatal(err)
	}
}
