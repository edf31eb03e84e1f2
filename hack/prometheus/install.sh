#!/usr/bin/env bash
# Installs Debian's prometheus package for the tests that run a real
# Prometheus (pkg/analysis, internal/promtest, controllers/rollout, e2e).
#
# Idempotent: does nothing when a prometheus binary is already on PATH or at
# /usr/bin/prometheus. It never starts the system service (the tests start
# prometheus themselves as a plain process) and waits for the dpkg lock
# instead of failing when another apt runs (hack/apt-install.sh).
set -euo pipefail

"$(cd "$(dirname "$0")/.." && pwd)/apt-install.sh" prometheus prometheus
echo "prometheus: $(command -v prometheus || echo /usr/bin/prometheus)"
