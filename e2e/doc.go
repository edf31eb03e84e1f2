// Package e2e holds Sluice's end-to-end scenarios (build tag e2e), written
// as Given/When/Then stories against a real local cluster with a real node
// (package e2e/cluster): kube-apiserver, controller-manager and scheduler,
// a kubelet with containerd and runc, kube-proxy, CoreDNS and
// metrics-server, the test app as real containers, Traefik as the Gateway
// API data plane, Prometheus, and Sluice installed by its Helm chart (two
// managers, the loadtester). Run them with
//
//	make images images-node && go test -tags e2e -count=1 -v ./e2e/
//
// as root (the cluster creates a bridge, iptables rules and cgroups, and
// removes them). See docs/e2e.md.
package e2e
