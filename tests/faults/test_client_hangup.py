"""Clients that hang up mid-stream, against a real uvicorn server: outcomes, never LLM errors.

A real uvicorn serves a Starlette app (the ASGI middleware) and a Django ASGI app
(the Django middleware). Each streams a chat completion from the stand-in LLM
server through the real ``openai`` SDK, slowly (one chunk per 100 ms). A real TCP
client sends the request, reads the first bytes of the body and closes the socket.

Before the fix, each hang-up was one ``llm.errors{error_type="asyncio.CancelledError"}``
and would fire ``LLMErrorRatioHigh``; now every call ends with ``llm.stream.outcome``
(``cancelled`` or ``closed_early``), no ``error.type``, and ``llm.errors`` stays at 0.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from opentelemetry.trace import SpanKind, StatusCode

from llm_otel import _names as n
from llm_otel._log import forget_logged_causes
from llm_otel.testing import CapturedTelemetry, capture
from llm_otel.tools.devserver import LatencyProfile, StandInServer

from . import _hangup_app

HANG_UPS = 10
pytestmark = pytest.mark.slow  # ~10 s: streams are slow on purpose so the client can hang up mid-way


@pytest.fixture(scope="module")
def stand_in() -> Iterator[StandInServer]:
    with StandInServer(latency=LatencyProfile.fixed(20, per_chunk_ms=100), seed=3) as server:
        _hangup_app.LLM_BASE_URL["openai"] = server.openai_base_url
        yield server


@pytest.fixture
def telemetry() -> Iterator[CapturedTelemetry]:
    forget_logged_causes()
    with capture() as captured:
        yield captured


def django_asgi_app() -> Any:
    """Django's ASGI application with the kit's middleware and the hang-up URLconf."""
    import django
    from django.conf import settings

    wanted = {
        "ROOT_URLCONF": "tests.faults._hangup_app",
        "MIDDLEWARE": ["llm_otel.integrations.django.LLMOtelMiddleware"],
        "ALLOWED_HOSTS": ["*"],
    }
    if not settings.configured:
        settings.configure(DEBUG=False, SECRET_KEY="tests-only-not-a-secret", INSTALLED_APPS=[], DATABASES={},
                           USE_TZ=True, LLM_OTEL={}, **wanted)
        django.setup()
        return _django_handler()
    from django.test import override_settings

    override = override_settings(**wanted)
    override.enable()
    return _django_handler(on_close=override.disable)


def _django_handler(on_close: Callable[[], None] | None = None) -> Any:
    from django.core.handlers.asgi import ASGIHandler

    handler = ASGIHandler()
    handler.llm_otel_test_cleanup = on_close  # type: ignore[attr-defined]
    return handler


class Uvicorn:
    """A real uvicorn server on a free localhost port, in a thread."""

    def __init__(self, app: Any) -> None:
        import uvicorn

        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        config = uvicorn.Config(app, log_level="warning", ws="none", lifespan="off")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)

    def __enter__(self) -> Uvicorn:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started and self.thread.is_alive() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert self.server.started
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(20)
        self.sock.close()


def get(port: int, path: str, *, hang_up_after_body_bytes: int | None) -> bytes:
    """A real HTTP/1.1 request; with ``hang_up_after_body_bytes`` the client closes the socket mid-body."""
    with socket.create_connection(("127.0.0.1", port), timeout=20) as client:
        client.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode())
        received = b""
        while True:
            data = client.recv(65536)
            if not data:
                return received
            received += data
            head, sep, rest = received.partition(b"\r\n\r\n")
            if hang_up_after_body_bytes is not None and sep and len(rest) >= hang_up_after_body_bytes:
                assert head.startswith(b"HTTP/1.1 200"), head
                return received  # leaving the block closes the socket: the client hangs up


def wait_for_spans(telemetry: CapturedTelemetry, kind: SpanKind, count: int) -> list[Any]:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        found = [s for s in telemetry.spans() if s.kind is kind]
        if len(found) >= count:
            return found
        time.sleep(0.05)
    raise AssertionError(f"{count} {kind} spans expected, got {[s.name for s in telemetry.spans()]}")


def assert_hang_ups_are_outcomes(telemetry: CapturedTelemetry) -> None:
    calls = wait_for_spans(telemetry, SpanKind.CLIENT, HANG_UPS)
    servers = wait_for_spans(telemetry, SpanKind.SERVER, HANG_UPS)
    assert len(calls) == len(servers) == HANG_UPS
    for call in calls:
        attributes = dict(call.attributes or {})
        assert attributes[n.LLM_STREAM_OUTCOME] in n.STREAM_OUTCOMES, attributes
        assert n.ERROR_TYPE not in attributes
        assert call.status.status_code is StatusCode.UNSET
        assert attributes[n.LLM_STREAM_CHUNKS] >= 1  # it was streaming when the client left
    for server in servers:
        attributes = dict(server.attributes or {})
        assert attributes[n.LLM_STREAM_OUTCOME] in n.STREAM_OUTCOMES, attributes
        assert n.ERROR_TYPE not in attributes and server.status.status_code is StatusCode.UNSET
        assert attributes["llm.calls.errors"] == 0
    assert telemetry.counter(n.ERRORS.name) == 0  # nothing for LLMErrorRatioHigh to see
    assert telemetry.histogram_count(n.OPERATION_DURATION.name) == HANG_UPS
    interrupted = sum(
        telemetry.histogram_count(n.OPERATION_DURATION.name, {n.LLM_STREAM_OUTCOME: outcome})
        for outcome in n.STREAM_OUTCOMES
    )
    assert interrupted == HANG_UPS


@pytest.mark.parametrize("kind", ["gen", "sdk"])
def test_uvicorn_starlette_client_hang_ups_are_not_llm_errors(
    stand_in: StandInServer, telemetry: CapturedTelemetry, kind: str
) -> None:
    with Uvicorn(_hangup_app.starlette_app()) as server:
        for _ in range(HANG_UPS):
            get(server.port, f"/{kind}", hang_up_after_body_bytes=1)
        assert_hang_ups_are_outcomes(telemetry)


@pytest.mark.parametrize("kind", ["gen", "sdk"])
def test_uvicorn_django_client_hang_ups_are_not_llm_errors(
    stand_in: StandInServer, telemetry: CapturedTelemetry, kind: str
) -> None:
    app = django_asgi_app()
    try:
        with Uvicorn(app) as server:
            for _ in range(HANG_UPS):
                get(server.port, f"/{kind}", hang_up_after_body_bytes=1)
            assert_hang_ups_are_outcomes(telemetry)
    finally:
        if app.llm_otel_test_cleanup is not None:
            app.llm_otel_test_cleanup()


def test_a_client_that_reads_to_the_end_is_a_plain_success(
    stand_in: StandInServer, telemetry: CapturedTelemetry
) -> None:
    with Uvicorn(_hangup_app.starlette_app()) as server:
        body = get(server.port, "/gen", hang_up_after_body_bytes=None)
    assert body.startswith(b"HTTP/1.1 200")
    (call,) = wait_for_spans(telemetry, SpanKind.CLIENT, 1)
    attributes = dict(call.attributes or {})
    assert n.LLM_STREAM_OUTCOME not in attributes and n.ERROR_TYPE not in attributes
    assert stand_in.requests[-1].status == 200
    assert attributes[n.GEN_AI_USAGE_OUTPUT_TOKENS] > 0
    assert telemetry.counter(n.TOKENS_INPUT.name) == attributes[n.GEN_AI_USAGE_INPUT_TOKENS]
    assert telemetry.histogram_count(n.OPERATION_DURATION.name) == 1
    assert telemetry.counter(n.ERRORS.name) == 0
