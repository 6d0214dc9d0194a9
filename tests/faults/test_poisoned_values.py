"""No value poisons the pipeline: every generated case goes through the kit's real export path
into the real OTLP encoders (tests/core/_otlp.py), and a good call after it is still exported.

Families: usage objects and dicts (SDK objects built without validation), model names,
LangChain callback payloads, LlamaIndex events, and W3C trace headers into the ASGI
middleware. The hypothesis profile (tests/hypothesis_profiles.py) sets the number: 2,000
cases per family in ``ci`` (the default when CI=true), 400 in ``dev``, 40 in ``quick``;
``LLM_OTEL_FUZZ_EXAMPLES`` overrides it.
"""

from __future__ import annotations

import asyncio
import inspect
import os
import random
import secrets
import uuid
from collections.abc import Iterator, Sequence
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from openai.types.chat import ChatCompletion
from openai.types.completion_usage import CompletionUsage

import llm_otel
from tests.core._otlp import LIMIT, Pipeline, kit_pipeline
from tests.hypothesis_profiles import examples

pytestmark = pytest.mark.slow

EXAMPLES = int(os.environ.get("LLM_OTEL_FUZZ_EXAMPLES") or examples(2000))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture,
                                       HealthCheck.data_too_large])

# Values at the edges the encoders and the Collector care about.
huge_ints = st.sampled_from([2**53 - 1, 2**53, 2**62, 2**63 - 1, 2**63, 2**64, -(2**63) - 1, 10**30])
counts = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**70), 2**70), huge_ints,
    st.floats(allow_nan=True, allow_infinity=True), st.sampled_from([1e19, 9.007199254740993e15, -0.0, 1.5]),
    st.sampled_from(["9" * 20, "²", "١٢", "12", " 7 ", "-3", "1e3", "0x10", "", "\ud800"]),
    st.text(max_size=6), st.lists(st.integers(), max_size=2),
)
nasty_text = st.one_of(
    st.text(max_size=40),
    st.text(st.characters(codec=None, categories=["Cs", "Cc", "Cf", "Co", "Zl", "Zp"]), max_size=20),
    st.builds(lambda c, n: c * n, st.sampled_from(["x", "é", "\ud800", "\x00", "\n", "😀"]),
              st.integers(0, 300_000)),
    st.sampled_from(["gpt-\ud800", "a\x00b", "\u2028", "x" * 1_000_000]),
)
models = st.one_of(st.none(), nasty_text, st.integers(), st.just(b"bytes"))


def usage_dicts() -> st.SearchStrategy[dict[str, Any]]:
    keys = ["prompt_tokens", "completion_tokens", "input_tokens", "output_tokens", "cache_read_input_tokens",
            "cache_creation_input_tokens"]
    return st.dictionaries(st.sampled_from(keys), counts, max_size=4).flatmap(
        lambda d: st.one_of(st.just(d), st.just({**d, "prompt_tokens_details": {"cached_tokens": d.get("input_tokens")},
                                                 "completion_tokens_details": {"reasoning_tokens": 2**63}})))


responses = st.one_of(
    st.builds(lambda u, m, r, i: {"id": i, "object": "chat.completion", "model": m, "usage": u,
                                  "choices": [{"finish_reason": r, "message": {"content": "ok"}}]},
              usage_dicts(), models, nasty_text, nasty_text),
    st.builds(lambda u, m: ChatCompletion.model_construct(
        id="c", object="chat.completion", model=m, choices=[],
        usage=CompletionUsage.model_construct(prompt_tokens=u[0], completion_tokens=u[1], total_tokens=None)),
        st.tuples(counts, counts), models),
    st.builds(lambda u, m: {"type": "message", "model": m, "usage": u, "stop_reason": "end_turn", "content": []},
              usage_dicts(), models),
)


class GoodCalls:
    """After each bad case: one clean call, which must reach both exporters."""

    def __init__(self, pipeline: Pipeline) -> None:
        self.pipeline = pipeline
        self.made = 0

    def check(self) -> None:
        pipeline = self.pipeline
        pipeline.spans.requests.clear()
        pipeline.metrics.requests.clear()

        @llm_otel.traced_llm(provider="openai", model="good-model")
        def good() -> dict[str, Any]:
            return {"object": "chat.completion", "model": "good-model", "choices": [],
                    "usage": {"prompt_tokens": 7, "completion_tokens": 3}}

        good()
        self.made += 1
        pipeline.flush()
        assert pipeline.spans.failures == 0 and pipeline.metrics.failures == 0
        assert all(len(payload) < LIMIT for payload in pipeline.spans.requests + pipeline.metrics.requests)
        assert "chat good-model" in pipeline.spans.span_names()
        totals = [value for attrs, value in pipeline.metrics.points("llm.tokens.input")
                  if attrs.get("gen_ai.request.model") == "good-model" and "error.type" not in attrs]
        assert totals == [7 * self.made], totals


