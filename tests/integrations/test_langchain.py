"""LLMOtelCallbackHandler against real LangChain runnables (fake models, no mocks of LangChain)."""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from types import SimpleNamespace
from typing import Any
from uuid import UUID, uuid4

import pytest
from genai_prices import Usage, calc_price
from hypothesis import given, settings
from hypothesis import strategies as st
from langchain_core.language_models.fake import FakeListLLM
from langchain_core.messages import HumanMessage
from langchain_core.outputs import LLMResult
from langchain_core.runnables import Runnable, RunnableLambda, RunnableParallel
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace import TracerProvider as SdkTracerProvider
from opentelemetry.trace import SpanKind, StatusCode

from llm_otel._log import forget_logged_causes
from llm_otel.integrations.langchain import ABANDONED_ERROR_TYPE, LLMOtelCallbackHandler
from llm_otel.testing import CapturedTelemetry, capture
from tests.hypothesis_profiles import examples

from .lc_helpers import (
    CACHED_TOKENS,
    DOCUMENTS,
    INPUT_TOKENS,
    OUTPUT_TOKENS,
    REPLY,
    REQUEST_MODEL,
    RESPONSE_ID,
    RESPONSE_MODEL,
    OpenSpanTracker,
    UsageChatModel,
    rag_chain,
)

QUESTION = {"question": "what is the capital of france"}
CHAT = f"chat {REQUEST_MODEL}"
RAG_SHAPE: dict[str, Any] = {
    "invoke_workflow rag": {
        "chain RunnableParallel<context,question,words>": {
            "chain RunnableSequence": {"retrieval ListRetriever": {}, "execute_tool word_count": {}},
        },
        "chain ChatPromptTemplate": {},
        CHAT: {},
    }
}
TTFT = "gen_ai.client.operation.time_to_first_chunk"


def call_cost(calls: int = 1) -> float:
    usage = Usage(input_tokens=INPUT_TOKENS, cache_read_tokens=CACHED_TOKENS, output_tokens=OUTPUT_TOKENS)
    return float(calc_price(usage, RESPONSE_MODEL, provider_id="openai").total_price) * calls


@pytest.fixture
def telemetry() -> Iterator[CapturedTelemetry]:
    forget_logged_causes()
    with capture() as captured:
        yield captured


@pytest.fixture
def tracker(telemetry: CapturedTelemetry) -> OpenSpanTracker:
    provider = telemetry.telemetry.tracer_provider
    assert isinstance(provider, SdkTracerProvider)
    found = OpenSpanTracker()
    provider.add_span_processor(found)
    return found


@pytest.fixture
def handler(tracker: OpenSpanTracker) -> Iterator[LLMOtelCallbackHandler]:
    created = LLMOtelCallbackHandler()
    yield created
    assert created.open_runs == 0, "the handler still tracks open runs"
    assert tracker.open == {}, f"spans left open: {sorted(tracker.open.values())}"


def spans_named(telemetry: CapturedTelemetry, prefix: str) -> list[ReadableSpan]:
    return [s for s in telemetry.spans() if s.name.startswith(prefix)]


def unknown(telemetry: CapturedTelemetry, reason: str) -> float:
    return telemetry.counter("llm_otel.input.unknown", source="langchain", reason=reason)


def assert_chat_span(span: ReadableSpan) -> None:
    attributes = dict(span.attributes or {})
    assert span.kind is SpanKind.CLIENT
    assert attributes["gen_ai.operation.name"] == "chat"
    assert attributes["gen_ai.provider.name"] == "openai"
    assert attributes["gen_ai.request.model"] == REQUEST_MODEL
    assert attributes["gen_ai.response.model"] == RESPONSE_MODEL
    assert attributes["gen_ai.response.id"] == RESPONSE_ID
    assert attributes["gen_ai.usage.input_tokens"] == INPUT_TOKENS
    assert attributes["gen_ai.usage.output_tokens"] == OUTPUT_TOKENS
    assert attributes["gen_ai.usage.cache_read.input_tokens"] == CACHED_TOKENS
    assert attributes["gen_ai.response.finish_reasons"] == ("stop",)
    assert attributes["llm.cost.usd"] == pytest.approx(call_cost())


# -- shape, attributes and metrics ------------------------------------------------------


def test_sync_invoke_is_one_trace_with_genai_attributes_and_metrics(
    telemetry: CapturedTelemetry, handler: LLMOtelCallbackHandler
) -> None:
    with telemetry.telemetry.tracer.start_as_current_span("POST /chat"):
        answer = rag_chain().invoke(QUESTION, config={"callbacks": [handler]})

    assert answer.content == REPLY
    telemetry.assert_single_trace({"POST /chat": RAG_SHAPE})
    assert_chat_span(telemetry.span(CHAT))
    chat = dict(telemetry.span(CHAT).attributes or {})
    assert chat["gen_ai.request.temperature"] == 0.2
    assert chat["gen_ai.request.max_tokens"] == 256
    assert chat["gen_ai.request.stream"] is False

    root = telemetry.span("invoke_workflow rag")
    assert root.kind is SpanKind.INTERNAL
    assert dict(root.attributes or {}) == {"gen_ai.operation.name": "invoke_workflow", "gen_ai.workflow.name": "rag"}
    tool = dict(telemetry.span("execute_tool word_count").attributes or {})
    assert tool["gen_ai.operation.name"] == "execute_tool"
    assert tool["gen_ai.tool.name"] == "word_count"
    assert tool["gen_ai.tool.description"] == "Count the words in a text."
    assert "gen_ai.tool.call.arguments" not in tool  # content is opt-in
    retrieval = dict(telemetry.span("retrieval ListRetriever").attributes or {})
    assert retrieval == {"gen_ai.operation.name": "retrieval", "llm.retrieval.document_count": 3}

    labels = {"gen_ai.request.model": REQUEST_MODEL, "gen_ai.provider.name": "openai"}
    assert telemetry.counter("llm.tokens.input", labels) == INPUT_TOKENS
    assert telemetry.counter("llm.tokens.output", labels) == OUTPUT_TOKENS
    assert telemetry.histogram_sum("llm.cost.usd", {"gen_ai.response.model": RESPONSE_MODEL}) == pytest.approx(call_cost())
    assert telemetry.histogram_count("gen_ai.client.operation.duration") == 1
    assert telemetry.histogram_count(TTFT) == 0


