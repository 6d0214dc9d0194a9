"""Cancellation, GeneratorExit and KeyboardInterrupt are call outcomes, not LLM errors.

For every core entry point: the exception reaches the caller unchanged (the same
object), the call's span ends with ``llm.stream.outcome`` and no ``error.type``,
``llm.errors`` stays at zero, and the call is still counted once (with the
outcome as a label). Ordinary exceptions stay errors.
"""

from __future__ import annotations

import asyncio
import gc
from collections.abc import AsyncIterator, Iterator
from typing import Any

import openai
import pytest
from opentelemetry.trace import StatusCode

import llm_otel
from llm_otel import _names as n
from llm_otel.testing import CapturedTelemetry
from llm_otel.tools.devserver import LatencyProfile, StandInServer

MODEL = "gpt-4o-mini"
SPAN = f"chat {MODEL}"


def assert_interrupted(telemetry: CapturedTelemetry, outcome: str, name: str = SPAN) -> Any:
    span = telemetry.span(name)
    attributes = dict(span.attributes or {})
    assert span.end_time is not None
    assert attributes[n.LLM_STREAM_OUTCOME] == outcome
    assert n.ERROR_TYPE not in attributes
    assert span.status.status_code is not StatusCode.ERROR
    assert telemetry.counter("llm.errors") == 0
    assert telemetry.histogram_count("gen_ai.client.operation.duration") == 1
    assert telemetry.histogram_count("gen_ai.client.operation.duration", {n.LLM_STREAM_OUTCOME: outcome}) == 1
    # an interrupted call lacks usage, not a price: it must not ask for a price override
    assert telemetry.counter("llm.cost.unpriced") == 0
    assert telemetry.counter("llm_otel.input.unknown") == 0
    return span


def _chunk(text: str | None, *, usage: tuple[int, int] | None = None) -> dict[str, Any]:
    chunk: dict[str, Any] = {"model": MODEL, "id": "c1", "choices": []}
    if text is not None:
        chunk["choices"] = [{"index": 0, "delta": {"content": text}, "finish_reason": None}]
    if usage is not None:
        chunk["usage"] = {"prompt_tokens": usage[0], "completion_tokens": usage[1]}
    return chunk


# --- @traced_llm ---------------------------------------------------------------


def test_keyboard_interrupt_in_a_sync_call_is_cancelled_not_an_error(telemetry: CapturedTelemetry) -> None:
    interrupt = KeyboardInterrupt()

    @llm_otel.traced_llm(provider="openai", model=MODEL)
    def ask() -> None:
        raise interrupt

    with pytest.raises(KeyboardInterrupt) as caught:
        ask()
    assert caught.value is interrupt
    assert_interrupted(telemetry, "cancelled")


async def test_cancelled_coroutine_is_cancelled_not_an_error(telemetry: CapturedTelemetry) -> None:
    entered = asyncio.Event()

    @llm_otel.traced_llm(provider="openai", model=MODEL)
    async def ask() -> None:
        entered.set()
        await asyncio.sleep(60)

    task = asyncio.create_task(ask())
    await entered.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert_interrupted(telemetry, "cancelled")


async def test_cancelled_async_generator_read_is_cancelled_not_an_error(telemetry: CapturedTelemetry) -> None:
    """What a client hang-up under uvicorn does to a streaming endpoint: cancel the pending read."""
    first_sent = asyncio.Event()

    @llm_otel.traced_llm(provider="openai", model=MODEL)
    async def stream() -> AsyncIterator[dict[str, Any]]:
        yield _chunk("a")
        first_sent.set()
        await asyncio.sleep(60)  # waiting for the provider's next chunk
        yield _chunk("b")

    async def consume() -> None:
        async for _ in stream():
            pass

    task = asyncio.create_task(consume())
    await first_sent.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    span = assert_interrupted(telemetry, "cancelled")
    assert span.attributes[n.LLM_STREAM_CHUNKS] == 1  # type: ignore[index]


def test_keyboard_interrupt_inside_a_generator_propagates_unchanged(telemetry: CapturedTelemetry) -> None:
    interrupt = KeyboardInterrupt()

    @llm_otel.traced_llm(provider="openai", model=MODEL)
    def stream() -> Iterator[dict[str, Any]]:
        yield _chunk("a")
        raise interrupt

    with pytest.raises(KeyboardInterrupt) as caught:
        list(stream())
    assert caught.value is interrupt
    assert_interrupted(telemetry, "cancelled")


