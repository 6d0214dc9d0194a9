"""A framework handler over a chat model that itself calls an instrumented SDK: one record.

LangChain through ``langchain-openai``'s ``ChatOpenAI``; LlamaIndex through a ``CustomLLM``
whose ``complete`` calls the openai SDK (``llama-index-llms-openai`` would replace the
pinned openai package). Both hit the stand-in server with the real SDK.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import openai
import pytest
from langchain_openai import ChatOpenAI
from llama_index.core.base.llms.types import CompletionResponse, CompletionResponseGen, LLMMetadata
from llama_index.core.llms import CustomLLM
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
    deferred = [s for s in telemetry.spans() if s.attributes.get("llm.record.deferred")]
    assert len(deferred) == 1  # the framework's own span stays, without usage


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
        raise NotImplementedError("not used here")


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