async def test_ainvoke_nests_under_the_ambient_span(
    telemetry: CapturedTelemetry, handler: LLMOtelCallbackHandler
) -> None:
    with telemetry.telemetry.tracer.start_as_current_span("POST /chat") as outer:
        await rag_chain().ainvoke(QUESTION, config={"callbacks": [handler]})

    telemetry.assert_single_trace({"POST /chat": RAG_SHAPE})
    root = telemetry.span("invoke_workflow rag")
    assert root.parent is not None and root.parent.span_id == outer.get_span_context().span_id
    assert_chat_span(telemetry.span(CHAT))
    assert telemetry.counter("llm.tokens.input") == INPUT_TOKENS


def test_usage_from_llm_output_when_the_message_has_none(
    telemetry: CapturedTelemetry, handler: LLMOtelCallbackHandler
) -> None:
    UsageChatModel(usage_in_message=False).invoke("hi", config={"callbacks": [handler]})

    assert_chat_span(telemetry.span(CHAT))
    assert telemetry.counter("llm.tokens.output") == OUTPUT_TOKENS


@pytest.mark.parametrize(
    ("ls_provider", "expected"),
    [
        ("openai", "openai"),
        ("azure", "azure.ai.openai"),
        ("anthropic", "anthropic"),
        ("google_genai", "gcp.gen_ai"),
        ("google_vertexai", "gcp.vertex_ai"),
        ("amazon_bedrock", "aws.bedrock"),
        ("mistralai", "mistral_ai"),
        ("xai", "x_ai"),
        ("Ollama", "ollama"),
    ],
)
def test_provider_names_follow_the_genai_conventions(
    telemetry: CapturedTelemetry, handler: LLMOtelCallbackHandler, ls_provider: str, expected: str
) -> None:
    UsageChatModel(provider=ls_provider).invoke("hi", config={"callbacks": [handler]})

    assert telemetry.span(CHAT).attributes["gen_ai.provider.name"] == expected  # type: ignore[index]
    assert telemetry.counter("llm.tokens.input", {"gen_ai.provider.name": expected}) == INPUT_TOKENS


def test_run_metadata_becomes_task_and_prompt_labels(
    telemetry: CapturedTelemetry, handler: LLMOtelCallbackHandler
) -> None:
    metadata = {"llm.task_type": "rag", "llm.prompt.name": "answer", "llm.prompt.version": "3"}
    rag_chain().invoke(QUESTION, config={"callbacks": [handler], "metadata": metadata})

    assert telemetry.counter("llm.tokens.input", {"llm.task_type": "rag", "llm.prompt.name": "answer"}) == INPUT_TOKENS
    assert telemetry.span(CHAT).attributes["llm.prompt.version"] == "3"  # type: ignore[index]


def test_legacy_llm_records_a_text_completion(telemetry: CapturedTelemetry, handler: LLMOtelCallbackHandler) -> None:
    FakeListLLM(responses=["hello"]).invoke("hi", config={"callbacks": [handler]})

    span = telemetry.span("text_completion")
    assert span.attributes["gen_ai.operation.name"] == "text_completion"  # type: ignore[index]
    assert span.attributes["gen_ai.provider.name"] == "fakelist"  # type: ignore[index]
    assert unknown(telemetry, "model_missing") == 1
    assert telemetry.counter("llm.cost.unpriced") == 1  # no usage reported: unpriced, not $0


def test_content_is_captured_only_when_enabled_and_redacted(tracker: OpenSpanTracker) -> None:
    with capture(capture_content=True) as telemetry:
        handler = LLMOtelCallbackHandler()
        question = {"question": "what is the capital of france? mail me at jane@example.com"}
        rag_chain().invoke(question, config={"callbacks": [handler]})

        chat = dict(telemetry.span(CHAT).attributes or {})
        messages = json.loads(str(chat["gen_ai.input.messages"]))
        assert [m["role"] for m in messages] == ["system", "user"]
        assert "[REDACTED_EMAIL]" in messages[1]["parts"][0]["content"]
        assert "jane@example.com" not in str(chat["gen_ai.input.messages"])
        assert REPLY in str(chat["gen_ai.output.messages"])
        tool = dict(telemetry.span("execute_tool word_count").attributes or {})
        assert tool["gen_ai.tool.call.result"] == str(len(question["question"].split()))
        assert "[REDACTED_EMAIL]" in str(tool["gen_ai.tool.call.arguments"])
        retrieval = dict(telemetry.span("retrieval ListRetriever").attributes or {})
        assert "[REDACTED_EMAIL]" in str(retrieval["gen_ai.retrieval.query.text"])
        assert handler.open_runs == 0


