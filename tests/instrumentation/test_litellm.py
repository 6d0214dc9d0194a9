"""The litellm instrumentor against the real litellm and the stand-in server (OpenAI-compatible and
Anthropic routes), alone and over the instrumented openai SDK it calls underneath."""

from __future__ import annotations

import asyncio
import gc
import os
import warnings
from collections.abc import Iterator
from typing import Any

import pytest

# litellm fetches its price map at import unless told not to; tests never reach the network
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

with warnings.catch_warnings():  # litellm's import uses importlib.resources.open_text (deprecated)
    warnings.simplefilter("ignore", DeprecationWarning)
    import litellm
    from litellm.litellm_core_utils.streaming_handler import CustomStreamWrapper
    from litellm.llms.custom_httpx.async_client_cleanup import close_litellm_async_clients
    from litellm.types.utils import ModelResponse

import llm_otel
from llm_otel.integrations.litellm import provider_name
from llm_otel.testing import CapturedTelemetry
from llm_otel.tools.devserver import FAULT_HEADER, StandInServer
from tests.instrumentation.conftest import llm_spans

# litellm itself still uses deprecated pydantic APIs; warnings of the kit stay errors
pytestmark = pytest.mark.filterwarnings(
    "ignore::pydantic.warnings.PydanticDeprecatedSince20",
    "ignore::pydantic.warnings.PydanticDeprecatedSince211",
    "ignore:open_text is deprecated:DeprecationWarning",
)

MODEL = "gpt-4o-mini"
MESSAGES = [{"role": "user", "content": "Say hello"}]


@pytest.fixture(autouse=True)
def _litellm_leftovers() -> Iterator[None]:
    """litellm leaves an event loop of its own set (and sockets of its logging worker) after async
    calls; close them after each test, so their ResourceWarnings never land in another test."""
    yield
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            loop = asyncio.get_event_loop()
        except RuntimeError:
            loop = None
        if loop is not None and not loop.is_running() and not loop.is_closed():
            loop.close()
        asyncio.set_event_loop(None)
        gc.collect()


@pytest.fixture
def lite(telemetry: CapturedTelemetry) -> Iterator[CapturedTelemetry]:
    llm_otel.instrument("litellm")
    try:
        yield telemetry
    finally:
        llm_otel.uninstrument()


def openai_route(server: StandInServer, api_key: str = "test", **kwargs: Any) -> Any:
    return litellm.completion(
        model=f"openai/{MODEL}", api_base=server.openai_base_url, api_key=api_key, messages=MESSAGES, **kwargs
    )


def only_span(telemetry: CapturedTelemetry) -> Any:
    spans = telemetry.spans()
    assert len(spans) == 1, [s.name for s in spans]
    return spans[0]


def test_completion(server: StandInServer, lite: CapturedTelemetry) -> None:
    response = openai_route(server, max_tokens=50)
    assert type(response) is ModelResponse
    span = only_span(lite)
    assert span.name == f"chat openai/{MODEL}"
    assert span.attributes["gen_ai.provider.name"] == "openai"
    assert span.attributes["gen_ai.request.max_tokens"] == 50
    assert span.attributes["gen_ai.response.model"] == response.model
    assert span.attributes["gen_ai.response.id"] == response.id
    assert span.attributes["gen_ai.usage.input_tokens"] == response.usage.prompt_tokens
    assert span.attributes["gen_ai.usage.output_tokens"] == response.usage.completion_tokens
    assert lite.counter("llm.tokens.output") == response.usage.completion_tokens


def test_positional_model_and_messages(server: StandInServer, lite: CapturedTelemetry) -> None:
    litellm.completion(f"openai/{MODEL}", MESSAGES, api_base=server.openai_base_url, api_key="test")
    assert only_span(lite).attributes["gen_ai.request.model"] == f"openai/{MODEL}"


def test_provider_routed_to_without_an_sdk_beneath(server: StandInServer, lite: CapturedTelemetry) -> None:
    """litellm's own HTTP client for Anthropic: the litellm call is the only record."""
    response = litellm.completion(
        model="anthropic/claude-3-5-haiku-latest", api_base=server.anthropic_base_url, api_key="test",
        messages=MESSAGES, max_tokens=50,
    )
    span = only_span(lite)
    assert span.attributes["gen_ai.provider.name"] == "anthropic"
    assert span.attributes["gen_ai.usage.input_tokens"] == response.usage.prompt_tokens
    assert span.attributes["gen_ai.usage.output_tokens"] == response.usage.completion_tokens


def test_stream_with_usage(server: StandInServer, lite: CapturedTelemetry) -> None:
    stream = openai_route(server, stream=True, stream_options={"include_usage": True})
    assert type(stream) is CustomStreamWrapper
    assert lite.spans() == []  # the call lasts until the stream ends
    chunks = list(stream)
    usage = chunks[-1].usage
    span = only_span(lite)
    assert span.attributes["gen_ai.usage.input_tokens"] == usage.prompt_tokens
    assert span.attributes["gen_ai.usage.output_tokens"] == usage.completion_tokens
    assert span.attributes["llm.stream.chunks"] == len(chunks)
    assert "stop" in span.attributes["gen_ai.response.finish_reasons"]


