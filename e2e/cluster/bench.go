package cluster

import (
	"context"
	_ "embed"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/sluice-dev/sluice/internal/manager"
	"github.com/sluice-dev/sluice/internal/testenv"
)

//go:embed kwok-bench.yaml
var kwokBenchStages []byte

// benchNode holds a fleet: pods are Ready once scheduled, IPs come from a
// range of a million, and the controllers and scheduler are not throttled
// by their own clients (their defaults of 20 and 50 requests/s would
// measure kube-controller-manager, not Sluice).
var benchNode = fakeNode{
	stages:   kwokBenchStages,
	cidr:     "10.128.0.0/12",
	pods:     "30000",
	ctrlArgs: []string{"--kube-api-qps=2000", "--kube-api-burst=4000"},
}

// ControlPlaneOptions configure StartControlPlane.
type ControlPlaneOptions struct {
	// Dir holds logs, kubeconfigs and data (a new temporary directory when
	// empty).
	Dir string
	// APIServerFlags are more kube-apiserver flags (name without dashes),
	// e.g. an audit log.
	APIServerFlags map[string]string
}

// StartControlPlane starts the control plane of a fleet benchmark: etcd,
// kube-apiserver, kube-controller-manager, kube-scheduler and kwok with one
// fake node whose pods become Ready as soon as they are scheduled. Nothing
// else runs: no backends, gateway, Prometheus or manager; the benchmark runs
// the manager binary itself (see ManagerBinary). It needs no root.
func StartControlPlane(ctx context.Context, opts ControlPlaneOptions) (c *Cluster, err error) {
	c = &Cluster{Dir: opts.Dir, stateDir: StateDir(), procs: map[string]*Proc{}}
	if c.Dir == "" {
		if c.Dir, err = os.MkdirTemp("", "sluice-bench-"); err != nil {
			return nil, err
		}
	}
	if err := os.MkdirAll(c.stateDir, 0o755); err != nil {
		return nil, err
	}
	if err := c.takeLock(); err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			c.Stop()
			c = nil
		}
	}()
	if left := sweepProcs(c.stateDir); len(left) > 0 {
		c.logf("stopped leftovers of a previous run: %v", left)
	}
	if c.bins, err = buildBinaries(ctx, c.Dir, false, nil); err != nil {
		return c, err
	}
	crds, err := testenv.RouterCRDPaths()
	if err != nil {
		return c, err
	}
	if c.env, err = testenv.StartWith(opts.APIServerFlags, crds...); err != nil {
		return c, err
	}
	registerChildren(c.stateDir, "etcd", "kube-apiserver")
	c.Config = rest.CopyConfig(c.env.Config)
	c.Config.QPS = -1
	kc, err := c.env.KubeConfig()
	if err != nil {
		return c, err
	}
	c.KubeConfig = filepath.Join(c.Dir, "kubeconfig")
	if err := os.WriteFile(c.KubeConfig, kc, 0o600); err != nil {
		return c, err
	}
	if c.Client, err = client.New(c.Config, client.Options{Scheme: manager.Scheme()}); err != nil {
		return c, err
	}
	if c.Kube, err = kubernetes.NewForConfig(c.Config); err != nil {
		return c, err
	}
	start := time.Now()
	if err := c.startControlPlane(ctx, benchNode); err != nil {
		return c, err
	}
	c.measure("control plane", start)
	return c, nil
}

// UserKubeConfig writes a kubeconfig for a user in the given groups into
// the cluster's directory and returns its path: a benchmark gives the
// manager its own user, so that the audit log tells its requests apart.
func (c *Cluster) UserKubeConfig(name string, groups ...string) (string, error) {
	if c.env == nil {
		return "", fmt.Errorf("the cluster has no envtest control plane")
	}
	kc, err := c.env.UserKubeConfig(name, groups...)
	if err != nil {
		return "", err
	}
	path := filepath.Join(c.Dir, "kubeconfig-"+name)
	return path, os.WriteFile(path, kc, 0o600)
}

// StartProcess runs a program as part of the cluster: it logs to
// Dir/<name>.log and Stop stops it (before the control plane).
func (c *Cluster) StartProcess(name, bin string, args ...string) (*Proc, error) {
	return c.start(name, nil, bin, args...)
}

// ManagerBinary is the manager the harness built from ./cmd/manager.
func (c *Cluster) ManagerBinary() string { return c.bins.manager }
