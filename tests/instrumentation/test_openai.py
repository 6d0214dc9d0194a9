"""The openai instrumentor against the real SDK and the stand-in server."""

from __future__ import annotations

import time
from typing import Any

import openai
import pytest
from openai.lib.streaming.chat import ChatCompletionStream

import llm_otel
from llm_otel.integrations._openai_compatible import ProviderResolver
from llm_otel.integrations.openai import OpenAIInstrumentor
from llm_otel.testing import CapturedTelemetry
from llm_otel.tools.devserver import FAULT_HEADER, LatencyProfile, StandInServer
from tests.instrumentation.conftest import llm_spans

MESSAGES = [{"role": "user", "content": "Say hello"}]


def client(server: StandInServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.openai_base_url, api_key="test", max_retries=0)


def async_client(server: StandInServer) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=server.openai_base_url, api_key="test", max_retries=0)


def one_span(telemetry: CapturedTelemetry) -> Any:
    spans = telemetry.spans()
    assert len(spans) == 1, [s.name for s in spans]
    return spans[0]


def assert_recorded(telemetry: CapturedTelemetry, input_tokens: int, output_tokens: int, calls: int = 1) -> None:
    assert telemetry.counter("llm.tokens.input") == input_tokens
    assert telemetry.counter("llm.tokens.output") == output_tokens
    assert telemetry.histogram_count("gen_ai.client.operation.duration") == calls


def test_chat_create(server: StandInServer, instrumented: CapturedTelemetry) -> None:
    with client(server) as c:
        response = c.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, max_tokens=50)
    assert type(response) is openai.types.chat.ChatCompletion
    span = one_span(instrumented)
    assert span.name == "chat gpt-4o-mini"
    assert span.attributes["gen_ai.provider.name"] == "openai"
    assert span.attributes["gen_ai.request.max_tokens"] == 50
    assert span.attributes["gen_ai.usage.input_tokens"] == response.usage.prompt_tokens
    assert span.attributes["gen_ai.usage.output_tokens"] == response.usage.completion_tokens
    assert span.attributes["gen_ai.response.id"] == response.id
    assert span.attributes["llm.cost.usd"] > 0
    assert (span.attributes["server.address"], span.attributes["server.port"]) == ("127.0.0.1", server.port)
    assert_recorded(instrumented, response.usage.prompt_tokens, response.usage.completion_tokens)
    assert {(p.attributes["server.address"], p.attributes["server.port"])
            for p in instrumented.points("gen_ai.client.operation.duration")} == {("127.0.0.1", str(server.port))}


def test_stream_without_usage_is_unpriced_with_the_reason_and_the_request_untouched(
    server: StandInServer, instrumented: CapturedTelemetry
) -> None:
    server.clear_requests()
    with client(server) as c:
        stream = c.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True)
        assert type(stream) is openai.Stream  # the SDK's own object, watched in place
        chunks = list(stream)
    assert all(chunk.choices for chunk in chunks)  # no usage chunk was asked for
    assert "stream_options" not in server.requests[-1].body
    span = one_span(instrumented)
    assert "gen_ai.usage.input_tokens" not in span.attributes
    assert span.attributes["llm.cost.unpriced_reason"] == "stream_not_requested"
    assert "usage:stream_not_requested" in span.attributes["llm.usage.unknown_reason"]
    assert span.attributes["llm.stream.chunks"] == len(chunks)
    assert instrumented.counter("llm.cost.unpriced") == 1
    assert instrumented.counter("llm.tokens.input") == 0


def test_stream_with_usage_and_duration_until_the_end(server: StandInServer, instrumented: CapturedTelemetry) -> None:
    server.latency = LatencyProfile(mean_ms=50, per_chunk_ms=10)
    try:
        with client(server) as c:
            began = time.perf_counter()
            stream = c.chat.completions.create(
                model="gpt-4o-mini", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
            )
            chunks = list(stream)
            elapsed = time.perf_counter() - began
    finally:
        server.latency = LatencyProfile()
    usage = chunks[-1].usage
    span = one_span(instrumented)
    assert span.attributes["gen_ai.usage.input_tokens"] == usage.prompt_tokens
    assert span.attributes["gen_ai.usage.output_tokens"] == usage.completion_tokens
    assert (span.end_time - span.start_time) / 1e9 >= 0.8 * elapsed
    assert span.attributes["gen_ai.response.time_to_first_chunk"] > 0.04
    assert_recorded(instrumented, usage.prompt_tokens, usage.completion_tokens)