def test_generator_exit_thrown_by_the_consumer_is_closed_early(telemetry: CapturedTelemetry) -> None:
    @llm_otel.traced_llm(provider="openai", model=MODEL)
    def stream() -> Iterator[dict[str, Any]]:
        yield _chunk("a")
        yield _chunk("b")

    gen = stream()
    next(gen)
    gen.close()
    assert_interrupted(telemetry, "closed_early")


def test_ordinary_exceptions_stay_errors(telemetry: CapturedTelemetry) -> None:
    @llm_otel.traced_llm(provider="openai", model=MODEL)
    def stream() -> Iterator[dict[str, Any]]:
        yield _chunk("a")
        raise TimeoutError("provider went quiet")

    with pytest.raises(TimeoutError):
        list(stream())
    attributes = dict(telemetry.span(SPAN).attributes or {})
    assert attributes[n.ERROR_TYPE] == "TimeoutError"
    assert n.LLM_STREAM_OUTCOME not in attributes
    assert telemetry.counter("llm.errors", error__type="TimeoutError") == 1


async def test_cancelled_read_of_a_returned_sdk_stream_is_cancelled(telemetry: CapturedTelemetry) -> None:
    """A function returning the real openai AsyncStream; the reading task is cancelled mid-stream."""
    with StandInServer(latency=LatencyProfile.fixed(0, per_chunk_ms=200), seed=1) as server:
        client = openai.AsyncOpenAI(base_url=server.openai_base_url, api_key="test", max_retries=0)

        @llm_otel.traced_llm(provider="openai")
        async def ask(model: str) -> Any:
            return await client.chat.completions.create(
                model=model, messages=[{"role": "user", "content": "tell me a long story"}], stream=True,
            )

        got_first = asyncio.Event()

        async def consume() -> None:
            async for _ in await ask(MODEL):
                got_first.set()

        task = asyncio.create_task(consume())
        await asyncio.wait_for(got_first.wait(), 20)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await client.close()
    span = assert_interrupted(telemetry, "cancelled")
    assert span.attributes[n.LLM_STREAM_CHUNKS] >= 1  # type: ignore[index,operator]


# --- a traced generator that is never iterated ------------------------------------


def test_never_iterated_generator_is_closed_early_when_collected(telemetry: CapturedTelemetry) -> None:
    @llm_otel.traced_llm(provider="openai", model=MODEL)
    def stream() -> Iterator[dict[str, Any]]:
        yield _chunk("a")

    gen = stream()
    assert telemetry.spans() == []
    del gen
    gc.collect()
    span = assert_interrupted(telemetry, "closed_early")
    assert n.LLM_STREAM_CHUNKS not in (span.attributes or {})


async def test_never_iterated_async_generator_is_closed_early_when_collected(telemetry: CapturedTelemetry) -> None:
    @llm_otel.traced_llm(provider="openai", model=MODEL)
    async def stream() -> AsyncIterator[dict[str, Any]]:
        yield _chunk("a")

    agen = stream()
    del agen
    gc.collect()
    assert_interrupted(telemetry, "closed_early")


def test_a_generator_in_a_reference_cycle_is_still_ended_by_the_collector(telemetry: CapturedTelemetry) -> None:
    @llm_otel.traced_llm(provider="openai", model=MODEL)
    def stream(box: list[Any]) -> Iterator[dict[str, Any]]:
        yield _chunk("a")

    box: list[Any] = []
    box.append(stream(box))  # box -> generator -> frame arguments -> box
    del box
    gc.collect()
    assert_interrupted(telemetry, "closed_early")


def test_exhausted_generator_is_not_ended_twice_when_collected(telemetry: CapturedTelemetry) -> None:
    @llm_otel.traced_llm(provider="openai", model=MODEL)
    def stream() -> Iterator[dict[str, Any]]:
        yield _chunk("a", usage=(3, 1))

    gen = stream()
    assert len(list(gen)) == 1
    del gen
    gc.collect()
    attributes = dict(telemetry.span(SPAN).attributes or {})
    assert n.LLM_STREAM_OUTCOME not in attributes
    assert telemetry.histogram_count("gen_ai.client.operation.duration") == 1


