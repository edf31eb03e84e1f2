package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	sluicev1 "github.com/sluice-dev/sluice/api/v1alpha1"
	"github.com/sluice-dev/sluice/internal/freeport"
	"github.com/sluice-dev/sluice/internal/manager"
	"github.com/sluice-dev/sluice/internal/testenv"
)

func init() { allowRestart = true }

// syncBuffer is a log sink the manager writes to while the test reads it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func freeAddr(t *testing.T) string {
	t.Helper()
	a, err := freeport.Addr()
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func get(url string) (int, string, error) {
	resp, err := http.Get(url)
	if err != nil {
		return 0, "", err
	}
	defer func() { _ = resp.Body.Close() }()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), nil
}

func TestTheManagerRunsAgainstAKubeconfigAndReconciles(t *testing.T) {
	env, err := testenv.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.Stop() })
	kubeconfig, err := env.KubeConfig()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(path, kubeconfig, 0o600); err != nil {
		t.Fatal(err)
	}
	metricsAddr, probeAddr := freeAddr(t), freeAddr(t)

	ctx, cancel := context.WithCancel(context.Background())
	logs := &syncBuffer{}
	done := make(chan error, 1)
	go func() {
		// Leader election is on, as it ships; the Lease goes in default.
		done <- run(ctx, []string{"--kubeconfig", path, "--leader-election-namespace", "default",
			"--metrics-bind-address", metricsAddr, "--health-probe-bind-address", probeAddr, "--log-level", "debug"}, logs)
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("manager exited with %v", err)
		}
	})

	c, err := client.New(env.Config, client.Options{Scheme: manager.Scheme()})
	if err != nil {
		t.Fatal(err)
	}
	testenv.RunFakeKubelet(ctx, c, "default", nil)
	must(t, c.Create(ctx, deployment("web")))
	must(t, c.Create(ctx, blueGreen("web")))

	waitFor(t, 30*time.Second, "the Rollout to be Initialized by the manager", func() error {
		ro := &sluicev1.Rollout{}
		if err := c.Get(ctx, client.ObjectKey{Namespace: "default", Name: "web"}, ro); err != nil {
			return err
		}
		if ro.Status.Phase != sluicev1.PhaseInitialized {
			return fmt.Errorf("phase %q", ro.Status.Phase)
		}
		return nil
	})
	// A Rollout for a router whose CRDs are not installed stalls, naming the
	// missing CRD; the manager keeps serving the others (above).
	must(t, c.Create(ctx, deployment("edge")))
	must(t, c.Create(ctx, &sluicev1.Rollout{
		ObjectMeta: metav1.ObjectMeta{Name: "edge", Namespace: "default"},
		Spec: sluicev1.RolloutSpec{
			TargetRef: sluicev1.TargetRef{Kind: "Deployment", Name: "edge"},
			Service:   sluicev1.ServiceSpec{Port: 80},
			Routing:   &sluicev1.Routing{GatewayAPI: &sluicev1.GatewayAPIRouting{ParentRefs: []sluicev1.ParentReference{{Name: "gw"}}}},
			Strategy:  sluicev1.Strategy{BlueGreen: &sluicev1.BlueGreenStrategy{Iterations: 1}},
		},
	}))
	waitFor(t, 30*time.Second, "the gatewayAPI Rollout to be Stalled naming the missing CRD", func() error {
		ro := &sluicev1.Rollout{}
		if err := c.Get(ctx, client.ObjectKey{Namespace: "default", Name: "edge"}, ro); err != nil {
			return err
		}
		cond := meta.FindStatusCondition(ro.Status.Conditions, sluicev1.ConditionStalled)
		if cond == nil || cond.Status != metav1.ConditionTrue || !strings.Contains(cond.Message, "httproutes.gateway.networking.k8s.io") {
			return fmt.Errorf("Stalled condition %+v", cond)
		}
		var evs eventsv1.EventList
		if err := c.List(ctx, &evs, client.InNamespace("default")); err != nil {
			return err
		}
		for _, e := range evs.Items {
			if e.Regarding.Name == "edge" && e.Reason == "RouterUnavailable" && strings.Contains(e.Note, "httproutes.gateway.networking.k8s.io") {
				return nil
			}
		}
		return fmt.Errorf("no RouterUnavailable event naming the CRD")
	})
	// Installing the CRDs later unblocks it without a restart.
	crds, err := testenv.RouterCRDPaths()
	must(t, err)
	must(t, env.InstallCRDs(crds[0]))
	waitFor(t, 60*time.Second, "the gatewayAPI Rollout to carry on once the CRD exists", func() error {
		route := &gwv1.HTTPRoute{}
		if err := c.Get(ctx, client.ObjectKey{Namespace: "default", Name: "edge"}, route); err != nil {
			return err
		}
		ro := &sluicev1.Rollout{}
		if err := c.Get(ctx, client.ObjectKey{Namespace: "default", Name: "edge"}, ro); err != nil {
			return err
		}
		if meta.IsStatusConditionTrue(ro.Status.Conditions, sluicev1.ConditionStalled) {
			return fmt.Errorf("still stalled: %s", ro.Status.Message)
		}
		return nil
	}, logs)
	// So does a Rollout whose autoscaler is a KEDA ScaledObject before KEDA
	// is installed.
	must(t, c.Create(ctx, deployment("queue")))
	must(t, c.Create(ctx, &sluicev1.Rollout{
		ObjectMeta: metav1.ObjectMeta{Name: "queue", Namespace: "default"},
		Spec: sluicev1.RolloutSpec{
			TargetRef:     sluicev1.TargetRef{Kind: "Deployment", Name: "queue"},
			AutoscalerRef: &sluicev1.AutoscalerRef{APIVersion: "keda.sh/v1alpha1", Kind: "ScaledObject", Name: "queue"},
			Service:       sluicev1.ServiceSpec{Port: 80},
			Strategy:      sluicev1.Strategy{BlueGreen: &sluicev1.BlueGreenStrategy{Iterations: 1}},
		},
	}))
	stalledWith := func(reason, says string) func() error {
		return func() error {
			ro := &sluicev1.Rollout{}
			if err := c.Get(ctx, client.ObjectKey{Namespace: "default", Name: "queue"}, ro); err != nil {
				return err
			}
			cond := meta.FindStatusCondition(ro.Status.Conditions, sluicev1.ConditionStalled)
			if cond == nil || cond.Status != metav1.ConditionTrue || cond.Reason != reason || !strings.Contains(cond.Message, says) {
				return fmt.Errorf("Stalled condition %+v", cond)
			}
			return nil
		}
	}
	waitFor(t, 30*time.Second, "the KEDA Rollout to be Stalled naming the missing CRD",
		stalledWith("AutoscalerUnavailable", "scaledobjects.keda.sh"), logs)
	keda, err := testenv.KEDACRDPath()
	must(t, err)
	must(t, env.InstallCRDs(keda))
	waitFor(t, 60*time.Second, "the KEDA Rollout to look for its ScaledObject once the CRD exists",
		stalledWith("AutoscalerNotFound", "ScaledObject queue"), logs)
	waitFor(t, 10*time.Second, "/readyz to answer 200", func() error {
		code, body, err := get("http://" + probeAddr + "/readyz")
		if err != nil || code != http.StatusOK {
			return fmt.Errorf("%d %s %v", code, body, err)
		}
		return nil
	})
	code, body, err := get("http://" + metricsAddr + "/metrics")
	if err != nil || code != http.StatusOK || !strings.Contains(body, `controller_runtime_reconcile_total{controller="rollout"`) {
		t.Errorf("/metrics: %d %v; want the rollout controller's reconcile counter", code, err)
	}
	for _, want := range []string{
		`sluice_rollout_phase{name="web",namespace="default",phase="Initialized"} 1`,
		`sluice_rollout_canary_weight{name="web",namespace="default"} 0`,
		`sluice_rollout_failed_checks{name="web",namespace="default"} 0`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	// Only the phase it is in: no series of 0 for the others.
	if strings.Contains(body, `sluice_rollout_phase{name="web",namespace="default",phase="Failed"}`) {
		t.Errorf("/metrics has a Failed phase series for an Initialized Rollout")
	}
	if !strings.Contains(logs.String(), `"msg":"starting"`) {
		t.Errorf("JSON logs lack the start line; got:\n%.2000s", logs.String())
	}
}

