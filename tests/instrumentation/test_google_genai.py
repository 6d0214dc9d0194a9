"""The google-genai instrumentor against the real SDK and the stand-in server's Gemini endpoints."""

from __future__ import annotations

import asyncio
import inspect
import json
from collections.abc import Iterator
from typing import Any

import pytest
from google import genai
from google.genai import errors, types
from google.genai.models import AsyncModels, Models

import llm_otel
from llm_otel.testing import CapturedTelemetry, capture
from llm_otel.tools.devserver import FAULT_HEADER, StandInServer
from tests.instrumentation.conftest import llm_spans

MODEL = "gemini-2.5-flash"  # genai-prices: $0.30 input, $2.50 output per million tokens
PROMPT = "Say hello"
RATE_LIMITED = {"http_options": {"headers": {FAULT_HEADER: "429"}}}


def gemini_cost(input_tokens: int, output_tokens: int, cached: int = 0, *, prices: tuple[float, ...] = (0.3, 2.5, 0.03)
                ) -> float:
    per_input, per_output, per_cached = prices
    return ((input_tokens - cached) * per_input + cached * per_cached + output_tokens * per_output) / 1e6


@pytest.fixture
def genai_instrumented(telemetry: CapturedTelemetry) -> Iterator[CapturedTelemetry]:
    assert llm_otel.instrument("google_genai") == ["google_genai"]
    try:
        yield telemetry
    finally:
        llm_otel.uninstrument("google_genai")


def client(server: StandInServer, *, vertex: bool = False) -> genai.Client:
    options = types.HttpOptions(base_url=server.gemini_base_url)
    if vertex:  # Vertex AI express mode: an API key instead of a project
        return genai.Client(vertexai=True, api_key="test", http_options=options)
    return genai.Client(api_key="test", http_options=options)


def one_span(telemetry: CapturedTelemetry) -> Any:
    spans = telemetry.spans()
    assert len(spans) == 1, [s.name for s in spans]
    return spans[0]


def assert_recorded(telemetry: CapturedTelemetry, usage: Any, cost: float, calls: int = 1) -> None:
    """Metrics and the span agree with the response's own usage, and the cost is exact."""
    assert telemetry.counter("llm.tokens.input") == usage.prompt_token_count
    assert telemetry.counter("llm.tokens.output") == usage.candidates_token_count + (usage.thoughts_token_count or 0)
    assert telemetry.histogram_count("gen_ai.client.operation.duration") == calls
    assert telemetry.histogram_sum("llm.cost.usd") == pytest.approx(cost, rel=1e-9)


def test_generate_content(server: StandInServer, genai_instrumented: CapturedTelemetry) -> None:
    config = types.GenerateContentConfig(temperature=0.2, top_p=0.9, max_output_tokens=200)
    c = client(server)
    response = c.models.generate_content(model=f"models/{MODEL}", contents=PROMPT, config=config)
    c.close()
    assert type(response) is types.GenerateContentResponse
    usage = response.usage_metadata
    assert usage and usage.prompt_token_count and usage.candidates_token_count
    span = one_span(genai_instrumented)
    assert span.name == f"generate_content {MODEL}"
    attributes = span.attributes
    assert attributes["gen_ai.operation.name"] == "generate_content"
    assert attributes["gen_ai.provider.name"] == "gcp.gemini"
    assert attributes["gen_ai.request.model"] == MODEL
    assert attributes["gen_ai.response.model"] == response.model_version == MODEL
    assert attributes["gen_ai.response.id"] == response.response_id
    assert (attributes["gen_ai.request.temperature"], attributes["gen_ai.request.top_p"]) == (0.2, 0.9)
    assert attributes["gen_ai.request.max_tokens"] == 200
    assert attributes["gen_ai.response.finish_reasons"] == ("stop",)
    assert attributes["gen_ai.usage.input_tokens"] == usage.prompt_token_count
    assert attributes["gen_ai.usage.output_tokens"] == usage.candidates_token_count
    cost = gemini_cost(usage.prompt_token_count, usage.candidates_token_count)
    assert attributes["llm.cost.usd"] == pytest.approx(cost, rel=1e-9)
    assert_recorded(genai_instrumented, usage, cost)