@pytest.fixture
def pipeline() -> Iterator[Pipeline]:
    with kit_pipeline(capture_content=True) as found:
        yield found


@FUZZ
@given(response=responses, model=models, labels=st.dictionaries(nasty_text, nasty_text, max_size=3))
def test_usage_objects_and_model_names(pipeline: Pipeline, response: Any, model: Any,
                                       labels: dict[str, str]) -> None:
    checker = _checker(pipeline)

    @llm_otel.traced_llm(provider="openai")
    def ask(model: Any, messages: Any) -> Any:
        return response

    with llm_otel.labels(labels):
        assert ask(model, [{"role": "user", "content": "hi"}]) is response
    call = llm_otel.start_call(provider=model if isinstance(model, str) else None, model=model, labels=labels)
    call.set_usage(input_tokens=response.get("usage", {}).get("prompt_tokens") if isinstance(response, dict) else 1,
                   output_tokens=2**63)
    call.set_response_model(model)
    call.fail(model if isinstance(model, str) else "boom")
    with llm_otel.llm_call(provider="openai", model="m") as inner:
        inner.set_response(response)
    with llm_otel.route(task_type=model if isinstance(model, str) else None, reason=model):
        pass
    checker.check()


_CHECKERS: dict[int, GoodCalls] = {}


def _checker(pipeline: Pipeline) -> GoodCalls:
    return _CHECKERS.setdefault(id(pipeline), GoodCalls(pipeline))


# --- LangChain -----------------------------------------------------------------------------


@FUZZ
@given(model=models, name=nasty_text, usage=usage_dicts(), reason=nasty_text, metadata=st.dictionaries(
    st.sampled_from(["llm.task_type", "llm.prompt.name", "ls_provider", "ls_model_name"]), nasty_text, max_size=3),
    error=st.one_of(st.none(), nasty_text))
def test_langchain_payloads(pipeline: Pipeline, model: Any, name: str, usage: dict[str, Any], reason: str,
                            metadata: dict[str, Any], error: str | None) -> None:
    from langchain_core.messages import AIMessage, HumanMessage
    from langchain_core.outputs import ChatGeneration, LLMResult

    from llm_otel.integrations.langchain import LLMOtelCallbackHandler

    checker = _checker(pipeline)
    handler = LLMOtelCallbackHandler()
    chain, run = uuid.uuid4(), uuid.uuid4()
    handler.on_chain_start({"name": name}, {"input": name}, run_id=chain, metadata=metadata)
    handler.on_chat_model_start({"name": name, "kwargs": {"model_name": model}}, [[HumanMessage(content=name)]],
                                run_id=run, parent_run_id=chain, metadata=metadata,
                                invocation_params={"model": model, "_type": "openai-chat", "temperature": usage})
    if error is None:
        message = AIMessage.model_construct(content=name, usage_metadata=usage,
                                            response_metadata={"model_name": model, "finish_reason": reason})
        result = LLMResult.model_construct(generations=[[ChatGeneration.model_construct(message=message, text=name)]],
                                           llm_output={"token_usage": usage, "model_name": model, "id": reason})
        handler.on_llm_end(result, run_id=run, parent_run_id=chain)
        handler.on_chain_end({"output": name}, run_id=chain)
    else:
        failure = ValueError(error)
        handler.on_llm_error(failure, run_id=run, parent_run_id=chain)
        handler.on_chain_error(failure, run_id=chain)
    tool = uuid.uuid4()
    handler.on_tool_start({"name": name, "description": reason}, name, run_id=tool, tool_call_id=reason)
    handler.on_tool_end(name, run_id=tool)
    checker.check()


# --- LlamaIndex ----------------------------------------------------------------------------


def _llamaindex_llm(model: Any) -> Any:
    from llama_index.core.base.llms.types import CompletionResponse, LLMMetadata
    from llama_index.core.llms import CustomLLM

    class EdgeLLM(CustomLLM):
        model: Any = None

        @property
        def metadata(self) -> LLMMetadata:
            return LLMMetadata(model_name="edge")

        def complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponse:
            return CompletionResponse(text="ok")

        def stream_complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> Any:
            yield CompletionResponse(text="ok", delta="ok")

    return EdgeLLM.model_construct(model=model)


