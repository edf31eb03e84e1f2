package test

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/go-logr/logr"
	"helm.sh/helm/v3/pkg/chartutil"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/sluice-dev/sluice/internal/manager"
	"github.com/sluice-dev/sluice/internal/testenv"
)

var (
	// adminCfg and admin talk to the test API server as cluster admin.
	adminCfg *rest.Config
	admin    client.Client
	// kubeconfig is a file with an admin kubeconfig, for kubectl's libraries.
	kubeconfig string
)

// chartDir is the chart under test; repoRoot is Sluice's source tree.
var (
	chartDir = filepath.Join(testenv.RepoRoot(), "charts", "sluice")
	repoRoot = testenv.RepoRoot()
)

// TestMain starts a real kube-apiserver and etcd with the chart's own CRDs
// (charts/sluice/crds), as `helm install` would install them.
func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	ctrllog.SetLogger(logr.Discard())
	assets, err := testenv.AssetsDir()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	env := &envtest.Environment{
		BinaryAssetsDirectory: assets,
		CRDDirectoryPaths:     []string{filepath.Join(chartDir, "crds")},
		ErrorIfCRDPathMissing: true,
	}
	adminCfg, err = env.Start()
	if err != nil {
		fmt.Fprintln(os.Stderr, "starting envtest:", err)
		return 1
	}
	defer func() {
		if err := env.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "stopping envtest:", err)
		}
	}()
	admin, err = client.New(adminCfg, client.Options{Scheme: manager.Scheme()})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	info, err := discovery.NewDiscoveryClientForConfigOrDie(adminCfg).ServerVersion()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	kubeVersion = &chartutil.KubeVersion{Version: info.GitVersion, Major: info.Major, Minor: info.Minor}
	user, err := env.AddUser(envtest.User{Name: "chart-test-admin", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	kc, err := user.KubeConfig()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	dir, err := os.MkdirTemp("", "sluice-chart-test")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer func() { _ = os.RemoveAll(dir) }()
	kubeconfig = filepath.Join(dir, "kubeconfig")
	if err := os.WriteFile(kubeconfig, kc, 0o600); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return m.Run()
}
