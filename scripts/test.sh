#!/usr/bin/env bash
# The one test command: installs what the tests need, then lints, type-checks and runs them.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh
export LLM_OTEL_COLLECTOR_BIN="$(bash scripts/build-collector.sh --print-path)"

python3 -m ruff check .
python3 -m mypy
python3 -m pytest -q "$@"
