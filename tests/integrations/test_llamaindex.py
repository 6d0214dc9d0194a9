"""LlamaIndex adapter against real LlamaIndex: MockLLM/MockEmbedding over an in-memory index, plus small
CustomLLM subclasses that report OpenAI-shaped usage so tokens and cost can be checked exactly."""

from __future__ import annotations

import asyncio
import gc
import inspect
import subprocess
import sys
import traceback
from collections.abc import AsyncIterator, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from genai_prices import Usage, calc_price
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from llama_index.core import Document, Settings, VectorStoreIndex
from llama_index.core.base.llms.types import (
    ChatMessage,
    CompletionResponse,
    CompletionResponseAsyncGen,
    CompletionResponseGen,
    LLMMetadata,
)
from llama_index.core.embeddings import MockEmbedding
from llama_index.core.instrumentation import get_dispatcher
from llama_index.core.instrumentation.events.embedding import EmbeddingEndEvent, EmbeddingStartEvent
from llama_index.core.instrumentation.events.exception import ExceptionEvent
from llama_index.core.instrumentation.events.llm import (
    LLMChatEndEvent,
    LLMChatInProgressEvent,
    LLMChatStartEvent,
    LLMCompletionEndEvent,
    LLMCompletionInProgressEvent,
    LLMCompletionStartEvent,
)
from llama_index.core.llms import CustomLLM, MockLLM
from llama_index.core.llms.callbacks import llm_completion_callback
from opentelemetry import context as otel_context
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor
from opentelemetry.trace import SpanKind, StatusCode

import llm_otel
from llm_otel import _names as n
from llm_otel._log import forget_logged_causes
from llm_otel.adapter import error_type as error_type_of
from llm_otel.integrations import llamaindex
from llm_otel.testing import CapturedTelemetry, capture
from tests.hypothesis_profiles import examples

MODEL = "gpt-4o-mini"
RESPONSE_MODEL = "gpt-4o-mini-2024-07-18"
INPUT_TOKENS = 120
OUTPUT_TOKENS = 30
QUERY_SHAPE = {
    "query": {
        "retrieve": {"embeddings": {}},
        "synthesize": {"text_completion": {}},
    }
}


class LLMDown(RuntimeError):
    """Stands in for a provider outage (not a ValueError: LlamaIndex's refine step swallows those)."""


def openai_completion(
    text: str, *, input_tokens: int = INPUT_TOKENS, output_tokens: int = OUTPUT_TOKENS
) -> dict:
    return {
        "id": "chatcmpl-123",
        "object": "chat.completion",
        "model": RESPONSE_MODEL,
        "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": text}}],
        "usage": {
            "prompt_tokens": input_tokens,
            "completion_tokens": output_tokens,
            "total_tokens": input_tokens + output_tokens,
        },
    }


def openai_chunk(delta: str | None, *, usage: bool = False) -> dict:
    chunk: dict[str, Any] = {"id": "chatcmpl-456", "object": "chat.completion.chunk", "model": RESPONSE_MODEL}
    chunk["choices"] = (
        [] if delta is None else [{"index": 0, "delta": {"content": delta}, "finish_reason": None}]
    )
    if usage:
        chunk["usage"] = {"prompt_tokens": INPUT_TOKENS, "completion_tokens": OUTPUT_TOKENS}
    return chunk


