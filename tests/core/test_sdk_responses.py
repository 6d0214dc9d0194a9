"""Usage extraction from the real OpenAI and Anthropic SDK types (built from JSON with their own models)."""

from __future__ import annotations

import json

import anthropic
import httpx
import openai
import pytest
from anthropic.types import Message, RawMessageDeltaEvent, RawMessageStartEvent
from openai.types.chat import ChatCompletion, ChatCompletionChunk
from openai.types.responses import Response, ResponseCompletedEvent

import llm_otel
from llm_otel._extract import facts_from
from llm_otel._usage import UsageProblems
from llm_otel.testing import CapturedTelemetry

CHAT = {
    "id": "chatcmpl-abc", "object": "chat.completion", "created": 1, "model": "gpt-4o-2024-08-06",
    "choices": [{"index": 0, "finish_reason": "length", "logprobs": None,
                 "message": {"role": "assistant", "content": "Hello there"}}],
    "usage": {"prompt_tokens": 1200, "completion_tokens": 300, "total_tokens": 1500,
              "prompt_tokens_details": {"cached_tokens": 1024},
              "completion_tokens_details": {"reasoning_tokens": 0}},
}

RESPONSE = {
    "id": "resp_1", "object": "response", "created_at": 1, "model": "o3-mini-2025-01-31", "status": "completed",
    "output": [{"type": "message", "id": "msg_1", "status": "completed", "role": "assistant",
                "content": [{"type": "output_text", "text": "42", "annotations": []}]}],
    "parallel_tool_calls": True, "tool_choice": "auto", "tools": [],
    "usage": {"input_tokens": 500, "output_tokens": 900, "total_tokens": 1400,
              "input_tokens_details": {"cached_tokens": 100, "cache_write_tokens": 50},
              "output_tokens_details": {"reasoning_tokens": 800}},
}

ANTHROPIC = {
    "id": "msg_01", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5-20250929",
    "content": [{"type": "text", "text": "Hi"}], "stop_reason": "end_turn", "stop_sequence": None,
    "usage": {"input_tokens": 100, "output_tokens": 40, "cache_read_input_tokens": 2000,
              "cache_creation_input_tokens": 500},
}


def test_openai_chat_completion() -> None:
    facts = facts_from(ChatCompletion.model_validate(CHAT), UsageProblems())
    assert facts.usage.input_tokens == 1200
    assert facts.usage.cache_read_input_tokens == 1024
    assert facts.usage.output_tokens == 300
    assert facts.response_model == "gpt-4o-2024-08-06"
    assert facts.response_id == "chatcmpl-abc"
    assert facts.finish_reasons == ["length"]
    assert facts.provider == "openai"


def test_openai_responses_api_with_reasoning() -> None:
    facts = facts_from(Response.model_validate(RESPONSE), UsageProblems())
    assert facts.usage.input_tokens == 500
    assert facts.usage.output_tokens == 900
    assert facts.usage.reasoning_output_tokens == 800
    assert facts.usage.cache_read_input_tokens == 100
    assert facts.usage.cache_creation_input_tokens == 50
    assert facts.finish_reasons == ["stop"]
    event = ResponseCompletedEvent.model_validate(
        {"type": "response.completed", "sequence_number": 9, "response": RESPONSE}
    )
    assert facts_from(event, UsageProblems()).usage == facts.usage


def test_anthropic_message_totals_include_cache() -> None:
    facts = facts_from(Message.model_validate(ANTHROPIC), UsageProblems())
    assert facts.usage.input_tokens == 100 + 2000 + 500
    assert facts.usage.cache_read_input_tokens == 2000
    assert facts.usage.cache_creation_input_tokens == 500
    assert facts.finish_reasons == ["end_turn"]
    assert facts.provider == "anthropic"


def test_anthropic_stream_events_accumulate(telemetry: CapturedTelemetry) -> None:
    start = RawMessageStartEvent.model_validate({
        "type": "message_start",
        "message": {**ANTHROPIC, "content": [], "stop_reason": None,
                    "usage": {"input_tokens": 100, "output_tokens": 1, "cache_read_input_tokens": 2000,
                              "cache_creation_input_tokens": 500}},
    })
    delta = RawMessageDeltaEvent.model_validate({
        "type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": None},
        "usage": {"output_tokens": 40},
    })

    @llm_otel.traced_llm(model="claude-sonnet-4-5")
    def stream():  # type: ignore[no-untyped-def]
        yield start
        yield delta

    list(stream())
    span = telemetry.span("chat claude-sonnet-4-5")
    assert span.attributes["gen_ai.provider.name"] == "anthropic"  # type: ignore[index]
    assert span.attributes["gen_ai.usage.input_tokens"] == 2600  # type: ignore[index]
    assert span.attributes["gen_ai.usage.output_tokens"] == 40  # type: ignore[index]
    assert span.attributes["gen_ai.usage.cache_read.input_tokens"] == 2000  # type: ignore[index]
    from genai_prices import Usage, calc_price

    expected = calc_price(
        Usage(input_tokens=2600, output_tokens=40, cache_read_tokens=2000, cache_write_tokens=500),
        "claude-sonnet-4-5-20250929", provider_id="anthropic",
    ).total_price
    assert telemetry.histogram_sum("llm.cost.usd") == pytest.approx(float(expected), rel=1e-9)


