// Package testenv starts a real kube-apiserver and etcd (envtest) with
// Sluice's CRDs for tests, and finds the binaries that `make envtest` built.
package testenv

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
)

// Env is a running test control plane.
type Env struct {
	Config *rest.Config
	env    *envtest.Environment
}

// RepoRoot is the root of the source tree.
func RepoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// Start runs kube-apiserver and etcd with Sluice's CRDs (and any extra CRD
// directories) installed.
func Start(extraCRDDirs ...string) (*Env, error) {
	return StartWith(nil, extraCRDDirs...)
}

// StartWith is Start with more kube-apiserver flags (name without the
// dashes to value), e.g. an audit log for a benchmark that counts requests.
func StartWith(apiServerFlags map[string]string, extraCRDDirs ...string) (*Env, error) {
	assets, err := AssetsDir()
	if err != nil {
		return nil, err
	}
	env := &envtest.Environment{
		BinaryAssetsDirectory: assets,
		CRDDirectoryPaths:     append([]string{filepath.Join(RepoRoot(), "config", "crd", "bases")}, extraCRDDirs...),
		ErrorIfCRDPathMissing: true,
		// envtest gives each process 20 s to start and the CRDs 10 s to be
		// served: a package's shards (RunInShards) and the packages beside
		// them start their API servers at the same moment on two cores.
		ControlPlaneStartTimeout: time.Minute,
		CRDInstallOptions:        envtest.CRDInstallOptions{MaxTime: time.Minute},
	}
	// Room for thousands of Services (three per Rollout) in scale runs.
	env.ControlPlane.GetAPIServer().Configure().Set("service-cluster-ip-range", "10.0.0.0/16")
	for k, v := range apiServerFlags {
		env.ControlPlane.GetAPIServer().Configure().Set(k, v)
	}
	cfg, err := env.Start()
	if err != nil {
		return nil, fmt.Errorf("starting envtest from %s: %w", assets, err)
	}
	return &Env{Config: cfg, env: env}, nil
}

// Stop stops the control plane.
func (e *Env) Stop() error { return e.env.Stop() }

// AssetsDir returns the directory with kube-apiserver and etcd:
// $KUBEBUILDER_ASSETS when set, else the cache directory `make envtest`
// builds into. It fails with what to run when a binary is missing.
func AssetsDir() (string, error) {
	dir := os.Getenv("KUBEBUILDER_ASSETS")
	if dir == "" {
		d, err := defaultAssetsDir()
		if err != nil {
			return "", err
		}
		dir = d
	}
	for _, bin := range []string{"kube-apiserver", "etcd"} {
		if _, err := os.Stat(filepath.Join(dir, bin)); err != nil {
			return "", fmt.Errorf("%s not found in %s: run `make envtest` (it builds kube-apiserver and etcd from source) or set KUBEBUILDER_ASSETS to a directory that has them", bin, dir)
		}
	}
	return dir, nil
}

// defaultAssetsDir mirrors the Makefile's ENVTEST_DIR.
func defaultAssetsDir() (string, error) {
	cache := os.Getenv("SLUICE_CACHE")
	if cache == "" {
		base := os.Getenv("XDG_CACHE_HOME")
		if base == "" {
			home, err := os.UserHomeDir()
			if err != nil {
				return "", err
			}
			base = filepath.Join(home, ".cache")
		}
		cache = filepath.Join(base, "sluice")
	}
	k8s, err := requiredVersion(filepath.Join(RepoRoot(), "hack", "tools", "k8s", "go.mod"), "k8s.io/kubernetes")
	if err != nil {
		return "", err
	}
	etcd, err := requiredVersion(filepath.Join(RepoRoot(), "hack", "tools", "etcd", "go.mod"), "go.etcd.io/etcd/server/v3")
	if err != nil {
		return "", err
	}
	return filepath.Join(cache, "envtest", fmt.Sprintf("k8s-%s-etcd-%s", k8s, etcd)), nil
}

// requiredVersion reads the version a go.mod requires of a module.
func requiredVersion(gomod, module string) (string, error) {
	f, err := os.Open(gomod)
	if err != nil {
		return "", err
	}
	defer func() { _ = f.Close() }()
	s := bufio.NewScanner(f)
	for s.Scan() {
		fields := strings.Fields(s.Text())
		for i := 0; i+1 < len(fields); i++ {
			if fields[i] == module && strings.HasPrefix(fields[i+1], "v") {
				return fields[i+1], nil
			}
		}
	}
	return "", fmt.Errorf("%s does not require %s", gomod, module)
}

// KubeConfig returns a kubeconfig for an admin user of the test API server,
// for programs that take --kubeconfig.
func (e *Env) KubeConfig() ([]byte, error) {
	return e.UserKubeConfig("sluice-test-admin", "system:masters")
}

// UserKubeConfig returns a kubeconfig for a user in the given groups; a user
// in no group may do only what RBAC grants every authenticated user.
func (e *Env) UserKubeConfig(name string, groups ...string) ([]byte, error) {
	u, err := e.env.AddUser(envtest.User{Name: name, Groups: groups}, nil)
	if err != nil {
		return nil, err
	}
	return u.KubeConfig()
}

// InstallCRDs installs more CRDs into the running control plane.
func (e *Env) InstallCRDs(paths ...string) error {
	_, err := envtest.InstallCRDs(e.Config, envtest.CRDInstallOptions{Paths: paths, ErrorIfPathMissing: true})
	return err
}