class PricedLLM(CustomLLM):
    """A CustomLLM that answers like the OpenAI SDK would: usage in ``raw`` (or in additional_kwargs)."""

    model: str = MODEL
    usage_in: str = "raw"
    error: Any = None
    fail_after_chunks: int | None = None
    pieces: Sequence[str] = ("Par", "is", ".")
    async_delay: float = 0.0
    client_span: bool = False

    @property
    def metadata(self) -> LLMMetadata:
        return LLMMetadata(model_name=self.model, is_chat_model=False)

    def _response(self) -> CompletionResponse:
        if self.usage_in == "kwargs":
            return CompletionResponse(
                text="Paris.",
                additional_kwargs={"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10},
            )
        return CompletionResponse(text="Paris.", raw=openai_completion("Paris."))

    @llm_completion_callback()
    def complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponse:
        if self.client_span:  # as an instrumented HTTP client would
            with llm_otel.current().tracer.start_as_current_span("POST /v1/chat/completions"):
                return self._response()
        if self.error is not None:
            raise self.error
        return self._response()

    @llm_completion_callback()
    async def acomplete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponse:
        await asyncio.sleep(self.async_delay)  # lets concurrent queries interleave
        if self.error is not None:
            raise self.error
        return self._response()

    @llm_completion_callback()
    def stream_complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponseGen:
        def gen() -> Iterator[CompletionResponse]:
            text = ""
            for index, piece in enumerate(self.pieces):
                if self.fail_after_chunks is not None and index >= self.fail_after_chunks:
                    raise self.error
                text += piece
                yield CompletionResponse(text=text, delta=piece, raw=openai_chunk(piece))
            yield CompletionResponse(text=text, delta="", raw=openai_chunk(None, usage=True))

        return gen()

    @llm_completion_callback()
    async def astream_complete(
        self, prompt: str, formatted: bool = False, **kwargs: Any
    ) -> CompletionResponseAsyncGen:
        async def gen() -> AsyncIterator[CompletionResponse]:
            for response in self.stream_complete(prompt, formatted=formatted, **kwargs):
                await asyncio.sleep(0)
                yield response

        return gen()


class HttpEmbedding(MockEmbedding):
    """MockEmbedding that makes a client span, as an instrumented HTTP client would."""

    def _get_query_embedding(self, query: str) -> list[float]:
        with llm_otel.current().tracer.start_as_current_span("POST /v1/embeddings"):
            return self._get_vector()


class SlowEmbedding(MockEmbedding):
    """MockEmbedding that yields to the event loop, so concurrent retrievals interleave."""

    async def _aget_query_embedding(self, query: str) -> list[float]:
        await asyncio.sleep(0.001)
        return self._get_vector()


def expected_cost(input_tokens: int = INPUT_TOKENS, output_tokens: int = OUTPUT_TOKENS) -> float:
    usage = Usage(input_tokens=input_tokens, output_tokens=output_tokens)
    return float(calc_price(usage, model_ref=MODEL, provider_id="openai").total_price)


# -- fixtures ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def index() -> VectorStoreIndex:
    """Built once, before any handler is installed, so building it records nothing."""
    documents = [
        Document(text="Paris is the capital of France."),
        Document(text="Berlin is the capital of Germany."),
        Document(text="Refunds are accepted within 30 days."),
    ]
    return VectorStoreIndex.from_documents(documents, embed_model=MockEmbedding(embed_dim=8))


@pytest.fixture(autouse=True)
def llama_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    # Set explicitly (never resolve LlamaIndex's OpenAI default) and restore afterwards.
    monkeypatch.setattr(Settings, "_llm", MockLLM(max_tokens=8))
    monkeypatch.setattr(Settings, "_embed_model", MockEmbedding(embed_dim=8))


@pytest.fixture
def telemetry() -> Iterator[CapturedTelemetry]:
    with capture() as captured:
        yield captured


@pytest.fixture
def handlers(telemetry: CapturedTelemetry) -> Iterator[llamaindex.Instrumentation]:
    installed = llamaindex.instrument()
    try:
        yield installed
    finally:
        in_flight = installed.span_handler.in_flight
        llamaindex.uninstrument()
    assert in_flight == 0, "a span or call was left open"


def client_spans(telemetry: CapturedTelemetry) -> list[ReadableSpan]:
    return [s for s in telemetry.spans() if s.kind is SpanKind.CLIENT]


def attributes(span: ReadableSpan) -> dict[str, Any]:
    return dict(span.attributes or {})


# -- trace shape --------------------------------------------------------------------------------


def test_sync_query_is_one_trace_under_the_ambient_span(
    index: VectorStoreIndex, telemetry: CapturedTelemetry, handlers: llamaindex.Instrumentation
) -> None:
    with telemetry.telemetry.tracer.start_as_current_span("POST /ask", kind=SpanKind.SERVER):
        response = index.as_query_engine().query("What is the capital of France?")

    assert str(response)
    telemetry.assert_single_trace({"POST /ask": QUERY_SHAPE})
    for name in ("query", "retrieve", "synthesize"):
        assert telemetry.span(name).kind is SpanKind.INTERNAL
    completion = telemetry.span("text_completion")
    embeddings = telemetry.span("embeddings")
    assert completion.kind is SpanKind.CLIENT and embeddings.kind is SpanKind.CLIENT
    assert attributes(completion)[n.GEN_AI_OPERATION_NAME] == "text_completion"
    assert attributes(embeddings)[n.GEN_AI_OPERATION_NAME] == "embeddings"
    assert (
        telemetry.histogram_count(n.OPERATION_DURATION.name, gen_ai__operation__name="text_completion") == 1
    )
    assert telemetry.histogram_count(n.OPERATION_DURATION.name, gen_ai__operation__name="embeddings") == 1
    # The mock LLM reports no usage: it is unpriced and says why, never $0.
    assert attributes(completion)[n.LLM_COST_UNPRICED_REASON] == "usage_unknown"
    assert telemetry.counter(n.COST_UNPRICED.name, gen_ai__operation__name="text_completion") == 1


def test_query_without_ambient_span_is_its_own_trace(
    index: VectorStoreIndex, telemetry: CapturedTelemetry, handlers: llamaindex.Instrumentation
) -> None:
    index.as_query_engine().query("Where is Berlin?")

    telemetry.assert_single_trace(QUERY_SHAPE)
    assert telemetry.span("query").parent is None


async def test_async_query_has_the_same_shape_and_one_llm_call(
    index: VectorStoreIndex, telemetry: CapturedTelemetry, handlers: llamaindex.Instrumentation
) -> None:
    with telemetry.telemetry.tracer.start_as_current_span("POST /ask"):
        await index.as_query_engine().aquery("What is the capital of France?")

    telemetry.assert_single_trace({"POST /ask": QUERY_SHAPE})
    # MockLLM.acomplete calls complete(): both emit start/end events, but it is one call to the model.
    assert [s.name for s in client_spans(telemetry)].count("text_completion") == 1
    assert (
        telemetry.histogram_count(n.OPERATION_DURATION.name, gen_ai__operation__name="text_completion") == 1
    )


def test_streaming_query_records_time_to_first_chunk(
    index: VectorStoreIndex, telemetry: CapturedTelemetry, handlers: llamaindex.Instrumentation
) -> None:
    with telemetry.telemetry.tracer.start_as_current_span("POST /ask"):
        response = index.as_query_engine(streaming=True).query("What is the capital of France?")
        tokens = list(response.response_gen)

    # The LLM is only called while the stream is read, after query() returned; it still nests under synthesize.
    telemetry.assert_single_trace({"POST /ask": QUERY_SHAPE})
    completion = attributes(telemetry.span("text_completion"))
    assert completion[n.GEN_AI_REQUEST_STREAM] is True
    assert completion[n.LLM_STREAM_CHUNKS] == len(tokens) == 8
    assert completion[n.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK] >= 0
    assert (
        telemetry.histogram_count(n.TIME_TO_FIRST_CHUNK.name, gen_ai__operation__name="text_completion") == 1
    )


async def test_async_streaming_query(
    index: VectorStoreIndex, telemetry: CapturedTelemetry, handlers: llamaindex.Instrumentation
) -> None:
    engine = index.as_query_engine(streaming=True, llm=PricedLLM())
    with telemetry.telemetry.tracer.start_as_current_span("POST /ask"):
        response = await engine.aquery("What is the capital of France?")
        text = "".join([token async for token in response.async_response_gen()])

    assert text == "Paris."
    telemetry.assert_single_trace({"POST /ask": {"query": {"synthesize": {f"text_completion {MODEL}": {}}}}})
    assert telemetry.histogram_count(n.TIME_TO_FIRST_CHUNK.name, gen_ai__request__model=MODEL) == 1
    assert telemetry.counter(n.TOKENS_INPUT.name, gen_ai__request__model=MODEL) == INPUT_TOKENS


def test_spans_made_inside_llm_and_embedding_calls_nest_under_them(
    index: VectorStoreIndex, telemetry: CapturedTelemetry, handlers: llamaindex.Instrumentation
) -> None:
    engine = index.as_query_engine(llm=PricedLLM(client_span=True))
    engine.retriever._embed_model = HttpEmbedding(embed_dim=8)  # type: ignore[attr-defined]

    engine.query("What is the capital of France?")

    telemetry.assert_single_trace(
        {
            "query": {
                "retrieve": {"embeddings": {"POST /v1/embeddings": {}}},
                "synthesize": {f"text_completion {MODEL}": {"POST /v1/chat/completions": {}}},
            }
        }
    )


# -- usage, model and cost --------------------------------------------------------------------


def test_usage_and_cost_from_the_raw_openai_payload(
    index: VectorStoreIndex, telemetry: CapturedTelemetry, handlers: llamaindex.Instrumentation
) -> None:
    response = index.as_query_engine(llm=PricedLLM()).query("What is the capital of France?")

    assert str(response) == "Paris."
    telemetry.assert_single_trace({"query": {"synthesize": {f"text_completion {MODEL}": {}}}})
    span = attributes(telemetry.span(f"text_completion {MODEL}"))
    assert span[n.GEN_AI_REQUEST_MODEL] == MODEL
    assert span[n.GEN_AI_RESPONSE_MODEL] == RESPONSE_MODEL
    assert span[n.GEN_AI_RESPONSE_ID] == "chatcmpl-123"
    assert span[n.GEN_AI_RESPONSE_FINISH_REASONS] == ("stop",)
    assert span[n.GEN_AI_USAGE_INPUT_TOKENS] == INPUT_TOKENS
    assert span[n.GEN_AI_USAGE_OUTPUT_TOKENS] == OUTPUT_TOKENS
    assert span[n.LLM_COST_USD] == pytest.approx(expected_cost())
    assert span[n.LLM_COST_SOURCE] == "genai-prices"

    assert telemetry.counter(n.TOKENS_INPUT.name, gen_ai__request__model=MODEL) == INPUT_TOKENS
    assert telemetry.counter(n.TOKENS_OUTPUT.name, gen_ai__request__model=MODEL) == OUTPUT_TOKENS
    assert telemetry.histogram_sum(n.COST.name, gen_ai__request__model=MODEL) == pytest.approx(
        expected_cost()
    )
    assert telemetry.histogram_count(n.COST.name, gen_ai__response__model=RESPONSE_MODEL) == 1
    assert telemetry.counter(n.COST_UNPRICED.name, gen_ai__request__model=MODEL) == 0


def test_usage_from_additional_kwargs_token_counts(
    telemetry: CapturedTelemetry, handlers: llamaindex.Instrumentation
) -> None:
    PricedLLM(usage_in="kwargs").complete("Capital of France?")

    span = attributes(telemetry.span(f"text_completion {MODEL}"))
    assert (span[n.GEN_AI_USAGE_INPUT_TOKENS], span[n.GEN_AI_USAGE_OUTPUT_TOKENS]) == (7, 3)
    assert telemetry.histogram_sum(n.COST.name, gen_ai__request__model=MODEL) == pytest.approx(
        expected_cost(7, 3)
    )


def test_chat_over_complete_is_one_chat_call(
    telemetry: CapturedTelemetry, handlers: llamaindex.Instrumentation
) -> None:
    # CustomLLM.chat() calls complete(); the inner completion is the same request, folded into the chat span.
    PricedLLM().chat([ChatMessage(role="user", content="Capital of France?")])

    assert [s.name for s in client_spans(telemetry)] == [f"chat {MODEL}"]
    assert attributes(telemetry.span(f"chat {MODEL}"))[n.GEN_AI_USAGE_INPUT_TOKENS] == INPUT_TOKENS
    assert telemetry.counter(n.TOKENS_INPUT.name) == INPUT_TOKENS


def test_streamed_chat_counts_chunks_once_and_reads_usage_from_the_last_chunk(
    telemetry: CapturedTelemetry, handlers: llamaindex.Instrumentation
) -> None:
    chunks = list(PricedLLM().stream_chat([ChatMessage(role="user", content="Capital of France?")]))

    assert [s.name for s in client_spans(telemetry)] == [f"chat {MODEL}"]
    span = attributes(telemetry.span(f"chat {MODEL}"))
    assert span[n.LLM_STREAM_CHUNKS] == len(chunks) == 4
    assert span[n.GEN_AI_USAGE_OUTPUT_TOKENS] == OUTPUT_TOKENS
    assert span[n.LLM_COST_USD] == pytest.approx(expected_cost())
    assert telemetry.histogram_count(n.TIME_TO_FIRST_CHUNK.name, gen_ai__operation__name="chat") == 1


def test_message_content_is_captured_only_when_asked(handlers: llamaindex.Instrumentation) -> None:
    message = [ChatMessage(role="user", content="Capital of France?")]
    with capture() as plain:
        PricedLLM().chat(message)
        assert n.GEN_AI_INPUT_MESSAGES not in attributes(plain.span(f"chat {MODEL}"))
    with capture(capture_content=True) as opted_in:
        PricedLLM().chat(message)
        span = attributes(opted_in.span(f"chat {MODEL}"))
        assert "Capital of France?" in span[n.GEN_AI_INPUT_MESSAGES]
        assert '"role": "user"' in span[n.GEN_AI_INPUT_MESSAGES]
        assert "Paris." in span[n.GEN_AI_OUTPUT_MESSAGES]


# -- errors and abandoned streams -------------------------------------------------------------


def test_llm_exception_propagates_unchanged_and_every_span_records_it(
    index: VectorStoreIndex, telemetry: CapturedTelemetry, handlers: llamaindex.Instrumentation
) -> None:
    boom = LLMDown("provider unavailable")
    engine = index.as_query_engine(llm=PricedLLM(error=boom))

    with pytest.raises(LLMDown) as raised, telemetry.telemetry.tracer.start_as_current_span("POST /ask"):
        engine.query("What is the capital of France?")

    assert raised.value is boom
    assert traceback.extract_tb(raised.value.__traceback__)[-1].name == "complete"
    telemetry.assert_single_trace({"POST /ask": {"query": {"synthesize": {f"text_completion {MODEL}": {}}}}})
    error_type = error_type_of(boom)
    for name in ("query", "synthesize", f"text_completion {MODEL}"):
        span = telemetry.span(name)
        assert span.status.status_code is StatusCode.ERROR, name
        assert attributes(span)[n.ERROR_TYPE] == error_type
        assert [event.name for event in span.events] == ["exception"]
    assert telemetry.span("retrieve").status.status_code is StatusCode.UNSET
    assert telemetry.counter(n.ERRORS.name, error__type=error_type) == 1
    assert (
        len(telemetry.spans()) == 6
    )  # POST /ask, query, retrieve, embeddings, synthesize, completion: all ended


class RateLimitError(RuntimeError):
    """Named like the provider SDKs' 429 errors."""


def test_rate_limit_has_one_error_type_on_the_call_and_the_spans_around_it(
    index: VectorStoreIndex, telemetry: CapturedTelemetry, handlers: llamaindex.Instrumentation
) -> None:
    boom = RateLimitError("slow down")
    engine = index.as_query_engine(llm=PricedLLM(error=boom))

    with pytest.raises(RateLimitError) as raised:
        engine.query("What is the capital of France?")

    assert raised.value is boom
    for name in ("query", "synthesize", f"text_completion {MODEL}"):
        span = telemetry.span(name)
        assert attributes(span)[n.ERROR_TYPE] == n.RATE_LIMIT_ERROR_TYPE, name
        assert [event.name for event in span.events] == ["exception"], name  # the event keeps the class
    assert telemetry.counter(n.RATE_LIMITED.name) == 1


def test_stream_that_fails_midway_fails_the_call(
    telemetry: CapturedTelemetry, handlers: llamaindex.Instrumentation
) -> None:
    boom = LLMDown("connection reset")
    stream = PricedLLM(error=boom, fail_after_chunks=1).stream_complete("Capital of France?")

    received = []
    with pytest.raises(LLMDown) as raised:
        for chunk in stream:
            received.append(chunk)

    assert raised.value is boom and len(received) == 1
    span = telemetry.span(f"text_completion {MODEL}")
    assert span.status.status_code is StatusCode.ERROR
    assert attributes(span)[n.LLM_STREAM_CHUNKS] == 1
    assert telemetry.histogram_count(n.TIME_TO_FIRST_CHUNK.name, gen_ai__request__model=MODEL) == 1
    assert telemetry.counter(n.ERRORS.name, gen_ai__request__model=MODEL) == 1


def test_streams_closed_early_or_never_read_still_end(
    telemetry: CapturedTelemetry, handlers: llamaindex.Instrumentation
) -> None:
    llm = PricedLLM()
    stream = llm.stream_complete("read one chunk")
    next(stream)
    stream.close()
    untouched = llm.stream_complete("never read")
    del untouched
    gc.collect()

    spans = [attributes(s) for s in client_spans(telemetry)]
    assert len(spans) == 2
    assert all(s[n.LLM_STREAM_OUTCOME] == "closed_early" for s in spans)
    assert handlers.span_handler.in_flight == 0
    assert telemetry.counter(n.ERRORS.name) == 0


def test_close_ends_whatever_is_still_open(
    telemetry: CapturedTelemetry, handlers: llamaindex.Instrumentation
) -> None:
    stream = PricedLLM().stream_complete("left open")
    assert handlers.span_handler.in_flight == 1

    handlers.span_handler.close()  # what Dispatcher.shutdown() calls

    assert handlers.span_handler.in_flight == 0
    assert attributes(telemetry.span(f"text_completion {MODEL}"))[n.ERROR_TYPE] == "abandoned"
    stream.close()


# -- concurrency ----------------------------------------------------------------------------------


async def test_concurrent_queries_each_land_in_their_own_trace(
    index: VectorStoreIndex, telemetry: CapturedTelemetry, handlers: llamaindex.Instrumentation
) -> None:
    tracer = telemetry.telemetry.tracer

    async def one_request(number: int) -> None:
        engine = index.as_query_engine(llm=PricedLLM(async_delay=0.001 * (number % 5)))
        engine.retriever._embed_model = SlowEmbedding(embed_dim=8)  # type: ignore[attr-defined]
        with tracer.start_as_current_span(f"request {number}"):
            await engine.aquery(f"question {number}")

    await asyncio.gather(*(one_request(number) for number in range(20)))

    traces = telemetry.traces()
    assert len(traces) == 20
    roots = set()
    for spans in traces.values():
        root = next(s for s in spans if s.parent is None)
        roots.add(root.name)
        shape = {"query": {"retrieve": {"embeddings": {}}, "synthesize": {f"text_completion {MODEL}": {}}}}
        telemetry.assert_single_trace({root.name: shape}, spans=spans)
        assert len(spans) == 6
    assert roots == {f"request {number}" for number in range(20)}
    assert telemetry.counter(n.TOKENS_INPUT.name, gen_ai__request__model=MODEL) == 20 * INPUT_TOKENS


def test_concurrent_queries_in_threads_each_land_in_their_own_trace(
    index: VectorStoreIndex, telemetry: CapturedTelemetry, handlers: llamaindex.Instrumentation
) -> None:
    tracer = telemetry.telemetry.tracer
    engine = index.as_query_engine(llm=PricedLLM())  # one engine and one LLM shared by every thread

    def one_request(number: int) -> None:
        with tracer.start_as_current_span(f"request {number}"):
            engine.query(f"question {number}")

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(one_request, range(16)))

    traces = telemetry.traces()
    assert len(traces) == 16
    for spans in traces.values():
        root = next(s for s in spans if s.parent is None)
        telemetry.assert_single_trace(
            {root.name: {"query": {"synthesize": {f"text_completion {MODEL}": {}}}}}, spans=spans
        )
        assert len(spans) == 6
    assert telemetry.counter(n.TOKENS_INPUT.name, gen_ai__request__model=MODEL) == 16 * INPUT_TOKENS


