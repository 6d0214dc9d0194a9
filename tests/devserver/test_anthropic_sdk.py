"""The official ``anthropic`` SDK against the stand-in, over real HTTP."""

from __future__ import annotations

import anthropic

from llm_otel.tools.devserver import StandInServer, expected_reply, expected_usage

MESSAGES = [{"role": "user", "content": "Which model is cheapest for classification?"}]
SYSTEM = "You are a cost analyst."


def test_messages_plain(anthropic_client: anthropic.Anthropic, server: StandInServer) -> None:
    message = anthropic_client.messages.create(
        model="claude-haiku-4-5", max_tokens=256, system=SYSTEM, messages=MESSAGES
    )
    expected = expected_reply("claude-haiku-4-5", MESSAGES, system=SYSTEM)
    assert message.id.startswith("msg_")
    assert message.type == "message" and message.role == "assistant"
    assert message.content[0].type == "text"
    assert message.content[0].text == expected.text
    assert message.stop_reason == "end_turn"
    assert message.usage.input_tokens == expected.usage.input_tokens
    assert message.usage.output_tokens == expected.usage.output_tokens
    recorded = server.requests[0]
    assert (recorded.path, recorded.api) == ("/v1/messages", "anthropic")
    assert recorded.headers.get("x-api-key", recorded.headers.get("authorization")) in ("test", "Bearer test")
    assert "anthropic-version" in recorded.headers


def test_messages_stream_events(anthropic_client: anthropic.Anthropic) -> None:
    events = list(
        anthropic_client.messages.create(
            model="claude-haiku-4-5", max_tokens=256, messages=MESSAGES, stream=True
        )
    )
    expected = expected_reply("claude-haiku-4-5", MESSAGES)
    types = [event.type for event in events]
    assert types[:2] == ["message_start", "content_block_start"]
    assert types[-3:] == ["content_block_stop", "message_delta", "message_stop"]
    start, delta = events[0], events[-2]
    assert start.type == "message_start" and delta.type == "message_delta"
    assert start.message.usage.input_tokens == expected.usage.input_tokens
    assert delta.usage.output_tokens == expected.usage.output_tokens
    assert delta.delta.stop_reason == "end_turn"
    text = "".join(
        event.delta.text
        for event in events
        if event.type == "content_block_delta" and event.delta.type == "text_delta"
    )
    assert text == expected.text


def test_messages_stream_helper_and_cache_semantics(anthropic_client: anthropic.Anthropic) -> None:
    messages = [{"role": "user", "content": "context " * 1200}]
    with anthropic_client.messages.stream(
        model="claude-sonnet-4-6", max_tokens=512, messages=messages
    ) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    expected = expected_usage("claude-sonnet-4-6", messages)
    assert text == expected_reply("claude-sonnet-4-6", messages).text
    # Anthropic reports uncached input tokens; cached ones are separate.
    assert final.usage.cache_read_input_tokens == expected.cached_input_tokens == 1152
    assert final.usage.input_tokens == expected.input_tokens - expected.cached_input_tokens == 48
    assert final.usage.output_tokens == expected.output_tokens


def test_max_tokens_stop_reason(anthropic_client: anthropic.Anthropic) -> None:
    message = anthropic_client.messages.create(
        model="claude-haiku-4-5",
        max_tokens=2,
        messages=[{"role": "user", "content": "[[standin:reply=one two three]]"}],
    )
    assert message.stop_reason == "max_tokens"
    assert message.content[0].type == "text" and message.content[0].text == "one two"


def test_thinking_model_reports_thinking_tokens(anthropic_client: anthropic.Anthropic) -> None:
    message = anthropic_client.messages.create(model="claude-thinking-test", max_tokens=64, messages=MESSAGES)
    expected = expected_usage("claude-thinking-test", MESSAGES)
    assert message.usage.output_tokens == expected.output_tokens
    assert message.usage.output_tokens_details is not None
    assert message.usage.output_tokens_details.thinking_tokens == expected.reasoning_tokens > 0


def test_tool_use_round_trip(anthropic_client: anthropic.Anthropic) -> None:
    tools = [
        {
            "name": "lookup_price",
            "description": "Price of a model.",
            "input_schema": {
                "type": "object",
                "properties": {"model": {"type": "string"}},
                "required": ["model"],
            },
        }
    ]
    messages: list[dict[str, object]] = [{"role": "user", "content": "price of gpt-4o"}]
    first = anthropic_client.messages.create(
        model="claude-haiku-4-5", max_tokens=128, messages=messages, tools=tools
    )
    assert first.stop_reason == "tool_use"
    block = first.content[0]
    assert (
        block.type == "tool_use"
        and block.name == "lookup_price"
        and block.input == {"model": "price of gpt-4o"}
    )
    with anthropic_client.messages.stream(
        model="claude-haiku-4-5", max_tokens=128, messages=messages, tools=tools
    ) as stream:
        streamed = stream.get_final_message()
    assert streamed.content[0].type == "tool_use" and streamed.content[0].input == block.input
    messages += [
        {"role": "assistant", "content": [block.model_dump()]},
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": block.id, "content": "$2.50 per million"}],
        },
    ]
    second = anthropic_client.messages.create(
        model="claude-haiku-4-5", max_tokens=128, messages=messages, tools=tools
    )
    assert second.stop_reason == "end_turn"


def test_models_in_anthropic_shape(anthropic_client: anthropic.Anthropic) -> None:
    models = [model.id for model in anthropic_client.models.list()]
    assert "claude-haiku-4-5" in models
    assert anthropic_client.models.retrieve("claude-x").id == "claude-x"


async def test_async_client_plain_and_stream(async_anthropic_client: anthropic.AsyncAnthropic) -> None:
    message = await async_anthropic_client.messages.create(
        model="claude-haiku-4-5", max_tokens=64, messages=MESSAGES
    )
    assert message.usage.output_tokens == expected_usage("claude-haiku-4-5", MESSAGES).output_tokens
    async with async_anthropic_client.messages.stream(
        model="claude-haiku-4-5", max_tokens=64, messages=MESSAGES
    ) as stream:
        final = await stream.get_final_message()
    assert final.content[0].type == "text"
    assert final.content[0].text == expected_reply("claude-haiku-4-5", MESSAGES).text
