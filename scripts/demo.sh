#!/usr/bin/env bash
# The first command to run: installs llm-otel from this checkout (with the dev extra: the OpenAI and
# Anthropic SDKs, the web and LLM frameworks the samples use) and runs `llm-otel demo`.
# Arguments go to the demo:
#   scripts/demo.sh                      15 s of traffic, a live table per model
#   scripts/demo.sh --duration 60 --stack   also export to the bundled stack (started if needed)
set -euo pipefail
cd "$(dirname "$0")/.."

python3 -m pip install --quiet --disable-pip-version-check -e '.[dev]'

if command -v llm-otel >/dev/null 2>&1; then
    exec llm-otel demo "$@"
fi
# pip put the console script somewhere not on PATH (a --user install): run the module instead.
exec python3 -m llm_otel.tools.cli demo "$@"
