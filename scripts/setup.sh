#!/usr/bin/env bash
# Installs everything the tests and the demo need on a fresh machine:
# the package with its dev extra, Debian's prometheus (brings promtool) and valgrind, and the
# OpenTelemetry Collector built from Go modules (cached by manifest hash).
set -euo pipefail
cd "$(dirname "$0")/.."

python3 -m pip install --quiet --disable-pip-version-check -e '.[dev]'

if ! command -v prometheus >/dev/null || ! command -v promtool >/dev/null; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends prometheus >/dev/null
    # The package starts a system-wide service; the stack runs its own instance.
    (systemctl stop prometheus || service prometheus stop || pkill -x prometheus) >/dev/null 2>&1 || true
fi

if ! command -v valgrind >/dev/null; then  # the benchmarks' exact instruction counts (and their tests)
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends valgrind >/dev/null
fi

bash scripts/build-collector.sh
