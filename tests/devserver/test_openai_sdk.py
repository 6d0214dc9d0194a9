"""The official ``openai`` SDK against the stand-in, over real HTTP."""

from __future__ import annotations

import base64
import struct

import openai
import pytest

from llm_otel.tools.devserver import StandInServer, count_tokens, expected_reply, expected_usage

MESSAGES = [
    {"role": "system", "content": "You answer questions about dashboards."},
    {"role": "user", "content": "Why is my p95 latency panel empty?"},
]


def test_chat_completion_plain(openai_client: openai.OpenAI, server: StandInServer) -> None:
    completion = openai_client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    expected = expected_reply("gpt-4o-mini", MESSAGES)
    assert completion.object == "chat.completion"
    assert completion.model == "gpt-4o-mini"
    assert completion.id.startswith("chatcmpl-")
    choice = completion.choices[0]
    assert (choice.message.content, choice.finish_reason) == (expected.text, "stop")
    assert completion.usage is not None
    assert completion.usage.prompt_tokens == expected.usage.input_tokens
    assert completion.usage.completion_tokens == expected.usage.output_tokens
    assert completion.usage.total_tokens == expected.usage.total_tokens
    assert server.request_count == 1
    recorded = server.requests[0]
    assert (recorded.method, recorded.path, recorded.api, recorded.status) == (
        "POST",
        "/v1/chat/completions",
        "openai",
        200,
    )
    assert recorded.body["model"] == "gpt-4o-mini"
    assert recorded.headers["authorization"] == "Bearer test"


def test_chat_completion_stream_with_usage_chunk(openai_client: openai.OpenAI) -> None:
    stream = openai_client.chat.completions.create(
        model="gpt-4o-mini", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
    )
    chunks = list(stream)
    expected = expected_reply("gpt-4o-mini", MESSAGES)
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(chunk.choices[0].delta.content or "" for chunk in chunks if chunk.choices)
    assert text == expected.text
    finishes = [
        chunk.choices[0].finish_reason for chunk in chunks if chunk.choices and chunk.choices[0].finish_reason
    ]
    assert finishes == ["stop"]
    *content_chunks, usage_chunk = chunks
    assert usage_chunk.choices == []
    assert usage_chunk.usage is not None
    assert usage_chunk.usage.prompt_tokens == expected.usage.input_tokens
    assert usage_chunk.usage.completion_tokens == expected.usage.output_tokens
    assert all(chunk.usage is None for chunk in content_chunks)
    assert len({chunk.id for chunk in chunks}) == 1


def test_chat_completion_stream_without_usage(openai_client: openai.OpenAI) -> None:
    chunks = list(openai_client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True))
    assert all(chunk.choices and chunk.usage is None for chunk in chunks)


def test_reasoning_and_cached_tokens_in_chat_usage(openai_client: openai.OpenAI) -> None:
    messages = [{"role": "user", "content": "Plan the rollout. [[standin:cached=4]]"}]
    completion = openai_client.chat.completions.create(model="o4-mini", messages=messages)
    usage = completion.usage
    expected = expected_usage("o4-mini", messages)
    assert usage is not None and usage.prompt_tokens_details and usage.completion_tokens_details
    assert usage.prompt_tokens_details.cached_tokens == expected.cached_input_tokens == 4
    assert usage.completion_tokens_details.reasoning_tokens == expected.reasoning_tokens > 0
    assert (
        usage.completion_tokens
        == count_tokens(completion.choices[0].message.content or "") + expected.reasoning_tokens
    )


def test_max_completion_tokens_finishes_with_length(openai_client: openai.OpenAI) -> None:
    completion = openai_client.chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "[[standin:reply=a b c d e f]]"}],
        max_completion_tokens=3,
    )
    assert completion.choices[0].message.content == "a b c"
    assert completion.choices[0].finish_reason == "length"


TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "search_docs",
            "description": "Search the runbooks.",
            "parameters": {
                "type": "object",
                "properties": {"query": {"type": "string"}},
                "required": ["query"],
            },
        },
    }
]


def test_chat_tool_call_round_trip(openai_client: openai.OpenAI) -> None:
    messages: list[dict[str, object]] = [{"role": "user", "content": "How do I silence an alert?"}]
    first = openai_client.chat.completions.create(model="gpt-4o-mini", messages=messages, tools=TOOLS)
    assert first.choices[0].finish_reason == "tool_calls"
    calls = first.choices[0].message.tool_calls
    assert calls is not None and calls[0].type == "function"
    assert calls[0].function.name == "search_docs"
    assert calls[0].function.arguments == '{"query": "How do I silence an alert?"}'
    messages += [
        first.choices[0].message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": calls[0].id, "content": "Use a silence in Alertmanager."},
    ]
    second = openai_client.chat.completions.create(model="gpt-4o-mini", messages=messages, tools=TOOLS)
    assert second.choices[0].finish_reason == "stop"
    assert second.choices[0].message.content == expected_reply("gpt-4o-mini", messages, tools=TOOLS).text


