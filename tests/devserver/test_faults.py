"""Injected failures, as the official SDKs see them."""

from __future__ import annotations

import contextlib
import threading
import time

import anthropic
import httpx2
import openai
import pytest

from llm_otel.tools.devserver import FAULT_HEADER, FaultPlan, StandInServer

MESSAGES = [{"role": "user", "content": "Is the collector up?"}]


def _openai(server: StandInServer, **kwargs: object) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.openai_base_url, api_key="test", max_retries=0, **kwargs)


def test_forced_429_has_retry_after_and_openai_error_shape(
    openai_client: openai.OpenAI, server: StandInServer
) -> None:
    with pytest.raises(openai.RateLimitError) as caught:
        openai_client.chat.completions.create(
            model="gpt-4o-mini", messages=MESSAGES, extra_headers={FAULT_HEADER: "429"}
        )
    error = caught.value
    assert error.status_code == 429
    assert error.response.headers["retry-after"] == "1"
    assert error.code == "rate_limit_exceeded"
    assert error.body == {
        "message": error.body["message"],
        "type": "requests",
        "param": None,
        "code": "rate_limit_exceeded",
    }
    assert server.requests[-1].status == 429 and server.requests[-1].fault == "429"


def test_forced_429_for_anthropic(server: StandInServer, anthropic_client: anthropic.Anthropic) -> None:
    server.faults = FaultPlan(retry_after_s=7)
    with pytest.raises(anthropic.RateLimitError) as caught:
        anthropic_client.messages.create(
            model="claude-haiku-4-5", max_tokens=10, messages=MESSAGES, extra_headers={FAULT_HEADER: "429"}
        )
    assert caught.value.response.headers["retry-after"] == "7"
    body = caught.value.body
    assert isinstance(body, dict) and body["type"] == "error" and body["error"]["type"] == "rate_limit_error"


def test_server_errors(openai_client: openai.OpenAI, anthropic_client: anthropic.Anthropic) -> None:
    with pytest.raises(openai.InternalServerError) as caught:
        openai_client.responses.create(model="gpt-4o", input="hi", extra_headers={FAULT_HEADER: "500"})
    assert caught.value.status_code == 500
    with pytest.raises(anthropic.OverloadedError):
        anthropic_client.messages.create(
            model="claude-haiku-4-5", max_tokens=10, messages=MESSAGES, extra_headers={FAULT_HEADER: "529"}
        )
    with pytest.raises(anthropic.InternalServerError):
        anthropic_client.messages.create(
            model="claude-haiku-4-5", max_tokens=10, messages=MESSAGES, extra_headers={FAULT_HEADER: "500"}
        )


def test_prompt_marker_forces_a_fault_and_header_none_overrides_it(openai_client: openai.OpenAI) -> None:
    messages = [{"role": "user", "content": "please fail [[standin:fault=500]]"}]
    with pytest.raises(openai.InternalServerError):
        openai_client.chat.completions.create(model="gpt-4o-mini", messages=messages)
    ok = openai_client.chat.completions.create(
        model="gpt-4o-mini", messages=messages, extra_headers={FAULT_HEADER: "none"}
    )
    assert ok.choices[0].finish_reason == "stop"


def test_unknown_fault_name_is_a_bad_request(openai_client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError, match="unknown stand-in fault"):
        openai_client.chat.completions.create(
            model="gpt-4o-mini", messages=MESSAGES, extra_headers={FAULT_HEADER: "slow"}
        )


def test_timeout_holds_past_the_client_timeout(server: StandInServer) -> None:
    with _openai(server, timeout=0.3) as client, pytest.raises(openai.APITimeoutError):
        client.chat.completions.create(
            model="gpt-4o-mini", messages=MESSAGES, extra_headers={FAULT_HEADER: "timeout"}
        )
    with (
        anthropic.Anthropic(
            base_url=server.anthropic_base_url, api_key="test", max_retries=0, timeout=0.3
        ) as client,
        pytest.raises(anthropic.APITimeoutError),
    ):
        client.messages.create(
            model="claude-haiku-4-5",
            max_tokens=10,
            messages=MESSAGES,
            extra_headers={FAULT_HEADER: "timeout"},
        )


