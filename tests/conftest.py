"""Fixtures shared by every test package."""

from __future__ import annotations

# ---------------------------------------------------------------------------
# Observability stack fixtures (tests/stack, tests/e2e).
#   collector_bin, prometheus_bin, promtool_bin  -> Path (skip locally / fail in CI when missing)
#   native_stack                                 -> llm_otel._stack.StackInfo (module scope)
#   dashboard_queries, alert_rules, render_promql
# Implementation: tests/stack/_support.py
# ---------------------------------------------------------------------------
from tests.stack._support import (  # noqa: F401  (pytest discovers fixtures by name)
    alert_rules,
    collector_bin,
    dashboard_queries,
    native_stack,
    prometheus_bin,
    promtool_bin,
    render_promql,
)
