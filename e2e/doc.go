// Package e2e holds Sluice's end-to-end scenarios (build tag e2e), written
// as Given/When/Then stories against a real local cluster (package
// e2e/cluster): real kube-apiserver, controller-manager, scheduler and kwok,
// a real backend process per pod, Traefik as the Gateway API data plane,
// Prometheus, the loadtester and Sluice's manager. Run them with
//
//	go test -tags e2e -count=1 -v ./e2e/
//
// as root (the cluster creates network namespaces on a private bridge).
// The stories that only a real node can tell (a real kubelet, containerd,
// Sluice installed by its chart) are in e2e/node; they share this
// package's Story.
package e2e