def test_vertex_client_and_config_dict(server: StandInServer, genai_instrumented: CapturedTelemetry) -> None:
    c = client(server, vertex=True)
    response = c.models.generate_content(
        model=f"publishers/google/models/{MODEL}", contents=PROMPT, config={"temperature": 0.5, "max_output_tokens": 3}
    )
    c.close()
    span = one_span(genai_instrumented)
    assert span.attributes["gen_ai.provider.name"] == "gcp.vertex_ai"
    assert span.attributes["gen_ai.request.model"] == MODEL
    assert span.attributes["gen_ai.request.temperature"] == 0.5
    assert span.attributes["gen_ai.request.max_tokens"] == 3
    assert span.attributes["gen_ai.response.finish_reasons"] == ("max_tokens",)
    assert genai_instrumented.histogram_count("gen_ai.client.operation.duration",
                                              gen_ai__provider__name="gcp.vertex_ai") == 1
    usage = response.usage_metadata
    assert usage and usage.prompt_token_count
    assert span.attributes["gen_ai.usage.output_tokens"] == usage.candidates_token_count == 3


def test_thoughts_and_cached_content_are_counted_and_priced(
    server: StandInServer, genai_instrumented: CapturedTelemetry
) -> None:
    model = "gemini-2.0-flash-thinking-exp"  # priced as gemini-2.0-flash: $0.10 / $0.40, cache reads $0.025
    c = client(server)
    response = c.models.generate_content(model=model, contents="[[standin:cached=4]] " + PROMPT)
    c.close()
    usage = response.usage_metadata
    assert usage and usage.prompt_token_count and usage.candidates_token_count and usage.thoughts_token_count
    assert usage.cached_content_token_count == 4
    span = one_span(genai_instrumented)
    output = usage.candidates_token_count + usage.thoughts_token_count  # thoughts are billed as output
    assert span.attributes["gen_ai.usage.output_tokens"] == output
    assert span.attributes["gen_ai.usage.reasoning.output_tokens"] == usage.thoughts_token_count
    assert span.attributes["gen_ai.usage.cache_read.input_tokens"] == 4
    cost = gemini_cost(usage.prompt_token_count, output, 4, prices=(0.1, 0.4, 0.025))
    assert span.attributes["llm.cost.usd"] == pytest.approx(cost, rel=1e-9)
    assert_recorded(genai_instrumented, usage, cost)


def test_stream_records_the_last_running_total(server: StandInServer, genai_instrumented: CapturedTelemetry) -> None:
    c = client(server)
    stream = c.models.generate_content_stream(model=MODEL, contents=PROMPT)
    assert inspect.isgenerator(stream)
    chunks = list(stream)
    c.close()
    assert len(chunks) > 2
    usage = chunks[-1].usage_metadata
    assert usage and usage.prompt_token_count and usage.candidates_token_count == len(chunks)
    span = one_span(genai_instrumented)
    assert span.attributes["llm.stream.chunks"] == len(chunks)
    assert span.attributes["gen_ai.usage.input_tokens"] == usage.prompt_token_count  # not a sum over chunks
    assert span.attributes["gen_ai.usage.output_tokens"] == usage.candidates_token_count
    assert span.attributes["gen_ai.response.finish_reasons"] == ("stop",)
    assert_recorded(genai_instrumented, usage, gemini_cost(usage.prompt_token_count, usage.candidates_token_count))
    assert genai_instrumented.histogram_count("gen_ai.client.operation.time_to_first_chunk") == 1


