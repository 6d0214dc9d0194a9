"""The anthropic instrumentor against the real SDK and the stand-in server."""

from __future__ import annotations

import time
from typing import Any

import anthropic
import pytest
from anthropic.lib.streaming import MessageStream
from anthropic.resources.messages import AsyncMessages, Messages

from llm_otel.integrations.anthropic import _provider
from llm_otel.testing import CapturedTelemetry
from llm_otel.tools.devserver import FAULT_HEADER, LatencyProfile, StandInServer

MODEL = "claude-3-5-haiku-latest"
MESSAGES = [{"role": "user", "content": "Say hello"}]


def client(server: StandInServer) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=server.anthropic_base_url, api_key="test", max_retries=0)


def only_span(telemetry: CapturedTelemetry) -> Any:
    spans = telemetry.spans()
    assert len(spans) == 1, [s.name for s in spans]
    return spans[0]


def test_create(server: StandInServer, instrumented: CapturedTelemetry) -> None:
    with client(server) as c:
        message = c.messages.create(model=MODEL, max_tokens=100, messages=MESSAGES)
    assert type(message) is anthropic.types.Message
    span = only_span(instrumented)
    assert span.name == f"chat {MODEL}"
    assert span.attributes["gen_ai.provider.name"] == "anthropic"
    assert span.attributes["gen_ai.request.max_tokens"] == 100
    assert (span.attributes["server.address"], span.attributes["server.port"]) == ("127.0.0.1", server.port)
    assert span.attributes["gen_ai.usage.input_tokens"] == message.usage.input_tokens
    assert span.attributes["gen_ai.usage.output_tokens"] == message.usage.output_tokens
    assert instrumented.counter("llm.tokens.output") == message.usage.output_tokens


def test_create_stream(server: StandInServer, instrumented: CapturedTelemetry) -> None:
    with client(server) as c:
        stream = c.messages.create(model=MODEL, max_tokens=100, messages=MESSAGES, stream=True)
        assert type(stream) is anthropic.Stream
        events = list(stream)
    delta = next(e for e in events if e.type == "message_delta")
    span = only_span(instrumented)
    assert span.attributes["gen_ai.usage.output_tokens"] == delta.usage.output_tokens
    assert span.attributes["llm.stream.chunks"] == len(events)


def test_stream_helper_spans_the_stream(server: StandInServer, instrumented: CapturedTelemetry) -> None:
    server.latency = LatencyProfile(mean_ms=30, per_chunk_ms=10)
    try:
        with client(server) as c:
            manager = c.messages.stream(model=MODEL, max_tokens=100, messages=MESSAGES)
            assert instrumented.spans() == []  # nothing sent before the block is entered
            began = time.perf_counter()
            with manager as stream:
                assert type(stream) is MessageStream
                for _ in stream:
                    pass
            elapsed = time.perf_counter() - began
        final = stream.get_final_message()
    finally:
        server.latency = LatencyProfile()
    span = only_span(instrumented)
    assert span.attributes["gen_ai.usage.input_tokens"] == final.usage.input_tokens
    assert span.attributes["gen_ai.usage.output_tokens"] == final.usage.output_tokens
    assert (span.end_time - span.start_time) / 1e9 >= 0.8 * elapsed


async def test_async_create_and_stream(server: StandInServer, instrumented: CapturedTelemetry) -> None:
    async with anthropic.AsyncAnthropic(base_url=server.anthropic_base_url, api_key="test", max_retries=0) as c:
        message = await c.messages.create(model=MODEL, max_tokens=100, messages=MESSAGES)
        async with c.messages.stream(model=MODEL, max_tokens=100, messages=MESSAGES) as stream:
            async for _ in stream:
                pass
        final = await stream.get_final_message()
    first, second = instrumented.spans()
    assert first.attributes["gen_ai.usage.output_tokens"] == message.usage.output_tokens
    assert second.attributes["gen_ai.usage.output_tokens"] == final.usage.output_tokens
    assert instrumented.counter("llm.tokens.output") == message.usage.output_tokens + final.usage.output_tokens


def test_raw_response(server: StandInServer, instrumented: CapturedTelemetry) -> None:
    with client(server) as c:
        raw = c.messages.with_raw_response.create(model=MODEL, max_tokens=100, messages=MESSAGES)
        message = raw.parse()
    assert only_span(instrumented).attributes["gen_ai.usage.output_tokens"] == message.usage.output_tokens


def test_streamed_response_parsed_or_read_raw(server: StandInServer, instrumented: CapturedTelemetry) -> None:
    with client(server) as c:
        with c.messages.with_streaming_response.create(
                model=MODEL, max_tokens=100, messages=MESSAGES, stream=True) as response:
            events = list(response.parse())
        with c.messages.with_streaming_response.create(
                model=MODEL, max_tokens=100, messages=MESSAGES, stream=True) as response:
            assert [line for line in response.iter_lines() if line]
    parsed, raw = sorted(instrumented.spans(), key=lambda span: span.start_time)
    assert parsed.attributes["gen_ai.usage.output_tokens"] == events[-2].usage.output_tokens  # message_delta
    assert "usage:response_not_parsed" in raw.attributes["llm.usage.unknown_reason"]
    assert "llm.stream.outcome" not in raw.attributes


def test_error_is_the_same_object(server: StandInServer, instrumented: CapturedTelemetry) -> None:
    seen = []
    with client(server) as c, pytest.raises(anthropic.InternalServerError) as info:
        try:
            c.messages.create(model=MODEL, max_tokens=10, messages=MESSAGES, extra_headers={FAULT_HEADER: "500"})
        except anthropic.InternalServerError as exc:
            seen.append(exc)
            raise
    assert info.value is seen[0]
    assert "error.type" in only_span(instrumented).attributes


def test_bedrock_and_vertex_clients_share_the_wrapped_resource() -> None:
    bedrock = anthropic.AnthropicBedrock(aws_region="us-east-1", aws_access_key="a", aws_secret_key="b")
    vertex = anthropic.AnthropicVertex(region="us-east5", project_id="p", access_token="t")
    assert isinstance(bedrock.messages, Messages)
    assert isinstance(vertex.messages, Messages)
    assert isinstance(anthropic.AsyncAnthropicBedrock(aws_region="us-east-1", aws_access_key="a",
                                                      aws_secret_key="b").messages, AsyncMessages)
    assert _provider(bedrock.messages) == "aws.bedrock"
    assert _provider(vertex.messages) == "gcp.vertex_ai"
    assert _provider(anthropic.Anthropic(api_key="k").messages) == "anthropic"