def test_stream_without_usage_is_unpriced_with_the_reason(server: StandInServer, lite: CapturedTelemetry) -> None:
    chunks = list(openai_route(server, stream=True))
    assert chunks
    span = only_span(lite)
    assert "gen_ai.usage.input_tokens" not in span.attributes
    assert "usage:stream_not_requested" in span.attributes["llm.usage.unknown_reason"]
    assert lite.counter("llm.cost.unpriced") == 1


def test_streams_the_kit_did_not_start_are_left_alone(server: StandInServer, telemetry: CapturedTelemetry) -> None:
    stream = openai_route(server, stream=True)  # before instrument(): an unwatched stream
    llm_otel.instrument("litellm")
    try:
        assert list(stream)
    finally:
        llm_otel.uninstrument()
    assert telemetry.spans() == []


async def test_acompletion_and_async_stream(server: StandInServer, lite: CapturedTelemetry) -> None:
    response = await litellm.acompletion(
        model=f"openai/{MODEL}", api_base=server.openai_base_url, api_key="test", messages=MESSAGES,
    )
    stream = await litellm.acompletion(
        model=f"openai/{MODEL}", api_base=server.openai_base_url, api_key="test", messages=MESSAGES,
        stream=True, stream_options={"include_usage": True},
    )
    assert type(stream) is CustomStreamWrapper
    chunks = [chunk async for chunk in stream]
    await close_litellm_async_clients()  # litellm keeps its async HTTP sessions in a cache
    first, second = lite.spans()
    assert first.attributes["gen_ai.usage.output_tokens"] == response.usage.completion_tokens
    assert second.attributes["gen_ai.usage.output_tokens"] == chunks[-1].usage.completion_tokens
    assert lite.counter("llm.tokens.output") == response.usage.completion_tokens + chunks[-1].usage.completion_tokens


def test_errors_propagate_as_the_same_object(server: StandInServer, lite: CapturedTelemetry) -> None:
    caught = []
    with pytest.raises(litellm.RateLimitError) as info:
        try:
            openai_route(server, extra_headers={FAULT_HEADER: "429"}, num_retries=0)
        except litellm.RateLimitError as exc:
            caught.append(exc)
            raise
    assert info.value is caught[0]
    span = only_span(lite)
    assert span.attributes["error.type"] == "rate_limited"


def test_one_record_over_the_instrumented_openai_sdk(server: StandInServer, telemetry: CapturedTelemetry) -> None:
    # litellm caches its openai clients (by key and URL), and a client's with_raw_response keeps
    # the method it found when first used: a client cached before instrument() never reaches the
    # SDK wrapper (the litellm call then records alone, see the next test); a key of its own
    # makes litellm build a client now
    llm_otel.instrument("litellm", "openai")
    try:
        response = openai_route(server, api_key="fresh-client")
        stream = openai_route(server, api_key="fresh-client", stream=True, stream_options={"include_usage": True})
        chunks = list(stream)
    finally:
        llm_otel.uninstrument()
    records = llm_spans(telemetry)
    assert len(records) == 2  # one per API call: the openai SDK's, nearest the wire
    deferred = [s for s in telemetry.spans() if s.attributes.get("llm.record.deferred")]
    assert len(deferred) == 2
    assert {s.parent.span_id for s in records} == {s.context.span_id for s in deferred}
    assert all(s.instrumentation_scope.name == "llm_otel" for s in records)
    assert telemetry.counter("llm.tokens.output") == (
        response.usage.completion_tokens + chunks[-1].usage.completion_tokens
    )


def test_one_record_when_litellm_reuses_a_client_made_before_the_sdk_was_instrumented(
    server: StandInServer, telemetry: CapturedTelemetry
) -> None:
    openai_route(server, api_key="early-client")  # cached, with its raw-response method unwrapped
    llm_otel.instrument("litellm", "openai")
    try:
        response = openai_route(server, api_key="early-client")
    finally:
        llm_otel.uninstrument()
    record, = llm_spans(telemetry)
    assert record.attributes["gen_ai.request.model"] == f"openai/{MODEL}"  # the litellm call's own
    assert telemetry.counter("llm.tokens.output") == response.usage.completion_tokens


def test_uninstrument_restores_litellm(server: StandInServer, telemetry: CapturedTelemetry) -> None:
    original = litellm.completion
    original_next = CustomStreamWrapper.__next__
    assert llm_otel.instrument("litellm") == ["litellm"]
    assert litellm.completion is not original
    llm_otel.uninstrument("litellm")
    assert litellm.completion is original
    assert CustomStreamWrapper.__next__ is original_next
    openai_route(server)
    assert telemetry.spans() == []


@pytest.mark.parametrize(
    ("routed", "expected"),
    [("openai", "openai"), ("bedrock", "aws.bedrock"), ("vertex_ai", "gcp.vertex_ai"), ("azure", "azure.ai.openai"),
     ("groq", "groq"), ("", None), (None, None)],
)
def test_provider_names(routed: Any, expected: str | None) -> None:
    assert provider_name(routed) == expected
