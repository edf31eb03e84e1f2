package testenv

import (
	"fmt"
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
