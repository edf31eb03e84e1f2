package manager_test

import (
	"context"
	"fmt"
	"net/http"
	"path"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	sluicev1 "github.com/sluice-dev/sluice/api/v1alpha1"
	"github.com/sluice-dev/sluice/internal/manager"
	"github.com/sluice-dev/sluice/internal/testenv"
)

// configRequest is one request of the manager for ConfigMaps or Secrets.
type configRequest struct {
	method, resource, name string
	// list or watch, else a read of one object.
	collection bool
	// metadata is set when it asked for PartialObjectMetadata only.
	metadata bool
}

// configRequests records the manager's requests for ConfigMaps and Secrets.
type configRequests struct {
	mu   sync.Mutex
	reqs []configRequest
}

func (c *configRequests) wrap(rt http.RoundTripper) http.RoundTripper {
	return roundTripFunc(func(r *http.Request) (*http.Response, error) {
		// /api/v1/[namespaces/NS/]RESOURCE[/NAME]
		parts := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
		if len(parts) >= 3 && parts[0] == "api" && parts[1] == "v1" {
			rest := parts[2:]
			if rest[0] == "namespaces" && len(rest) >= 3 {
				rest = rest[2:]
			}
			if rest[0] == "secrets" || rest[0] == "configmaps" {
				req := configRequest{method: r.Method, resource: rest[0], collection: r.Method == http.MethodGet && len(rest) == 1,
					metadata: strings.Contains(r.Header.Get("Accept"), "as=PartialObjectMetadata")}
				if len(rest) > 1 {
					req.name = rest[1]
				}
				c.mu.Lock()
				c.reqs = append(c.reqs, req)
				c.mu.Unlock()
			}
		}
		return rt.RoundTrip(r)
	})
}

