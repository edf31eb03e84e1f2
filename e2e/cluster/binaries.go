package cluster

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/sluice-dev/sluice/internal/testenv"
)

type binaries struct {
	kcm, scheduler, kwok, traefik string
	kubelet, kubeProxy, helm      string
	manager, loadtester, testapp  string
}

// buildBinaries runs hack/e2e-tools.sh (which builds the cluster's binaries
// from source once and caches them) and, for the kwok harness, builds
// Sluice's manager, the loadtester and the test app into dir/bin. The real
// node needs no kwok, so it is built only for the kwok harness: a cold build
// costs minutes.
func buildBinaries(ctx context.Context, dir string, realNode bool, progress io.Writer) (binaries, error) {
	root := testenv.RepoRoot()
	var out bytes.Buffer
	what := "all"
	if realNode {
		what = "cluster"
	}
	cmd := exec.CommandContext(ctx, filepath.Join(root, "hack", "e2e-tools.sh"), what)
	cmd.Dir = root
	cmd.Stdout = &out
	cmd.Stderr = os.Stderr
	if progress != nil {
		cmd.Stderr = progress
	}
	if err := cmd.Run(); err != nil {
		return binaries{}, fmt.Errorf("hack/e2e-tools.sh: %w", err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	dirs := map[string]string{}
	for _, kv := range strings.Fields(lines[len(lines)-1]) {
		k, v, _ := strings.Cut(kv, "=")
		dirs[k] = v
	}
	b := binaries{
		kcm:       filepath.Join(dirs["SLUICE_E2E_BIN_K8S"], "kube-controller-manager"),
		scheduler: filepath.Join(dirs["SLUICE_E2E_BIN_K8S"], "kube-scheduler"),
		kwok:      filepath.Join(dirs["SLUICE_E2E_BIN_KWOK"], "kwok"),
		traefik:   filepath.Join(dirs["SLUICE_E2E_BIN_TRAEFIK"], "traefik"),
		kubelet:   filepath.Join(dirs["SLUICE_E2E_BIN_K8S"], "kubelet"),
		kubeProxy: filepath.Join(dirs["SLUICE_E2E_BIN_K8S"], "kube-proxy"),
		helm:      filepath.Join(dirs["SLUICE_E2E_BIN_HELM"], "helm"),
	}
	// On the real node Sluice and the test app run from the images of
	// `make images`; only the kwok harness runs them as host processes.
	if !realNode {
		bin := filepath.Join(dir, "bin")
		build := exec.CommandContext(ctx, "go", "build", "-o", bin+"/", "./cmd/manager", "./cmd/loadtester", "./e2e/testapp")
		build.Dir = root
		build.Env = append(os.Environ(), "CGO_ENABLED=0")
		if o, err := build.CombinedOutput(); err != nil {
			return b, fmt.Errorf("go build of the manager, loadtester and testapp: %w\n%s", err, o)
		}
		b.manager = filepath.Join(bin, "manager")
		b.loadtester = filepath.Join(bin, "loadtester")
		b.testapp = filepath.Join(bin, "testapp")
	}
	need := []string{b.kcm, b.scheduler, b.traefik}
	if realNode {
		need = append(need, b.kubelet, b.kubeProxy, b.helm)
	} else {
		need = append(need, b.kwok, b.manager, b.loadtester, b.testapp)
	}
	for _, p := range need {
		if _, err := os.Stat(p); err != nil {
			return b, fmt.Errorf("binary missing after the build: %w", err)
		}
	}
	return b, nil
}