func TestTheManagerRejectsBadFlagsClearly(t *testing.T) {
	err := run(context.Background(), []string{"--log-level", "loud"}, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "--log-level") {
		t.Errorf("run with --log-level loud = %v, want an error naming --log-level", err)
	}
	err = run(context.Background(), []string{"--leader-elect=false", "--kubeconfig", "/nonexistent/kubeconfig"}, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "/nonexistent/kubeconfig") {
		t.Errorf("run with a missing kubeconfig = %v, want an error naming the file", err)
	}
	err = run(context.Background(), []string{"--leader-elect=false", "--webhook-egress-allow", "127.0.0.1/32, https://hooks.example.com"}, io.Discard)
	if err == nil || !strings.Contains(err.Error(), `--webhook-egress-allow entry "https://hooks.example.com": a URL`) {
		t.Errorf("run with a URL in --webhook-egress-allow = %v, want an error naming the flag and the entry", err)
	}
	err = run(context.Background(), []string{"--leader-elect=false", "--max-concurrent-reconciles=0"}, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "--max-concurrent-reconciles 0: want at least 1") {
		t.Errorf("run with --max-concurrent-reconciles=0 = %v, want an error naming the flag", err)
	}
	err = run(context.Background(), []string{"--leader-election-lease-duration=5s", "--leader-election-renew-deadline=5s"}, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "--leader-election-renew-deadline (5s) < --leader-election-lease-duration (5s)") {
		t.Errorf("run with a renew deadline as long as the lease = %v, want an error naming both flags", err)
	}
	err = run(context.Background(), []string{"--leader-elect=false", "--webhook-egress-deny", "10.0.0.0/40"}, io.Discard)
	if err == nil || !strings.Contains(err.Error(), `--webhook-egress-deny entry "10.0.0.0/40"`) {
		t.Errorf("run with a bad CIDR in --webhook-egress-deny = %v, want an error naming the flag and the entry", err)
	}
}