def test_openai_stream_chunk_with_usage() -> None:
    chunk = ChatCompletionChunk.model_validate({
        "id": "c", "object": "chat.completion.chunk", "created": 1, "model": "gpt-4o-mini", "choices": [],
        "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15},
    })
    assert facts_from(chunk, UsageProblems()).usage.output_tokens == 5


def test_langchain_ai_message() -> None:
    from langchain_core.messages import AIMessage

    message = AIMessage(
        content="hi", id="run-1",
        usage_metadata={"input_tokens": 30, "output_tokens": 12, "total_tokens": 42,
                        "input_token_details": {"cache_read": 10}, "output_token_details": {"reasoning": 4}},
        response_metadata={"model_name": "gpt-4o-mini-2024-07-18", "finish_reason": "stop",
                           "model_provider": "openai"},
    )
    facts = facts_from(message, UsageProblems())
    assert (facts.usage.input_tokens, facts.usage.cache_read_input_tokens) == (30, 10)
    assert facts.usage.reasoning_output_tokens == 4
    assert facts.response_model == "gpt-4o-mini-2024-07-18"
    assert facts.provider == "openai"
    assert facts.finish_reasons == ["stop"]


def _sse(events: list[dict[str, object]]) -> bytes:
    return b"".join(f"data: {json.dumps(e)}\n\n".encode() for e in events) + b"data: [DONE]\n\n"


