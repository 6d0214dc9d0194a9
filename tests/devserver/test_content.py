"""The deterministic answer rules, checked without a server."""

from __future__ import annotations

import random
import statistics

import pytest
from hypothesis import given
from hypothesis import strategies as st

from llm_otel.tools.devserver import (
    FaultPlan,
    LatencyProfile,
    count_tokens,
    expected_reply,
    expected_usage,
    is_reasoning_model,
)
from llm_otel.tools.devserver._content import embedding_vector, split_pieces
from llm_otel.tools.devserver._faults import Fault, parse_fault

USER = [{"role": "user", "content": "What is the p95 latency of gpt-4o-mini today?"}]


def test_tokens_are_words_and_punctuation() -> None:
    assert count_tokens("Hello, world!") == 4
    assert count_tokens("") == 0
    assert count_tokens("  spaced   out  ") == 2


@given(st.text())
def test_stream_pieces_rebuild_the_text_one_token_each(text: str) -> None:
    pieces = split_pieces(text)
    assert "".join(pieces) == text
    assert all(count_tokens(piece) == 1 for piece in pieces) or count_tokens(text) == 0


def test_reply_is_a_pure_function_of_model_and_messages() -> None:
    first = expected_reply("gpt-4o-mini", USER)
    assert first == expected_reply("gpt-4o-mini", [dict(message) for message in USER])
    assert first.text != expected_reply("gpt-4o", USER).text
    assert first.text != expected_reply("gpt-4o-mini", [{"role": "user", "content": "Something else"}]).text
    assert 8 <= count_tokens(first.text.replace(".", "")) <= 40
    assert first.finish_reason == "stop"
    assert first.usage.output_tokens == count_tokens(first.text)


def test_input_tokens_count_every_text_part_in_every_api_shape() -> None:
    text = "What is the p95 latency of gpt-4o-mini today?"
    expected = count_tokens(text)
    shapes: list[object] = [
        text,  # Responses API input string
        [{"role": "user", "content": text}],
        [{"role": "user", "content": [{"type": "text", "text": text}]}],
        [{"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]}],
    ]
    for shape in shapes:
        assert expected_usage("m", shape).input_tokens == expected
    with_system = expected_usage("m", text, system="Be brief.")
    assert with_system.input_tokens == expected + count_tokens("Be brief.")
    assert expected_usage("m", text, system=[{"type": "text", "text": "Be brief."}]) == with_system
    assert expected_usage("m", []).input_tokens == 1  # never zero


def test_reply_marker_sets_the_answer() -> None:
    reply = expected_reply("gpt-4o-mini", "Answer exactly: [[standin:reply=Paris is the capital.]]")
    assert reply.text == "Paris is the capital."
    assert reply.usage.output_tokens == 5


def test_long_prompts_report_cached_tokens_in_blocks() -> None:
    assert expected_usage("m", "word " * 1023).cached_input_tokens == 0
    assert expected_usage("m", "word " * 1100).cached_input_tokens == 1024
    usage = expected_usage("m", "word " * 1300)
    assert (usage.input_tokens, usage.cached_input_tokens, usage.uncached_input_tokens) == (1300, 1280, 20)
    forced = expected_usage("m", "short prompt [[standin:cached=3]]")
    assert forced.cached_input_tokens == 3
    assert (
        expected_usage("m", "x [[standin:cached=999]]").cached_input_tokens
        == expected_usage("m", "x [[standin:cached=999]]").input_tokens
    )


@pytest.mark.parametrize(
    ("model", "reasoning"),
    [
        ("o1", True),
        ("o3-mini", True),
        ("o4-mini", True),
        ("deep-reasoner", True),
        ("claude-thinking", True),
        ("gpt-4o", False),
        ("omni-moderation", False),
        ("claude-haiku-4-5", False),
    ],
)
def test_reasoning_models_add_reasoning_tokens_to_output(model: str, reasoning: bool) -> None:
    assert is_reasoning_model(model) is reasoning
    reply = expected_reply(model, USER)
    visible = count_tokens(reply.text)
    assert reply.usage.output_tokens == visible + reply.usage.reasoning_tokens
    assert (32 <= reply.usage.reasoning_tokens <= 256) if reasoning else reply.usage.reasoning_tokens == 0


def test_max_tokens_cuts_the_visible_answer() -> None:
    reply = expected_reply("gpt-4o-mini", "[[standin:reply=one two three four five six]]", max_tokens=4)
    assert (reply.text, reply.finish_reason, reply.usage.output_tokens) == ("one two three four", "length", 4)
    assert expected_reply("gpt-4o-mini", "[[standin:reply=one two]]", max_tokens=4).finish_reason == "stop"


CHAT_TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "search_docs",
            "parameters": {
                "type": "object",
                "properties": {
                    "query": {"type": "string"},
                    "k": {"type": "integer"},
                    "mode": {"enum": ["fast", "slow"]},
                },
                "required": ["query", "k", "mode"],
            },
        },
    },
    {
        "type": "function",
        "function": {"name": "get_time", "parameters": {"type": "object", "properties": {}}},
    },
]