func TestEgressFlagsTakeCommaSeparatedEntriesAndRepeat(t *testing.T) {
	var list []string
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	fs.Func("allow", "", appendList(&list))
	must(t, fs.Parse([]string{"--allow", "127.0.0.1/32, hooks.local:8080,", "--allow=10.0.0.1"}))
	if want := []string{"127.0.0.1/32", "hooks.local:8080", "10.0.0.1"}; !slices.Equal(list, want) {
		t.Errorf("entries = %q, want %q", list, want)
	}
}

func TestTheWebhookTokenFlagsAreCheckedBeforeTheManagerStarts(t *testing.T) {
	dir := t.TempDir()
	kc := unreachableKubeconfig(t, "https://127.0.0.1:1")
	token := filepath.Join(dir, "token")
	must(t, os.WriteFile(token, []byte("s3cret\n"), 0o600))
	base := []string{"--leader-elect=false", "--kubeconfig", kc}
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"a missing token file", []string{"--webhook-token-file=" + filepath.Join(dir, "missing"), "--webhook-token-hosts=lt.sluice"}, filepath.Join(dir, "missing")},
		{"a token without hosts", []string{"--webhook-token-file=" + token}, "--webhook-token-hosts"},
		{"hosts without a token", []string{"--webhook-token-hosts=lt.sluice"}, "--webhook-token-file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := run(context.Background(), append(base, tc.args...), io.Discard)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("run = %v, want an error naming %s", err, tc.want)
			}
		})
	}
}

func TestOutsideAClusterLeaderElectionNeedsALeaseNamespace(t *testing.T) {
	outsideACluster(t)
	err := run(context.Background(), []string{"--kubeconfig", "/nonexistent/kubeconfig"}, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "--leader-election-namespace=NAMESPACE") || !strings.Contains(err.Error(), "--leader-elect=false") {
		t.Errorf("run out of a cluster without a Lease namespace = %v, want an error naming --leader-election-namespace and --leader-elect=false", err)
	}
}