async def test_async_generate_and_stream(server: StandInServer, genai_instrumented: CapturedTelemetry) -> None:
    c = client(server)
    response = await c.aio.models.generate_content(model=MODEL, contents=PROMPT)
    pending = c.aio.models.generate_content_stream(model=MODEL, contents=PROMPT)
    assert inspect.isawaitable(pending)
    stream = await pending
    assert inspect.isasyncgen(stream)
    chunks = [chunk async for chunk in stream]
    await c.aio.aclose()
    c.close()
    plain, streamed = genai_instrumented.spans()
    first, last = response.usage_metadata, chunks[-1].usage_metadata
    assert first and last and first.candidates_token_count and last.candidates_token_count
    assert plain.attributes["gen_ai.usage.output_tokens"] == first.candidates_token_count
    assert streamed.attributes["gen_ai.usage.output_tokens"] == last.candidates_token_count
    assert streamed.attributes["llm.stream.chunks"] == len(chunks)
    assert genai_instrumented.counter("llm.tokens.output") == first.candidates_token_count + last.candidates_token_count
    assert genai_instrumented.histogram_sum("llm.cost.usd") == pytest.approx(
        gemini_cost(first.prompt_token_count or 0, first.candidates_token_count)
        + gemini_cost(last.prompt_token_count or 0, last.candidates_token_count), rel=1e-9
    )


def test_rate_limit_is_the_same_error_and_folded(server: StandInServer, genai_instrumented: CapturedTelemetry) -> None:
    caught = []
    c = client(server)
    with pytest.raises(errors.ClientError) as info:
        try:
            c.models.generate_content(model=MODEL, contents=PROMPT, config=RATE_LIMITED)
        except errors.ClientError as exc:
            caught.append(exc)
            raise
    c.close()
    assert info.value is caught[0] and info.value.code == 429
    span = one_span(genai_instrumented)
    assert span.attributes["error.type"] == "rate_limited"
    assert genai_instrumented.counter("llm.rate_limited") == 1
    assert genai_instrumented.counter("llm.errors", error__type="rate_limited") == 1


async def test_rate_limits_of_streams_and_async_calls(server: StandInServer, genai_instrumented: CapturedTelemetry
                                                      ) -> None:
    c = client(server)
    with pytest.raises(errors.ClientError):  # a sync stream sends its request on the first pull
        list(c.models.generate_content_stream(model=MODEL, contents=PROMPT, config=RATE_LIMITED))
    with pytest.raises(errors.ClientError):  # the async client's own HTTP transport
        await c.aio.models.generate_content(model=MODEL, contents=PROMPT, config=RATE_LIMITED)
    with pytest.raises(errors.ClientError):
        stream = await c.aio.models.generate_content_stream(model=MODEL, contents=PROMPT, config=RATE_LIMITED)
        [chunk async for chunk in stream]
    await c.aio.aclose()
    c.close()
    assert [s.attributes["error.type"] for s in genai_instrumented.spans()] == ["rate_limited"] * 3
    assert genai_instrumented.counter("llm.rate_limited") == 3


def test_stream_closed_early(server: StandInServer, genai_instrumented: CapturedTelemetry) -> None:
    c = client(server)
    stream = c.models.generate_content_stream(model=MODEL, contents=PROMPT)
    next(stream)
    stream.close()
    c.close()
    span = one_span(genai_instrumented)
    assert span.attributes["llm.stream.outcome"] == "closed_early"
    assert "error.type" not in span.attributes
    assert genai_instrumented.counter("llm.errors") == 0


async def test_async_stream_closed_early(server: StandInServer, genai_instrumented: CapturedTelemetry) -> None:
    c = client(server)
    stream = await c.aio.models.generate_content_stream(model=MODEL, contents=PROMPT)
    await anext(stream)
    await stream.aclose()
    # the SDK's inner generators are closed by the event loop's async generator finalizer
    for _ in range(100):
        if genai_instrumented.spans():
            break
        await asyncio.sleep(0)
    await c.aio.aclose()
    c.close()
    assert one_span(genai_instrumented).attributes["llm.stream.outcome"] == "closed_early"


