"""One record per provider API call, whatever layers of the kit see it (docs/instrumentation.md).

Every pairing checks the totals: tokens, cost, call count and the spans that carry usage.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import anthropic
import openai
import pytest

import llm_otel
from llm_otel.testing import CapturedTelemetry
from llm_otel.tools.devserver import LatencyProfile, StandInServer
from tests.instrumentation.conftest import llm_spans

MESSAGES = [{"role": "user", "content": "Say hello"}]


@pytest.fixture
def client(server: StandInServer) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=server.openai_base_url, api_key="test", max_retries=0) as c:
        yield c


def chat_dict(prompt_tokens: int = 5, completion_tokens: int = 6, response_id: str = "chatcmpl-1") -> dict[str, Any]:
    return {
        "id": response_id, "object": "chat.completion", "model": "gpt-4o-mini",
        "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": "ok"}}],
        "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens},
    }


def assert_one_record(telemetry: CapturedTelemetry, input_tokens: int, output_tokens: int, calls: int = 1) -> None:
    with_usage = llm_spans(telemetry)
    assert len(with_usage) == calls, [s.name for s in telemetry.spans()]
    assert telemetry.counter("llm.tokens.input") == input_tokens
    assert telemetry.counter("llm.tokens.output") == output_tokens
    assert telemetry.histogram_count("gen_ai.client.operation.duration") == calls
    assert telemetry.histogram_count("llm.cost.usd") == calls
    assert telemetry.histogram_sum("llm.cost.usd") == pytest.approx(
        sum(s.attributes["llm.cost.usd"] for s in with_usage)
    )


def test_nested_traced_functions(telemetry: CapturedTelemetry) -> None:
    @llm_otel.traced_llm(provider="openai")
    def inner(model: str = "gpt-4o-mini") -> dict[str, Any]:
        return chat_dict(5, 6)

    @llm_otel.traced_llm(provider="openai")
    def outer(model: str = "gpt-4o-mini") -> dict[str, Any]:
        return inner()

    outer()
    assert_one_record(telemetry, 5, 6)
    outer_span = next(s for s in telemetry.spans() if s.attributes.get("llm.record.deferred"))
    inner_span = llm_spans(telemetry)[0]
    assert inner_span.parent is not None and inner_span.parent.span_id == outer_span.context.span_id
    assert "llm.cost.usd" not in outer_span.attributes


def test_outer_call_around_two_inner_calls(telemetry: CapturedTelemetry) -> None:
    @llm_otel.traced_llm(provider="openai")
    def inner(model: str = "gpt-4o-mini") -> dict[str, Any]:
        return chat_dict(5, 6)

    @llm_otel.traced_llm(provider="openai")
    async def agent(model: str = "gpt-4o-mini") -> dict[str, Any]:
        inner()
        return inner()

    import asyncio

    asyncio.run(agent())
    assert_one_record(telemetry, 10, 12, calls=2)


def test_unnested_calls_still_record(telemetry: CapturedTelemetry) -> None:
    @llm_otel.traced_llm(provider="openai")
    def ask(model: str = "gpt-4o-mini") -> dict[str, Any]:
        return chat_dict(5, 6)

    ask()
    ask()
    assert_one_record(telemetry, 10, 12, calls=2)


def test_traced_llm_around_an_instrumented_call(client: openai.OpenAI, instrumented: CapturedTelemetry) -> None:

    @llm_otel.traced_llm(provider="openai")
    def ask(model: str = "gpt-4o-mini") -> Any:
        return client.chat.completions.create(model=model, messages=MESSAGES)

    response = ask()
    assert_one_record(instrumented, response.usage.prompt_tokens, response.usage.completion_tokens)
    outer, = (s for s in instrumented.spans() if s.attributes.get("llm.record.deferred"))
    inner, = llm_spans(instrumented)
    assert inner.parent.span_id == outer.context.span_id


def test_traced_llm_around_an_instrumented_stream(client: openai.OpenAI, instrumented: CapturedTelemetry) -> None:

    @llm_otel.traced_llm(provider="openai")
    def ask(model: str = "gpt-4o-mini") -> Any:
        return client.chat.completions.create(
            model=model, messages=MESSAGES, stream=True, stream_options={"include_usage": True}
        )

    chunks = list(ask())
    usage = chunks[-1].usage
    assert_one_record(instrumented, usage.prompt_tokens, usage.completion_tokens)


@pytest.mark.parametrize("instrumented_sdk", [True, False])
def test_traced_function_returning_a_stream_helper(
    server: StandInServer, client: openai.OpenAI, telemetry: CapturedTelemetry, instrumented_sdk: bool
) -> None:
    """The call lasts until the helper's stream ends, and its usage is known either way."""

    @llm_otel.traced_llm(provider="openai")
    def ask(model: str = "gpt-4o-mini") -> Any:
        return client.chat.completions.stream(model=model, messages=MESSAGES,
                                              stream_options={"include_usage": True})

    if instrumented_sdk:
        llm_otel.instrument("openai")
    server.latency = LatencyProfile(mean_ms=30, per_chunk_ms=10)
    try:
        began = time.perf_counter()
        with ask() as stream:
            for _ in stream:
                pass
        elapsed = time.perf_counter() - began
    finally:
        server.latency = LatencyProfile()
        llm_otel.uninstrument()
    final = stream.get_final_completion()
    assert_one_record(telemetry, final.usage.prompt_tokens, final.usage.completion_tokens)
    outer = next(s for s in telemetry.spans() if s.parent is None)
    assert (outer.end_time - outer.start_time) / 1e9 >= 0.8 * elapsed