def test_opt_in_adds_the_usage_option(server: StandInServer, telemetry: CapturedTelemetry) -> None:
    llm_otel.instrument("openai", request_stream_usage=True)
    try:
        server.clear_requests()
        with client(server) as c:
            chunks = list(c.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True))
    finally:
        llm_otel.uninstrument()
    assert server.requests[-1].body["stream_options"] == {"include_usage": True}
    assert one_span(telemetry).attributes["gen_ai.usage.output_tokens"] == chunks[-1].usage.completion_tokens


def test_stream_helper_returned_from_a_function(server: StandInServer, instrumented: CapturedTelemetry) -> None:
    server.latency = LatencyProfile(mean_ms=20, per_chunk_ms=10)

    def ask(c: openai.OpenAI) -> Any:
        return c.chat.completions.stream(
            model="gpt-4o-mini", messages=MESSAGES, stream_options={"include_usage": True}
        )

    try:
        with client(server) as c:
            began = time.perf_counter()
            with ask(c) as stream:
                assert type(stream) is ChatCompletionStream
                for _ in stream:
                    pass
            elapsed = time.perf_counter() - began  # the stream's own time, not what follows it
            final = stream.get_final_completion()
    finally:
        server.latency = LatencyProfile()
    span = one_span(instrumented)
    assert span.attributes["gen_ai.usage.output_tokens"] == final.usage.completion_tokens
    assert (span.end_time - span.start_time) / 1e9 >= 0.8 * elapsed
    assert_recorded(instrumented, final.usage.prompt_tokens, final.usage.completion_tokens)


def test_stream_closed_early(server: StandInServer, instrumented: CapturedTelemetry) -> None:
    with client(server) as c:
        stream = c.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True)
        next(iter(stream))
        stream.close()
    span = one_span(instrumented)
    assert span.attributes["llm.stream.outcome"] == "closed_early"


def test_parse(server: StandInServer, instrumented: CapturedTelemetry) -> None:
    with client(server) as c:
        parsed = c.chat.completions.parse(model="gpt-4o-mini", messages=MESSAGES)
    assert type(parsed).__name__.startswith("ParsedChatCompletion")
    assert one_span(instrumented).attributes["gen_ai.usage.input_tokens"] == parsed.usage.prompt_tokens


def test_with_raw_response(server: StandInServer, instrumented: CapturedTelemetry) -> None:
    with client(server) as c:
        raw = c.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=MESSAGES)
        assert type(raw).__name__ == "LegacyAPIResponse"
        assert raw.headers["content-type"].startswith("application/json")
        completion = raw.parse()
    assert one_span(instrumented).attributes["gen_ai.usage.output_tokens"] == completion.usage.completion_tokens
    assert raw.parse() is completion


def test_with_streaming_response(server: StandInServer, instrumented: CapturedTelemetry) -> None:
    with client(server) as c:
        with c.chat.completions.with_streaming_response.create(model="gpt-4o-mini", messages=MESSAGES) as response:
            assert type(response).__name__ == "APIResponse"
            completion = response.parse()
        with c.chat.completions.with_streaming_response.create(
            model="gpt-4o-mini", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
        ) as response:
            chunks = list(response.parse())
    first, second = instrumented.spans()
    assert first.attributes["gen_ai.usage.output_tokens"] == completion.usage.completion_tokens
    assert second.attributes["gen_ai.usage.output_tokens"] == chunks[-1].usage.completion_tokens