def test_automatic_function_calling_records_each_api_call(
    server: StandInServer, genai_instrumented: CapturedTelemetry
) -> None:
    def lookup_price(model: str) -> str:
        """Price of a model."""
        return "$2.50 per million"

    server.clear_requests()
    c = client(server)
    response = c.models.generate_content(model=MODEL, contents="price of gpt-4o", config={"tools": [lookup_price]})
    c.close()
    assert server.request_count == 2  # the function call, then the answer
    first, second = llm_spans(genai_instrumented)
    assert first.attributes["gen_ai.response.finish_reasons"] == second.attributes["gen_ai.response.finish_reasons"]
    usage = response.usage_metadata  # the answer's own usage: the last request
    assert usage and second.attributes["gen_ai.usage.input_tokens"] == usage.prompt_token_count
    assert genai_instrumented.counter("llm.tokens.input") == sum(
        s.attributes["gen_ai.usage.input_tokens"] for s in (first, second)
    ) > usage.prompt_token_count
    assert genai_instrumented.histogram_count("gen_ai.client.operation.duration") == 2


def test_embeddings(server: StandInServer, genai_instrumented: CapturedTelemetry) -> None:
    c = client(server)
    response = c.models.embed_content(model="gemini-embedding-001", contents=["one two", "three"],
                                      config={"output_dimensionality": 8})
    c.close()
    span = one_span(genai_instrumented)
    assert span.name == "embeddings gemini-embedding-001"
    assert span.attributes["gen_ai.operation.name"] == "embeddings"
    assert response.usage_metadata and span.attributes["gen_ai.usage.input_tokens"] == 3
    assert span.attributes["llm.cost.usd"] == pytest.approx(3 * 0.15 / 1e6, rel=1e-9)


def test_content_is_captured_only_when_asked(server: StandInServer) -> None:
    contents = [types.Content(role="user", parts=[types.Part(text="Hi")]),
                types.Content(role="model", parts=[types.Part(text="Hello!")]), "What is 2+2?"]
    config = {"system_instruction": "Be terse."}
    with capture(capture_content=True) as telemetry:
        llm_otel.instrument("google_genai")
        try:
            c = client(server)
            response = c.models.generate_content(model=MODEL, contents=contents, config=config)
            c.close()
        finally:
            llm_otel.uninstrument("google_genai")
        attributes = one_span(telemetry).attributes
    assert json.loads(attributes["gen_ai.input.messages"]) == [
        {"role": "system", "parts": [{"type": "text", "content": "Be terse."}]},
        {"role": "user", "parts": [{"type": "text", "content": "Hi"}]},
        {"role": "assistant", "parts": [{"type": "text", "content": "Hello!"}]},
        {"role": "user", "parts": [{"type": "text", "content": "What is 2+2?"}]},
    ]
    assert response.text and response.text in attributes["gen_ai.output.messages"]
    with capture() as telemetry:
        llm_otel.instrument("google_genai")
        try:
            c = client(server)
            c.models.generate_content(model=MODEL, contents=contents, config=config)
            c.close()
        finally:
            llm_otel.uninstrument("google_genai")
        attributes = one_span(telemetry).attributes
    assert "gen_ai.input.messages" not in attributes and "gen_ai.output.messages" not in attributes


def test_uninstrument_restores_the_sdk(server: StandInServer, telemetry: CapturedTelemetry) -> None:
    names = ("_generate_content", "_generate_content_stream", "_embed_content")
    originals = {(owner, name): vars(owner)[name] for owner in (Models, AsyncModels) for name in names}
    assert llm_otel.instrument("google_genai") == ["google_genai"]
    assert all(vars(owner)[name] is not original for (owner, name), original in originals.items())
    assert llm_otel.instrument("google_genai") == ["google_genai"]  # twice wraps once
    llm_otel.uninstrument("google_genai")
    assert all(vars(owner)[name] is original for (owner, name), original in originals.items())
    c = client(server)
    c.models.generate_content(model=MODEL, contents=PROMPT)
    c.close()
    assert telemetry.spans() == []