def test_generator_called_with_wrong_arguments_ends_its_span(telemetry: CapturedTelemetry) -> None:
    @llm_otel.traced_llm(provider="openai", model=MODEL)
    def stream(prompt: str) -> Iterator[str]:
        yield prompt

    with pytest.raises(TypeError):
        stream()  # type: ignore[call-arg]
    assert telemetry.span(SPAN).attributes[n.ERROR_TYPE] == "TypeError"  # type: ignore[index]


# --- llm_call and start_call -------------------------------------------------------


async def test_llm_call_cancelled_inside_the_block(telemetry: CapturedTelemetry) -> None:
    entered = asyncio.Event()

    async def ask() -> None:
        with llm_otel.llm_call(provider="openai", model=MODEL):
            entered.set()
            await asyncio.sleep(60)

    task = asyncio.create_task(ask())
    await entered.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert_interrupted(telemetry, "cancelled")


def test_llm_call_inside_a_closed_generator_is_closed_early(telemetry: CapturedTelemetry) -> None:
    def stream() -> Iterator[str]:
        with llm_otel.llm_call(provider="openai", model=MODEL):
            yield "a"
            yield "b"

    gen = stream()
    next(gen)
    gen.close()
    assert_interrupted(telemetry, "closed_early")


def test_start_call_fail_with_a_cancellation_is_an_outcome(telemetry: CapturedTelemetry) -> None:
    cancelled = asyncio.CancelledError()
    call = llm_otel.start_call(provider="openai", model=MODEL)
    call.fail(cancelled)
    assert_interrupted(telemetry, "cancelled")


def test_start_call_end_with_an_unknown_outcome_is_counted_not_recorded(telemetry: CapturedTelemetry) -> None:
    call = llm_otel.start_call(provider="openai", model=MODEL)
    call.set_usage(input_tokens=3, output_tokens=1)
    call.end(outcome="exploded")
    attributes = dict(telemetry.span(SPAN).attributes or {})
    assert n.LLM_STREAM_OUTCOME not in attributes and n.ERROR_TYPE not in attributes
    assert telemetry.counter("llm_otel.input.unknown", source="usage", reason="outcome:invalid") == 1


# --- enabled=False ----------------------------------------------------------------


def test_disabled_kit_records_nothing_from_llm_call_or_start_call() -> None:
    from llm_otel.testing import capture

    with capture(enabled=False) as telemetry:
        with llm_otel.llm_call(provider="openai", model=MODEL) as call:
            call.set_usage(input_tokens=5, output_tokens=5)
        started = llm_otel.start_call(provider="openai", model=MODEL, activate=True)
        started.set_usage(input_tokens=5, output_tokens=5)
        started.end()
        failed = llm_otel.start_call(provider="openai", model=MODEL)
        failed.fail(ValueError("x"))
        with pytest.raises(RuntimeError), llm_otel.llm_call(provider="openai", model=MODEL):
            raise RuntimeError("the app's own error still propagates")
        assert telemetry.spans() == []
        assert telemetry.histogram_count("gen_ai.client.operation.duration") == 0
        assert telemetry.counter("llm.tokens.input") == 0


# --- route ------------------------------------------------------------------------


class _Unprintable(Exception):
    def __str__(self) -> str:
        raise RuntimeError("no text for you")


def test_route_span_ends_when_the_exception_cannot_be_printed(telemetry: CapturedTelemetry) -> None:
    error = _Unprintable()
    with pytest.raises(_Unprintable) as caught, llm_otel.route(task_type="classify", model=MODEL):
        raise error
    assert caught.value is error
    span = telemetry.span(n.ROUTE_SPAN_NAME)
    assert span.end_time is not None
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes[n.ERROR_TYPE].endswith("_Unprintable")  # type: ignore[index,union-attr]


async def test_cancelled_route_is_an_outcome_for_the_route_and_its_call(telemetry: CapturedTelemetry) -> None:
    entered = asyncio.Event()

    @llm_otel.route(task_type="chat", model=MODEL)
    async def routed() -> None:
        with llm_otel.llm_call(provider="openai", model=MODEL):
            entered.set()
            await asyncio.sleep(60)

    task = asyncio.create_task(routed())
    await entered.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    route_span = telemetry.span(n.ROUTE_SPAN_NAME)
    assert route_span.attributes[n.LLM_STREAM_OUTCOME] == "cancelled"  # type: ignore[index]
    assert n.ERROR_TYPE not in (route_span.attributes or {})
    assert route_span.status.status_code is not StatusCode.ERROR
    assert_interrupted(telemetry, "cancelled")
