"""A framework handler over a chat model that itself calls an instrumented SDK: one record.

LangChain through ``langchain-openai``'s ``ChatOpenAI``; LlamaIndex through a ``CustomLLM``
whose ``complete`` calls the openai SDK (``llama-index-llms-openai`` would replace the
pinned openai package). Both hit the stand-in server with the real SDK, by ``invoke`` and
by streams: read to the end, and abandoned after the first chunk.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import Any

import openai
import pytest
from langchain_core.messages import HumanMessage
from langchain_openai import ChatOpenAI
from llama_index.core.base.llms.types import CompletionResponse, CompletionResponseGen, LLMMetadata
from llama_index.core.llms import ChatMessage, CustomLLM
from llama_index.core.llms.callbacks import llm_completion_callback

import llm_otel
from llm_otel.integrations import llamaindex
from llm_otel.integrations.langchain import LLMOtelCallbackHandler
from llm_otel.testing import CapturedTelemetry
from llm_otel.tools.devserver import StandInServer
from tests.instrumentation.conftest import llm_spans


def assert_one_record(telemetry: CapturedTelemetry, input_tokens: int, output_tokens: int) -> None:
    with_usage = llm_spans(telemetry)
    assert len(with_usage) == 1, [(s.name, dict(s.attributes)) for s in telemetry.spans()]
    assert with_usage[0].instrumentation_scope.name == "llm_otel"
    assert telemetry.counter("llm.tokens.input") == input_tokens
    assert telemetry.counter("llm.tokens.output") == output_tokens
    assert telemetry.histogram_count("gen_ai.client.operation.duration") == 1
    assert telemetry.histogram_count("llm.cost.usd") == 1
    assert telemetry.histogram_sum("llm.cost.usd") == pytest.approx(with_usage[0].attributes["llm.cost.usd"])
    assert_wire_span_under_framework_span(telemetry)


def assert_wire_span_under_framework_span(telemetry: CapturedTelemetry) -> None:
    """The framework's own span stays, without usage, as the parent of the wire-level span."""
    deferred = [s for s in telemetry.spans() if s.attributes.get("llm.record.deferred")]
    assert len(deferred) == 1, [(s.name, dict(s.attributes)) for s in telemetry.spans()]
    outer = deferred[0]
    assert not any(key.startswith(("gen_ai.usage.", "llm.cost.")) for key in outer.attributes)
    inner = [s for s in telemetry.spans() if s.kind.name == "CLIENT" and s is not outer]
    assert len(inner) == 1
    assert inner[0].parent is not None and inner[0].parent.span_id == outer.context.span_id
    assert inner[0].context.trace_id == outer.context.trace_id


@pytest.mark.parametrize("sdk_instrumented", [True, False])
def test_langchain_handler_over_chat_openai(
    server: StandInServer, telemetry: CapturedTelemetry, sdk_instrumented: bool
) -> None:
    model = ChatOpenAI(model="gpt-4o-mini", base_url=server.openai_base_url, api_key="test", max_retries=0)
    if sdk_instrumented:
        llm_otel.instrument("openai")
    try:
        message = model.invoke("Say hello", config={"callbacks": [LLMOtelCallbackHandler()]})
    finally:
        llm_otel.uninstrument()
    usage = message.usage_metadata
    assert usage is not None
    if sdk_instrumented:
        assert_one_record(telemetry, usage["input_tokens"], usage["output_tokens"])
    else:  # the handler alone records the call
        assert len(llm_spans(telemetry)) == 1
        assert telemetry.counter("llm.tokens.input") == usage["input_tokens"]


@pytest.fixture
def chat_openai(server: StandInServer) -> Iterator[ChatOpenAI]:
    """``ChatOpenAI`` streaming with usage, over the instrumented openai SDK."""
    llm_otel.instrument("openai")
    try:
        yield ChatOpenAI(model="gpt-4o-mini", base_url=server.openai_base_url, api_key="test", max_retries=0,
                         stream_usage=True)
    finally:
        llm_otel.uninstrument()


@pytest.fixture
async def async_chat_openai(server: StandInServer) -> AsyncIterator[ChatOpenAI]:
    """The same for async runs, with an HTTP client of this test's event loop (langchain-openai
    shares one default client per process, which a later test's loop cannot use)."""
    llm_otel.instrument("openai")
    try:
        async with openai.DefaultAsyncHttpxClient() as http:
            yield ChatOpenAI(model="gpt-4o-mini", base_url=server.openai_base_url, api_key="test", max_retries=0,
                             stream_usage=True, http_async_client=http)
    finally:
        llm_otel.uninstrument()


