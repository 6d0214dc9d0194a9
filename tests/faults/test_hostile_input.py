"""Hostile input at the entries the other property tests do not reach.

tests/core/test_bad_input.py fuzzes plain-dict payloads through the decorator;
tests/integrations fuzz ASGI headers and LangChain/LlamaIndex event sequences.
Here: real SDK response *objects* (pydantic models built without validation, so
any field can hold anything), objects whose attribute access misbehaves, SDK-style
stream objects and async generators yielding junk (and raising mid-stream), the
callback-style API fed junk through every setter, and baggage values aimed at the
middleware's labels. Thousands of cases in all; the app must get back exactly what
it returned or raised, and each distinct oddity may be logged at most once.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from anthropic.types import Message, RawMessageDeltaEvent
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from openai.types.chat import ChatCompletion, ChatCompletionChunk
from openai.types.completion_usage import CompletionUsage

import llm_otel
from llm_otel._log import forget_logged_causes
from llm_otel.testing import CapturedTelemetry, capture
from tests.hypothesis_profiles import examples

junk = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=8), st.binary(max_size=4), st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=4), st.integers(), max_size=2),
)


class Boom(Exception):
    pass


class Hostile:
    """Every attribute read raises, or returns something odd, depending on the name's length."""

    def __getattr__(self, name: str) -> Any:
        if len(name) % 3 == 0:
            raise Boom(name)
        if len(name) % 3 == 1:
            return lambda *a, **k: (_ for _ in ()).throw(Boom(name))
        return Hostile()

    def __eq__(self, other: object) -> bool:
        raise Boom("eq")

    __hash__ = None  # type: ignore[assignment]

    def __bool__(self) -> bool:
        raise Boom("bool")

    def __iter__(self) -> Iterator[Any]:
        raise Boom("iter")


def _usage(prompt: Any, completion: Any, details: Any) -> Any:
    return CompletionUsage.model_construct(prompt_tokens=prompt, completion_tokens=completion,
                                           total_tokens=None, prompt_tokens_details=details)


sdk_objects = st.one_of(
    st.builds(lambda u, c, m: ChatCompletion.model_construct(id="c", object="chat.completion", model=m, usage=u,
                                                             choices=c),
              st.one_of(junk, st.builds(_usage, junk, junk, junk)), junk, junk),
    st.builds(lambda u, m, r: Message.model_construct(id="m", type="message", model=m, usage=u, stop_reason=r,
                                                      content=[]),
              junk, junk, junk),
    st.builds(lambda d, u: RawMessageDeltaEvent.model_construct(type="message_delta", delta=d, usage=u), junk, junk),
    st.just(Hostile()),
    st.builds(lambda: ChatCompletion.model_construct()),  # no fields at all
)


@pytest.fixture
def telemetry() -> Iterator[CapturedTelemetry]:
    forget_logged_causes()
    with capture() as captured:
        yield captured


def _assert_logged_once_per_cause(caplog: pytest.LogCaptureFixture) -> None:
    repeats = Counter((r.msg, r.args if isinstance(r.args, tuple) else ()) for r in caplog.records
                      if r.name.startswith("llm_otel"))
    twice = {key: n for key, n in repeats.items() if n > 1}
    assert not twice, twice