def test_traced_function_returning_an_anthropic_stream_helper(server: StandInServer, telemetry: CapturedTelemetry) -> None:
    client = anthropic.Anthropic(base_url=server.anthropic_base_url, api_key="test", max_retries=0)

    @llm_otel.traced_llm(provider="anthropic")
    def ask(model: str = "claude-3-5-haiku-latest") -> Any:
        return client.messages.stream(model=model, max_tokens=100, messages=MESSAGES)

    with client, ask() as stream:
        for _ in stream:
            pass
    final = stream.get_final_message()
    assert_one_record(telemetry, final.usage.input_tokens, final.usage.output_tokens)


async def test_async_traced_function_around_instrumented_calls(
    server: StandInServer, instrumented: CapturedTelemetry
) -> None:
    client = anthropic.AsyncAnthropic(base_url=server.anthropic_base_url, api_key="test", max_retries=0)

    @llm_otel.traced_llm(provider="anthropic")
    async def ask(model: str = "claude-3-5-haiku-latest") -> Any:
        return await client.messages.create(model=model, max_tokens=100, messages=MESSAGES)

    async with client:
        message = await ask()
    assert_one_record(instrumented, message.usage.input_tokens, message.usage.output_tokens)


def test_the_enclosing_call_labels_reach_the_record(client: openai.OpenAI, instrumented: CapturedTelemetry) -> None:
    """A decorator's task type and prompt version are not lost when the instrumentor records the call."""

    @llm_otel.traced_llm(provider="openai", task_type="classify", prompt_name="triage", prompt_version="3")
    def ask(model: str = "gpt-4o-mini") -> Any:
        return client.chat.completions.create(model=model, messages=MESSAGES)

    response = ask()
    inner, = llm_spans(instrumented)
    assert inner.attributes["llm.task_type"] == "classify"
    assert inner.attributes["llm.prompt.version"] == "3"
    assert inner.attributes["gen_ai.operation.name"] == "chat"
    assert instrumented.counter("llm.tokens.input", llm__task_type="classify",
                                llm__prompt__version="3") == response.usage.prompt_tokens


# -- calls lent to their context: a framework handler's call, never the current call ------------------


def children_of(telemetry: CapturedTelemetry, parent: Any) -> list[Any]:
    return [s for s in telemetry.spans() if s.parent is not None and s.parent.span_id == parent.context.span_id]


def test_a_lent_call_is_recorded_by_the_stream_opened_after_it(
    client: openai.OpenAI, instrumented: CapturedTelemetry
) -> None:
    """A handler's call starts, then the model's code opens the SDK stream in the same context."""
    outer = llm_otel.start_call(provider="openai", model="gpt-4o-mini", task_type="summarize")
    stream = client.chat.completions.create(
        model="gpt-4o-mini", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
    )
    chunks = []
    for chunk in stream:
        outer.add_chunk(None)  # the handler sees the chunks too, after the wire call opened
        chunks.append(chunk)
    outer.end()
    usage = chunks[-1].usage
    assert_one_record(instrumented, usage.prompt_tokens, usage.completion_tokens)
    deferred, = (s for s in instrumented.spans() if s.attributes.get("llm.record.deferred"))
    inner, = llm_spans(instrumented)
    assert children_of(instrumented, deferred) == [inner]
    assert inner.attributes["llm.task_type"] == "summarize"  # the handler's labels reach the record