def test_langchain_handler_over_a_chat_openai_stream(telemetry: CapturedTelemetry, chat_openai: ChatOpenAI) -> None:
    handler = LLMOtelCallbackHandler()
    chunks = list(chat_openai.stream("Say hello", config={"callbacks": [handler]}))
    usage = sum(chunks[1:], chunks[0]).usage_metadata
    assert usage is not None and usage["output_tokens"] > 0
    assert_one_record(telemetry, usage["input_tokens"], usage["output_tokens"])
    assert handler.open_runs == 0


async def test_langchain_handler_over_a_chat_openai_astream(
    telemetry: CapturedTelemetry, async_chat_openai: ChatOpenAI
) -> None:
    handler = LLMOtelCallbackHandler()
    chunks = [chunk async for chunk in async_chat_openai.astream("Say hello", config={"callbacks": [handler]})]
    usage = sum(chunks[1:], chunks[0]).usage_metadata
    assert usage is not None and usage["output_tokens"] > 0
    assert_one_record(telemetry, usage["input_tokens"], usage["output_tokens"])
    assert handler.open_runs == 0


# generate() sums the runs' token usage; langchain-openai warns on the stand-in's null detail counts
@pytest.mark.filterwarnings("ignore:Unexpected type for token usage:UserWarning")
def test_langchain_handler_over_a_chat_openai_batch(telemetry: CapturedTelemetry, chat_openai: ChatOpenAI) -> None:
    """``batch`` runs each input in its own thread; ``generate`` starts every run, then sends in turn."""
    handler = LLMOtelCallbackHandler()
    replies = chat_openai.batch(["Say hello", "Say goodbye"], config={"callbacks": [handler]})
    result = chat_openai.generate([[HumanMessage("One")], [HumanMessage("Two")]], callbacks=[handler])
    replies += [generation[0].message for generation in result.generations]
    usages = [reply.usage_metadata for reply in replies]
    assert all(usage is not None for usage in usages)
    assert telemetry.counter("llm.tokens.input") == sum(u["input_tokens"] for u in usages if u)
    assert telemetry.counter("llm.tokens.output") == sum(u["output_tokens"] for u in usages if u)
    assert telemetry.histogram_count("gen_ai.client.operation.duration") == 4
    deferred = [s for s in telemetry.spans() if s.attributes.get("llm.record.deferred")]
    assert len(deferred) == 4
    for outer in deferred:  # each run's span parents exactly one API call
        inner = [s for s in llm_spans(telemetry) if s.parent is not None and s.parent.span_id == outer.context.span_id]
        assert len(inner) == 1


def assert_one_closed_early_record(telemetry: CapturedTelemetry) -> None:
    """A stream the caller stopped reading: one call counted, closed early, with no error anywhere."""
    assert telemetry.histogram_count("gen_ai.client.operation.duration") == 1
    assert telemetry.histogram_count("gen_ai.client.operation.duration", llm__stream__outcome="closed_early") == 1
    assert telemetry.counter("llm.tokens.output") == 0  # the usage chunk was never read
    # stopped before its usage arrived: lacks usage, not a price (not counted as unpriced)
    assert telemetry.histogram_count("llm.cost.usd") == 0
    assert telemetry.counter("llm.cost.unpriced") == 0
    assert_wire_span_under_framework_span(telemetry)
    spans = telemetry.spans()
    assert all(s.attributes.get("llm.stream.outcome") == "closed_early" for s in spans), [
        (s.name, dict(s.attributes)) for s in spans]
    assert not any("error.type" in s.attributes for s in spans)


def test_langchain_handler_over_an_abandoned_chat_openai_stream(
    telemetry: CapturedTelemetry, chat_openai: ChatOpenAI
) -> None:
    handler = LLMOtelCallbackHandler()
    stream = chat_openai.stream("Say hello", config={"callbacks": [handler]})
    for _ in stream:
        break
    stream.close()
    assert_one_closed_early_record(telemetry)
    assert handler.open_runs == 0