def test_tools_are_called_until_a_tool_result_arrives() -> None:
    question = [{"role": "user", "content": "find the docs"}]
    reply = expected_reply("gpt-4o-mini", question, tools=CHAT_TOOLS)
    assert reply.finish_reason == "tool_calls" and reply.text == ""
    assert reply.tool_call is not None
    assert reply.tool_call.name == "search_docs"
    assert reply.tool_call.input == {"query": "find the docs", "k": 1, "mode": "fast"}
    assert reply.usage.output_tokens == count_tokens("search_docs") + count_tokens(reply.tool_call.arguments)

    answered = [
        *question,
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": "c", "type": "function", "function": {"name": "search_docs", "arguments": "{}"}}
            ],
        },
        {"role": "tool", "tool_call_id": "c", "content": "Doc text."},
    ]
    assert expected_reply("gpt-4o-mini", answered, tools=CHAT_TOOLS).tool_call is None
    assert (
        expected_reply("gpt-4o-mini", answered, tools=CHAT_TOOLS, tool_choice="required").tool_call
        is not None
    )


def test_tool_choice_and_marker_pick_the_tool() -> None:
    question = [{"role": "user", "content": "what time is it"}]
    assert expected_reply("m", question, tools=CHAT_TOOLS, tool_choice="none").tool_call is None
    forced = expected_reply(
        "m", question, tools=CHAT_TOOLS, tool_choice={"type": "function", "function": {"name": "get_time"}}
    )
    assert forced.tool_call is not None and forced.tool_call.name == "get_time"
    by_marker = expected_reply(
        "m", [{"role": "user", "content": "time? [[standin:tool=get_time]]"}], tools=CHAT_TOOLS
    )
    assert by_marker.tool_call is not None and by_marker.tool_call.name == "get_time"
    assert (
        expected_reply(
            "m", [{"role": "user", "content": "[[standin:tool=none]]"}], tools=CHAT_TOOLS
        ).tool_call
        is None
    )


def test_anthropic_tool_shapes() -> None:
    tools = [
        {
            "name": "lookup",
            "input_schema": {"type": "object", "properties": {"q": {"type": "string"}}, "required": ["q"]},
        }
    ]
    first = expected_reply("claude-haiku-4-5", [{"role": "user", "content": "look it up"}], tools=tools)
    assert first.tool_call is not None and first.tool_call.input == {"q": "look it up"}
    history = [
        {"role": "user", "content": "look it up"},
        {
            "role": "assistant",
            "content": [{"type": "tool_use", "id": "t1", "name": "lookup", "input": {"q": "look it up"}}],
        },
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": "found"}]},
    ]
    assert expected_reply("claude-haiku-4-5", history, tools=tools).tool_call is None
    assert expected_reply("m", history, tools=tools, tool_choice={"type": "any"}).tool_call is not None


def test_embeddings_are_deterministic_unit_vectors() -> None:
    vector = embedding_vector("text-embedding-3-small", "hello", 64)
    assert vector == embedding_vector("text-embedding-3-small", "hello", 64)
    assert vector != embedding_vector("text-embedding-3-small", "hello!", 64)
    assert sum(value * value for value in vector) == pytest.approx(1.0)


def test_lognormal_latency_matches_mean_and_p99() -> None:
    profile = LatencyProfile.lognormal(100, 400)
    rng = random.Random(7)
    samples = sorted(profile.first_chunk_seconds(rng) * 1000 for _ in range(20000))
    assert statistics.fmean(samples) == pytest.approx(100, rel=0.1)
    assert samples[int(len(samples) * 0.99)] == pytest.approx(400, rel=0.15)
    assert LatencyProfile.fixed(25).first_chunk_seconds(rng) == 0.025
    assert LatencyProfile.fixed(0, per_chunk_ms=4).per_chunk_seconds == 0.004


@pytest.mark.parametrize(
    "kwargs",
    [{"mean_ms": -1}, {"mean_ms": 100, "p99_ms": 50}, {"mean_ms": 10, "p99_ms": 1000}, {"per_chunk_ms": -1}],
)
def test_invalid_latency_profiles_are_rejected(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        LatencyProfile(**kwargs)


def test_fault_plan_rates() -> None:
    with pytest.raises(ValueError):
        FaultPlan(rate_429=0.7, rate_500=0.7)
    with pytest.raises(ValueError):
        FaultPlan(rate_timeout=-0.1)
    rng = random.Random(1)
    assert FaultPlan().draw(rng) is None
    assert FaultPlan(rate_429=1.0).draw(rng) == Fault("status", 429)
    plan = FaultPlan(rate_429=0.25, rate_500=0.25, rate_truncate=0.25)
    assert [plan.draw(seeded) for seeded in [random.Random(3)] for _ in range(20)] == [
        plan.draw(seeded) for seeded in [random.Random(3)] for _ in range(20)
    ]
    draws = [plan.draw(rng) for _ in range(4000)]
    assert draws.count(None) == pytest.approx(1000, rel=0.15)
    assert draws.count(Fault("truncate")) == pytest.approx(1000, rel=0.15)


@pytest.mark.parametrize(
    ("spec", "fault"),
    [
        ("429", Fault("status", 429)),
        (" 500 ", Fault("status", 500)),
        ("529", Fault("status", 529)),
        ("TIMEOUT", Fault("timeout")),
        ("truncate", Fault("truncate")),
        ("none", None),
    ],
)
def test_fault_names(spec: str, fault: Fault | None) -> None:
    assert parse_fault(spec) == fault


@pytest.mark.parametrize("spec", ["200", "slow", "", "600"])
def test_unknown_fault_names_are_rejected(spec: str) -> None:
    with pytest.raises(ValueError, match="unknown stand-in fault"):
        parse_fault(spec)