func TestTheLeaseNamespaceIsTheFlagsElseThePods(t *testing.T) {
	file := filepath.Join(t.TempDir(), "namespace")
	must(t, os.WriteFile(file, []byte("sluice-system\n"), 0o600))
	old := podNamespaceFile
	podNamespaceFile = file
	t.Cleanup(func() { podNamespaceFile = old })
	for _, tc := range []struct{ flag, want string }{
		{"", "sluice-system"},
		{"ops", "ops"},
	} {
		if got, err := leaseNamespace(tc.flag); err != nil || got != tc.want {
			t.Errorf("leaseNamespace(%q) in a pod of sluice-system = %q, %v; want %q", tc.flag, got, err, tc.want)
		}
	}
}

// outsideACluster makes the manager find no pod namespace, wherever the
// test runs.
func outsideACluster(t *testing.T) {
	t.Helper()
	old := podNamespaceFile
	podNamespaceFile = filepath.Join(t.TempDir(), "no-such-file")
	t.Cleanup(func() { podNamespaceFile = old })
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func waitFor(t *testing.T, timeout time.Duration, what string, f func() error, logs ...*syncBuffer) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			for _, l := range logs {
				t.Logf("manager logs (last 3000 bytes):\n%s", tail(l.String(), 3000))
			}
			t.Fatalf("waiting for %s: %v", what, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// deployment is a one-replica Deployment in the default namespace.
func deployment(name string) *appsv1.Deployment {
	labels := map[string]string{"app": name}
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To[int32](1), Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: name, Image: name + ":1"}}}},
		},
	}
}

// blueGreen is a one-iteration blue/green Rollout of the Deployment name.
func blueGreen(name string) *sluicev1.Rollout {
	return &sluicev1.Rollout{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"},
		Spec: sluicev1.RolloutSpec{
			TargetRef: sluicev1.TargetRef{Kind: "Deployment", Name: name},
			Service:   sluicev1.ServiceSpec{Port: 80},
			Strategy:  sluicev1.Strategy{BlueGreen: &sluicev1.BlueGreenStrategy{Iterations: 1}},
		},
	}
}

// TestTheClientIsNotThrottledWhicheverWayItIsConfigured: a manager started
// with --kubeconfig used to keep client-go's 5 requests/s while an in-cluster
// one had no client-side limit; both now take the flags, off by default.
func TestTheClientIsNotThrottledWhicheverWayItIsConfigured(t *testing.T) {
	kc := unreachableKubeconfig(t, "https://127.0.0.1:6443")
	for _, tc := range []struct {
		name       string
		kubeconfig string
		limits     apiLimits
		wantQPS    float32
		wantBurst  int
	}{
		{"--kubeconfig, defaults", kc, apiLimits{qps: -1}, -1, 0},
		{"$KUBECONFIG, defaults", "", apiLimits{qps: -1}, -1, 0},
		{"--kubeconfig with a limit", kc, apiLimits{qps: 50, burst: 100}, 50, 100},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("KUBECONFIG", kc)
			cfg, err := restConfig(tc.kubeconfig, tc.limits)
			if err != nil {
				t.Fatal(err)
			}
			if cfg.QPS != tc.wantQPS || cfg.Burst != tc.wantBurst {
				t.Errorf("QPS %v burst %d, want %v and %d", cfg.QPS, cfg.Burst, tc.wantQPS, tc.wantBurst)
			}
		})
	}
}

// unreachableKubeconfig writes a kubeconfig for an API server at server with a
// made-up token: enough for the manager to parse its flags and build its
// client, for tests that stop before it connects.
func unreachableKubeconfig(t *testing.T, server string) string {
	t.Helper()
	kc := filepath.Join(t.TempDir(), "kubeconfig")
	must(t, os.WriteFile(kc, []byte(`apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "`+server+`"}}]
users: [{name: u, user: {token: t}}]
contexts: [{name: x, context: {cluster: c, user: u}}]
current-context: x
`), 0o600))
	return kc
}
