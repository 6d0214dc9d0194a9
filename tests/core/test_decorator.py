from __future__ import annotations

import asyncio
import contextvars
import gc
import threading

import pytest
from genai_prices import Usage, calc_price
from opentelemetry.trace import SpanKind, StatusCode

import llm_otel
from llm_otel.testing import CapturedTelemetry

from .conftest import chat_response


def _expected_cost(model: str, input_tokens: int, output_tokens: int, cache_read: int = 0) -> float:
    usage = Usage(input_tokens=input_tokens, output_tokens=output_tokens, cache_read_tokens=cache_read)
    return float(calc_price(usage, model, provider_id="openai").total_price)


def test_sync_call_records_span_and_metrics(telemetry: CapturedTelemetry) -> None:
    @llm_otel.traced_llm(provider="openai")
    def ask(prompt: str, model: str = "gpt-4o-mini") -> dict[str, object]:
        return chat_response(model="gpt-4o-mini-2024-07-18", prompt_tokens=120, completion_tokens=30)

    assert ask("hi")["id"] == "chatcmpl-1"
    span = telemetry.span("chat gpt-4o-mini")
    assert span.kind is SpanKind.CLIENT
    attrs = dict(span.attributes or {})
    assert attrs["gen_ai.operation.name"] == "chat"
    assert attrs["gen_ai.provider.name"] == "openai"
    assert attrs["gen_ai.request.model"] == "gpt-4o-mini"
    assert attrs["gen_ai.response.model"] == "gpt-4o-mini-2024-07-18"
    assert attrs["gen_ai.response.id"] == "chatcmpl-1"
    assert attrs["gen_ai.usage.input_tokens"] == 120
    assert attrs["gen_ai.usage.output_tokens"] == 30
    assert tuple(attrs["gen_ai.response.finish_reasons"]) == ("stop",)  # type: ignore[arg-type]
    assert "gen_ai.system" not in attrs and "gen_ai.usage.prompt_tokens" not in attrs
    expected = _expected_cost("gpt-4o-mini-2024-07-18", 120, 30)
    assert attrs["llm.cost.usd"] == pytest.approx(expected, rel=1e-9)
    assert attrs["llm.cost.source"] == "genai-prices"

    assert telemetry.counter("llm.tokens.input", gen_ai__request__model="gpt-4o-mini") == 120
    assert telemetry.counter("llm.tokens.output") == 30
    assert telemetry.histogram_sum("llm.cost.usd") == pytest.approx(expected, rel=1e-9)
    assert telemetry.histogram_count("gen_ai.client.operation.duration") == 1
    assert telemetry.histogram_sum("gen_ai.client.token.usage", gen_ai__token__type="input") == 120
    assert telemetry.counter("llm.cost.unpriced") == 0


def test_histograms_use_semconv_buckets_even_with_users_provider(telemetry: CapturedTelemetry) -> None:
    @llm_otel.traced_llm(provider="openai", model="gpt-4o-mini")
    def ask() -> dict[str, object]:
        return chat_response()

    ask()
    duration = telemetry.metric("gen_ai.client.operation.duration")
    assert duration.unit == "s"
    assert tuple(duration.data.data_points[0].explicit_bounds)[:3] == (0.01, 0.02, 0.04)
    tokens = telemetry.metric("gen_ai.client.token.usage")
    assert tuple(tokens.data.data_points[0].explicit_bounds)[-1] == 67108864


async def test_async_call(telemetry: CapturedTelemetry) -> None:
    @llm_otel.traced_llm(provider="openai")
    async def ask(model: str) -> dict[str, object]:
        await asyncio.sleep(0)
        return chat_response(model=model, prompt_tokens=7, completion_tokens=3)

    await ask("gpt-4o")
    assert telemetry.span("chat gpt-4o").attributes["gen_ai.usage.input_tokens"] == 7  # type: ignore[index]
    assert telemetry.counter("llm.tokens.output", gen_ai__request__model="gpt-4o") == 3


