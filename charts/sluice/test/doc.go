// Package test holds the Sluice chart's tests: rendering with the Helm
// library, server-side dry-run of every object on a real API server, the
// chart's RBAC running the real manager, and the GitOps health contract
// (Argo CD's Lua health check, kstatus and kubectl wait).
//
// It is its own Go module so that Helm's dependencies stay out of Sluice's.
// Run it with: cd charts/sluice/test && go test ./...
package test
