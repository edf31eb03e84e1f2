#!/usr/bin/env bash
# Builds the binaries of the e2e cluster from source through the Go module
# proxy and caches them outside the source tree:
#   $SLUICE_CACHE/e2e/k8s-<ver>/{kube-controller-manager,kube-scheduler}
#   $SLUICE_CACHE/e2e/kwok-<ver>/kwok
#   $SLUICE_CACHE/e2e/traefik-<ver>/traefik
#   $SLUICE_CACHE/e2e/k8s-<ver>/{kubelet,kube-proxy}      (node)
#   $SLUICE_CACHE/e2e/coredns-<ver>/coredns               (node)
#   $SLUICE_CACHE/e2e/metrics-server-<ver>/metrics-server (node)
#   $SLUICE_CACHE/e2e/helm-<ver>/helm                     (node)
# kube-apiserver and etcd come from `make envtest` (the envtest cache).
# Idempotent: a binary already present is not rebuilt. Prints, as its last
# line, the environment the e2e harness reads (SLUICE_E2E_BIN_*).
#
# Usage: hack/e2e-tools.sh [all|cluster|k8s|kwok|traefik|node|packages]   (default all)
#   cluster: what the real-node cluster needs (all but kwok, which only the
#   kwok harness of the scale benchmark runs)
#   packages: only the node's Debian packages (containerd, runc, CNI plugins)
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
cache="${SLUICE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/sluice}"

# modver MODULE GOMOD prints the version GOMOD requires of MODULE.
modver() { awk -v m="$1" '{for (i = 1; i < NF; i++) if ($i == m && $(i+1) ~ /^v[0-9]/) {print $(i+1); exit}}' "$2"; }

k8s_ver="$(modver k8s.io/kubernetes "$root/hack/tools/k8s/go.mod")"
kwok_ver="$(modver sigs.k8s.io/kwok "$root/hack/tools/kwok/go.mod")"
traefik_ver="$(modver github.com/traefik/traefik/v3 "$root/hack/tools/traefik/go.mod")"
coredns_ver="$(modver github.com/coredns/coredns "$root/hack/tools/coredns/go.mod")"
helm_ver="$(modver helm.sh/helm/v3 "$root/hack/tools/helm/go.mod")"
ms_ver="$(modver sigs.k8s.io/metrics-server "$root/hack/tools/metrics-server/go.mod")"

k8s_dir="$cache/e2e/k8s-$k8s_ver"
kwok_dir="$cache/e2e/kwok-$kwok_ver"
traefik_dir="$cache/e2e/traefik-$traefik_ver"
coredns_dir="$cache/e2e/coredns-$coredns_ver"
ms_dir="$cache/e2e/metrics-server-$ms_ver"
helm_dir="$cache/e2e/helm-$helm_ver"

# Cold build times measured on 2 cores (a warm Go build cache makes them
# seconds); printed so that a first run says how long it will take.
declare -A estimate=(
	[kube-controller-manager]="4-8 min" [kube-scheduler]="1-2 min" [kwok]="2-4 min"
	[traefik]="10-20 min" [kubelet]="1-3 min" [kube-proxy]="under 1 min"
	[coredns]="3-5 min" [metrics-server]="3-8 min" [helm]="2 min"
)

# build DIR-OF-MODULE OUT PKG LDFLAGS
build() {
	local moddir="$1" out="$2" pkg="$3" ldflags="$4"
	if [ -x "$out" ]; then
		echo "e2e-tools: $(basename "$out") cached at $out" >&2
		return
	fi
	mkdir -p "$(dirname "$out")"
	echo "e2e-tools: building $pkg (first time only, about ${estimate[$(basename "$out")]:-a few min} on 2 cores)" >&2
	local start=$SECONDS
	(cd "$moddir" && CGO_ENABLED=0 go build -trimpath -ldflags "$ldflags" -o "$out.tmp" "$pkg")
	mv "$out.tmp" "$out"
	echo "e2e-tools: built $(basename "$out") in $((SECONDS - start))s" >&2
}

k8s_ldflags() {
	local v="${k8s_ver#v}"
	echo "-s -w -X k8s.io/component-base/version.gitVersion=$k8s_ver -X k8s.io/component-base/version.gitMajor=${v%%.*} -X k8s.io/component-base/version.gitMinor=$(echo "$v" | cut -d. -f2) -X k8s.io/component-base/version.gitTreeState=clean"
}

what="${1:-all}"
case "$what" in
all | cluster | k8s)
	build "$root/hack/tools/k8s" "$k8s_dir/kube-controller-manager" k8s.io/kubernetes/cmd/kube-controller-manager "$(k8s_ldflags)"
	build "$root/hack/tools/k8s" "$k8s_dir/kube-scheduler" k8s.io/kubernetes/cmd/kube-scheduler "$(k8s_ldflags)"
	;;&
all | kwok)
	build "$root/hack/tools/kwok" "$kwok_dir/kwok" sigs.k8s.io/kwok/cmd/kwok "-s -w -X sigs.k8s.io/kwok/pkg/consts.Version=${kwok_ver#v}"
	;;&
all | cluster | traefik)
	build "$root/hack/tools/traefik" "$traefik_dir/traefik" github.com/traefik/traefik/v3/cmd/traefik "-s -w -X github.com/traefik/traefik/v3/pkg/version.Version=$traefik_ver"
	;;&
all | cluster | node)
	build "$root/hack/tools/k8s" "$k8s_dir/kubelet" k8s.io/kubernetes/cmd/kubelet "$(k8s_ldflags)"
	build "$root/hack/tools/k8s" "$k8s_dir/kube-proxy" k8s.io/kubernetes/cmd/kube-proxy "$(k8s_ldflags)"
	build "$root/hack/tools/coredns" "$coredns_dir/coredns" github.com/coredns/coredns "-s -w -X github.com/coredns/coredns/coremain.GitCommit=$coredns_ver"
	build "$root/hack/tools/metrics-server" "$ms_dir/metrics-server" sigs.k8s.io/metrics-server/cmd/metrics-server "-s -w -X k8s.io/component-base/version.gitVersion=$ms_ver"
	build "$root/hack/tools/helm" "$helm_dir/helm" helm.sh/helm/v3/cmd/helm "-s -w -X helm.sh/helm/v3/internal/version.version=$helm_ver"
	;;&
all | cluster | node | packages)
	"$root/hack/apt-install.sh" containerd containerd runc containernetworking-plugins iptables conntrack
	"$root/hack/apt-install.sh" nft nftables
	;;
cluster | k8s | kwok | traefik | node | packages) ;;
*)
	echo "usage: $0 [all|cluster|k8s|kwok|traefik|node|packages]" >&2
	exit 2
	;;
esac

echo "SLUICE_E2E_BIN_K8S=$k8s_dir SLUICE_E2E_BIN_KWOK=$kwok_dir SLUICE_E2E_BIN_TRAEFIK=$traefik_dir SLUICE_E2E_BIN_COREDNS=$coredns_dir SLUICE_E2E_BIN_METRICS_SERVER=$ms_dir SLUICE_E2E_BIN_HELM=$helm_dir"
