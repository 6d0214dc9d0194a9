from __future__ import annotations

import pytest

import llm_otel
from llm_otel._cardinality import CardinalityGuard
from llm_otel.testing import capture

from .conftest import chat_response


def test_overflow_values_fold_into_other_but_calls_still_count() -> None:
    with capture(cardinality_limit=5) as telemetry:
        for i in range(40):
            @llm_otel.traced_llm(provider="openai", model="gpt-4o-mini", prompt_name=f"user-{i}")
            def ask() -> dict[str, object]:
                return chat_response(prompt_tokens=10, completion_tokens=1)

            ask()
        points = telemetry.points("llm.tokens.input")
        names = {p.attributes["llm.prompt.name"] for p in points}
        assert len(names) == 6 and "_other" in names
        assert telemetry.counter("llm.tokens.input") == 400
        assert telemetry.counter("llm.tokens.input", llm__prompt__name="_other") == 350
        assert telemetry.histogram_count("gen_ai.client.operation.duration") == 40


def test_values_past_the_cap_fold_and_are_counted() -> None:
    # the million-values scale run is tests/faults/test_cardinality_attack.py (slow)
    guard = CardinalityGuard(100)
    for i in range(1_000):
        guard.bound("call", {"user": str(i)})
    assert guard.admitted("call", "user") == 100
    assert guard.overflowed[("call", "user")] == 1_000 - 100


def test_route_labels_are_bounded_too() -> None:
    with capture(cardinality_limit=3) as telemetry:
        for i in range(10):
            with llm_otel.route(task_type=f"task-{i}", model="gpt-4o-mini"), \
                    llm_otel.llm_call(provider="openai", model="gpt-4o-mini") as call:
                call.set_usage(input_tokens=1, output_tokens=1)
        values = {p.attributes["llm.task_type"] for p in telemetry.points("llm.tokens.input")}
        assert values == {"task-0", "task-1", "task-2", "_other"}


def test_limit_must_be_positive() -> None:
    with pytest.raises(ValueError):
        CardinalityGuard(0)


def test_a_call_site_reuses_its_series_but_never_a_folded_one() -> None:
    """Repeated calls of one site share their bounded series; past the cap every call is
    folded (and counted by the guard) again, never served from what an earlier call built."""
    with capture(cardinality_limit=2) as telemetry:
        @llm_otel.traced_llm(provider="openai", model="gpt-4o-mini")
        def ask(response_model: str) -> dict[str, object]:
            return chat_response(model=response_model, prompt_tokens=10, completion_tokens=1)

        for _ in range(3):
            for model in ("gpt-4o-mini-a", "gpt-4o-mini-b", "gpt-4o-mini-c", "gpt-4o-mini-d"):
                ask(model)
        guard = telemetry.telemetry.recorder.guard
        assert guard.admitted("call", "gen_ai.response.model") == 2
        assert guard.overflowed[("call", "gen_ai.response.model")] == 2 * 3  # two models past the cap, 3 calls each
        assert telemetry.counter("llm.tokens.input") == 12 * 10
        assert telemetry.counter("llm.tokens.input", gen_ai__response__model="_other") == 6 * 10
        assert telemetry.counter("llm.tokens.input", gen_ai__response__model="gpt-4o-mini-a") == 3 * 10


def test_series_built_for_one_configuration_are_not_used_by_the_next() -> None:
    @llm_otel.traced_llm(provider="openai", model="gpt-4o-mini")
    def ask() -> dict[str, object]:
        return chat_response(prompt_tokens=10, completion_tokens=1)

    with capture(cardinality_limit=5):
        ask()
    with capture(cardinality_limit=5) as second:
        ask()
        assert second.telemetry.recorder.guard.admitted("call", "gen_ai.request.model") == 1
        assert second.counter("llm.tokens.input") == 10