def test_streaming_response_closed_unparsed(server: StandInServer, instrumented: CapturedTelemetry) -> None:
    with client(server) as c, c.chat.completions.with_streaming_response.create(
        model="gpt-4o-mini", messages=MESSAGES
    ) as response:
        assert response.status_code == 200
    span = one_span(instrumented)
    assert "usage:response_not_parsed" in span.attributes["llm.usage.unknown_reason"]


def test_streamed_response_read_raw_ends_with_its_block(server: StandInServer, instrumented: CapturedTelemetry) -> None:
    """Proxying the SSE lines as they come (the raw use of with_streaming_response): the call ends
    when the block closes the response, counted unpriced with the reason, never left to the GC."""
    with client(server) as c, c.chat.completions.with_streaming_response.create(
        model="gpt-4o-mini", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
    ) as response:
        lines = [line for line in response.iter_lines() if line]
        assert lines[-1] == "data: [DONE]"
    span = one_span(instrumented)
    assert "usage:response_not_parsed" in span.attributes["llm.usage.unknown_reason"]
    assert "llm.stream.outcome" not in span.attributes
    assert instrumented.counter("llm.cost.unpriced") == 1


def test_streamed_response_parsed_and_left_is_closed_early(
        server: StandInServer, instrumented: CapturedTelemetry) -> None:
    with client(server) as c, c.chat.completions.with_streaming_response.create(
        model="gpt-4o-mini", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
    ) as response:
        next(iter(response.parse()))
    assert one_span(instrumented).attributes["llm.stream.outcome"] == "closed_early"


async def test_async_streamed_response_read_raw_ends_with_its_block(
        server: StandInServer, instrumented: CapturedTelemetry) -> None:
    async with openai.AsyncOpenAI(base_url=server.openai_base_url, api_key="test", max_retries=0) as c, \
            c.chat.completions.with_streaming_response.create(
                model="gpt-4o-mini", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
            ) as response:
        lines = [line async for line in response.iter_lines() if line]
        assert lines[-1] == "data: [DONE]"
    span = one_span(instrumented)
    assert "usage:response_not_parsed" in span.attributes["llm.usage.unknown_reason"]


def test_embeddings(server: StandInServer, instrumented: CapturedTelemetry) -> None:
    with client(server) as c:
        result = c.embeddings.create(model="text-embedding-3-small", input="hello there")
    span = one_span(instrumented)
    assert span.name == "embeddings text-embedding-3-small"
    assert span.attributes["gen_ai.usage.input_tokens"] == result.usage.prompt_tokens
    assert instrumented.counter("llm.tokens.input") == result.usage.prompt_tokens


def test_responses_create_and_stream(server: StandInServer, instrumented: CapturedTelemetry) -> None:
    with client(server) as c:
        response = c.responses.create(model="gpt-4o-mini", input="Say hello")
        with c.responses.stream(model="gpt-4o-mini", input="Say hello") as stream:
            for _ in stream:
                pass
            streamed = stream.get_final_response()
    first, second = instrumented.spans()
    assert first.attributes["gen_ai.usage.output_tokens"] == response.usage.output_tokens
    assert second.attributes["gen_ai.usage.output_tokens"] == streamed.usage.output_tokens
    assert second.attributes["gen_ai.request.stream"] is True
    assert_recorded(instrumented, response.usage.input_tokens + streamed.usage.input_tokens,
                    response.usage.output_tokens + streamed.usage.output_tokens, calls=2)


async def test_async_calls(server: StandInServer, instrumented: CapturedTelemetry) -> None:
    async with async_client(server) as c:
        response = await c.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
        stream = await c.chat.completions.create(
            model="gpt-4o-mini", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
        )
        assert type(stream) is openai.AsyncStream
        chunks = [chunk async for chunk in stream]
        async with c.chat.completions.stream(
            model="gpt-4o-mini", messages=MESSAGES, stream_options={"include_usage": True}
        ) as helper:
            async for _ in helper:
                pass
        final = await helper.get_final_completion()
        async with c.responses.stream(model="gpt-4o-mini", input="hi") as rstream:
            async for _ in rstream:
                pass
        streamed = await rstream.get_final_response()
        raw = await c.embeddings.with_raw_response.create(model="text-embedding-3-small", input="x")
        embedded = raw.parse()
    outputs = [s.attributes.get("gen_ai.usage.output_tokens") for s in instrumented.spans()]
    assert outputs == [response.usage.completion_tokens, chunks[-1].usage.completion_tokens,
                       final.usage.completion_tokens, streamed.usage.output_tokens, None]
    assert instrumented.spans()[-1].attributes["gen_ai.usage.input_tokens"] == embedded.usage.prompt_tokens