def test_disabled_kit_calls_straight_through(server: StandInServer) -> None:
    with capture(enabled=False) as telemetry:
        llm_otel.instrument("google_genai")
        try:
            c = client(server)
            c.models.generate_content(model=MODEL, contents=PROMPT)
            assert list(c.models.generate_content_stream(model=MODEL, contents=PROMPT))
            c.close()
        finally:
            llm_otel.uninstrument("google_genai")
        assert telemetry.spans() == []


def test_a_missing_namespace_package_is_not_installed() -> None:
    from llm_otel._instrument import _installed

    assert _installed("google.genai")
    assert not _installed("llm_otel_no_such_namespace.genai")  # its parent is missing: no error


def test_an_sdk_without_the_one_request_method_gets_the_public_one_wrapped(
    server: StandInServer, telemetry: CapturedTelemetry
) -> None:
    from llm_otel.integrations._instrumentor import SDKInstrumentor, Target, sync_wrapper
    from llm_otel.integrations.google_genai import _describe, _finish

    class Renamed(SDKInstrumentor):  # as if a release had renamed Models._generate_content
        name = "google_genai_renamed"

        def targets(self) -> tuple[Target, ...]:
            wrapper = sync_wrapper(_describe("generate_content"), _finish)
            return (Target("google.genai.models", "Models", "_renamed_later", wrapper, "generate_content"),)

    original = vars(Models)["generate_content"]
    Renamed().instrument()
    try:
        assert vars(Models)["generate_content"] is not original
        c = client(server)
        c.models.generate_content(model=MODEL, contents=PROMPT)
        c.close()
    finally:
        Renamed().uninstrument()
    assert vars(Models)["generate_content"] is original
    assert one_span(telemetry).name == f"generate_content {MODEL}"


def test_spans_land_in_the_tracer_provider_given(server: StandInServer, telemetry: CapturedTelemetry) -> None:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from llm_otel.integrations.google_genai import GoogleGenAIInstrumentor

    exporter = InMemorySpanExporter()
    own = TracerProvider()
    own.add_span_processor(SimpleSpanProcessor(exporter))
    GoogleGenAIInstrumentor().instrument(tracer_provider=own)
    try:
        c = client(server)
        c.models.generate_content(model=MODEL, contents=PROMPT)
        list(c.models.generate_content_stream(model=MODEL, contents=PROMPT))
        c.close()
    finally:
        GoogleGenAIInstrumentor().uninstrument()
        own.shutdown()
    assert [s.name for s in exporter.get_finished_spans()] == [f"generate_content {MODEL}"] * 2
    assert telemetry.spans() == []
    assert telemetry.histogram_count("gen_ai.client.operation.duration") == 2  # metrics stay with the kit


def test_the_server_the_client_sends_to_is_recorded(server: StandInServer,
                                                    genai_instrumented: CapturedTelemetry) -> None:
    c = client(server)
    c.models.generate_content(model=MODEL, contents=PROMPT)
    c.close()
    host, port = server.gemini_base_url.split("//")[1].split("/")[0].split(":")
    attributes = one_span(genai_instrumented).attributes
    assert (attributes["server.address"], attributes["server.port"]) == (host, int(port))
    assert {(p.attributes["server.address"], p.attributes["server.port"])
            for p in genai_instrumented.points("gen_ai.client.operation.duration")} == {(host, port)}


@pytest.mark.parametrize(("options", "expected"), [
    ({"api_key": "test"}, ("generativelanguage.googleapis.com", 443)),
    ({"vertexai": True, "project": "p", "location": "europe-west4"}, ("europe-west4-aiplatform.googleapis.com", 443)),
])
def test_default_endpoints_name_their_server(options: dict[str, Any], expected: tuple[str, int]) -> None:
    from llm_otel.integrations.google_genai import _server

    assert _server(genai.Client(**options).models) == expected
