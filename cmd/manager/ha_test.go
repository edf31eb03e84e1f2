package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	sluicev1 "github.com/sluice-dev/sluice/api/v1alpha1"
	"github.com/sluice-dev/sluice/internal/manager"
	"github.com/sluice-dev/sluice/internal/testenv"
)

// leaseName is the manager's leader election Lease.
const leaseName = "sluice-manager.sluice.dev"

func TestAManagerIsReadyOnlyOnceItsCacheHasSynced(t *testing.T) {
	env, admin := startEnv(t)
	// A user RBAC grants nothing yet: it may discover the API but not list
	// Rollouts, so the manager's cache cannot sync.
	const user = "sluice-test-unbound"
	r := startReplica(t, kubeConfigFor(t, env, user), "--leader-election-namespace", "default")

	waitFor(t, 30*time.Second, "/healthz to answer 200", func() error {
		if code, body, err := get("http://" + r.probe + "/healthz"); err != nil || code != http.StatusOK {
			return fmt.Errorf("%d %s %v", code, body, err)
		}
		return nil
	})
	for range 20 {
		if code, body := r.readyz(); code == http.StatusOK {
			t.Fatalf("/readyz = %d %q while the manager may not list Rollouts; want not ready", code, body)
		}
		time.Sleep(100 * time.Millisecond)
	}

	must(t, admin.Create(context.Background(), &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: user},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "cluster-admin"},
		Subjects:   []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.UserKind, Name: user}},
	}))
	waitFor(t, 60*time.Second, "/readyz to answer 200 once the cache could sync", func() error {
		if code, body := r.readyz(); code != http.StatusOK {
			return fmt.Errorf("%d %s", code, body)
		}
		return nil
	}, r.logs)
}

func TestBothReplicasAreReadyAndTheOtherTakesOverWhenTheLeaderStops(t *testing.T) {
	env, c := startEnv(t)
	kubeconfig := kubeConfigFor(t, env, "sluice-test-admin", "system:masters")
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	testenv.RunFakeKubelet(ctx, c, "default", nil)

	first := startReplica(t, kubeconfig, "--leader-election-namespace", "default")
	leader := waitForLeader(t, c, "")
	second := startReplica(t, kubeconfig, "--leader-election-namespace", "default")
	for name, r := range map[string]*replica{"leader": first, "standby": second} {
		waitFor(t, 30*time.Second, "the "+name+"'s /readyz to answer 200", func() error {
			if code, body := r.readyz(); code != http.StatusOK {
				return fmt.Errorf("%d %s", code, body)
			}
			return nil
		}, r.logs)
	}
	if holder := leaseHolder(t, c); holder != leader {
		t.Fatalf("the Lease moved to %q while the first replica ran; want it kept by %q", holder, leader)
	}
	must(t, c.Create(ctx, deployment("web")))
	must(t, c.Create(ctx, blueGreen("web")))
	waitForPhase(t, c, "web", sluicev1.PhaseInitialized)

	// A clean stop hands the Lease over at once, not after its duration.
	stopped := time.Now()
	if err := first.stop(); err != nil {
		t.Fatalf("the leader exited with %v", err)
	}
	waitForLeader(t, c, leader)
	took := time.Since(stopped)
	t.Logf("the standby took the Lease %s after the leader began to stop", took.Round(time.Millisecond))
	if took > 10*time.Second {
		t.Errorf("the standby took the Lease %s after the leader stopped; want well within the Lease duration (15s)", took.Round(time.Millisecond))
	}
	must(t, c.Create(ctx, deployment("api")))
	must(t, c.Create(ctx, blueGreen("api")))
	waitForPhase(t, c, "api", sluicev1.PhaseInitialized)
}

// replica is one manager, run in the background as the binary runs it.
type replica struct {
	probe string
	logs  *syncBuffer
	stop  func() error
}

// startReplica runs the manager with a kubeconfig and extra flags until the
// test ends or stop is called; stop returns what run returned.
func startReplica(t *testing.T, kubeconfig string, flags ...string) *replica {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	r := &replica{probe: freeAddr(t), logs: &syncBuffer{}}
	args := append([]string{"--kubeconfig", kubeconfig, "--metrics-bind-address", "0",
		"--health-probe-bind-address", r.probe}, flags...)
	done := make(chan error, 1)
	go func() { done <- run(ctx, args, r.logs) }()
	var once sync.Once
	var runErr error
	r.stop = func() error {
		once.Do(func() {
			cancel()
			runErr = <-done
		})
		return runErr
	}
	t.Cleanup(func() {
		if err := r.stop(); err != nil {
			t.Errorf("manager exited with %v", err)
		}
	})
	return r
}

func (r *replica) readyz() (int, string) {
	code, body, err := get("http://" + r.probe + "/readyz")
	if err != nil {
		return 0, err.Error()
	}
	return code, body
}

// startEnv starts a test API server and returns it with an admin client.
func startEnv(t *testing.T) (*testenv.Env, client.Client) {
	t.Helper()
	env, err := testenv.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.Stop() })
	c, err := client.New(env.Config, client.Options{Scheme: manager.Scheme()})
	if err != nil {
		t.Fatal(err)
	}
	return env, c
}

// kubeConfigFor writes a kubeconfig for a user of the test API server.
func kubeConfigFor(t *testing.T, env *testenv.Env, user string, groups ...string) string {
	t.Helper()
	kc, err := env.UserKubeConfig(user, groups...)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), user+".kubeconfig")
	must(t, os.WriteFile(path, kc, 0o600))
	return path
}

// leaseHolder returns the holder of the manager's Lease in default, "" when
// there is none.
func leaseHolder(t *testing.T, c client.Client) string {
	t.Helper()
	lease := &coordinationv1.Lease{}
	err := c.Get(context.Background(), client.ObjectKey{Namespace: "default", Name: leaseName}, lease)
	if err != nil || lease.Spec.HolderIdentity == nil {
		return ""
	}
	return *lease.Spec.HolderIdentity
}

// waitForLeader waits for the Lease to be held by another than previous and
// returns its holder.
func waitForLeader(t *testing.T, c client.Client, previous string) string {
	t.Helper()
	var holder string
	waitFor(t, 30*time.Second, "a leader other than "+fmt.Sprintf("%q", previous), func() error {
		if holder = leaseHolder(t, c); holder == "" || holder == previous {
			return fmt.Errorf("Lease held by %q", holder)
		}
		return nil
	})
	return holder
}

func waitForPhase(t *testing.T, c client.Client, name string, phase sluicev1.Phase) {
	t.Helper()
	waitFor(t, 30*time.Second, fmt.Sprintf("Rollout %s to be %s", name, phase), func() error {
		ro := &sluicev1.Rollout{}
		if err := c.Get(context.Background(), client.ObjectKey{Namespace: "default", Name: name}, ro); err != nil {
			return err
		}
		if ro.Status.Phase != phase {
			return fmt.Errorf("phase %q", ro.Status.Phase)
		}
		return nil
	})
}