def test_chain_spans_can_be_left_out(telemetry: CapturedTelemetry, tracker: OpenSpanTracker) -> None:
    handler = LLMOtelCallbackHandler(chain_spans=False)
    rag_chain().invoke(QUESTION, config={"callbacks": [handler]})

    assert telemetry.tree() == {
        "invoke_workflow rag": {"retrieval ListRetriever": {}, "execute_tool word_count": {}, CHAT: {}}
    }
    assert handler.open_runs == 0 and tracker.open == {}


def test_agent_chains_get_invoke_agent_spans(telemetry: CapturedTelemetry, tracker: OpenSpanTracker) -> None:
    handler = LLMOtelCallbackHandler(agent_names={"support_agent"})
    model = UsageChatModel()
    agent: Runnable[Any, Any] = RunnableLambda(model.invoke).with_config(run_name="support_agent")
    with telemetry.telemetry.tracer.start_as_current_span("POST /support"):
        (RunnableLambda(str) | agent).invoke("hi", config={"callbacks": [handler]})

    telemetry.assert_single_trace(
        {"POST /support": {"invoke_workflow RunnableSequence": {"invoke_agent support_agent": {CHAT: {}}}}}
    )
    agent_span = telemetry.span("invoke_agent support_agent")
    assert agent_span.attributes == {"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "support_agent"}
    assert handler.open_runs == 0 and tracker.open == {}


def test_disabled_telemetry_records_nothing() -> None:
    with capture(enabled=False) as telemetry:
        handler = LLMOtelCallbackHandler()
        rag_chain().invoke(QUESTION, config={"callbacks": [handler]})
        assert telemetry.spans() == []
        assert handler.open_runs == 0


# -- streaming ---------------------------------------------------------------------------


def test_stream_records_time_to_first_token(telemetry: CapturedTelemetry, handler: LLMOtelCallbackHandler) -> None:
    chunks = list(rag_chain().stream(QUESTION, config={"callbacks": [handler]}))

    assert "".join(str(c.content) for c in chunks) == REPLY
    telemetry.assert_single_trace(RAG_SHAPE)
    assert_chat_span(telemetry.span(CHAT))
    chat = dict(telemetry.span(CHAT).attributes or {})
    assert chat["gen_ai.request.stream"] is True
    assert chat["llm.stream.chunks"] >= len(REPLY.split())  # type: ignore[operator]
    assert telemetry.histogram_count(TTFT, {"gen_ai.request.model": REQUEST_MODEL}) == 1
    assert telemetry.counter("llm.tokens.output") == OUTPUT_TOKENS


async def test_astream_records_time_to_first_token(
    telemetry: CapturedTelemetry, handler: LLMOtelCallbackHandler
) -> None:
    with telemetry.telemetry.tracer.start_as_current_span("GET /stream"):
        chunks = [chunk async for chunk in rag_chain().astream(QUESTION, config={"callbacks": [handler]})]

    assert "".join(str(c.content) for c in chunks) == REPLY
    telemetry.assert_single_trace({"GET /stream": RAG_SHAPE})
    assert_chat_span(telemetry.span(CHAT))
    assert telemetry.histogram_count(TTFT) == 1
    assert telemetry.histogram_sum("llm.cost.usd") == pytest.approx(call_cost())


async def test_astream_events_streams_the_model(telemetry: CapturedTelemetry, handler: LLMOtelCallbackHandler) -> None:
    events = [e async for e in rag_chain().astream_events(QUESTION, config={"callbacks": [handler]}, version="v2")]

    assert any(e["event"] == "on_chat_model_stream" for e in events)
    telemetry.assert_single_trace(RAG_SHAPE)
    assert_chat_span(telemetry.span(CHAT))
    assert telemetry.histogram_count(TTFT) == 1


def test_stream_events_v3_marks_chunks_from_protocol_events(
    telemetry: CapturedTelemetry, handler: LLMOtelCallbackHandler
) -> None:
    list(UsageChatModel().stream_events("hi", config={"callbacks": [handler]}, version="v3"))

    chat = dict(telemetry.span(CHAT).attributes or {})
    assert chat["llm.stream.chunks"] == len(REPLY.split())  # one per content delta, not doubled
    assert chat["gen_ai.usage.output_tokens"] == OUTPUT_TOKENS
    assert telemetry.histogram_count(TTFT) == 1


def test_stream_closed_early_ends_every_span_without_error(
    telemetry: CapturedTelemetry, handler: LLMOtelCallbackHandler
) -> None:
    stream: Any = rag_chain().stream(QUESTION, config={"callbacks": [handler]})
    for _ in stream:
        break
    stream.close()

    chat = telemetry.span(CHAT)
    assert chat.attributes["llm.stream.outcome"] == "closed_early"  # type: ignore[index]
    assert chat.status.status_code is StatusCode.UNSET
    assert telemetry.counter("llm.errors") == 0


async def test_astream_closed_early_ends_every_span_without_error(
    telemetry: CapturedTelemetry, handler: LLMOtelCallbackHandler
) -> None:
    stream: Any = rag_chain().astream(QUESTION, config={"callbacks": [handler]})
    async for _ in stream:
        break
    await stream.aclose()
    for _ in range(200):  # inner generators are closed by the event loop's finalizer a moment later
        if handler.open_runs == 0:
            break
        await asyncio.sleep(0.005)

    assert telemetry.span("invoke_workflow rag").attributes["llm.stream.outcome"] == "closed_early"  # type: ignore[index]
    assert telemetry.span(CHAT).attributes["llm.stream.outcome"] == "closed_early"  # type: ignore[index]
    assert all(s.status.status_code is StatusCode.UNSET for s in telemetry.spans())


# -- concurrency -------------------------------------------------------------------------


def _parallel_models() -> RunnableParallel[Any]:
    return RunnableParallel(
        fast=UsageChatModel(), smart=UsageChatModel(model_name="gpt-4o", response_model="gpt-4o-2024-08-06")
    )


def test_runnable_parallel_sync(telemetry: CapturedTelemetry, handler: LLMOtelCallbackHandler) -> None:
    with telemetry.telemetry.tracer.start_as_current_span("outer"):
        _parallel_models().invoke("hi", config={"callbacks": [handler]})

    telemetry.assert_single_trace(
        {"outer": {"invoke_workflow RunnableParallel<fast,smart>": {CHAT: {}, "chat gpt-4o": {}}}}
    )
    assert telemetry.counter("llm.tokens.input", {"gen_ai.request.model": "gpt-4o"}) == INPUT_TOKENS
    assert telemetry.counter("llm.tokens.input", {"gen_ai.request.model": REQUEST_MODEL}) == INPUT_TOKENS


async def test_runnable_parallel_async(telemetry: CapturedTelemetry, handler: LLMOtelCallbackHandler) -> None:
    with telemetry.telemetry.tracer.start_as_current_span("outer"):
        await _parallel_models().ainvoke("hi", config={"callbacks": [handler]})

    telemetry.assert_single_trace(
        {"outer": {"invoke_workflow RunnableParallel<fast,smart>": {CHAT: {}, "chat gpt-4o": {}}}}
    )
    assert telemetry.counter("llm.tokens.output") == 2 * OUTPUT_TOKENS


async def test_abatch_many_inputs_each_get_their_own_workflow(
    telemetry: CapturedTelemetry, handler: LLMOtelCallbackHandler
) -> None:
    inputs = [{"question": f"capital of france {i}"} for i in range(40)]
    with telemetry.telemetry.tracer.start_as_current_span("POST /batch"):
        results = await rag_chain(UsageChatModel(delay_s=0.001)).abatch(inputs, config={"callbacks": [handler]})

    assert len(results) == 40
    telemetry.assert_single_trace({"POST /batch": RAG_SHAPE})
    workflows = {s.context.span_id for s in spans_named(telemetry, "invoke_workflow rag") if s.context}
    chats = spans_named(telemetry, CHAT)
    assert len(workflows) == len(chats) == 40
    assert {s.parent.span_id for s in chats if s.parent} == workflows  # one model call under each workflow
    assert telemetry.counter("llm.tokens.input") == 40 * INPUT_TOKENS
    assert telemetry.histogram_sum("llm.cost.usd") == pytest.approx(call_cost(40))


def _assert_one_trace_per_request(telemetry: CapturedTelemetry, requests: int) -> None:
    traces = telemetry.traces()
    assert len(traces) == requests
    sizes = set()
    for spans in traces.values():
        outer = [s for s in spans if s.name.startswith("request ")]
        assert len(outer) == 1, [s.name for s in spans]
        index = outer[0].name.split()[1]
        telemetry.assert_single_trace({f"request {index}": {f"invoke_workflow rag {index}": RAG_SHAPE["invoke_workflow rag"]}},
                                      spans=spans)
        sizes.add(len(spans))
    assert len(sizes) == 1  # every request produced the same spans, none borrowed from another


async def test_concurrent_requests_each_stay_in_their_own_trace(
    telemetry: CapturedTelemetry, handler: LLMOtelCallbackHandler
) -> None:
    tracer = telemetry.telemetry.tracer
    chain = rag_chain(UsageChatModel(delay_s=0.001))

    async def request(index: int) -> None:
        with tracer.start_as_current_span(f"request {index}"):
            config: Any = {"callbacks": [handler], "run_name": f"rag {index}"}
            await chain.ainvoke({"question": f"capital of france {index}"}, config=config)

    await asyncio.gather(*(request(i) for i in range(50)))

    _assert_one_trace_per_request(telemetry, 50)
    assert telemetry.counter("llm.tokens.input") == 50 * INPUT_TOKENS


async def test_concurrent_streams_each_stay_in_their_own_trace(
    telemetry: CapturedTelemetry, handler: LLMOtelCallbackHandler
) -> None:
    tracer = telemetry.telemetry.tracer
    chain = rag_chain(UsageChatModel(delay_s=0.001))

    async def request(index: int) -> None:
        with tracer.start_as_current_span(f"request {index}"):
            config: Any = {"callbacks": [handler], "run_name": f"rag {index}"}
            async for _ in chain.astream({"question": f"paris {index}"}, config=config):
                await asyncio.sleep(0)

    await asyncio.gather(*(request(i) for i in range(20)))

    _assert_one_trace_per_request(telemetry, 20)
    assert telemetry.histogram_count(TTFT) == 20


def test_concurrent_threads_each_stay_in_their_own_trace(
    telemetry: CapturedTelemetry, handler: LLMOtelCallbackHandler
) -> None:
    tracer = telemetry.telemetry.tracer
    chain = rag_chain().with_config(callbacks=[handler])

    def request(index: int) -> None:
        with tracer.start_as_current_span(f"request {index}"):
            chain.invoke({"question": f"capital of france {index}"}, config={"run_name": f"rag {index}"})

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(request, range(24)))

    _assert_one_trace_per_request(telemetry, 24)


