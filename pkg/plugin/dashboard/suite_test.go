package dashboard_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"

	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	sluicev1 "github.com/sluice-dev/sluice/api/v1alpha1"
	"github.com/sluice-dev/sluice/internal/testenv"
)

// The unit tests need no API server; the browser stories start one on
// first use, shared by them all.
var (
	envOnce  sync.Once
	envErr   error
	env      *testenv.Env
	shared   *cluster
	nsSerial atomic.Int32
)

// cluster is the test API server as the stories use it: an admin client,
// and kubeconfig files for the admin, for a viewer who may read Rollouts
// and events but not patch them, and for a stranger RBAC grants nothing.
type cluster struct {
	k8s                client.Client
	adminKubeconfig    string
	viewerKubeconfig   string
	strangerKubeconfig string
}

const (
	testAdmin    = "sluice-test-admin"
	testViewer   = "sluice-test-viewer"
	testStranger = "sluice-test-stranger"
)

func TestMain(m *testing.M) {
	code := m.Run()
	if env != nil {
		_ = env.Stop()
	}
	if shared != nil {
		_ = os.RemoveAll(filepath.Dir(shared.adminKubeconfig))
	}
	os.Exit(code)
}

// testCluster starts the API server once and returns it.
func testCluster(t *testing.T) *cluster {
	t.Helper()
	envOnce.Do(func() { shared, envErr = startCluster() })
	if envErr != nil {
		t.Fatal(envErr)
	}
	return shared
}

func startCluster() (*cluster, error) {
	var err error
	env, err = testenv.Start()
	if err != nil {
		return nil, err
	}
	scheme := runtime.NewScheme()
	_ = clientgoscheme.AddToScheme(scheme)
	_ = sluicev1.AddToScheme(scheme)
	c := &cluster{}
	if c.k8s, err = client.New(env.Config, client.Options{Scheme: scheme}); err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "sluice-dashboard-test")
	if err != nil {
		return nil, err
	}
	admin, err := env.KubeConfig()
	if err != nil {
		return nil, err
	}
	viewer, err := env.UserKubeConfig(testViewer)
	if err != nil {
		return nil, err
	}
	stranger, err := env.UserKubeConfig(testStranger)
	if err != nil {
		return nil, err
	}
	c.adminKubeconfig, c.viewerKubeconfig, c.strangerKubeconfig = filepath.Join(dir, "admin"), filepath.Join(dir, "viewer"), filepath.Join(dir, "stranger")
	for path, cfg := range map[string][]byte{c.adminKubeconfig: admin, c.viewerKubeconfig: viewer, c.strangerKubeconfig: stranger} {
		if err := os.WriteFile(path, cfg, 0o600); err != nil {
			return nil, err
		}
	}
	return c, c.grantViewer()
}

// grantViewer lets the viewer read Rollouts and events everywhere, and
// nothing more.
func (c *cluster) grantViewer() error {
	ctx := context.Background()
	role := &rbacv1.ClusterRole{
		ObjectMeta: metav1.ObjectMeta{Name: "sluice-dashboard-viewer"},
		Rules: []rbacv1.PolicyRule{
			{APIGroups: []string{sluicev1.GroupVersion.Group}, Resources: []string{"rollouts"}, Verbs: []string{"get", "list", "watch"}},
			{APIGroups: []string{"events.k8s.io"}, Resources: []string{"events"}, Verbs: []string{"get", "list", "watch"}},
		},
	}
	if err := c.k8s.Create(ctx, role); err != nil {
		return err
	}
	return c.k8s.Create(ctx, &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "sluice-dashboard-viewer"},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role.Name},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: testViewer}},
	})
}

// newNamespace creates a namespace of the test's own, named prefix-N.
func (c *cluster) newNamespace(t *testing.T, prefix string) string {
	t.Helper()
	ns := fmt.Sprintf("%s-%d", prefix, nsSerial.Add(1))
	if err := c.k8s.Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
		t.Fatal(err)
	}
	return ns
}

// rolloutOption changes a test Rollout before it is created.
type rolloutOption func(*sluicev1.Rollout)

// canary gives the Rollout canary steps: a positive number sets a weight,
// 0 is a manual pause.
func canary(weights ...int32) rolloutOption {
	return func(ro *sluicev1.Rollout) {
		var s []sluicev1.CanaryStep
		for _, w := range weights {
			if w == 0 {
				s = append(s, sluicev1.CanaryStep{Pause: &sluicev1.PauseStep{}})
				continue
			}
			s = append(s, sluicev1.CanaryStep{SetWeight: ptr.To(w)})
		}
		ro.Spec.Strategy = sluicev1.Strategy{Canary: &sluicev1.CanaryStrategy{Steps: s}}
		ro.Spec.Routing = &sluicev1.Routing{GatewayAPI: &sluicev1.GatewayAPIRouting{}}
	}
}

// withAnalysis adds a built-in metric with its range, judged on 100
// requests at least, and a confirm-promotion gate.
func withAnalysis(metric string, min float64, gate string) rolloutOption {
	return func(ro *sluicev1.Rollout) {
		ro.Spec.Analysis = &sluicev1.Analysis{
			Metrics: []sluicev1.MetricCheck{{Name: metric, ThresholdRange: &sluicev1.ThresholdRange{Min: ptr.To(min)},
				MinRequests: ptr.To[int64](100)}},
			Webhooks: []sluicev1.Webhook{{Name: gate, Type: sluicev1.HookConfirmPromotion, URL: "http://loadtester.test/gate/" + gate}},
		}
	}
}

// createRollout creates a blue/green Rollout unless an option says
// otherwise.
func (c *cluster) createRollout(t *testing.T, ns, name string, opts ...rolloutOption) *sluicev1.Rollout {
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
	if err := c.k8s.Create(context.Background(), ro); err != nil {
		t.Fatal(err)
	}
	return ro
}

// setStatus writes a Rollout's status as the controller does.
func (c *cluster) setStatus(t *testing.T, ro *sluicev1.Rollout, mutate func(*sluicev1.RolloutStatus)) {
	t.Helper()
	ctx := context.Background()
	cur := &sluicev1.Rollout{}
	if err := c.k8s.Get(ctx, client.ObjectKeyFromObject(ro), cur); err != nil {
		t.Fatal(err)
	}
	cur.Status.ObservedGeneration = cur.Generation
	mutate(&cur.Status)
	if err := c.k8s.Status().Update(ctx, cur); err != nil {
		t.Fatal(err)
	}
}

// get reads a Rollout as the API server has it.
func (c *cluster) get(t *testing.T, ro *sluicev1.Rollout) *sluicev1.Rollout {
	t.Helper()
	got := &sluicev1.Rollout{}
	if err := c.k8s.Get(context.Background(), client.ObjectKeyFromObject(ro), got); err != nil {
		t.Fatal(err)
	}
	return got
}

// recordEvent records an event about a Rollout, as the controller does.
func (c *cluster) recordEvent(t *testing.T, ro *sluicev1.Rollout, typ, reason, note string) {
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
	if err := c.k8s.Create(context.Background(), ev); err != nil {
		t.Fatal(err)
	}
}

func condition(typ string, status metav1.ConditionStatus, reason, msg string) metav1.Condition {
	return metav1.Condition{Type: typ, Status: status, Reason: reason, Message: msg, LastTransitionTime: metav1.Now()}
}