def test_chat_tool_call_streamed(openai_client: openai.OpenAI) -> None:
    messages = [{"role": "user", "content": "How do I silence an alert?"}]
    chunks = list(
        openai_client.chat.completions.create(
            model="gpt-4o-mini", messages=messages, tools=TOOLS, stream=True
        )
    )
    deltas = [call for chunk in chunks for call in (chunk.choices[0].delta.tool_calls or [])]
    assert deltas[0].function is not None and deltas[0].function.name == "search_docs"
    arguments = "".join((call.function.arguments or "") for call in deltas if call.function)
    assert arguments == '{"query": "How do I silence an alert?"}'
    assert chunks[-1].choices[0].finish_reason == "tool_calls"


def test_responses_plain(openai_client: openai.OpenAI) -> None:
    response = openai_client.responses.create(
        model="gpt-4.1-mini", input="Summarise the incident.", instructions="Be terse."
    )
    expected = expected_reply("gpt-4.1-mini", "Summarise the incident.", system="Be terse.")
    assert response.status == "completed"
    assert response.output_text == expected.text
    assert response.usage is not None
    assert response.usage.input_tokens == expected.usage.input_tokens
    assert response.usage.output_tokens == expected.usage.output_tokens
    assert response.usage.input_tokens_details.cached_tokens == 0
    assert response.usage.output_tokens_details.reasoning_tokens == 0


def test_responses_stream_events(openai_client: openai.OpenAI) -> None:
    prompt = "word " * 1100
    events = list(openai_client.responses.create(model="o3-mini", input=prompt, stream=True))
    types = [event.type for event in events]
    assert types[0] == "response.created"
    assert types[-1] == "response.completed"
    assert "response.output_text.delta" in types
    assert [event.sequence_number for event in events] == list(range(len(events)))
    expected = expected_reply("o3-mini", prompt)
    text = "".join(event.delta for event in events if event.type == "response.output_text.delta")
    assert text == expected.text
    completed = events[-1]
    assert completed.type == "response.completed"
    usage = completed.response.usage
    assert usage is not None
    assert usage.input_tokens_details.cached_tokens == expected.usage.cached_input_tokens == 1024
    assert usage.output_tokens_details.reasoning_tokens == expected.usage.reasoning_tokens > 0
    assert usage.total_tokens == expected.usage.total_tokens


def test_responses_stream_helper_builds_the_final_response(openai_client: openai.OpenAI) -> None:
    with openai_client.responses.stream(model="gpt-4o", input="Say hi") as stream:
        deltas = [event.delta for event in stream if event.type == "response.output_text.delta"]
        final = stream.get_final_response()
    assert "".join(deltas) == final.output_text == expected_reply("gpt-4o", "Say hi").text
    assert (
        final.usage is not None
        and final.usage.output_tokens == expected_usage("gpt-4o", "Say hi").output_tokens
    )


def test_responses_function_call(openai_client: openai.OpenAI) -> None:
    tools = [
        {
            "type": "function",
            "name": "get_weather",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}},
                "required": ["city"],
            },
        }
    ]
    response = openai_client.responses.create(model="gpt-4o", input="Weather in Oslo?", tools=tools)
    call = response.output[0]
    assert call.type == "function_call"
    assert (call.name, call.arguments) == ("get_weather", '{"city": "Weather in Oslo?"}')
    with openai_client.responses.stream(model="gpt-4o", input="Weather in Oslo?", tools=tools) as stream:
        final = stream.get_final_response()
    assert final.output[0].type == "function_call"


def test_embeddings_float_and_default_base64(openai_client: openai.OpenAI, server: StandInServer) -> None:
    floats = openai_client.embeddings.create(
        model="text-embedding-3-small", input=["alpha beta", "gamma"], encoding_format="float", dimensions=16
    )
    assert [len(item.embedding) for item in floats.data] == [16, 16]
    assert floats.usage.prompt_tokens == 3
    decoded = openai_client.embeddings.create(
        model="text-embedding-3-small", input=["alpha beta", "gamma"], dimensions=16
    )
    assert server.requests[-1].body["encoding_format"] == "base64"
    assert decoded.data[0].embedding == pytest.approx(floats.data[0].embedding, abs=1e-6)
    default = openai_client.embeddings.create(model="text-embedding-3-large", input="x")
    assert len(default.data[0].embedding) == 3072


def test_embedding_base64_is_little_endian_float32(openai_client: openai.OpenAI) -> None:
    raw = openai_client.embeddings.create(model="e", input="hello", encoding_format="base64", dimensions=4)
    packed = base64.b64decode(raw.data[0].embedding)
    assert len(struct.unpack("<4f", packed)) == 4


def test_models(openai_client: openai.OpenAI) -> None:
    models = [model.id for model in openai_client.models.list()]
    assert "gpt-4o-mini" in models
    assert openai_client.models.retrieve("my-fine-tune").id == "my-fine-tune"


async def test_async_client_plain_and_stream(async_openai_client: openai.AsyncOpenAI) -> None:
    completion = await async_openai_client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    assert completion.choices[0].message.content == expected_reply("gpt-4o", MESSAGES).text
    stream = await async_openai_client.chat.completions.create(
        model="gpt-4o", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
    )
    chunks = [chunk async for chunk in stream]
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.total_tokens == expected_usage("gpt-4o", MESSAGES).total_tokens
    response = await async_openai_client.responses.create(model="gpt-4o", input="hi", stream=True)
    events = [event async for event in response]
    assert events[-1].type == "response.completed"