def test_a_patient_client_gets_the_answer_after_the_hold(server: StandInServer) -> None:
    server.faults = FaultPlan(timeout_hold_s=0.2)
    with _openai(server, timeout=30) as client:
        started = time.monotonic()
        completion = client.chat.completions.create(
            model="gpt-4o-mini", messages=MESSAGES, extra_headers={FAULT_HEADER: "timeout"}
        )
    assert completion.choices[0].finish_reason == "stop"
    assert time.monotonic() - started >= 0.2


def test_truncated_openai_stream_raises_after_some_chunks(
    openai_client: openai.OpenAI, server: StandInServer
) -> None:
    server.faults = FaultPlan(truncate_after_events=3)
    received = []
    stream = openai_client.chat.completions.create(
        model="gpt-4o-mini", messages=MESSAGES, stream=True, extra_headers={FAULT_HEADER: "truncate"}
    )
    with pytest.raises(openai.APIConnectionError):
        for chunk in stream:
            received.append(chunk)
    assert len(received) == 3
    assert server.requests[-1].fault == "truncate"


def test_truncated_anthropic_stream_raises(anthropic_client: anthropic.Anthropic) -> None:
    received = []
    stream = anthropic_client.messages.create(
        model="claude-haiku-4-5",
        max_tokens=64,
        messages=MESSAGES,
        stream=True,
        extra_headers={FAULT_HEADER: "truncate"},
    )
    # This SDK version lets the transport's RemoteProtocolError through instead of wrapping it.
    with stream, pytest.raises((anthropic.APIConnectionError, httpx2.RemoteProtocolError)):
        received.extend(stream)
    assert [event.type for event in received] == ["message_start", "content_block_start"]


def test_truncated_plain_body_raises(openai_client: openai.OpenAI, server: StandInServer) -> None:
    with pytest.raises(openai.APIConnectionError):
        openai_client.chat.completions.create(
            model="gpt-4o-mini", messages=MESSAGES, extra_headers={FAULT_HEADER: "truncate"}
        )
    # The server is still fine afterwards.
    assert openai_client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES).choices


def _statuses(seed: int, plan: FaultPlan, count: int) -> list[int]:
    with StandInServer(faults=plan, seed=seed) as server, _openai(server) as client:
        for _ in range(count):
            with contextlib.suppress(openai.APIStatusError):
                client.embeddings.create(model="text-embedding-3-small", input="x", encoding_format="float")
        return [request.status for request in server.requests]


def test_fault_rates_are_seeded() -> None:
    plan = FaultPlan(rate_429=0.3, rate_500=0.2)
    first = _statuses(11, plan, 30)
    assert first == _statuses(11, plan, 30)
    assert {200, 429, 500} <= set(first)
    assert _statuses(0, FaultPlan(rate_429=1.0), 5) == [429] * 5


def test_stop_interrupts_a_held_request() -> None:
    server = StandInServer(faults=FaultPlan(timeout_hold_s=60)).start()
    outcome: list[BaseException] = []

    def call() -> None:
        with _openai(server, timeout=60) as client:
            try:
                client.chat.completions.create(
                    model="m", messages=MESSAGES, extra_headers={FAULT_HEADER: "timeout"}
                )
            except openai.APIError as error:
                outcome.append(error)

    caller = threading.Thread(target=call)
    caller.start()
    deadline = time.monotonic() + 10
    while server.request_count == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    started = time.monotonic()
    server.stop()
    caller.join(10)
    assert time.monotonic() - started < 10
    assert isinstance(outcome[0], openai.APIConnectionError)