@FUZZ
@given(model=models, prompt=nasty_text, usage=usage_dicts(), reason=nasty_text,
       error=st.one_of(st.none(), nasty_text))
def test_llamaindex_events(pipeline: Pipeline, model: Any, prompt: str, usage: dict[str, Any], reason: str,
                           error: str | None) -> None:
    from llama_index.core.base.llms.types import CompletionResponse
    from llama_index.core.instrumentation.events.llm import LLMCompletionEndEvent, LLMCompletionStartEvent

    from llm_otel.integrations import llamaindex

    checker = _checker(pipeline)
    span_handler = llamaindex.LLMOtelSpanHandler()
    event_handler = llamaindex.LLMOtelEventHandler(span_handler)
    bound = inspect.signature(lambda: None).bind()
    llm = _llamaindex_llm(model)
    span_id = f"EdgeLLM.complete-{uuid.uuid4()}"
    span_handler.span_enter(span_id, bound, instance=llm, parent_id=None)
    event_handler.handle(LLMCompletionStartEvent.model_construct(
        span_id=span_id, model_dict={"model": model, "model_name": reason}, prompt=prompt, additional_kwargs={}))
    if error is None:
        response = CompletionResponse.model_construct(text=prompt, raw={"usage": usage, "model": model, "id": reason},
                                                      additional_kwargs=usage, delta=None)
        event_handler.handle(LLMCompletionEndEvent.model_construct(span_id=span_id, prompt=prompt, response=response))
        span_handler.span_exit(span_id, bound, instance=llm, result=None)
    else:
        span_handler.span_drop(span_id, bound, instance=llm, err=RuntimeError(error))
    span_handler.close()
    checker.check()


# --- W3C trace headers into the ASGI middleware -------------------------------------------

header_values = st.one_of(
    st.binary(max_size=80),
    st.text(max_size=60).map(lambda t: t.encode("utf-8", "surrogatepass")),
    st.builds(lambda v, f: f"00-{v}-{'b' * 16}-{f}".encode(), st.text("0123456789abcdef", min_size=32, max_size=32),
              st.sampled_from(["00", "01", "ff", "zz"])),
    st.builds(lambda k, v: f"tenant={k},feature={v}".encode("utf-8", "surrogatepass"), nasty_text.map(lambda t: t[:300]),
              st.text(max_size=300)),
    st.builds(lambda n: b"tenant=" + b"%ED%A0%80" * n, st.integers(0, 2000)),  # an encoded lone surrogate
)
header_lists = st.lists(st.tuples(st.sampled_from([b"traceparent", b"tracestate", b"baggage", b"user-agent"]),
                                  header_values), max_size=5)


def _asgi_app() -> Any:
    from llm_otel.integrations.asgi import LLMOtelMiddleware

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        @llm_otel.traced_llm(provider="openai", model="via-http")
        def ask() -> dict[str, Any]:
            return {"object": "chat.completion", "model": "via-http", "choices": [],
                    "usage": {"prompt_tokens": 1, "completion_tokens": 1}}

        ask()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    return LLMOtelMiddleware(app, baggage_labels=["tenant", "feature"], trust_incoming_context=True)


async def _request(app: Any, headers: Sequence[tuple[bytes, bytes]], path: str) -> int:
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET", "scheme": "http",
             "path": path, "raw_path": path.encode("utf-8", "surrogatepass"), "query_string": b"",
             "headers": list(headers), "server": ("127.0.0.1", 8000), "client": ("127.0.0.1", 5000)}
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(scope, receive, send)
    return int(sent[0]["status"])


@FUZZ
@given(headers=header_lists, path=nasty_text.map(lambda t: "/" + t[:5000]))
def test_trace_headers_into_the_asgi_middleware(pipeline: Pipeline, headers: list[tuple[bytes, bytes]],
                                                path: str) -> None:
    checker = _checker(pipeline)
    random.seed(secrets.randbits(64))  # hypothesis seeds the PRNG the SDK draws span ids from
    assert asyncio.run(_request(_asgi_app(), headers, path)) == 200
    checker.check()
    # an unsampled incoming traceparent drops both spans of the request, never one; metrics count every call
    names = pipeline.spans.span_names()
    assert ("chat via-http" in names) == any(name.startswith("GET") for name in names), names
    served = [value for attrs, value in pipeline.metrics.points("llm.tokens.input")
              if attrs.get("gen_ai.request.model") == "via-http"]
    assert sum(served) == checker.made, (served, checker.made)