async def test_web_requests_through_the_asgi_middleware_are_one_trace_each(
    telemetry: CapturedTelemetry, handler: LLMOtelCallbackHandler
) -> None:
    import httpx
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    from llm_otel.integrations import asgi

    chain = rag_chain(UsageChatModel(delay_s=0.001))

    async def answer(request: Request) -> JSONResponse:
        message = await chain.ainvoke(await request.json(), config={"callbacks": [handler]})
        return JSONResponse({"answer": message.content})

    app = asgi.LLMOtelMiddleware(Starlette(routes=[Route("/chat", answer, methods=["POST"])]))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client:
        responses = await asyncio.gather(*(client.post("/chat", json=QUESTION) for _ in range(10)))

    assert all(r.json() == {"answer": REPLY} for r in responses)
    traces = telemetry.traces()
    assert len(traces) == 10
    for spans in traces.values():
        server = [s for s in spans if s.kind is SpanKind.SERVER]
        assert len(server) == 1
        telemetry.assert_single_trace({server[0].name: RAG_SHAPE}, spans=spans)
        assert (server[0].attributes or {})["llm.calls"] == 1  # the request roll-up saw the model call
        assert (server[0].attributes or {})["llm.usage.input_tokens"] == INPUT_TOKENS


def test_sync_batch(telemetry: CapturedTelemetry, handler: LLMOtelCallbackHandler) -> None:
    rag_chain().batch([QUESTION] * 6, config={"callbacks": [handler]})

    assert len(telemetry.traces()) == 6  # no ambient span: each top-level run starts its own trace
    assert telemetry.counter("llm.tokens.input") == 6 * INPUT_TOKENS


