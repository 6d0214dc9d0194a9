"""Fixtures for the provider SDK instrumentors: the stand-in server, in-memory telemetry, and
instrumentors switched on for one test only."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

import llm_otel
from llm_otel._log import forget_logged_causes
from llm_otel.testing import CapturedTelemetry, capture
from llm_otel.tools.devserver import StandInServer


@pytest.fixture(scope="module")
def server() -> Iterator[StandInServer]:
    with StandInServer() as stand_in:
        yield stand_in


@pytest.fixture
def telemetry() -> Iterator[CapturedTelemetry]:
    forget_logged_causes()
    with capture() as captured:
        yield captured


@pytest.fixture
def instrumented(telemetry: CapturedTelemetry) -> Iterator[CapturedTelemetry]:
    llm_otel.instrument("openai", "anthropic")
    try:
        yield telemetry
    finally:
        llm_otel.uninstrument()


def llm_spans(telemetry: CapturedTelemetry) -> list[object]:
    """Spans that carry token usage (the one record of each API call)."""
    return [s for s in telemetry.spans() if s.attributes and "gen_ai.usage.input_tokens" in s.attributes]