def test_errors_propagate_as_the_same_object(server: StandInServer, instrumented: CapturedTelemetry) -> None:
    caught = []
    with client(server) as c, pytest.raises(openai.RateLimitError) as info:
        try:
            c.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, extra_headers={FAULT_HEADER: "429"})
        except openai.RateLimitError as exc:
            caught.append(exc)
            raise
    assert info.value is caught[0]
    span = one_span(instrumented)
    assert span.attributes["error.type"] == "rate_limited"
    assert instrumented.counter("llm.rate_limited") == 1


def test_disabled_kit_calls_straight_through(server: StandInServer) -> None:
    from llm_otel.testing import capture

    with capture(enabled=False) as telemetry:
        llm_otel.instrument("openai")
        try:
            with client(server) as c:
                c.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
        finally:
            llm_otel.uninstrument()
        assert telemetry.spans() == []


def test_uninstrument_restores_the_sdk(server: StandInServer, telemetry: CapturedTelemetry) -> None:
    from openai.resources.chat.completions.completions import Completions

    original = Completions.create
    assert llm_otel.instrument("openai") == ["openai"]
    assert Completions.create is not original
    assert llm_otel.instrument("openai") == ["openai"]  # twice wraps once
    llm_otel.uninstrument("openai")
    assert Completions.create is original
    with client(server) as c:
        c.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    assert telemetry.spans() == []


def test_unknown_sdk_name() -> None:
    with pytest.raises(ValueError, match="unknown SDK"):
        llm_otel.instrument("nope")


@pytest.mark.parametrize(
    ("base_url", "provider"),
    [
        ("https://api.openai.com/v1", "openai"),
        ("https://api.groq.com/openai/v1", "groq"),
        ("https://openrouter.ai/api/v1", "openrouter"),
        ("https://api.together.xyz/v1", "together_ai"),
        ("https://my-resource.openai.azure.com/openai/v1", "azure.ai.openai"),
        ("http://localhost:11434/v1", "ollama"),
        ("http://127.0.0.1:8000/v1", "openai"),
        ("http://vllm.internal:8000/v1", "vllm"),
    ],
)
def test_provider_from_base_url(base_url: str, provider: str) -> None:
    resolver = ProviderResolver({"vllm.internal:8000": "vllm"})
    assert resolver.provider_of(openai.OpenAI(base_url=base_url, api_key="test")) == provider


def test_azure_client_class() -> None:
    azure = openai.AzureOpenAI(azure_endpoint="https://example.net", api_key="k", api_version="2024-10-21")
    assert ProviderResolver().provider_of(azure) == "azure.ai.openai"


def test_compatible_server_provider_on_the_call(server: StandInServer, telemetry: CapturedTelemetry) -> None:
    host = server.openai_base_url.split("//")[1].split("/")[0]
    OpenAIInstrumentor().instrument(provider_by_host={host: "vllm"})
    try:
        with client(server) as c:
            c.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    finally:
        OpenAIInstrumentor().uninstrument()
    assert one_span(telemetry).attributes["gen_ai.provider.name"] == "vllm"
    assert llm_spans(telemetry)


def test_provider_follows_a_replaced_base_url() -> None:
    resolver = ProviderResolver()
    c = openai.OpenAI(base_url="https://api.openai.com/v1", api_key="test")
    assert resolver.provider_of(c) == "openai"
    assert resolver.provider_of(c) == "openai"  # from the per-client cache
    c.base_url = "https://api.groq.com/openai/v1"
    assert resolver.provider_of(c) == "groq"
