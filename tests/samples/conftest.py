"""Fixtures for the sample app smoke tests: a stand-in LLM API, in-memory telemetry, ground truth."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import pytest

from llm_otel._log import forget_logged_causes
from llm_otel.testing import CapturedTelemetry, capture
from llm_otel.tools.devserver import RecordedRequest, StandInServer, expected_usage


@pytest.fixture
def stand_in(monkeypatch: pytest.MonkeyPatch) -> Iterator[StandInServer]:
    """A stand-in API the samples find through OPENAI_BASE_URL / ANTHROPIC_BASE_URL."""
    with StandInServer(seed=3) as server:
        monkeypatch.setenv("OPENAI_BASE_URL", server.openai_base_url)
        monkeypatch.setenv("ANTHROPIC_BASE_URL", server.anthropic_base_url)
        monkeypatch.setenv("OPENAI_API_KEY", "test")
        monkeypatch.setenv("ANTHROPIC_API_KEY", "test")
        yield server


@pytest.fixture
def telemetry() -> Iterator[CapturedTelemetry]:
    forget_logged_causes()
    with capture() as captured:
        yield captured


@dataclass(frozen=True)
class Truth:
    """Token totals the stand-in reported, recomputed from the requests it received."""

    calls: int
    input_tokens: int
    output_tokens: int


def ground_truth(requests: Iterable[RecordedRequest]) -> Truth:
    calls = input_tokens = output_tokens = 0
    for request in requests:
        body = request.body
        if request.status != 200 or not isinstance(body, dict):
            continue
        if request.path == "/v1/chat/completions":
            usage = expected_usage(
                body["model"],
                body["messages"],
                tools=body.get("tools"),
                tool_choice=body.get("tool_choice"),
                max_tokens=body.get("max_completion_tokens") or body.get("max_tokens"),
            )
        elif request.path == "/v1/messages":
            usage = expected_usage(
                body["model"],
                body["messages"],
                system=body.get("system"),
                tools=body.get("tools"),
                tool_choice=body.get("tool_choice"),
                max_tokens=body.get("max_tokens"),
            )
        else:
            continue
        calls += 1
        # Anthropic reports cached tokens beside input_tokens; the kit counts input including them.
        input_tokens += usage.input_tokens
        output_tokens += usage.output_tokens
    return Truth(calls, input_tokens, output_tokens)


def assert_tokens_match(telemetry: CapturedTelemetry, truth: Truth) -> None:
    assert truth.calls > 0
    assert telemetry.counter("llm.tokens.input") == truth.input_tokens
    assert telemetry.counter("llm.tokens.output") == truth.output_tokens