@settings(max_examples=examples(1200), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(response=sdk_objects)
def test_sdk_response_objects_holding_anything(
    telemetry: CapturedTelemetry, caplog: pytest.LogCaptureFixture, response: Any
) -> None:
    caplog.set_level(logging.WARNING, logger="llm_otel")

    @llm_otel.traced_llm(provider="openai", model="gpt-4o-mini")
    def ask() -> Any:
        return response

    assert ask() is response
    _assert_logged_once_per_cause(caplog)


class FakeSDKStream:
    """Shaped like ``openai.Stream``: an iterator with ``response`` and ``close``."""

    def __init__(self, chunks: list[Any], fail_after: int | None) -> None:
        self._chunks = iter(chunks)
        self._left = fail_after
        self.response = object()
        self.closed = False

    def __iter__(self) -> FakeSDKStream:
        return self

    def __next__(self) -> Any:
        if self._left is not None:
            if self._left == 0:
                raise Boom("connection reset mid-stream")
            self._left -= 1
        return next(self._chunks)

    def close(self) -> None:
        self.closed = True


chunk_values = st.one_of(
    junk, st.just(Hostile()),
    st.builds(lambda c, u: ChatCompletionChunk.model_construct(id="k", object="chat.completion.chunk", model="m",
                                                               choices=c, usage=u), junk, junk),
    st.builds(lambda d: {"object": "chat.completion.chunk", "choices": [{"delta": d, "finish_reason": d}]}, junk),
)


@settings(max_examples=examples(800), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(chunks=st.lists(chunk_values, max_size=6), fail_after=st.one_of(st.none(), st.integers(0, 6)),
       read=st.integers(0, 8))
def test_stream_objects_and_generators_yielding_anything(
    telemetry: CapturedTelemetry, chunks: list[Any], fail_after: int | None, read: int
) -> None:
    stream = FakeSDKStream(chunks, fail_after)

    @llm_otel.traced_llm(provider="openai", model="gpt-4o-mini")
    def ask() -> Any:
        return stream

    received: list[Any] = []
    proxy = ask()
    try:
        for chunk in proxy:
            received.append(chunk)
            if len(received) >= read:
                proxy.close()  # the caller stops reading early
                break
    except Boom as exc:
        assert str(exc) == "connection reset mid-stream"  # the app's own error, unchanged
    expected = chunks[: fail_after if fail_after is not None else len(chunks)]
    assert received == expected[: len(received)]
    assert all(a is b for a, b in zip(received, expected, strict=False))

    @llm_otel.traced_llm(provider="openai", model="gpt-4o-mini")
    async def agen() -> AsyncIterator[Any]:
        for chunk in chunks:
            yield chunk

    async def consume() -> list[Any]:
        return [chunk async for chunk in agen()]

    assert asyncio.run(consume()) == chunks


setters = st.lists(st.tuples(st.sampled_from(
    ["set_usage", "set_usage_kw", "set_response", "set_response_model", "set_response_id", "set_finish_reasons",
     "set_provider", "set_request_model", "add_chunk", "add_output_text", "set_input_messages"]), junk), max_size=8)


@settings(max_examples=examples(1000), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=setters, outcome=st.one_of(st.none(), junk.map(str), st.just(Boom("x"))),
       labels=st.dictionaries(st.text(max_size=6), st.text(max_size=6), max_size=3))
def test_callback_api_fed_junk_through_every_setter(
    telemetry: CapturedTelemetry, steps: list[tuple[str, Any]], outcome: Any, labels: dict[str, str]
) -> None:
    call = llm_otel.start_call(provider="openai", model="gpt-4o-mini", labels=labels,
                               request_attributes={"gen_ai.request.temperature": 0.2, "odd": object()})
    for name, value in steps:
        if name == "set_usage_kw":
            call.set_usage(input_tokens=value, output_tokens=value, cache_read_input_tokens=value,
                           reasoning_output_tokens=value)
        else:
            getattr(call, name)(value)
    if outcome is None:
        call.end()
    else:
        call.fail(outcome)
    call.end()  # a second finish is ignored
    assert call.ended


@settings(max_examples=examples(600), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(values=st.lists(st.text(max_size=40), min_size=1, max_size=3),
       raw=st.binary(max_size=60))
def test_baggage_labels_from_hostile_headers(telemetry: CapturedTelemetry, values: list[str], raw: bytes) -> None:
    from llm_otel.integrations.asgi import LLMOtelMiddleware

    @llm_otel.traced_llm(provider="openai", model="gpt-4o-mini")
    def ask() -> dict[str, Any]:
        return {"object": "chat.completion", "model": "gpt-4o-mini", "choices": [],
                "usage": {"prompt_tokens": 1, "completion_tokens": 1}}

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        ask()
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    wrapped = LLMOtelMiddleware(app, baggage_labels=["tenant", "feature"])
    baggage = ",".join(f"tenant={v}" for v in values).encode("utf-8", "surrogateescape")
    headers = [(b"baggage", baggage), (b"baggage", raw), (b"traceparent", raw[:55])]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET", "scheme": "http",
             "path": "/", "raw_path": b"/", "query_string": b"", "root_path": "", "headers": headers,
             "client": ("127.0.0.1", 1), "server": ("app", 80)}
    asyncio.run(wrapped(scope, receive, send))
    assert sent[0]["status"] == 204
    for point in telemetry.points("llm.tokens.input"):
        tenant = point.attributes.get("tenant")
        assert tenant is None or (isinstance(tenant, str) and len(tenant) <= 256)
