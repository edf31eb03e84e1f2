// Package node holds the end-to-end stories that only a real node can
// tell (build tag e2e): a real kubelet with containerd and runc, kube-proxy,
// CoreDNS and metrics-server, the test app as real containers with probes
// and resources, and Sluice installed by its Helm chart from its images
// (two managers, leader election, the chart's RBAC). See docs/e2e.md.
//
//	make images && go test -tags e2e -count=1 -v ./e2e/node/
package node