# -- errors ------------------------------------------------------------------------------


class QuotaExceeded(Exception):
    status_code = 429


def _failing_step(error: BaseException) -> Any:
    def explode(value: Any) -> Any:
        raise error

    return explode


def _assert_failed(span: ReadableSpan, error_type: str) -> None:
    assert span.status.status_code is StatusCode.ERROR
    assert (span.attributes or {})["error.type"] == error_type


def test_exception_in_a_step_propagates_unchanged(
    telemetry: CapturedTelemetry, handler: LLMOtelCallbackHandler
) -> None:
    boom = LookupError("no such answer")
    with pytest.raises(LookupError) as raised, telemetry.telemetry.tracer.start_as_current_span("POST /chat"):
        rag_chain(step=_failing_step(boom)).invoke(QUESTION, config={"callbacks": [handler]})

    assert raised.value is boom
    telemetry.assert_single_trace({"POST /chat": {"invoke_workflow rag": {"chain explode": {}}}})
    _assert_failed(telemetry.span("chain explode"), "LookupError")
    _assert_failed(telemetry.span("invoke_workflow rag"), "LookupError")
    assert spans_named(telemetry, "chat") == []
    assert telemetry.span("chain explode").events[0].name == "exception"


async def test_exception_in_an_async_step_propagates_unchanged(
    telemetry: CapturedTelemetry, handler: LLMOtelCallbackHandler
) -> None:
    boom = KeyError("missing")
    with pytest.raises(KeyError) as raised:
        await rag_chain(step=_failing_step(boom)).ainvoke(QUESTION, config={"callbacks": [handler]})

    assert raised.value is boom
    _assert_failed(telemetry.span("chain explode"), "KeyError")
    _assert_failed(telemetry.span("invoke_workflow rag"), "KeyError")


@pytest.mark.parametrize("streamed", [False, True])
async def test_model_failure_is_recorded_on_the_chat_span(
    telemetry: CapturedTelemetry, handler: LLMOtelCallbackHandler, streamed: bool
) -> None:
    boom = ConnectionError("provider unreachable")
    chain = rag_chain(UsageChatModel(fail_with=boom))
    with pytest.raises(ConnectionError) as raised:
        if streamed:
            async for _ in chain.astream(QUESTION, config={"callbacks": [handler]}):
                pass
        else:
            await chain.ainvoke(QUESTION, config={"callbacks": [handler]})

    assert raised.value is boom
    _assert_failed(telemetry.span(CHAT), "ConnectionError")
    _assert_failed(telemetry.span("invoke_workflow rag"), "ConnectionError")
    assert telemetry.counter("llm.errors", {"error.type": "ConnectionError"}) == 1
    assert telemetry.counter("llm.tokens.input") == 0


def test_tokens_streamed_before_a_failure_are_recorded(
    telemetry: CapturedTelemetry, handler: LLMOtelCallbackHandler
) -> None:
    boom = TimeoutError("stream stalled")
    with pytest.raises(TimeoutError):
        for _ in UsageChatModel(fail_mid_stream=boom).stream("hi", config={"callbacks": [handler]}):
            pass

    _assert_failed(telemetry.span(CHAT), "TimeoutError")
    assert telemetry.counter("llm.tokens.input") == INPUT_TOKENS
    assert telemetry.histogram_count(TTFT) == 1


