"""The HTTP server itself: lifecycle, routing, robustness, concurrency, timing."""

from __future__ import annotations

import asyncio
import http.client
import json
import socket
import time
from concurrent.futures import ThreadPoolExecutor

import openai
import pytest

from llm_otel.tools.devserver import FaultPlan, LatencyProfile, StandInServer, expected_usage

from ._support import devserver_threads


def _raw(
    server: StandInServer,
    method: str,
    path: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, object]]:
    connection = http.client.HTTPConnection(server.host, server.port, timeout=10)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        return response.status, json.loads(response.read())
    finally:
        connection.close()


def test_addresses_and_lifecycle() -> None:
    server = StandInServer()
    assert not server.running
    with pytest.raises(RuntimeError, match="not running"):
        _ = server.port
    with server:
        assert server.running and server.port > 0
        assert server.base_url == f"http://127.0.0.1:{server.port}"
        assert server.openai_base_url == server.base_url + "/v1"
        assert server.anthropic_base_url == server.base_url
        with pytest.raises(RuntimeError, match="already running"):
            server.start()
    assert not server.running and devserver_threads() == []
    server.stop()  # idempotent
    with server:  # restartable
        assert _raw(server, "GET", "/v1/models")[0] == 200


def test_bad_json_is_a_400_in_the_provider_shape(server: StandInServer) -> None:
    status, body = _raw(
        server, "POST", "/v1/chat/completions", b"{not json", {"content-type": "application/json"}
    )
    assert status == 400
    assert body["error"]["type"] == "invalid_request_error"
    status, body = _raw(server, "POST", "/v1/messages", b"[1, 2]", {"anthropic-version": "2023-06-01"})
    assert status == 400
    assert body["type"] == "error" and body["error"]["type"] == "invalid_request_error"
    assert [request.status for request in server.requests] == [400, 400]


def test_unknown_path_and_wrong_method(server: StandInServer) -> None:
    status, body = _raw(server, "POST", "/v1/nope", b"{}")
    assert status == 404 and body["error"]["code"] == "unknown_url"
    assert _raw(server, "GET", "/v1/chat/completions")[0] == 405


def test_missing_fields_are_bad_requests(openai_client: openai.OpenAI, server: StandInServer) -> None:
    with pytest.raises(openai.BadRequestError, match="messages"):
        openai_client.chat.completions.create(model="gpt-4o", messages=None)
    status, body = _raw(
        server,
        "POST",
        "/v1/messages",
        json.dumps({"model": "c", "messages": []}).encode(),
        {"anthropic-version": "x"},
    )
    assert status == 400 and "max_tokens" in body["error"]["message"]
    status, _ = _raw(server, "POST", "/v1/embeddings", json.dumps({"model": "e", "input": ""}).encode())
    assert status == 400


def test_client_disconnects_do_not_hurt_the_server(
    openai_client: openai.OpenAI, server: StandInServer
) -> None:
    server.latency = LatencyProfile(per_chunk_ms=2)
    stream = openai_client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}], stream=True
    )
    next(iter(stream))
    stream.close()  # hang up mid-stream
    with socket.create_connection((server.host, server.port)) as raw:
        raw.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{")
    with socket.create_connection((server.host, server.port)) as raw:
        raw.sendall(b"GARBAGE\r\n\r\n")
        raw.recv(1024)
    assert openai_client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}]
    ).choices


def test_concurrent_requests(openai_client: openai.OpenAI, server: StandInServer) -> None:
    server.latency = LatencyProfile.fixed(20, per_chunk_ms=1)

    def ask(number: int) -> tuple[int, int]:
        messages = [{"role": "user", "content": f"question number {number}"}]
        completion = openai_client.chat.completions.create(model="gpt-4o-mini", messages=messages)
        assert completion.usage is not None
        return completion.usage.total_tokens, expected_usage("gpt-4o-mini", messages).total_tokens

    with ThreadPoolExecutor(max_workers=16) as pool:
        results = list(pool.map(ask, range(48)))
    assert all(got == want for got, want in results)
    assert server.request_count == 48
    assert len({request.body["messages"][0]["content"] for request in server.requests}) == 48


async def test_concurrent_async_streams(
    async_openai_client: openai.AsyncOpenAI, server: StandInServer
) -> None:
    server.latency = LatencyProfile(per_chunk_ms=1)

    async def ask(number: int) -> int:
        stream = await async_openai_client.chat.completions.create(
            model="gpt-4o",
            messages=[{"role": "user", "content": f"q{number}"}],
            stream=True,
            stream_options={"include_usage": True},
        )
        chunks = [chunk async for chunk in stream]
        assert chunks[-1].usage is not None
        return chunks[-1].usage.completion_tokens

    totals = await asyncio.gather(*(ask(number) for number in range(20)))
    assert totals == [
        expected_usage("gpt-4o", [{"role": "user", "content": f"q{number}"}]).output_tokens
        for number in range(20)
    ]


def test_latency_is_applied(server: StandInServer, openai_client: openai.OpenAI) -> None:
    server.latency = LatencyProfile.fixed(150, per_chunk_ms=5)
    messages = [{"role": "user", "content": "[[standin:reply=one two three four]]"}]
    started = time.monotonic()
    openai_client.chat.completions.create(model="gpt-4o-mini", messages=messages)
    assert time.monotonic() - started >= 0.15 + 4 * 0.005
    started = time.monotonic()
    stream = openai_client.chat.completions.create(model="gpt-4o-mini", messages=messages, stream=True)
    first_content = next(chunk for chunk in stream if chunk.choices and chunk.choices[0].delta.content)
    assert first_content.choices[0].delta.content == "one"
    assert time.monotonic() - started >= 0.15
    stream.close()


def test_recorded_requests_can_be_cleared(server: StandInServer, openai_client: openai.OpenAI) -> None:
    openai_client.models.list()
    assert server.request_count == 1 and server.requests[0].path == "/v1/models"
    assert not server.requests[0].stream
    server.clear_requests()
    assert server.requests == ()


def test_faults_can_change_while_running(server: StandInServer, openai_client: openai.OpenAI) -> None:
    server.faults = FaultPlan(rate_429=1.0)
    with pytest.raises(openai.RateLimitError):
        openai_client.models.list()
    server.faults = FaultPlan()
    assert openai_client.models.list().data
