#!/usr/bin/env bash
# Builds container images from static binaries into OCI image-layout tar
# archives, without a container engine (hack/tools/images, go-containerregistry),
# each with a CycloneDX SBOM (cyclonedx-gomod in bin mode) beside it:
#   $SLUICE_CACHE/images/NAME-TAG.tar          the archive (ctr -n k8s.io images import)
#   $SLUICE_CACHE/images/NAME-TAG.tar.digest   its manifest digest
#   $SLUICE_CACHE/images/NAME-TAG.cdx.json     the SBOM of its binary
#
#   sluice: localhost/sluice-manager:$IMAGE_TAG, localhost/sluice-loadtester:$IMAGE_TAG,
#           localhost/sluice-testapp:dev, localhost/pause:3.10 (built from this tree)
#   node:   localhost/prometheus:VER (Debian's), localhost/coredns:VER, localhost/metrics-server:VER, localhost/traefik:VER,
#           from the binaries hack/e2e-tools.sh cached; a missing one is skipped
#
# Reproducible: the binaries are built with -trimpath and no build ID, every
# time in the images is SOURCE_DATE_EPOCH (default: the last commit's time),
# so the same commit gives the same digests.
#
# Usage: hack/images.sh [sluice|node|all]   (default sluice)
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
cache="${SLUICE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/sluice}"
out="$cache/images"
tools="$root/hack/tools/images"

# modver MODULE GOMOD prints the version GOMOD requires of MODULE.
modver() { awk -v m="$1" '{for (i = 1; i < NF; i++) if ($i == m && $(i+1) ~ /^v[0-9]/) {print $(i+1); exit}}' "$2"; }