async def test_rate_limited_model_call_is_counted(
    telemetry: CapturedTelemetry, handler: LLMOtelCallbackHandler
) -> None:
    boom = QuotaExceeded("slow down")
    with pytest.raises(QuotaExceeded) as raised:
        await rag_chain(UsageChatModel(fail_with=boom)).ainvoke(QUESTION, config={"callbacks": [handler]})

    assert raised.value is boom
    chat = telemetry.span(CHAT)
    assert chat.status.status_code is StatusCode.ERROR
    assert telemetry.counter("llm.rate_limited") == 1
    assert telemetry.counter("llm.errors") == 1
    step = telemetry.span("invoke_workflow rag")  # the chain span names the failure as the model span does
    _assert_failed(step, str((chat.attributes or {})["error.type"]))


def test_tool_error_is_recorded_on_the_tool_span(
    telemetry: CapturedTelemetry, handler: LLMOtelCallbackHandler
) -> None:
    from langchain_core.tools import tool

    @tool
    def lookup(city: str) -> str:
        """Look a city up."""
        raise ConnectionError("directory offline")

    with pytest.raises(ConnectionError):
        (RunnableLambda(str) | lookup).invoke("paris", config={"callbacks": [handler]})

    span = telemetry.span("execute_tool lookup")
    _assert_failed(span, "ConnectionError")
    assert span.attributes["gen_ai.tool.name"] == "lookup"  # type: ignore[index]


# -- runs that never end -----------------------------------------------------------------


def _start_chat(handler: LLMOtelCallbackHandler, run_id: UUID, parent: UUID | None = None) -> None:
    handler.on_chat_model_start(
        {"name": "ChatOpenAI"},
        [[HumanMessage("hi")]],
        run_id=run_id,
        parent_run_id=parent,
        invocation_params={"model": REQUEST_MODEL, "_type": "openai-chat"},
        metadata={"ls_provider": "openai"},
    )


def test_end_open_runs_closes_runs_that_never_ended(telemetry: CapturedTelemetry, tracker: OpenSpanTracker) -> None:
    handler = LLMOtelCallbackHandler()
    root, child = uuid4(), uuid4()
    handler.on_chain_start({}, {}, run_id=root, name="agent_loop")
    _start_chat(handler, child, root)
    assert handler.open_runs == 2 and len(tracker.open) == 2

    assert handler.end_open_runs() == 2

    assert tracker.open == {}
    _assert_failed(telemetry.span("invoke_workflow agent_loop"), ABANDONED_ERROR_TYPE)
    _assert_failed(telemetry.span(CHAT), ABANDONED_ERROR_TYPE)
    assert telemetry.counter("llm.errors", {"error.type": ABANDONED_ERROR_TYPE}) == 1
    handler.on_llm_end(LLMResult(generations=[]), run_id=child)  # a late end is ignored quietly
    assert unknown(telemetry, "run_unknown") == 0


def test_a_child_left_open_after_its_root_ended_is_swept(
    telemetry: CapturedTelemetry, tracker: OpenSpanTracker
) -> None:
    handler = LLMOtelCallbackHandler(orphan_timeout_s=0)
    root, child, later = uuid4(), uuid4(), uuid4()
    handler.on_chain_start({}, {}, run_id=root, name="first")
    _start_chat(handler, child, root)
    handler.on_chain_end({}, run_id=root)
    assert handler.open_runs == 1  # the child may still report its end a moment later

    handler.on_chain_start({}, {}, run_id=later, name="second")  # any new run sweeps expired orphans
    handler.on_chain_end({}, run_id=later)

    assert handler.open_runs == 0 and tracker.open == {}
    _assert_failed(telemetry.span(CHAT), ABANDONED_ERROR_TYPE)


def test_open_runs_are_bounded(telemetry: CapturedTelemetry, tracker: OpenSpanTracker) -> None:
    handler = LLMOtelCallbackHandler(max_open_runs=2)
    runs = [uuid4() for _ in range(3)]
    for index, run_id in enumerate(runs):
        handler.on_chain_start({}, {}, run_id=run_id, name=f"run{index}")
    assert handler.open_runs == 2
    _assert_failed(telemetry.span("invoke_workflow run0"), ABANDONED_ERROR_TYPE)
    for run_id in runs[1:]:
        handler.on_chain_end({}, run_id=run_id)
    assert tracker.open == {}


def test_run_timeout(telemetry: CapturedTelemetry, tracker: OpenSpanTracker) -> None:
    handler = LLMOtelCallbackHandler(run_timeout_s=0)
    stale, fresh = uuid4(), uuid4()
    handler.on_chain_start({}, {}, run_id=stale, name="stale")
    handler.on_chain_start({}, {}, run_id=fresh, name="fresh")
    handler.on_chain_end({}, run_id=fresh)
    assert handler.open_runs == 0 and tracker.open == {}
    _assert_failed(telemetry.span("invoke_workflow stale"), ABANDONED_ERROR_TYPE)


# -- bad payloads ------------------------------------------------------------------------


def test_missing_fields_are_counted_not_raised(telemetry: CapturedTelemetry, handler: LLMOtelCallbackHandler) -> None:
    first, second, third = uuid4(), uuid4(), uuid4()
    handler.on_chat_model_start(None, [], run_id=first)  # type: ignore[arg-type]
    handler.on_llm_end(LLMResult(generations=[]), run_id=first)
    handler.on_chat_model_start({}, [[]], run_id=second, invocation_params={"model": REQUEST_MODEL})
    handler.on_llm_end(None, run_id=second)  # type: ignore[arg-type]
    handler.on_llm_end(LLMResult(generations=[[]]), run_id=uuid4())
    handler.on_chain_end({}, run_id=None)  # type: ignore[arg-type]
    handler.on_chain_start(None, None, run_id=third)  # type: ignore[arg-type]
    handler.on_chain_error(None, run_id=third)  # type: ignore[arg-type]

    for reason in ("serialized_missing", "invocation_params_missing", "model_missing", "generations_empty",
                   "llm_result_missing", "run_unknown", "run_id_missing", "error_missing"):
        assert unknown(telemetry, reason) >= 1, reason
    _assert_failed(telemetry.span("invoke_workflow chain"), "unknown")
    assert telemetry.span("chat").attributes["gen_ai.provider.name"] == "unknown"  # type: ignore[index]