// fullReads returns the names of the objects read whole, in order.
func (c *configRequests) fullReads() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for _, r := range c.reqs {
		if r.method == http.MethodGet && !r.collection && !r.metadata {
			out = append(out, r.resource+"/"+r.name)
		}
	}
	return out
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// TestTheManagerNeverReceivesTheDataOfSecretsItDoesNotUse: ConfigMaps and
// Secrets are listed and watched as metadata only, cached without their
// annotations (kubectl's last-applied-configuration holds the data), and
// read whole only when a Rollout's target uses them, once per change.
func TestTheManagerNeverReceivesTheDataOfSecretsItDoesNotUse(t *testing.T) {
	env, c := startEnv(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	const ns = "shop"
	must(t, c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}))
	testenv.RunFakeKubelet(ctx, c, ns, nil)
	applied := func(name, content string) metav1.ObjectMeta {
		return metav1.ObjectMeta{Name: name, Namespace: ns, Labels: map[string]string{"team": "payments"},
			Annotations: map[string]string{
				"kubectl.kubernetes.io/last-applied-configuration": `{"apiVersion":"v1","data":{"password":"` + content + `"}}`,
			}}
	}
	unused := &corev1.Secret{ObjectMeta: applied("unused", "hunter2-unused"),
		Data: map[string][]byte{"password": []byte("hunter2-unused")}}
	used := &corev1.Secret{ObjectMeta: applied("used", "hunter2-used"),
		Data: map[string][]byte{"password": []byte("hunter2-used")}}
	config := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "config", Namespace: ns}, Data: map[string]string{"color": "blue"}}
	for _, o := range []client.Object{unused, used, config} {
		must(t, c.Create(ctx, o))
	}
	// web uses the Secret and the ConfigMap; plain uses neither.
	deploy(t, c, ns, "web", func(pod *corev1.PodSpec) {
		pod.Containers[0].EnvFrom = []corev1.EnvFromSource{{SecretRef: &corev1.SecretEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "used"}}}}
		pod.Containers[0].Env = []corev1.EnvVar{{Name: "COLOR", ValueFrom: &corev1.EnvVarSource{
			ConfigMapKeyRef: &corev1.ConfigMapKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "config"}, Key: "color"},
		}}}
	})
	deploy(t, c, ns, "plain", func(*corev1.PodSpec) {})

	reqs := &configRequests{}
	cfg := rest.CopyConfig(env.Config)
	cfg.QPS = -1
	cfg.WrapTransport = reqs.wrap
	start := func() (ctrl.Manager, func()) {
		mgr, err := manager.New(cfg, manager.Options{MetricsAddr: "0", HealthProbeAddr: "0", AllowRestart: true})
		must(t, err)
		mctx, stop := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() { defer close(done); _ = mgr.Start(mctx) }()
		return mgr, func() { stop(); <-done }
	}
	mgr, stop := start()
	defer func() { stop() }()
	for _, name := range []string{"web", "plain"} {
		must(t, c.Create(ctx, &sluicev1.Rollout{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
			Spec: sluicev1.RolloutSpec{
				TargetRef:             sluicev1.TargetRef{Kind: "Deployment", Name: name},
				Service:               sluicev1.ServiceSpec{Port: 80},
				Strategy:              sluicev1.Strategy{BlueGreen: &sluicev1.BlueGreenStrategy{Iterations: 3}},
				Analysis:              &sluicev1.Analysis{Interval: &metav1.Duration{Duration: time.Second}, Threshold: 1},
				ScaleDownDelaySeconds: ptr.To[int32](0),
			},
		}))
	}
	waitPhase(t, c, ns, "web", sluicev1.PhaseInitialized)
	waitPhase(t, c, ns, "plain", sluicev1.PhaseInitialized)

	t.Run("lists and watches ask for metadata only", func(t *testing.T) {
		reqs.mu.Lock()
		defer reqs.mu.Unlock()
		for _, r := range reqs.reqs {
			if r.collection && !r.metadata {
				t.Errorf("the manager listed or watched %s whole (%s)", r.resource, r.method)
			}
		}
	})

	t.Run("the cache holds no annotations", func(t *testing.T) {
		list := &metav1.PartialObjectMetadataList{}
		list.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("SecretList"))
		must(t, mgr.GetCache().List(ctx, list, client.InNamespace(ns)))
		var names []string
		for _, o := range list.Items {
			names = append(names, o.Name)
			if o.Annotations != nil {
				t.Errorf("the cached Secret %s keeps annotations %v", o.Name, o.Annotations)
			}
			if o.Name == "unused" && o.Labels["team"] != "payments" {
				t.Errorf("the cached Secret %s lost its labels: %v", o.Name, o.Labels)
			}
		}
		if !slices.Contains(names, "unused") {
			t.Errorf("the cache holds Secrets %v, want unused among them", names)
		}
	})

	initReads := reqs.fullReads()
	t.Logf("read whole to initialize: %v", initReads)
	t.Run("only the used objects are read whole", func(t *testing.T) {
		counts := map[string]int{}
		for _, r := range initReads {
			counts[r]++
		}
		for r, n := range counts {
			switch r {
			case "secrets/used", "configmaps/config":
				// For the checksum; the primary's copy is written from
				// the same read.
				if n > 1 {
					t.Errorf("%s read %d times to initialize, want once", r, n)
				}
			default:
				t.Errorf("%s read whole (%d times): only what a target uses may be", r, n)
			}
		}
		if counts["secrets/used"] == 0 || counts["configmaps/config"] == 0 {
			t.Errorf("full reads %v, want the used Secret and ConfigMap among them", initReads)
		}
	})

	// A change of the used Secret is released: its content is read once for
	// the checksum and once to copy it at the promotion, into the primary's
	// other copy (used-primary-alt), however many reconciles the release
	// takes; the copy the primary's pods read is neither written nor read,
	// and the unchanged ConfigMap is not read again.
	rev := getRollout(t, c, ns, "web").Status.StableRevision
	must(t, c.Get(ctx, client.ObjectKeyFromObject(used), used))
	used.Data["password"] = []byte("hunter2-changed")
	must(t, c.Update(ctx, used))
	waitFor(t, 60*time.Second, "the Secret's change released", func() error {
		ro := getRollout(t, c, ns, "web")
		if ro.Status.Phase != sluicev1.PhaseSucceeded || ro.Status.StableRevision == rev {
			return fmt.Errorf("phase %s, stable revision %s (was %s)", ro.Status.Phase, ro.Status.StableRevision, rev)
		}
		return nil
	})
	for name, want := range map[string]string{"used-primary-alt": "hunter2-changed", "used-primary": "hunter2-used"} {
		cp := &corev1.Secret{}
		must(t, c.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, cp))
		if got := string(cp.Data["password"]); got != want {
			t.Errorf("the primary's copy %s holds %q, want %q", name, got, want)
		}
	}
	releaseReads := reqs.fullReads()[len(initReads):]
	t.Logf("read whole to release the change: %v", releaseReads)
	if n := len(releaseReads); n == 0 || n > 2 || slices.ContainsFunc(releaseReads, func(r string) bool { return r != "secrets/used" }) {
		t.Errorf("full reads during the release: %v; want secrets/used at most twice and nothing else", releaseReads)
	}

	// A restarted manager resumes from the status: it reads each used
	// object once for its checksum and finds the same revision. (The
	// checksums that a cache transform used to compute were those of no data
	// for every object of the initial list, as client-go's streaming list
	// transforms each object twice: a change made while the manager was down
	// went unnoticed, and a restart after a change released it again.)
	stop()
	before := len(reqs.fullReads())
	rev = getRollout(t, c, ns, "web").Status.StableRevision
	_, stop = start()
	waitFor(t, 30*time.Second, "the restarted manager reads the used objects", func() error {
		if reads := reqs.fullReads()[before:]; len(reads) < 2 {
			return fmt.Errorf("read %v", reads)
		}
		return nil
	})
	// Reconciles of both Rollouts come and go meanwhile (their status
	// patches, the fake kubelet's polls).
	time.Sleep(3 * time.Second)
	restartReads := reqs.fullReads()[before:]
	t.Logf("read whole after a restart: %v", restartReads)
	slices.Sort(restartReads)
	if !slices.Equal(restartReads, []string{"configmaps/config", "secrets/used"}) {
		t.Errorf("full reads after a restart: %v; want the used ConfigMap and Secret, once each", restartReads)
	}
	if ro := getRollout(t, c, ns, "web"); ro.Status.Phase != sluicev1.PhaseSucceeded || ro.Status.StableRevision != rev {
		t.Errorf("after a restart: phase %s, stable revision %s; want Succeeded at %s", ro.Status.Phase, ro.Status.StableRevision, rev)
	}
}

func deploy(t *testing.T, c client.Client, ns, name string, pod func(*corev1.PodSpec)) {
	t.Helper()
	labels := map[string]string{"app": name}
	d := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To[int32](1), Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "app:1"}}}},
		},
	}
	pod(&d.Spec.Template.Spec)
	must(t, c.Create(context.Background(), d))
}

func getRollout(t *testing.T, c client.Client, ns, name string) *sluicev1.Rollout {
	t.Helper()
	ro := &sluicev1.Rollout{}
	must(t, c.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, ro))
	return ro
}

func waitPhase(t *testing.T, c client.Client, ns, name string, phase sluicev1.Phase) {
	t.Helper()
	waitFor(t, 60*time.Second, path.Join(ns, name)+" "+string(phase), func() error {
		if ro := getRollout(t, c, ns, name); ro.Status.Phase != phase {
			return fmt.Errorf("phase %q (%s)", ro.Status.Phase, ro.Status.Message)
		}
		return nil
	})
}

func waitFor(t *testing.T, timeout time.Duration, what string, f func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s: %v", what, timeout, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