if [ -z "${IMAGE_TAG:-}" ]; then
	IMAGE_TAG="$(sed -n 's/^appVersion: *"\{0,1\}\([^"]*\)"\{0,1\}$/\1/p' "$root/charts/sluice/Chart.yaml")"
fi
if [ -z "${SOURCE_DATE_EPOCH:-}" ]; then
	SOURCE_DATE_EPOCH="$(git -C "$root" log -1 --format=%ct 2>/dev/null || echo 0)"
fi
export SOURCE_DATE_EPOCH
created="$(date -u -d "@$SOURCE_DATE_EPOCH" +%Y-%m-%dT%H:%M:%SZ)"
revision="$(git -C "$root" rev-parse HEAD 2>/dev/null || echo unknown)"
if [ -n "$(git -C "$root" status --porcelain --untracked-files=no 2>/dev/null)" ]; then
	revision="$revision-dirty"
fi

# The image builder is rebuilt on every run (go build's cache makes that
# quick); cyclonedx-gomod once per version, like the other tools.
builder="$cache/bin/sluice-images"
cdx_ver="$(modver github.com/CycloneDX/cyclonedx-gomod "$tools/go.mod")"
cdx="$cache/bin/cyclonedx-gomod-$cdx_ver"
mkdir -p "$cache/bin" "$out/bin"
(cd "$tools" && go build -o "$builder.tmp" . && mv "$builder.tmp" "$builder")
if [ ! -x "$cdx" ]; then
	echo "images: building cyclonedx-gomod $cdx_ver (first time only)" >&2
	(cd "$tools" && go build -o "$cdx.tmp" github.com/CycloneDX/cyclonedx-gomod/cmd/cyclonedx-gomod && mv "$cdx.tmp" "$cdx")
fi

summary=()

# image NAME:TAG BINARY SBOM-VERSION [builder flags...]: the archive of one
# image holding BINARY at /BASENAME, and the SBOM of BINARY.
image() {
	local ref="$1" bin="$2" version="$3"
	shift 3
	local repo="${ref%:*}" tag="${ref##*:}"
	local base="$out/${repo##*/}-$tag"
	local exe key
	exe="$(basename "$bin")"
	# The archive and the SBOM are functions of these inputs alone (the
	# build is reproducible), so a run that finds them made from the same
	# inputs keeps them: most images do not change between two runs.
	local inputs=("$bin" "$builder" "$cdx") a
	for a in "$@"; do
		case "$a" in /*:*) inputs+=("${a%%:*}") ;; esac # --file SRC:DST[:MODE]
	done
	key="$({ sha256sum "${inputs[@]}" | cut -d' ' -f1
		printf '%s\n' "$ref" "$version" "$created" "$@"; } | sha256sum | cut -d' ' -f1)"
	if [ -s "$base.tar" ] && [ -s "$base.tar.digest" ] && [ -s "$base.cdx.json" ] &&
		[ "$(cat "$base.key" 2>/dev/null)" = "$key" ]; then
		summary+=("$(printf '%-42s %s %6s MiB (unchanged)' "$ref" "$(cat "$base.tar.digest")" "$(du -m "$base.tar" | cut -f1)")")
		return
	fi
	rm -f "$base.key"
	"$builder" --name "$ref" --out "$base.tar" \
		--file "$bin:/$exe" --entrypoint "/$exe" \
		--label "org.opencontainers.image.created=$created" \
		--label "org.opencontainers.image.title=${repo##*/}" \
		"$@" >/dev/null
	"$cdx" bin -json -noserial -notimestamp -version "$version" -output "$base.cdx.json" "$bin"
	echo "$key" >"$base.key"
	summary+=("$(printf '%-42s %s %6s MiB' "$ref" "$(cat "$base.tar.digest")" "$(du -m "$base.tar" | cut -f1)")")
}

# gobuild PKG: a static, reproducible binary of this tree in $out/bin.
gobuild() {
	local pkg="$1"
	(cd "$root" && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -buildid=" -o "$out/bin/$(basename "$pkg")" "$pkg")
}

sluice_images() {
	local p
	for p in ./cmd/manager ./cmd/loadtester ./e2e/testapp ./e2e/pause; do
		gobuild "$p"
	done
	local labels=(
		--label "org.opencontainers.image.source=https://github.com/sluice-dev/sluice"
		--label "org.opencontainers.image.revision=$revision"
	)
	# The manager and the loadtester call HTTPS endpoints (Prometheus,
	# webhooks, notifications): they get the host's CA bundle, as the
	# distroless base of build/*.Dockerfile gives them one.
	local ca=()
	if [ -f /etc/ssl/certs/ca-certificates.crt ]; then
		ca=(--file /etc/ssl/certs/ca-certificates.crt:/etc/ssl/certs/ca-certificates.crt:0644)
	else
		echo "images: no /etc/ssl/certs/ca-certificates.crt: manager and loadtester images get no CA bundle" >&2
	fi
	image "localhost/sluice-manager:$IMAGE_TAG" "$out/bin/manager" "$IMAGE_TAG" \
		"${labels[@]}" "${ca[@]}" --label "org.opencontainers.image.version=$IMAGE_TAG"
	image "localhost/sluice-loadtester:$IMAGE_TAG" "$out/bin/loadtester" "$IMAGE_TAG" \
		"${labels[@]}" "${ca[@]}" --label "org.opencontainers.image.version=$IMAGE_TAG"
	image "localhost/sluice-testapp:dev" "$out/bin/testapp" dev \
		"${labels[@]}" --label "org.opencontainers.image.version=dev"
	# pause runs as 65535 like the upstream pause image; it needs no /tmp.
	image "localhost/pause:3.10" "$out/bin/pause" 3.10 \
		"${labels[@]}" --label "org.opencontainers.image.version=3.10" --user 65535:65535 --tmp=false
}

# node_image NAME MODULE TOOLMOD SOURCE-URL E2E-TOOLS-ARG: the image of a
# third-party binary cached by `hack/e2e-tools.sh E2E-TOOLS-ARG` at
# $SLUICE_CACHE/e2e/NAME-VER/NAME. Nothing is built here: a binary missing
# (or still being built) is skipped.
node_image() {
	local name="$1" module="$2" toolmod="$3" source="$4" tools_arg="$5"
	local ver bin
	ver="$(modver "$module" "$root/hack/tools/$toolmod/go.mod")"
	bin="$cache/e2e/$name-$ver/$name"
	if [ ! -x "$bin" ]; then
		echo "images: skipping localhost/$name:$ver: $bin is not built (run 'hack/e2e-tools.sh $tools_arg')" >&2
		return
	fi
	image "localhost/$name:$ver" "$bin" "$ver" \
		--label "org.opencontainers.image.source=$source" \
		--label "org.opencontainers.image.version=$ver" \
		--label "org.opencontainers.image.description=$name $ver built from source by Sluice's hack/e2e-tools.sh for the local e2e node"
}

# prometheus_image: Debian's prometheus binary (`make prometheus` installs
# the package) as the e2e node's Prometheus pod, with the files of glibc it
# links (it is the one dynamically linked binary the node runs). Skipped
# when the package is not installed.
prometheus_image() {
	local bin=/usr/bin/prometheus ver lib
	if [ ! -x "$bin" ]; then
		echo "images: skipping localhost/prometheus: $bin is not installed (run 'make prometheus')" >&2
		return
	fi
	ver="$(dpkg-query -W -f='${Version}' prometheus 2>/dev/null | tr '+~:' '---')"
	local libs=()
	for lib in $(ldd "$bin" | grep -o '/[^ ]*'); do
		libs+=(--file "$(readlink -f "$lib"):$lib:0755")
	done
	image "localhost/prometheus:${ver:-debian}" "$bin" "${ver:-debian}" "${libs[@]}" \
		--label "org.opencontainers.image.source=https://packages.debian.org/bookworm/prometheus" \
		--label "org.opencontainers.image.version=${ver:-debian}" \
		--label "org.opencontainers.image.description=Debian's prometheus package with the glibc files it links, for the local e2e node"
}

node_images() {
	prometheus_image
	node_image coredns github.com/coredns/coredns coredns https://github.com/coredns/coredns node
	node_image metrics-server sigs.k8s.io/metrics-server metrics-server https://github.com/kubernetes-sigs/metrics-server node
	node_image traefik github.com/traefik/traefik/v3 traefik https://github.com/traefik/traefik traefik
}

start=$SECONDS
case "${1:-sluice}" in
sluice) sluice_images ;;
node) node_images ;;
all)
	sluice_images
	node_images
	;;
*)
	echo "usage: $0 [sluice|node|all]" >&2
	exit 2
	;;
esac

echo "images in $out (SOURCE_DATE_EPOCH=$SOURCE_DATE_EPOCH, revision $revision), $((SECONDS - start))s:"
if [ ${#summary[@]} -eq 0 ]; then
	echo "  (none)"
fi
for line in "${summary[@]}"; do
	echo "  $line"
done