def test_a_lent_call_already_answered_is_not_taken(client: openai.OpenAI, instrumented: CapturedTelemetry) -> None:
    """A call made while the caller reads another call's chunks is not that call's API call."""
    outer = llm_otel.start_call(provider="anthropic", model="gpt-4o-mini")
    outer.add_chunk(None)  # its stream is being read: its request went out without the kit seeing it
    response = client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    outer.set_usage(input_tokens=3, output_tokens=4)
    outer.end()
    assert_one_record(instrumented, response.usage.prompt_tokens + 3, response.usage.completion_tokens + 4, calls=2)
    assert not any(s.attributes.get("llm.record.deferred") for s in instrumented.spans())


def test_a_lent_call_for_another_model_is_not_taken(client: openai.OpenAI, instrumented: CapturedTelemetry) -> None:
    outer = llm_otel.start_call(provider="openai", model="gpt-4o")
    response = client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    outer.set_usage(input_tokens=3, output_tokens=4)
    outer.end()
    assert_one_record(instrumented, response.usage.prompt_tokens + 3, response.usage.completion_tokens + 4, calls=2)


def test_calls_lent_together_are_taken_in_order(client: openai.OpenAI, instrumented: CapturedTelemetry) -> None:
    """A batch: the framework starts every call, then sends their requests one by one."""
    outers = [llm_otel.start_call(provider="openai", model="gpt-4o-mini", task_type=f"item{i}") for i in range(3)]
    responses = [client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES) for _ in outers]
    for outer in outers:
        outer.end()
    assert_one_record(instrumented, sum(r.usage.prompt_tokens for r in responses),
                      sum(r.usage.completion_tokens for r in responses), calls=3)
    for i, outer in enumerate(outers):
        span, = (s for s in instrumented.spans() if s.context.span_id == outer.span.get_span_context().span_id)
        inner, = children_of(instrumented, span)
        assert inner.attributes["llm.task_type"] == f"item{i}"


async def test_calls_lent_before_a_gather_are_taken_once_each(
    server: StandInServer, instrumented: CapturedTelemetry
) -> None:
    """Tasks copy the context holding the lent calls: each call is still taken by one request only."""
    import asyncio

    outers = [llm_otel.start_call(provider="openai", model="gpt-4o-mini") for _ in range(3)]
    async with openai.AsyncOpenAI(base_url=server.openai_base_url, api_key="test", max_retries=0) as client:
        responses = await asyncio.gather(
            *(client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES) for _ in outers)
        )
    for outer in outers:
        outer.end()
    assert_one_record(instrumented, sum(r.usage.prompt_tokens for r in responses),
                      sum(r.usage.completion_tokens for r in responses), calls=3)
    deferred = [s for s in instrumented.spans() if s.attributes.get("llm.record.deferred")]
    assert len(deferred) == 3
    assert all(len(children_of(instrumented, span)) == 1 for span in deferred)


def test_a_decorated_function_takes_the_lent_call(telemetry: CapturedTelemetry) -> None:
    """A model whose code calls a ``@traced_llm`` function: that function records the API call."""

    @llm_otel.traced_llm(provider="openai")
    def ask(model: str = "gpt-4o-mini") -> dict[str, Any]:
        return chat_dict(5, 6)

    outer = llm_otel.start_call(provider="openai", model="gpt-4o-mini")
    ask()
    outer.end()
    assert_one_record(telemetry, 5, 6)
    deferred, = (s for s in telemetry.spans() if s.attributes.get("llm.record.deferred"))
    assert children_of(telemetry, deferred) == llm_spans(telemetry)