# -- installation -------------------------------------------------------------------------------


def test_instrument_is_idempotent_and_uninstrument_removes_the_handlers(
    index: VectorStoreIndex, telemetry: CapturedTelemetry
) -> None:
    dispatcher = get_dispatcher()
    first = llamaindex.instrument()
    try:
        assert llamaindex.instrument() is first
        assert sum(h is first.span_handler for h in dispatcher.span_handlers) == 1
        assert sum(h is first.event_handler for h in dispatcher.event_handlers) == 1
    finally:
        llamaindex.uninstrument()
    assert all(not isinstance(h, llamaindex.LLMOtelSpanHandler) for h in dispatcher.span_handlers)
    assert all(not isinstance(h, llamaindex.LLMOtelEventHandler) for h in dispatcher.event_handlers)

    index.as_query_engine().query("after uninstrument")
    assert telemetry.spans() == []
    llamaindex.uninstrument()  # a second call is harmless


def test_handlers_record_nothing_when_telemetry_is_disabled(index: VectorStoreIndex) -> None:
    with capture(enabled=False) as telemetry:
        installed = llamaindex.instrument()
        try:
            index.as_query_engine(llm=PricedLLM()).query("disabled")
            assert installed.span_handler.in_flight == 0
        finally:
            llamaindex.uninstrument()
        assert telemetry.spans() == []


