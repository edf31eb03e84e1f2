package testenv

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// RouterCRDPaths returns the CRDs of the routers' kinds as their own Go
// modules ship them: Gateway API's standard channel and Istio's CRDs.
func RouterCRDPaths() ([]string, error) {
	gw, err := moduleDir("sigs.k8s.io/gateway-api")
	if err != nil {
		return nil, err
	}
	istio, err := moduleDir("istio.io/api")
	if err != nil {
		return nil, err
	}
	return []string{
		filepath.Join(gw, "config", "crd", "standard"),
		filepath.Join(istio, "kubernetes", "customresourcedefinitions.gen.yaml"),
	}, nil
}

// moduleDir is where the Go module cache holds the version of a module the
// root go.mod requires.
func moduleDir(module string) (string, error) {
	cmd := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", module)
	cmd.Dir = RepoRoot()
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("locating module %s (go list -m): %w", module, err)
	}
	dir := strings.TrimSpace(string(out))
	if dir == "" {
		return "", fmt.Errorf("module %s is not in the module cache: run `go mod download %s`", module, module)
	}
	return dir, nil
}

// kedaModule is the module whose CRDs KEDACRDPath returns; its version is
// the one hack/tools/keda/go.mod requires.
const kedaModule = "github.com/kedacore/keda/v2"

// KEDACRDPath returns KEDA's ScaledObject CRD as KEDA's own Go module ships
// it, downloading the module through the Go module proxy when the module
// cache lacks it. KEDA is pinned in the nested module hack/tools/keda, so
// it never enters Sluice's dependency graph.
func KEDACRDPath() (string, error) {
	dir := filepath.Join(RepoRoot(), "hack", "tools", "keda")
	version, err := requiredVersion(filepath.Join(dir, "go.mod"), kedaModule)
	if err != nil {
		return "", err
	}
	cmd := exec.Command("go", "mod", "download", "-json", kedaModule+"@"+version)
	cmd.Dir = dir
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("downloading %s@%s (go mod download in %s): %w: %s", kedaModule, version, dir, err, strings.TrimSpace(stderr.String()))
	}
	var mod struct{ Dir, Error string }
	if err := json.Unmarshal(out, &mod); err != nil {
		return "", fmt.Errorf("reading go mod download's answer for %s@%s: %w", kedaModule, version, err)
	}
	if mod.Error != "" || mod.Dir == "" {
		return "", fmt.Errorf("downloading %s@%s: %s", kedaModule, version, mod.Error)
	}
	crd := filepath.Join(mod.Dir, "config", "crd", "bases", "keda.sh_scaledobjects.yaml")
	if _, err := os.Stat(crd); err != nil {
		return "", fmt.Errorf("%s@%s ships no ScaledObject CRD where Sluice looks for it: %w", kedaModule, version, err)
	}
	return crd, nil
}
