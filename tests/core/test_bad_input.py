"""Bad usage payloads never raise into the app: they are recorded as unknown and counted."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import llm_otel
from llm_otel.testing import CapturedTelemetry
from tests.hypothesis_profiles import examples

from .conftest import chat_response

junk = st.one_of(
    st.none(), st.booleans(), st.integers(-10**12, 10**12), st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12), st.binary(max_size=8), st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=3),
)
shapes = st.one_of(
    st.builds(lambda p, c: chat_response(prompt_tokens=p, completion_tokens=c), junk, junk),
    st.builds(lambda p, c, r: chat_response(prompt_tokens=p, completion_tokens=c, cached=r), junk, junk, junk),
    st.builds(lambda i, o, cr: {"type": "message", "model": "claude-haiku-4-5",
                                "usage": {"input_tokens": i, "output_tokens": o, "cache_read_input_tokens": cr}},
              junk, junk, junk),
    st.builds(lambda u: {"object": "response", "output": [], "usage": u}, junk),
    st.builds(lambda u: {"usage_metadata": u, "response_metadata": None}, junk),
    junk,
    st.recursive(junk, lambda inner: st.dictionaries(st.sampled_from(
        ["usage", "choices", "model", "id", "type", "message", "delta", "usage_metadata", "output", "object"]),
        inner, max_size=4), max_leaves=8),
)


@settings(max_examples=examples(1500), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(payload=shapes)
def test_any_payload_is_harmless(telemetry: CapturedTelemetry, payload: Any) -> None:
    @llm_otel.traced_llm(provider="openai", model="gpt-4o-mini")
    def ask() -> Any:
        return payload

    assert ask() is payload
    @llm_otel.traced_llm(provider="openai", model="gpt-4o-mini")
    def stream() -> Any:
        yield payload
        yield payload

    assert list(stream()) == [payload, payload]


@pytest.mark.parametrize(
    ("prompt_tokens", "reason"),
    [(None, "usage:missing"), (-5, "input_tokens:negative"), ("many", "input_tokens:not_a_number"),
     (float("nan"), "input_tokens:not_an_integer"), (True, "input_tokens:not_a_number")],
)
def test_each_oddity_is_counted_and_marked(
    telemetry: CapturedTelemetry, prompt_tokens: Any, reason: str, caplog: pytest.LogCaptureFixture
) -> None:
    @llm_otel.traced_llm(provider="openai", model="gpt-4o-mini")
    def ask() -> Any:
        return chat_response(prompt_tokens=prompt_tokens, completion_tokens=prompt_tokens)

    with caplog.at_level(logging.WARNING, logger="llm_otel"):
        ask()
        ask()
    assert telemetry.counter("llm_otel.input.unknown", source="usage", reason=reason) == 2
    span = telemetry.spans()[0]
    assert reason in span.attributes["llm.usage.unknown_reason"]  # type: ignore[operator, index]
    assert telemetry.counter("llm.tokens.input") == 0
    assert telemetry.counter("llm.cost.unpriced") == 2
    assert telemetry.histogram_count("llm.cost.usd") == 0
    assert sum(reason in r.getMessage() for r in caplog.records) == 1  # logged once per cause


def test_half_known_usage_is_unpriced_not_half_priced(telemetry: CapturedTelemetry) -> None:
    @llm_otel.traced_llm(provider="openai", model="gpt-4o-mini")
    def ask() -> Any:
        return chat_response(prompt_tokens=-1, completion_tokens=50)

    ask()
    span = telemetry.span("chat gpt-4o-mini")
    assert span.attributes["llm.cost.unpriced_reason"] == "usage_incomplete"  # type: ignore[index]
    assert telemetry.counter("llm.tokens.output") == 50
    assert telemetry.histogram_count("llm.cost.usd") == 0
    assert telemetry.counter("llm.cost.unpriced") == 1


def test_numeric_strings_are_accepted(telemetry: CapturedTelemetry) -> None:
    @llm_otel.traced_llm(provider="openai", model="gpt-4o-mini")
    def ask() -> Any:
        return chat_response(prompt_tokens="12", completion_tokens=3.0)

    ask()
    assert telemetry.counter("llm.tokens.input") == 12
    assert telemetry.counter("llm.tokens.output") == 3


def test_cache_larger_than_input_is_dropped_not_priced(telemetry: CapturedTelemetry) -> None:
    @llm_otel.traced_llm(provider="openai", model="gpt-4o")
    def ask() -> Any:
        return chat_response(model="gpt-4o", prompt_tokens=10, cached=500)

    ask()
    assert telemetry.counter("llm_otel.input.unknown", reason="cache_tokens:exceed_input") == 1
    assert telemetry.histogram_sum("llm.cost.usd") == pytest.approx((10 * 2.5 + 20 * 10) / 1e6)


def test_usage_reader_that_raises_does_not_break_the_app(telemetry: CapturedTelemetry) -> None:
    def broken(_: Any) -> Any:
        raise KeyError("usage")

    @llm_otel.traced_llm(provider="openai", model="gpt-4o", usage=broken)
    def ask() -> str:
        return "fine"

    assert ask() == "fine"
    assert telemetry.counter("llm_otel.input.unknown", reason="usage_reader:raised") == 1


def test_internal_failure_is_swallowed(telemetry: CapturedTelemetry, monkeypatch: pytest.MonkeyPatch) -> None:
    def explode(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("recorder bug")

    monkeypatch.setattr(telemetry.telemetry.recorder, "record_call", explode)

    @llm_otel.traced_llm(provider="openai", model="gpt-4o")
    def ask() -> str:
        return "still works"

    assert ask() == "still works"
    assert telemetry.span("chat gpt-4o").end_time is not None