def test_real_openai_client_stream_returned_from_function(telemetry: CapturedTelemetry) -> None:
    """A function returning the SDK's Stream keeps the call open until the stream is consumed."""
    chunks = [
        {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "gpt-4o-mini",
         "choices": [{"index": 0, "delta": {"content": "hi"}, "finish_reason": None}]},
        {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "gpt-4o-mini",
         "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]},
        {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "gpt-4o-mini", "choices": [],
         "usage": {"prompt_tokens": 21, "completion_tokens": 2, "total_tokens": 23}},
    ]
    transport = httpx.MockTransport(
        lambda request: httpx.Response(200, content=_sse(chunks), headers={"content-type": "text/event-stream"})
    )
    client = openai.OpenAI(api_key="test", base_url="http://llm.test/v1", http_client=httpx.Client(transport=transport))

    @llm_otel.traced_llm(provider="openai")
    def ask(model: str):  # type: ignore[no-untyped-def]
        return client.chat.completions.create(
            model=model, messages=[{"role": "user", "content": "hi"}], stream=True,
            stream_options={"include_usage": True},
        )

    stream = ask("gpt-4o-mini")
    assert telemetry.spans() == []  # still streaming
    assert stream.response.status_code == 200  # attributes of the SDK stream pass through
    texts = [c.choices[0].delta.content for c in stream if c.choices]
    assert texts == ["hi", None]
    assert telemetry.counter("llm.tokens.input") == 21
    assert telemetry.histogram_count("gen_ai.client.operation.time_to_first_chunk") == 1
    client.close()


def test_real_sdk_rate_limit_error_is_counted(telemetry: CapturedTelemetry) -> None:
    import httpx2  # the transport package this anthropic SDK is built on

    transport = httpx2.MockTransport(lambda request: httpx2.Response(
        429, json={"type": "error", "error": {"type": "rate_limit_error", "message": "slow down"}},
        headers={"retry-after": "1"},
    ))
    client = anthropic.Anthropic(api_key="test", base_url="http://llm.test", max_retries=0,
                                 http_client=httpx2.Client(transport=transport))

    @llm_otel.traced_llm(provider="anthropic", model="claude-haiku-4-5")
    def ask() -> object:
        return client.messages.create(model="claude-haiku-4-5", max_tokens=10,
                                      messages=[{"role": "user", "content": "hi"}])

    with pytest.raises(anthropic.RateLimitError):
        ask()
    assert telemetry.counter("llm.rate_limited", error__type="rate_limited") == 1
    assert telemetry.counter("llm.errors", error__type="rate_limited") == 1
    client.close()


def test_extra_fields_of_sdk_objects_are_read() -> None:
    """Fields a provider sends beyond the SDK's schema (kept as pydantic extras) still count."""
    payload = json.loads(json.dumps(CHAT))
    payload["usage"]["prompt_tokens_details"]["cache_write_tokens"] = 100
    facts = facts_from(ChatCompletion.model_validate(payload), UsageProblems())
    assert facts.usage.cache_creation_input_tokens == 100
    assert facts.usage.cache_read_input_tokens == 1024


@pytest.mark.parametrize("shape", [["chat.completion"], {"a": 1}, None, 3])
def test_sdk_object_with_an_odd_object_field_is_no_chat_completion(shape: object) -> None:
    broken = ChatCompletion.model_construct(**{**CHAT, "object": shape})
    facts = facts_from(broken, UsageProblems())
    assert facts.usage.input_tokens == 1200  # still read through the choices/usage shape


GEMINI = {
    "candidates": [{"index": 0, "finish_reason": "MAX_TOKENS",
                    "content": {"role": "model", "parts": [{"text": "plan the answer", "thought": True},
                                                           {"text": "Hello"}]}}],
    "usage_metadata": {"prompt_token_count": 1200, "cached_content_token_count": 1024,
                       "tool_use_prompt_token_count": 30, "candidates_token_count": 40,
                       "thoughts_token_count": 300, "total_token_count": 1570},
    "model_version": "gemini-2.5-flash-001", "response_id": "resp-gemini-1",
}


def test_gemini_response_counts_thoughts_as_output_and_tool_prompts_as_input() -> None:
    from google.genai import types

    facts = facts_from(types.GenerateContentResponse.model_validate(GEMINI), UsageProblems(), want_text=True)
    assert facts.usage.input_tokens == 1200 + 30  # the prompt count includes the cached content
    assert facts.usage.cache_read_input_tokens == 1024
    assert facts.usage.output_tokens == 40 + 300
    assert facts.usage.reasoning_output_tokens == 300
    assert facts.finish_reasons == ["max_tokens"]
    assert facts.response_model == "gemini-2.5-flash-001"
    assert facts.response_id == "resp-gemini-1"
    assert facts.output_text == ["Hello"]  # thought parts are not the answer
    assert facts_from(GEMINI, UsageProblems()).usage == facts.usage  # a model_dump() dict reads the same


def test_gemini_stream_takes_the_last_running_total(telemetry: CapturedTelemetry) -> None:
    """Every Gemini stream chunk carries the usage so far: the record is the last one, not a sum."""
    from google.genai import types

    def chunk(text: str, output: int, finish: str | None = None) -> object:
        return types.GenerateContentResponse.model_validate({
            "candidates": [{"index": 0, "finish_reason": finish,
                            "content": {"role": "model", "parts": [{"text": text}]}}],
            "usage_metadata": {"prompt_token_count": 12, "candidates_token_count": output,
                               "total_token_count": 12 + output},
            "model_version": "gemini-2.5-flash", "response_id": "r-1",
        })

    @llm_otel.traced_llm(provider="gcp.gemini", model="gemini-2.5-flash")
    def stream():  # type: ignore[no-untyped-def]
        yield chunk("Hel", 1)
        yield chunk("lo", 2)
        yield chunk(" there", 3, "STOP")

    list(stream())
    span = telemetry.span("chat gemini-2.5-flash")
    assert span.attributes["gen_ai.usage.input_tokens"] == 12  # type: ignore[index]
    assert span.attributes["gen_ai.usage.output_tokens"] == 3  # type: ignore[index]
    assert span.attributes["gen_ai.response.finish_reasons"] == ("stop",)  # type: ignore[index]
    assert telemetry.counter("llm.tokens.input") == 12
    assert telemetry.counter("llm.tokens.output") == 3
    assert telemetry.histogram_sum("llm.cost.usd") == pytest.approx((12 * 0.3 + 3 * 2.5) / 1e6, rel=1e-9)


def test_gemini_usage_given_to_set_usage() -> None:
    from google.genai import types

    with llm_otel.llm_call(provider="gcp.gemini", model="gemini-2.5-flash") as call:
        call.set_usage(types.GenerateContentResponseUsageMetadata(prompt_token_count=7, candidates_token_count=2,
                                                                  thoughts_token_count=5))
    assert (call.usage.input_tokens, call.usage.output_tokens, call.usage.reasoning_output_tokens) == (7, 7, 5)


def test_langchain_usage_metadata_is_not_read_as_gemini() -> None:
    facts = facts_from({"usage_metadata": {"input_tokens": 3, "output_tokens": 4}, "response_metadata": {}},
                       UsageProblems())
    assert (facts.usage.input_tokens, facts.usage.output_tokens) == (3, 4)


def test_google_genai_rate_limit_and_error_type() -> None:
    from google.genai import errors

    from llm_otel.adapter import error_type

    body = {"error": {"code": 429, "message": "Resource exhausted", "status": "RESOURCE_EXHAUSTED"}}
    assert error_type(errors.ClientError(429, body)) == "rate_limited"  # no HTTP response: read from .code
    assert error_type(errors.ClientError(400, {"error": {"code": 400}})) == "google.genai.ClientError"
    assert error_type(errors.ServerError(503, {})) == "google.genai.ServerError"
