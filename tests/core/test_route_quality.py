from __future__ import annotations

import asyncio
import threading

import pytest

import llm_otel
from llm_otel import EvaluationSample
from llm_otel.testing import CapturedTelemetry, capture

from .conftest import chat_response


def test_route_is_parent_and_labels_flow(telemetry: CapturedTelemetry) -> None:
    @llm_otel.traced_llm(provider="openai")
    def ask(model: str) -> dict[str, object]:
        return chat_response(model=model)

    @llm_otel.route(task_type="classify", model="gpt-4o-mini")
    def classify() -> None:
        ask("gpt-4o-mini")

    classify()
    telemetry.assert_single_trace({"llm.route": {"chat gpt-4o-mini": {}}})
    llm_span = telemetry.span("chat gpt-4o-mini")
    assert llm_span.attributes["llm.task_type"] == "classify"  # type: ignore[index]
    assert llm_span.attributes["llm.routed_model"] == "gpt-4o-mini"  # type: ignore[index]
    route_span = telemetry.span("llm.route")
    assert route_span.attributes["llm.task_type"] == "classify"  # type: ignore[index]
    assert telemetry.counter("llm.tokens.input", llm__task_type="classify", llm__routed_model="gpt-4o-mini") == 100


async def test_async_route_decorator(telemetry: CapturedTelemetry) -> None:
    @llm_otel.traced_llm(provider="openai", model="gpt-4o")
    async def ask() -> dict[str, object]:
        return chat_response(model="gpt-4o")

    @llm_otel.route(task_type="reason", model="gpt-4o")
    async def reason() -> None:
        await ask()

    await asyncio.gather(reason(), reason())
    assert telemetry.counter("llm.tokens.input", llm__task_type="reason") == 200
    assert len(telemetry.traces()) == 2


def test_route_records_error(telemetry: CapturedTelemetry) -> None:
    with pytest.raises(KeyError), llm_otel.route(task_type="x"):
        raise KeyError("k")
    assert telemetry.span("llm.route").attributes["error.type"] == "KeyError"  # type: ignore[index]


def test_record_quality_on_current_call(telemetry: CapturedTelemetry) -> None:
    @llm_otel.traced_llm(provider="openai", model="gpt-4o")
    def ask() -> dict[str, object]:
        assert llm_otel.record_quality(0.8, label="likely", explanation="unsupported claim")
        return chat_response(model="gpt-4o")

    ask()
    event = telemetry.span("chat gpt-4o").events[0]
    assert event.name == "gen_ai.evaluation.result"
    assert event.attributes["gen_ai.evaluation.score.value"] == 0.8  # type: ignore[index]
    assert event.attributes["gen_ai.evaluation.name"] == "hallucination"  # type: ignore[index]
    assert telemetry.gauge("llm.hallucination.score", gen_ai__request__model="gpt-4o") == 0.8


@pytest.mark.parametrize("score", [-0.1, 1.5, float("nan"), "high", None, True])
def test_invalid_scores_are_counted_not_raised(telemetry: CapturedTelemetry, score: object) -> None:
    assert llm_otel.record_quality(score) is False  # type: ignore[arg-type]
    assert telemetry.counter("llm_otel.input.unknown", source="quality") == 1
    assert telemetry.gauge("llm.hallucination.score") is None


def test_background_evaluator_scores_off_the_request_path() -> None:
    seen_threads: list[str] = []

    def scorer(sample: EvaluationSample) -> float:
        seen_threads.append(threading.current_thread().name)
        return 0.25 if sample.output_text == "ok" else 1.0

    with capture(evaluator=scorer, evaluation_sample_rate=1.0) as telemetry:
        @llm_otel.traced_llm(provider="openai", model="gpt-4o-mini")
        def ask() -> dict[str, object]:
            return chat_response()

        for _ in range(5):
            ask()
        telemetry.telemetry.evaluator.join()
        assert telemetry.gauge("llm.hallucination.score") == 0.25
        evaluation_spans = [s for s in telemetry.spans() if s.name == "evaluate hallucination"]
        assert len(evaluation_spans) == 5
        call_ids = {s.context.span_id for s in telemetry.spans() if s.name == "chat gpt-4o-mini"}  # type: ignore[union-attr]
        assert {s.parent.span_id for s in evaluation_spans} == call_ids  # type: ignore[union-attr]
    assert set(seen_threads) == {"llm-otel-evaluator"}


def test_evaluator_queue_is_bounded_and_drops_are_counted() -> None:
    release = threading.Event()

    def slow(sample: EvaluationSample) -> float:
        release.wait(5)
        return 0.1

    with capture(evaluator=slow, evaluation_sample_rate=1.0, evaluation_queue_size=3) as telemetry:
        with llm_otel.llm_call(provider="openai", model="gpt-4o") as first:
            first.set_usage(input_tokens=1, output_tokens=1)
        for _ in range(10):
            with llm_otel.llm_call(provider="openai", model="gpt-4o") as call:
                call.set_usage(input_tokens=1, output_tokens=1)
        release.set()
        telemetry.telemetry.evaluator.join()
        dropped = telemetry.counter("llm_otel.telemetry.dropped", signal="evaluations")
        assert 6 <= dropped <= 7  # one sample may be in the scorer while three wait


def test_evaluator_sampling_rate_zero_scores_nothing() -> None:
    calls = []
    with capture(evaluator=calls.append, evaluation_sample_rate=0.0), \
            llm_otel.llm_call(provider="openai", model="gpt-4o") as call:
        call.set_usage(input_tokens=1, output_tokens=1)
    assert calls == []
