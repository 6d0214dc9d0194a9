"""Fixtures shared by every test package."""

from __future__ import annotations

# ---------------------------------------------------------------------------
# Every test must leave no OpenTelemetry context attached behind it: a leaked
# current span would silently parent the next test's root spans.
# ---------------------------------------------------------------------------
import pytest
from opentelemetry import context as _otel_context
from opentelemetry import trace as _trace

# Hypothesis: `ci` profile when CI=true, `dev` otherwise, `quick` with HYPOTHESIS_PROFILE=quick.
from tests import hypothesis_profiles  # noqa: F401  (registers and loads the profile)

# ---------------------------------------------------------------------------
# Observability stack fixtures (tests/stack, tests/e2e).
#   collector_bin, prometheus_bin, promtool_bin  -> Path (skip locally / fail in CI when missing)
#   native_stack                                 -> llm_otel.tools._stack.StackInfo (module scope)
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


@pytest.fixture(autouse=True)
def _no_leaked_otel_context():  # type: ignore[no-untyped-def]
    before = _otel_context.get_current()
    yield
    leaked = _otel_context.get_current()
    if leaked is not before and _trace.get_current_span(leaked).get_span_context().is_valid:
        _otel_context.attach(before)  # contain the leak so later tests stay independent
        pytest.fail(f"test left span {_trace.get_current_span(leaked)} attached as the current context")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests on the real stack start processes and wait for scrapes: they are slow by nature."""
    for item in items:
        if item.get_closest_marker("stack") or "native_stack" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.slow)