def test_import_llm_otel_does_not_import_llama_index() -> None:
    code = "import sys, llm_otel; assert not [m for m in sys.modules if m.startswith('llama_index')]"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_missing_llama_index_gives_an_install_hint() -> None:
    code = (
        "import sys; sys.modules['llama_index'] = None\n"
        "try:\n    import llm_otel.integrations.llamaindex\n"
        "except ImportError as exc:\n    print(exc)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    assert "pip install 'llm-otel[llamaindex]'" in result.stdout


def test_events_that_match_nothing_are_counted_as_unknown_input(
    telemetry: CapturedTelemetry, handlers: llamaindex.Instrumentation
) -> None:
    dispatcher = get_dispatcher()
    dispatcher.event(LLMChatEndEvent(messages=[], response=None, span_id="Nowhere.chat-0"))
    dispatcher.event(EmbeddingEndEvent(chunks=[], embeddings=[], span_id="Nowhere.embed-0"))

    assert telemetry.counter(n.INPUT_ANOMALIES.name, source="llamaindex", reason="llm_end_without_start") == 1
    assert (
        telemetry.counter(n.INPUT_ANOMALIES.name, source="llamaindex", reason="embedding_end_without_start")
        == 1
    )
    assert client_spans(telemetry) == []


@pytest.mark.parametrize(
    ("module", "provider"),
    [
        ("llama_index.llms.openai.base", "openai"),
        ("llama_index.llms.azure_openai.base", "azure.ai.openai"),
        ("llama_index.llms.anthropic.base", "anthropic"),
        ("llama_index.embeddings.openai.base", "openai"),
        ("llama_index.core.llms.mock", None),
        ("my_app.llms", None),
    ],
)
def test_provider_comes_from_the_llama_index_package(module: str, provider: str | None) -> None:
    from llm_otel.integrations import _llamaindex_payload

    model_class = type("SomeLLM", (), {"__module__": module})
    assert _llamaindex_payload.provider_of(model_class()) == provider


# -- bad input never raises -----------------------------------------------------------------------


class SpanBalance(SpanProcessor):
    def __init__(self) -> None:
        self.started = 0
        self.ended = 0

    def on_start(self, span: Any, parent_context: Any = None) -> None:
        self.started += 1

    def on_end(self, span: ReadableSpan) -> None:
        self.ended += 1


ODD = st.one_of(
    st.none(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True),
    st.text(max_size=8),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(
        st.sampled_from(["model", "model_name", "class_name", "temperature", "max_tokens", "raw", "usage"]),
        st.one_of(st.none(), st.integers(), st.text(max_size=5), st.floats()),
        max_size=4,
    ),
)
SPAN_IDS = st.one_of(
    st.sampled_from(
        ["RetrieverQueryEngine.query-1", "PricedLLM.complete-2", "MockEmbedding.get_query_embedding-3"]
    ),
    st.none(),
    st.integers(),
)
EVENT_TYPES = [
    LLMChatStartEvent,
    LLMChatInProgressEvent,
    LLMChatEndEvent,
    LLMCompletionStartEvent,
    LLMCompletionInProgressEvent,
    LLMCompletionEndEvent,
    EmbeddingStartEvent,
    EmbeddingEndEvent,
    ExceptionEvent,
]
FIELDS = ["model_dict", "messages", "prompt", "response", "additional_kwargs", "exception", "chunks"]


@st.composite
def odd_event(draw: st.DrawFn) -> Any:
    event_type = draw(st.sampled_from(EVENT_TYPES))
    values = {name: draw(ODD) for name in draw(st.lists(st.sampled_from(FIELDS), unique=True, max_size=4))}
    if draw(st.booleans()):
        values["response"] = CompletionResponse(
            text="x", raw=draw(ODD), additional_kwargs={"prompt_tokens": draw(ODD)}
        )
    return event_type.model_construct(span_id=draw(SPAN_IDS), **values)  # skips validation: anything goes


STEPS = st.one_of(
    st.tuples(st.just("event"), odd_event()),
    st.tuples(
        st.sampled_from(["enter", "exit", "drop"]),
        SPAN_IDS,
        st.sampled_from([None, "llm", "engine"]),
        st.one_of(SPAN_IDS, ODD),  # parent id on enter, result on exit, error text on drop
    ),
)


@settings(
    max_examples=examples(60),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(steps=st.lists(STEPS, max_size=12))
def test_odd_and_missing_event_payloads_never_raise(
    index: VectorStoreIndex, caplog: pytest.LogCaptureFixture, steps: list[tuple[Any, ...]]
) -> None:
    forget_logged_causes()
    caplog.clear()
    # A span entered and never exited keeps its context attached, as it would inside a real
    # LlamaIndex call; restore ours so the sequences generated here stay independent.
    token = otel_context.attach(otel_context.get_current())
    try:
        _run_steps(index, steps)
    finally:
        otel_context.detach(token)
    assert not [r.getMessage() for r in caplog.records if "internal error" in r.getMessage()]


def _run_steps(index: VectorStoreIndex, steps: list[tuple[Any, ...]]) -> None:
    instances = {None: None, "llm": PricedLLM(), "engine": index.as_query_engine()}
    bound = inspect.signature(lambda: None).bind()
    with capture() as telemetry:
        balance = SpanBalance()
        telemetry.telemetry.tracer_provider.add_span_processor(balance)  # type: ignore[attr-defined]
        span_handler = llamaindex.LLMOtelSpanHandler()
        event_handler = llamaindex.LLMOtelEventHandler(span_handler)
        for step in steps:
            if step[0] == "event":
                event_handler.handle(step[1])
                continue
            action, span_id, instance_key, extra = step
            instance = instances[instance_key]
            if action == "enter":
                span_handler.span_enter(span_id, bound, instance=instance, parent_id=extra)  # type: ignore[arg-type]
            elif action == "exit":
                span_handler.span_exit(span_id, bound, instance=instance, result=extra)  # type: ignore[arg-type]
            else:
                error = extra if isinstance(extra, BaseException) else LLMDown(str(extra))
                span_handler.span_drop(span_id, bound, instance=instance, err=error)  # type: ignore[arg-type]
        span_handler.close()
        assert span_handler.in_flight == 0
        assert balance.started == balance.ended


# -- cancellation and Ctrl-C: outcomes, not errors ------------------------------------------


def assert_interrupted_not_failed(telemetry: CapturedTelemetry, outcome: str) -> None:
    completion = telemetry.span(f"text_completion {MODEL}")
    assert attributes(completion)[n.LLM_STREAM_OUTCOME] == outcome
    for name in ("query", "synthesize", f"text_completion {MODEL}"):
        span = telemetry.span(name)
        assert span.end_time is not None, name
        assert span.status.status_code is StatusCode.UNSET, name
        assert n.ERROR_TYPE not in attributes(span), name
    assert attributes(telemetry.span("query"))[n.LLM_STREAM_OUTCOME] == outcome
    assert telemetry.counter(n.ERRORS.name) == 0
    assert telemetry.histogram_count(n.OPERATION_DURATION.name, {n.LLM_STREAM_OUTCOME: outcome}) == 1


_MODEL_WAITING: list[asyncio.Event] = []


class StalledLLM(PricedLLM):
    """Its async completion waits for an answer that never comes (a stalled provider)."""

    @llm_completion_callback()
    async def acomplete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponse:
        _MODEL_WAITING[-1].set()
        await asyncio.sleep(3600)
        return self._response()


async def test_cancelled_async_query_is_cancelled_not_an_error(
    index: VectorStoreIndex, telemetry: CapturedTelemetry, handlers: llamaindex.Instrumentation
) -> None:
    _MODEL_WAITING.append(asyncio.Event())
    engine = index.as_query_engine(llm=StalledLLM())
    task = asyncio.create_task(engine.aquery("What is the capital of France?"))
    await asyncio.wait_for(_MODEL_WAITING[-1].wait(), 20)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    assert_interrupted_not_failed(telemetry, "cancelled")
    assert handlers.span_handler.in_flight == 0


def test_keyboard_interrupt_in_the_model_is_cancelled_and_propagates_unchanged(
    index: VectorStoreIndex, telemetry: CapturedTelemetry, handlers: llamaindex.Instrumentation
) -> None:
    interrupt = KeyboardInterrupt()
    engine = index.as_query_engine(llm=PricedLLM(error=interrupt))

    with pytest.raises(KeyboardInterrupt) as raised:
        engine.query("What is the capital of France?")

    assert raised.value is interrupt
    assert_interrupted_not_failed(telemetry, "cancelled")


# -- groundedness ---------------------------------------------------------------------------


def test_retrieved_nodes_reach_the_scorer_of_the_synthesized_answer(index: VectorStoreIndex) -> None:
    seen: list[Any] = []
    with capture(evaluator=lambda sample: seen.append(sample.context), evaluation_sample_rate=1.0,
                 groundedness="lexical") as telemetry:
        llamaindex.instrument()
        try:
            with telemetry.telemetry.tracer.start_as_current_span("POST /ask", kind=SpanKind.SERVER):
                index.as_query_engine(llm=PricedLLM(), similarity_top_k=2).query("What is the capital of France?")
        finally:
            llamaindex.uninstrument()
        telemetry.telemetry.evaluator.join()
        # the query embedding is sampled too (no context yet); the completion carries the two passages
        contexts = [c for c in seen if c is not None]
        assert len(seen) == 2 and len(contexts) == 1 and len(contexts[0]) == 2
        assert all(p.endswith(".") for p in contexts[0])
        assert telemetry.histogram_count("llm.evaluation.score", gen_ai__evaluation__name="hallucination") == 1