async def test_langchain_handler_over_an_abandoned_chat_openai_astream(
    telemetry: CapturedTelemetry, async_chat_openai: ChatOpenAI
) -> None:
    handler = LLMOtelCallbackHandler()
    stream = async_chat_openai.astream("Say hello", config={"callbacks": [handler]})
    async for _ in stream:
        break
    await stream.aclose()
    # the inner generators (ChatOpenAI's, the SDK stream) are closed by the event loop, next turns
    for _ in range(100):
        if len(telemetry.spans()) == 2:
            break
        await asyncio.sleep(0)
    assert_one_closed_early_record(telemetry)
    assert handler.open_runs == 0


class SDKBackedLLM(CustomLLM):
    """A LlamaIndex LLM that calls the openai SDK, as LlamaIndex's own OpenAI LLM does."""

    base_url: str
    model: str = "gpt-4o-mini"

    @property
    def metadata(self) -> LLMMetadata:
        return LLMMetadata(model_name=self.model, is_chat_model=False)

    @llm_completion_callback()
    def complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponse:
        with openai.OpenAI(base_url=self.base_url, api_key="test", max_retries=0) as client:
            completion = client.chat.completions.create(
                model=self.model, messages=[{"role": "user", "content": prompt}]
            )
        return CompletionResponse(text=completion.choices[0].message.content or "", raw=completion)

    @llm_completion_callback()
    def stream_complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponseGen:
        # as LlamaIndex's OpenAI LLM does: the request is sent when the caller starts reading
        def gen() -> CompletionResponseGen:
            with openai.OpenAI(base_url=self.base_url, api_key="test", max_retries=0) as client:
                stream = client.chat.completions.create(
                    model=self.model, messages=[{"role": "user", "content": prompt}], stream=True,
                    stream_options={"include_usage": True},
                )
                with stream:
                    text = ""
                    for chunk in stream:
                        delta = chunk.choices[0].delta.content or "" if chunk.choices else ""
                        text += delta
                        yield CompletionResponse(text=text, delta=delta, raw=chunk)

        return gen()


@pytest.fixture
def llamaindex_handler() -> Iterator[None]:
    llamaindex.instrument()
    try:
        yield
    finally:
        llamaindex.uninstrument()


def test_llamaindex_handler_over_an_sdk_backed_llm(
    server: StandInServer, instrumented: CapturedTelemetry, llamaindex_handler: None
) -> None:
    response = SDKBackedLLM(base_url=server.openai_base_url).complete("Say hello")
    usage = response.raw.usage
    assert_one_record(instrumented, usage.prompt_tokens, usage.completion_tokens)
    # LlamaIndex's span is current while the SDK call runs: the wire span is its child
    outer = next(s for s in instrumented.spans() if s.attributes.get("llm.record.deferred"))
    inner = llm_spans(instrumented)[0]
    assert inner.parent is not None and inner.parent.span_id == outer.context.span_id


@pytest.mark.parametrize("method", ["stream_complete", "stream_chat"])
def test_llamaindex_handler_over_an_sdk_backed_stream(
    server: StandInServer, instrumented: CapturedTelemetry, llamaindex_handler: None, method: str
) -> None:
    llm = SDKBackedLLM(base_url=server.openai_base_url)
    if method == "stream_chat":
        responses = list(llm.stream_chat([ChatMessage(role="user", content="Say hello")]))
    else:
        responses = list(llm.stream_complete("Say hello"))
    usage = responses[-1].raw.usage
    assert usage is not None and usage.completion_tokens > 0
    assert_one_record(instrumented, usage.prompt_tokens, usage.completion_tokens)


def test_llamaindex_handler_over_an_abandoned_sdk_backed_stream(
    server: StandInServer, instrumented: CapturedTelemetry, llamaindex_handler: None
) -> None:
    stream = SDKBackedLLM(base_url=server.openai_base_url).stream_complete("Say hello")
    for _ in stream:
        break
    stream.close()
    assert_one_closed_early_record(instrumented)


async def test_llamaindex_handler_over_an_async_sdk_backed_stream(
    server: StandInServer, instrumented: CapturedTelemetry, llamaindex_handler: None
) -> None:
    llm = SDKBackedLLM(base_url=server.openai_base_url)
    responses = [response async for response in await llm.astream_chat([ChatMessage(role="user", content="Hi")])]
    usage = responses[-1].raw.usage
    assert usage is not None
    assert_one_record(instrumented, usage.prompt_tokens, usage.completion_tokens)
