#!/usr/bin/env bash
# Installs Debian packages the tests need, once. Usage:
#   hack/apt-install.sh CHECK-BINARY PACKAGE...
# Does nothing when CHECK-BINARY is already on PATH (or in /usr/sbin). It waits
# for the dpkg lock (up to 10 minutes) instead of failing when another apt
# runs, and never starts a packaged service: the tests start their own.
set -euo pipefail

check="$1"
shift
if command -v "$check" >/dev/null 2>&1 || [ -x "/usr/sbin/$check" ] || [ -x "/usr/bin/$check" ]; then
	exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
	SUDO="sudo"
fi

# policy-rc.d exit code 101 keeps dpkg from starting services on install
# (on machines with an init system); it is removed again afterwards.
policy=/usr/sbin/policy-rc.d
created_policy=""
if [ ! -e "$policy" ]; then
	printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$policy" >/dev/null
	$SUDO chmod +x "$policy"
	created_policy=1
fi
cleanup() {
	if [ -n "$created_policy" ]; then
		$SUDO rm -f "$policy"
	fi
}
trap cleanup EXIT

apt_wait=(-o DPkg::Lock::Timeout=600)
echo "installing Debian's $* (about 30 s; waits for the dpkg lock if another apt runs)"
log="$(mktemp)"
if ! { $SUDO apt-get "${apt_wait[@]}" update -qq &&
	DEBIAN_FRONTEND=noninteractive $SUDO apt-get "${apt_wait[@]}" install -y -qq --no-install-recommends "$@"; } >"$log" 2>&1; then
	cat "$log" >&2
	rm -f "$log"
	exit 1
fi
rm -f "$log"
echo "installed: $*"
