from __future__ import annotations

import json
from pathlib import Path

import pytest
from genai_prices import Usage, calc_price
from hypothesis import given, settings
from hypothesis import strategies as st

import llm_otel
from llm_otel._pricing import PriceBook
from llm_otel._usage import TokenUsage
from llm_otel.testing import CapturedTelemetry, capture
from tests.hypothesis_profiles import examples

from .conftest import chat_response

MODELS = [
    ("openai", "gpt-4o"), ("openai", "gpt-4o-mini"), ("openai", "o3-mini"), ("openai", "gpt-4.1"),
    ("anthropic", "claude-sonnet-4-5"), ("anthropic", "claude-haiku-4-5"), ("anthropic", "claude-3-5-haiku-latest"),
    ("google", "gemini-2.5-flash"),
]


@settings(max_examples=examples(300), deadline=None)
@given(
    model=st.sampled_from(MODELS),
    uncached=st.integers(0, 300_000),
    cache_read=st.integers(0, 50_000),
    cache_write=st.integers(0, 50_000),
    output=st.integers(0, 100_000),
)
def test_fast_path_matches_genai_prices(
    model: tuple[str, str], uncached: int, cache_read: int, cache_write: int, output: int
) -> None:
    provider, name = model
    total_input = uncached + cache_read + cache_write
    quote = PriceBook().quote(provider, name, TokenUsage(total_input, output, cache_read, cache_write))
    expected = calc_price(
        Usage(input_tokens=total_input, output_tokens=output, cache_read_tokens=cache_read,
              cache_write_tokens=cache_write),
        name, provider_id=provider,
    ).total_price
    assert quote.cost_usd == pytest.approx(float(expected), rel=1e-9, abs=1e-15)
    assert quote.source == "genai-prices"


def test_cached_and_reasoning_tokens_are_not_double_counted() -> None:
    book = PriceBook()
    plain = book.quote("openai", "o3-mini", TokenUsage(1000, 500)).cost_usd
    with_reasoning = book.quote("openai", "o3-mini", TokenUsage(1000, 500, reasoning_output_tokens=400)).cost_usd
    assert plain == with_reasoning  # reasoning is part of output, billed once
    cached = book.quote("openai", "gpt-4o", TokenUsage(1000, 0, cache_read_input_tokens=800)).cost_usd
    uncached = book.quote("openai", "gpt-4o", TokenUsage(1000, 0)).cost_usd
    assert cached is not None and uncached is not None and cached < uncached
    assert cached == pytest.approx((200 * 2.5 + 800 * 1.25) / 1e6, rel=1e-12)


def test_unknown_model_is_unpriced_not_free(telemetry: CapturedTelemetry) -> None:
    @llm_otel.traced_llm(provider="openai", model="in-house-llm-7b")
    def ask() -> dict[str, object]:
        return chat_response(model="in-house-llm-7b")

    ask()
    span = telemetry.span("chat in-house-llm-7b")
    assert "llm.cost.usd" not in (span.attributes or {})
    assert span.attributes["llm.cost.source"] == "unknown"  # type: ignore[index]
    assert span.attributes["llm.cost.unpriced_reason"] == "model_not_in_price_database"  # type: ignore[index]
    assert telemetry.counter("llm.cost.unpriced", gen_ai__request__model="in-house-llm-7b") == 1
    assert telemetry.histogram_count("llm.cost.usd") == 0
    assert telemetry.counter("llm.tokens.input") == 100  # tokens still counted


def test_missing_usage_is_unpriced_with_reason(telemetry: CapturedTelemetry) -> None:
    @llm_otel.traced_llm(provider="openai", model="gpt-4o")
    def ask() -> str:
        return "plain text, no usage"

    ask()
    span = telemetry.span("chat gpt-4o")
    assert span.attributes["llm.cost.unpriced_reason"] == "usage_unknown"  # type: ignore[index]
    assert telemetry.counter("llm.cost.unpriced") == 1
    assert telemetry.counter("llm_otel.input.unknown", source="usage", reason="usage:missing") == 1


def test_price_overrides_by_argument_and_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with capture(prices={"in-house-llm-7b": {"input_per_mtok": 1.0, "output_per_mtok": 2.0,
                                              "context_window": 8000}}) as telemetry:
        with llm_otel.llm_call(provider="self-hosted", model="in-house-llm-7b") as call:
            call.set_usage(input_tokens=4000, output_tokens=1000)
        assert telemetry.histogram_sum("llm.cost.usd") == pytest.approx((4000 * 1 + 1000 * 2) / 1e6)
        assert telemetry.span("chat in-house-llm-7b").attributes["llm.cost.source"] == "override"  # type: ignore[index]
        assert telemetry.histogram_sum("llm.context.utilization") == pytest.approx(0.5)

    price_file = tmp_path / "prices.json"
    price_file.write_text(json.dumps({"openai/gpt-4o": {"input_per_mtok": 10, "output_per_mtok": 0}}))
    monkeypatch.setenv("LLM_OTEL_PRICES_FILE", str(price_file))
    with capture() as telemetry:
        with llm_otel.llm_call(provider="openai", model="gpt-4o") as call:
            call.set_usage(input_tokens=1_000_000, output_tokens=5)
        assert telemetry.histogram_sum("llm.cost.usd") == pytest.approx(10.0)


def test_bad_override_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="input_per_mtok"):
        PriceBook({"m": {"output_per_mtok": 1}})


def test_context_utilization_from_price_database(telemetry: CapturedTelemetry) -> None:
    with llm_otel.llm_call(provider="anthropic", model="claude-sonnet-4-5") as call:
        call.set_usage(input_tokens=50_000, output_tokens=10)
    assert telemetry.histogram_sum("llm.context.utilization") == pytest.approx(50_000 / 200_000)