class _UnprintableError(Exception):
    def __str__(self) -> str:
        raise RuntimeError("no str for you")


class _Hostile:
    """Every public attribute access raises (private ones are left to tooling such as hypothesis)."""

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        raise RuntimeError(name)


_RUN_IDS = [uuid4() for _ in range(4)]
_SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**40), 2**40), st.floats(allow_nan=True), st.text(max_size=12),
    st.binary(max_size=4), st.just(_Hostile()),
)
_KEYS = st.sampled_from([
    "name", "id", "kwargs", "model", "model_name", "ls_provider", "ls_model_name", "ls_temperature", "_type",
    "temperature", "max_tokens", "token_usage", "usage", "prompt_tokens", "input_tokens", "finish_reason",
    "model_provider", "description", "llm.task_type", "event",
])
_ODD = st.recursive(
    _SCALARS,
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(_KEYS, inner, max_size=4)),
    max_leaves=10,
)
_MESSAGES = st.builds(
    lambda usage, metadata, content: SimpleNamespace(usage_metadata=usage, response_metadata=metadata, content=content),
    _ODD, _ODD, _ODD,
)
_GENERATIONS = st.lists(
    st.lists(st.builds(lambda m, info, text: SimpleNamespace(message=m, generation_info=info, text=text),
                       st.none() | _MESSAGES, _ODD, _ODD), max_size=2),
    max_size=2,
)
_RESULTS = st.one_of(
    _ODD,
    st.builds(lambda g, o: LLMResult.model_construct(generations=g, llm_output=o), _GENERATIONS | _ODD, _ODD),
)
_ERRORS = st.one_of(
    _ODD, st.sampled_from([ValueError("x"), GeneratorExit(), _UnprintableError(), asyncio.CancelledError()])
)
_RUN_ID = st.one_of(st.sampled_from(_RUN_IDS), st.none(), st.text(max_size=2), st.integers(0, 3), st.just([1]))
_PAYLOAD_BY_METHOD: dict[str, tuple[Any, ...]] = {
    "on_chain_start": (_ODD, _ODD),
    "on_chain_end": (_ODD,),
    "on_chain_error": (_ERRORS,),
    "on_chat_model_start": (_ODD, _ODD | st.just([[HumanMessage("hi")]])),
    "on_llm_start": (_ODD, _ODD),
    "on_llm_new_token": (_ODD,),
    "on_stream_event": (_ODD | st.just({"event": "content-block-delta"}),),
    "on_llm_end": (_RESULTS,),
    "on_llm_error": (_ERRORS,),
    "on_tool_start": (_ODD, _ODD),
    "on_tool_end": (_ODD,),
    "on_tool_error": (_ERRORS,),
    "on_retriever_start": (_ODD, _ODD),
    "on_retriever_end": (_ODD,),
    "on_retriever_error": (_ERRORS,),
}


_POSITIONAL_NAMES = {
    method: [
        p.name for p in inspect.signature(getattr(LLMOtelCallbackHandler, method)).parameters.values()
        if p.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD
    ]
    for method in _PAYLOAD_BY_METHOD
}


@st.composite
def _events(draw: st.DrawFn) -> tuple[str, tuple[Any, ...], dict[str, Any]]:
    method = draw(st.sampled_from(sorted(_PAYLOAD_BY_METHOD)))
    positional = tuple(draw(strategy) for strategy in _PAYLOAD_BY_METHOD[method])
    kwargs = draw(st.fixed_dictionaries(
        {"run_id": _RUN_ID, "parent_run_id": _RUN_ID},
        optional={
            "tags": _ODD | st.just(["langsmith:hidden"]),
            "metadata": _ODD,
            "name": _ODD,
            "invocation_params": _ODD,
            "response": _RESULTS,
            "tool_call_id": _ODD,
            "inputs": _ODD,
            "chunk": _ODD,
        },
    ))
    for name in _POSITIONAL_NAMES[method]:  # a keyword repeating a positional parameter is a caller bug
        kwargs.pop(name, None)
    return method, positional, kwargs


class _ErrorLog(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.ERROR)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def test_odd_payloads_never_raise_and_leave_nothing_open(
    telemetry: CapturedTelemetry, tracker: OpenSpanTracker
) -> None:
    errors = _ErrorLog()
    logger = logging.getLogger("llm_otel")
    logger.addHandler(errors)

    @settings(max_examples=examples(300), deadline=None)
    @given(events=st.lists(_events(), max_size=12), capture_content=st.booleans())
    def feed(events: list[tuple[str, tuple[Any, ...], dict[str, Any]]], capture_content: bool) -> None:
        forget_logged_causes()
        errors.messages.clear()
        tracker.open.clear()
        telemetry.telemetry.capture_content = capture_content
        handler = LLMOtelCallbackHandler()
        for method, positional, kwargs in events:
            getattr(handler, method)(*positional, **kwargs)
        handler.end_open_runs()
        assert handler.open_runs == 0
        assert tracker.open == {}, sorted(tracker.open.values())
        assert errors.messages == [], errors.messages  # bad input is handled, not caught by the safety net

    try:
        feed()
    finally:
        logger.removeHandler(errors)
        telemetry.telemetry.capture_content = False


