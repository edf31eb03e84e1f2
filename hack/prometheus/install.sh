#!/usr/bin/env bash
# Installs Debian's prometheus package for the tests that run a real
# Prometheus (pkg/analysis, internal/promtest, controllers/rollout).
#
# Idempotent: does nothing when a prometheus binary is already on PATH or at
# /usr/bin/prometheus. It never starts the system service: the tests start
# prometheus themselves as a plain process on a loopback port.
set -euo pipefail

if command -v prometheus >/dev/null 2>&1; then
	echo "prometheus already installed: $(command -v prometheus)"
	exit 0
fi
if [ -x /usr/bin/prometheus ]; then
	echo "prometheus already installed: /usr/bin/prometheus"
	exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
	SUDO="sudo"
fi

# policy-rc.d exit code 101 keeps dpkg from starting the service on install
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

# Another apt (unattended upgrades, a second install) may hold the dpkg lock:
# wait for it (up to 10 minutes) instead of failing at once.
apt_wait=(-o DPkg::Lock::Timeout=600)
echo "installing Debian's prometheus (waits for the dpkg lock if another apt runs)"
$SUDO apt-get "${apt_wait[@]}" update
DEBIAN_FRONTEND=noninteractive $SUDO apt-get "${apt_wait[@]}" install -y --no-install-recommends prometheus

echo "installed: $(command -v prometheus || echo /usr/bin/prometheus)"
prometheus --version 2>&1 | head -1 || /usr/bin/prometheus --version 2>&1 | head -1