def _chunks(model: str, words: list[str], usage: tuple[int, int] | None) -> list[dict[str, object]]:
    chunks: list[dict[str, object]] = [
        {"id": "c1", "object": "chat.completion.chunk", "model": model,
         "choices": [{"index": 0, "delta": {"content": w}, "finish_reason": None}]}
        for w in words
    ]
    chunks.append({"id": "c1", "object": "chat.completion.chunk", "model": model,
                   "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
    if usage is not None:
        chunks.append({"id": "c1", "object": "chat.completion.chunk", "model": model, "choices": [],
                       "usage": {"prompt_tokens": usage[0], "completion_tokens": usage[1]}})
    return chunks


def test_generator_stream_reads_final_usage_and_ttfc(telemetry: CapturedTelemetry) -> None:
    @llm_otel.traced_llm(provider="openai", model="gpt-4o-mini")
    def stream():  # type: ignore[no-untyped-def]
        yield from _chunks("gpt-4o-mini", ["a", "b", "c"], (50, 3))
        return "done"

    received = list(stream())
    assert len(received) == 5
    span = telemetry.span("chat gpt-4o-mini")
    attrs = dict(span.attributes or {})
    assert attrs["gen_ai.usage.input_tokens"] == 50
    assert attrs["llm.stream.chunks"] == 5
    assert tuple(attrs["gen_ai.response.finish_reasons"]) == ("stop",)  # type: ignore[arg-type]
    assert telemetry.histogram_count("gen_ai.client.operation.time_to_first_chunk") == 1
    assert telemetry.counter("llm.tokens.input") == 50


def test_generator_send_and_return_value_pass_through(telemetry: CapturedTelemetry) -> None:
    @llm_otel.traced_llm(provider="openai", model="gpt-4o-mini")
    def echo():  # type: ignore[no-untyped-def]
        got = yield "first"
        yield f"got {got}"
        return "finished"

    gen = echo()
    assert next(gen) == "first"
    assert gen.send("x") == "got x"
    with pytest.raises(StopIteration) as stop:
        next(gen)
    assert stop.value.value == "finished"


def test_span_ends_when_stream_is_closed_early(telemetry: CapturedTelemetry) -> None:
    @llm_otel.traced_llm(provider="openai", model="gpt-4o-mini")
    def stream():  # type: ignore[no-untyped-def]
        yield from _chunks("gpt-4o-mini", ["a"] * 10, (10, 10))

    gen = stream()
    next(gen)
    gen.close()
    span = telemetry.span("chat gpt-4o-mini")
    assert span.end_time is not None
    assert span.attributes["llm.stream.outcome"] == "closed_early"  # type: ignore[index]
    assert span.status.status_code is not StatusCode.ERROR


def test_span_ends_when_stream_is_abandoned(telemetry: CapturedTelemetry) -> None:
    @llm_otel.traced_llm(provider="openai", model="gpt-4o-mini")
    def stream():  # type: ignore[no-untyped-def]
        yield from _chunks("gpt-4o-mini", ["a"] * 10, (10, 10))

    gen = stream()
    next(gen)
    del gen
    gc.collect()
    assert telemetry.span("chat gpt-4o-mini").end_time is not None
    assert telemetry.histogram_count("gen_ai.client.operation.duration") == 1


async def test_async_generator_stream(telemetry: CapturedTelemetry) -> None:
    @llm_otel.traced_llm(provider="openai", model="gpt-4o")
    async def stream():  # type: ignore[no-untyped-def]
        for chunk in _chunks("gpt-4o", ["x", "y"], (11, 2)):
            await asyncio.sleep(0)
            yield chunk

    received = [c async for c in stream()]
    assert len(received) == 4
    assert telemetry.counter("llm.tokens.input") == 11
    assert telemetry.histogram_count("gen_ai.client.operation.time_to_first_chunk") == 1


async def test_async_generator_closed_early(telemetry: CapturedTelemetry) -> None:
    @llm_otel.traced_llm(provider="openai", model="gpt-4o")
    async def stream():  # type: ignore[no-untyped-def]
        for chunk in _chunks("gpt-4o", ["x"] * 5, (11, 2)):
            yield chunk

    agen = stream()
    await agen.__anext__()
    await agen.aclose()
    assert telemetry.span("chat gpt-4o").attributes["llm.stream.outcome"] == "closed_early"  # type: ignore[index]


def test_function_returning_a_generator_records_when_it_is_read(telemetry: CapturedTelemetry) -> None:
    """An SDK whose streams are plain generators (google-genai): the call lasts until the stream ends."""
    def sdk_stream():  # type: ignore[no-untyped-def]
        yield from _chunks("gpt-4o-mini", ["a", "b"], (40, 2))

    @llm_otel.traced_llm(provider="openai", model="gpt-4o-mini")
    def ask():  # type: ignore[no-untyped-def]
        return sdk_stream()

    stream = ask()
    assert telemetry.spans() == []  # still streaming
    assert len(list(stream)) == 4
    assert telemetry.counter("llm.tokens.input") == 40
    assert telemetry.histogram_count("gen_ai.client.operation.time_to_first_chunk") == 1


async def test_coroutine_returning_an_async_generator_records_when_it_is_read(telemetry: CapturedTelemetry) -> None:
    async def sdk_stream():  # type: ignore[no-untyped-def]
        for chunk in _chunks("gpt-4o", ["x"], (11, 2)):
            yield chunk

    @llm_otel.traced_llm(provider="openai", model="gpt-4o")
    async def ask():  # type: ignore[no-untyped-def]
        return sdk_stream()

    stream = await ask()
    assert telemetry.spans() == []
    assert len([c async for c in stream]) == 3
    assert telemetry.counter("llm.tokens.input") == 11


class Boom(Exception):
    pass


def test_exception_propagates_unchanged_and_span_records_it(telemetry: CapturedTelemetry) -> None:
    error = Boom("provider exploded")

    @llm_otel.traced_llm(provider="openai", model="gpt-4o")
    def ask() -> None:
        raise error

    with pytest.raises(Boom) as caught:
        ask()
    assert caught.value is error
    assert caught.value.__traceback__ is not None
    frames = []
    tb = caught.value.__traceback__
    while tb is not None:
        frames.append(tb.tb_frame.f_code.co_name)
        tb = tb.tb_next
    assert frames[-1] == "ask"  # the raising frame is still the user's
    span = telemetry.span("chat gpt-4o")
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes["error.type"].endswith("Boom")  # type: ignore[index, union-attr]
    assert telemetry.counter("llm.errors") == 1
    assert telemetry.counter("llm.rate_limited") == 0
    assert telemetry.counter("llm.cost.unpriced") == 0


class FakeRateLimit(Exception):
    status_code = 429


def test_rate_limit_is_counted_as_error_and_rate_limited(telemetry: CapturedTelemetry) -> None:
    @llm_otel.traced_llm(provider="openai", model="gpt-4o")
    async def ask() -> None:
        raise FakeRateLimit("slow down")

    with pytest.raises(FakeRateLimit):
        asyncio.run(ask())
    assert telemetry.counter("llm.rate_limited") == 1
    assert telemetry.counter("llm.errors") == 1


def test_error_inside_stream_fails_the_call(telemetry: CapturedTelemetry) -> None:
    @llm_otel.traced_llm(provider="openai", model="gpt-4o")
    def stream():  # type: ignore[no-untyped-def]
        yield {"object": "chat.completion.chunk", "choices": []}
        raise ConnectionResetError("truncated")

    with pytest.raises(ConnectionResetError):
        list(stream())
    assert telemetry.span("chat gpt-4o").status.status_code is StatusCode.ERROR
    assert telemetry.counter("llm.errors", error__type="ConnectionResetError") == 1


def test_nested_calls_keep_parentage(telemetry: CapturedTelemetry) -> None:
    @llm_otel.traced_llm(provider="openai", model="gpt-4o-mini")
    def inner() -> dict[str, object]:
        return chat_response()

    @llm_otel.traced_llm(provider="openai", model="gpt-4o", operation="invoke_agent")
    def outer() -> dict[str, object]:
        inner()
        return chat_response(model="gpt-4o")

    outer()
    telemetry.assert_single_trace({"invoke_agent gpt-4o": {"chat gpt-4o-mini": {}}})


def test_threads_with_copied_context_keep_parentage(telemetry: CapturedTelemetry) -> None:
    tracer = telemetry.telemetry.tracer

    @llm_otel.traced_llm(provider="openai", model="gpt-4o-mini")
    def ask() -> dict[str, object]:
        return chat_response()

    roots = {}

    def worker(i: int) -> None:
        with tracer.start_as_current_span(f"request {i}") as root:
            roots[i] = root.get_span_context().trace_id
            ctx = contextvars.copy_context()
            t = threading.Thread(target=ctx.run, args=(ask,))
            t.start()
            t.join()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    llm_spans = [s for s in telemetry.spans() if s.name == "chat gpt-4o-mini"]
    assert len(llm_spans) == 8
    for trace_id, spans in telemetry.traces().items():
        assert sorted(s.name for s in spans)[0] == "chat gpt-4o-mini"
        assert len(spans) == 2
        assert trace_id in roots.values()


async def test_asyncio_tasks_keep_parentage(telemetry: CapturedTelemetry) -> None:
    tracer = telemetry.telemetry.tracer

    @llm_otel.traced_llm(provider="openai", model="gpt-4o-mini")
    async def ask(delay: float) -> dict[str, object]:
        await asyncio.sleep(delay)
        return chat_response()

    async def request(i: int) -> int:
        with tracer.start_as_current_span(f"request {i}") as root:
            await asyncio.gather(ask(0.002 * (i % 3)), ask(0.001))
            return root.get_span_context().trace_id

    trace_ids = await asyncio.gather(*(request(i) for i in range(20)))
    traces = telemetry.traces()
    assert set(traces) == set(trace_ids)
    for spans in traces.values():
        assert sorted(s.name for s in spans)[:2] == ["chat gpt-4o-mini", "chat gpt-4o-mini"]
        root = next(s for s in spans if s.name.startswith("request"))
        assert all(s.parent is not None and s.parent.span_id == root.context.span_id  # type: ignore[union-attr]
                   for s in spans if s is not root)


def test_usage_callable_for_custom_shapes(telemetry: CapturedTelemetry) -> None:
    @llm_otel.traced_llm(provider="openai", model="gpt-4o-mini",
                         usage=lambda r: {"input_tokens": r["in"], "output_tokens": r["out"]})
    def ask() -> dict[str, int]:
        return {"in": 9, "out": 4}

    ask()
    assert telemetry.counter("llm.tokens.input") == 9
    assert telemetry.counter("llm.tokens.output") == 4


def test_llm_call_context_manager_and_setters(telemetry: CapturedTelemetry) -> None:
    with llm_otel.llm_call(provider="anthropic", model="claude-sonnet-4-5") as call:
        call.set_usage(input_tokens=200, output_tokens=50)
        call.set_response_model("claude-sonnet-4-5-20250929")
        call.set_finish_reasons(["end_turn"])
    span = telemetry.span("chat claude-sonnet-4-5")
    assert span.attributes["gen_ai.response.model"] == "claude-sonnet-4-5-20250929"  # type: ignore[index]
    expected = float(calc_price(Usage(input_tokens=200, output_tokens=50), "claude-sonnet-4-5-20250929",
                                provider_id="anthropic").total_price)
    assert telemetry.histogram_sum("llm.cost.usd") == pytest.approx(expected, rel=1e-9)


def test_llm_call_exception_propagates(telemetry: CapturedTelemetry) -> None:
    error = ValueError("bad")
    with pytest.raises(ValueError) as caught, llm_otel.llm_call(provider="openai", model="gpt-4o"):
        raise error
    assert caught.value is error
    assert telemetry.counter("llm.errors", error__type="ValueError") == 1


def test_start_call_lifecycle_with_explicit_parent(telemetry: CapturedTelemetry) -> None:
    from opentelemetry import trace

    parent = telemetry.telemetry.tracer.start_span("chain")
    call = llm_otel.start_call(provider="openai", model="gpt-4o", parent=trace.set_span_in_context(parent))
    call.set_response(chat_response(model="gpt-4o"))
    call.end()
    call.end()  # idempotent
    parent.end()
    telemetry.assert_single_trace({"chain": {"chat gpt-4o": {}}})
    assert telemetry.histogram_count("gen_ai.client.operation.duration") == 1


def test_alike_callback_calls_share_a_spec_and_stay_separate_calls(telemetry: CapturedTelemetry) -> None:
    calls = [
        llm_otel.start_call(provider="openai", model="gpt-4o", labels={"team": "a", "tier": "b"}),
        llm_otel.start_call(provider="openai", model="gpt-4o", labels={"tier": "b", "team": "a"}),
    ]
    other = llm_otel.start_call(provider="openai", model="gpt-4o", labels={"team": "c"})
    odd = llm_otel.start_call(provider="openai", model="gpt-4o", labels={"team": ["not", "hashable"]})  # type: ignore[dict-item]
    assert calls[0].spec is calls[1].spec
    assert other.spec is not calls[0].spec
    for call, tokens in zip((*calls, other, odd), (1, 2, 4, 8), strict=True):
        call.set_usage(input_tokens=tokens, output_tokens=1)
        call.end()
    assert telemetry.counter("llm.tokens.input", team="a") == 3
    assert telemetry.counter("llm.tokens.input", team="c") == 4
    assert telemetry.counter("llm.tokens.input") == 15
    assert len(telemetry.spans()) == 4


def test_disabled_kit_calls_function_directly() -> None:
    from llm_otel.testing import capture

    with capture(enabled=False) as telemetry:
        @llm_otel.traced_llm(provider="openai", model="gpt-4o")
        def ask() -> dict[str, object]:
            return chat_response()

        assert ask()["id"] == "chatcmpl-1"
        assert telemetry.spans() == []
        assert telemetry.counter("llm.tokens.input") == 0


def test_reconfigure_switches_providers_for_existing_decorators() -> None:
    from llm_otel.testing import capture

    @llm_otel.traced_llm(provider="openai", model="gpt-4o")
    def ask() -> dict[str, object]:
        return chat_response()

    with capture() as first:
        ask()
    with capture() as second:
        ask()
        ask()
    assert len(first.spans()) == 1
    assert len(second.spans()) == 2


class Unprintable(Exception):
    def __str__(self) -> str:
        raise RuntimeError("no text for you")


def test_exception_with_broken_str_still_marks_the_span(telemetry: CapturedTelemetry) -> None:
    @llm_otel.traced_llm(provider="openai", model="gpt-4o")
    def ask() -> None:
        raise Unprintable()

    with pytest.raises(Unprintable):
        ask()
    span = telemetry.span("chat gpt-4o")
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes["error.type"].endswith("Unprintable")  # type: ignore[index, union-attr]