# -- packaging -----------------------------------------------------------------------------


def test_importing_llm_otel_does_not_import_langchain() -> None:
    code = "import sys, llm_otel; sys.exit(any(m.startswith('langchain') for m in sys.modules))"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


def test_missing_langchain_gives_an_install_hint() -> None:
    code = (
        "import sys; sys.modules['langchain_core'] = None\n"
        "try:\n    import llm_otel.integrations.langchain\n"
        "except ImportError as exc:\n    print(exc)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "pip install 'llm-otel[langchain]'" in result.stdout


# --- cancellation and Ctrl-C: outcomes, not errors ---------------------------------------
def assert_every_span_interrupted(telemetry: CapturedTelemetry, outcome: str) -> None:
    chat = telemetry.span(CHAT)
    assert chat.attributes["llm.stream.outcome"] == outcome  # type: ignore[index]
    assert telemetry.span("invoke_workflow rag").attributes["llm.stream.outcome"] == outcome  # type: ignore[index]
    for span in telemetry.spans():
        assert span.status.status_code is StatusCode.UNSET, span.name
        assert "error.type" not in (span.attributes or {}), span.name
    assert telemetry.counter("llm.errors") == 0
    assert telemetry.histogram_count("gen_ai.client.operation.duration", llm__stream__outcome=outcome) == 1


async def test_cancelled_ainvoke_is_cancelled_not_an_error(
    telemetry: CapturedTelemetry, handler: LLMOtelCallbackHandler
) -> None:
    from langchain_core.callbacks import AsyncCallbackHandler

    model_called = asyncio.Event()

    class ModelCalled(AsyncCallbackHandler):
        async def on_chat_model_start(self, *args: Any, **kwargs: Any) -> None:
            model_called.set()

    chain = rag_chain(UsageChatModel(delay_s=3600))
    task = asyncio.create_task(chain.ainvoke(QUESTION, config={"callbacks": [handler, ModelCalled()]}))
    await asyncio.wait_for(model_called.wait(), 20)
    await asyncio.sleep(0.01)  # the model is now awaiting its (never coming) answer
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    assert_every_span_interrupted(telemetry, "cancelled")


def test_keyboard_interrupt_in_the_model_is_cancelled_and_propagates_unchanged(
    telemetry: CapturedTelemetry, handler: LLMOtelCallbackHandler
) -> None:
    interrupt = KeyboardInterrupt()

    with pytest.raises(KeyboardInterrupt) as caught:
        rag_chain(UsageChatModel(fail_with=interrupt)).invoke(QUESTION, config={"callbacks": [handler]})

    assert caught.value is interrupt
    assert_every_span_interrupted(telemetry, "cancelled")


# -- groundedness ---------------------------------------------------------------------------


def test_retrieved_documents_reach_the_scorer_of_the_answer_in_the_same_trace() -> None:
    seen: list[Any] = []
    with capture(evaluator=lambda sample: seen.append(sample.context), evaluation_sample_rate=1.0,
                 groundedness="lexical") as telemetry:
        handler = LLMOtelCallbackHandler()
        rag_chain(UsageChatModel()).invoke(QUESTION, config={"callbacks": [handler]})
        rag_chain(UsageChatModel(reply="Madrid has 4 million people.")).invoke(QUESTION, config={"callbacks": [handler]})
        telemetry.telemetry.evaluator.join()
        assert seen == [tuple(d.page_content for d in DOCUMENTS)] * 2
        scores = [e.attributes["gen_ai.evaluation.score.label"] for s in telemetry.spans() for e in s.events
                  if e.name == "gen_ai.evaluation.result" and e.attributes["gen_ai.evaluation.name"] == "hallucination"]
        assert scores == ["supported", "unsupported"]


def test_start_events_with_equal_but_differently_typed_values_are_read_apart() -> None:
    from llm_otel.integrations import _langchain_payload as payload

    def read(params: dict[str, Any]) -> dict[str, Any]:
        return payload.model_request({"kwargs": {}}, {"model": "gpt-4o", **params}, {}).attributes

    # 1, 1.0 and True are equal dict keys; the request memo must still read each as itself
    assert read({"max_tokens": 1}) == {"gen_ai.request.max_tokens": 1}
    assert read({"max_tokens": True}) == {}
    assert read({"temperature": 1.0}) == {"gen_ai.request.temperature": 1.0}
    assert type(read({"temperature": 1})["gen_ai.request.temperature"]) is int
    # unhashable values are read every time, not kept
    assert payload.model_request({}, {"model": ["not", "a", "name"], "max_tokens": 5}, {}).model is None


def test_the_request_memo_stays_exact_when_full(monkeypatch: pytest.MonkeyPatch) -> None:
    from llm_otel.integrations import _langchain_payload as payload

    monkeypatch.setattr(payload, "_requests", {})
    for index in range(payload._REQUESTS_LIMIT + 50):
        assert payload.model_request({}, {"model": f"model-{index}"}, {}).model == f"model-{index}"
    assert len(payload._requests) == payload._REQUESTS_LIMIT