def test_a_lent_call_is_taken_by_an_anthropic_stream_helper(
    server: StandInServer, instrumented: CapturedTelemetry
) -> None:
    """``messages.stream()`` sends its request only when its manager is entered: still the lent call's."""
    outer = llm_otel.start_call(provider="anthropic", model="claude-3-5-haiku-latest")
    with anthropic.Anthropic(base_url=server.anthropic_base_url, api_key="test", max_retries=0) as client:
        manager = client.messages.stream(model="claude-3-5-haiku-latest", max_tokens=100, messages=MESSAGES)
        with manager as stream:
            for _ in stream:
                outer.add_chunk(None)
        final = stream.get_final_message()
    outer.end()
    assert_one_record(instrumented, final.usage.input_tokens, final.usage.output_tokens)
    deferred, = (s for s in instrumented.spans() if s.attributes.get("llm.record.deferred"))
    assert children_of(instrumented, deferred) == llm_spans(instrumented)


@pytest.fixture
def gemini(server: StandInServer, telemetry: CapturedTelemetry) -> Iterator[Any]:
    from google import genai

    llm_otel.instrument("google_genai")
    c = genai.Client(api_key="test", http_options={"base_url": server.gemini_base_url})
    try:
        yield c
    finally:
        c.close()
        llm_otel.uninstrument("google_genai")


def test_traced_llm_around_an_instrumented_gemini_call(gemini: Any, telemetry: CapturedTelemetry) -> None:

    @llm_otel.traced_llm(provider="gcp.gemini")
    def ask(model: str = "gemini-2.5-flash") -> Any:
        return gemini.models.generate_content(model=model, contents="Say hello")

    usage = ask().usage_metadata
    assert_one_record(telemetry, usage.prompt_token_count, usage.candidates_token_count)
    outer, = (s for s in telemetry.spans() if s.attributes.get("llm.record.deferred"))
    inner, = llm_spans(telemetry)
    assert inner.parent.span_id == outer.context.span_id


def test_traced_llm_returning_an_instrumented_gemini_stream(gemini: Any, telemetry: CapturedTelemetry) -> None:
    """google-genai streams are plain generators whose request goes out on the first pull."""

    @llm_otel.traced_llm(provider="gcp.gemini")
    def ask(model: str = "gemini-2.5-flash") -> Any:
        return gemini.models.generate_content_stream(model=model, contents="Say hello")

    usage = list(ask())[-1].usage_metadata
    assert_one_record(telemetry, usage.prompt_token_count, usage.candidates_token_count)
    outer, = (s for s in telemetry.spans() if s.attributes.get("llm.record.deferred"))
    inner, = llm_spans(telemetry)
    assert inner.parent.span_id == outer.context.span_id


async def test_async_traced_llm_returning_an_instrumented_gemini_stream(
    gemini: Any, telemetry: CapturedTelemetry
) -> None:

    @llm_otel.traced_llm(provider="gcp.gemini")
    async def ask(model: str = "gemini-2.5-flash") -> Any:
        return await gemini.aio.models.generate_content_stream(model=model, contents="Say hello")

    chunks = [chunk async for chunk in await ask()]
    await gemini.aio.aclose()
    usage = chunks[-1].usage_metadata
    assert_one_record(telemetry, usage.prompt_token_count, usage.candidates_token_count)


def test_a_reused_response_id_seen_earlier_is_another_api_call(telemetry: CapturedTelemetry) -> None:
    """Servers that reuse ids (small counters, caching gateways): a framework call reporting an id
    an instrumentor recorded BEFORE it started is a different API call and records its own."""
    from llm_otel import adapter

    wire = adapter.start_call(provider="openai", model="gpt-4o-mini", wire=True)
    wire.set_response(chat_dict(3, 4, response_id="chatcmpl-7"))
    wire.end()
    later = adapter.start_call(provider="openai", model="gpt-4o-mini")
    later.set_response(chat_dict(5, 6, response_id="chatcmpl-7"))
    later.end()
    assert_one_record(telemetry, 8, 10, calls=2)


def test_an_id_recorded_while_the_framework_call_is_open_is_the_same_api_call(
        telemetry: CapturedTelemetry) -> None:
    import threading

    from llm_otel import adapter

    outer = adapter.start_call(provider="openai", model="gpt-4o-mini")

    def sdk_call_in_a_thread_without_context() -> None:
        wire = adapter.start_call(provider="openai", model="gpt-4o-mini", wire=True)
        wire.set_response(chat_dict(3, 4, response_id="chatcmpl-8"))
        wire.end()

    worker = threading.Thread(target=sdk_call_in_a_thread_without_context)
    worker.start()
    worker.join()
    outer.set_response(chat_dict(3, 4, response_id="chatcmpl-8"))
    outer.end()
    assert_one_record(telemetry, 3, 4)
