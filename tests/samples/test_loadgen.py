"""The load generator: bounded in count and time, localhost only, and driving real samples."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest

from llm_otel.testing import CapturedTelemetry
from llm_otel.tools.devserver import StandInServer
from sample_apps import loadgen

from .conftest import assert_tokens_match, ground_truth


def test_sends_rate_times_duration_requests_and_stops() -> None:
    calls: list[int] = []
    lock = threading.Lock()

    def send(index: int) -> None:
        with lock:
            calls.append(index)

    started = time.monotonic()
    stats = loadgen.run_load(send, rate=40, duration_s=0.5, concurrency=4)

    assert time.monotonic() - started < 10
    assert stats.planned == 20
    assert 1 <= stats.sent <= 20
    assert stats.ok == stats.sent == len(calls)
    assert sorted(calls) == list(range(stats.sent))
    assert stats.failed == 0 and stats.unfinished == 0


def test_max_requests_caps_the_run() -> None:
    stats = loadgen.run_load(lambda i: None, rate=100, duration_s=5, max_requests=3)
    assert stats.sent == 3


def test_failures_are_counted_by_exception_class() -> None:
    def send(index: int) -> None:
        if index % 2:
            raise TimeoutError("slow")

    stats = loadgen.run_load(send, rate=50, duration_s=0.2)

    assert stats.sent == 10
    assert stats.failed == 5 and stats.errors == {"TimeoutError": 5}
    assert "5 failed (TimeoutError x5)" in stats.summary()


def test_stuck_requests_do_not_hold_the_run_past_the_drain_time() -> None:
    release = threading.Event()
    try:
        started = time.monotonic()
        stats = loadgen.run_load(lambda i: release.wait(10), rate=20, duration_s=0.2, concurrency=2, drain_s=0.2)
        assert time.monotonic() - started < 5
        assert stats.unfinished == 2
        assert "still running at the end" in stats.summary()
    finally:
        release.set()


@pytest.mark.parametrize("url", ["http://example.com/ask", "http://10.0.0.1:8000/ask", "file:///etc/passwd"])
def test_only_local_http_targets_are_accepted(url: str) -> None:
    with pytest.raises(ValueError, match="only http"):
        loadgen.http_sender(url, "question")
    assert loadgen.main(["fastapi", "--url", url, "--duration", "1"]) == 2


@pytest.mark.parametrize(("rate", "duration"), [(0, 1), (500, 1), (1, 0), (1, 100_000)])
def test_rate_and_duration_are_bounded(rate: float, duration: float) -> None:
    with pytest.raises(ValueError):
        loadgen.run_load(lambda i: None, rate=rate, duration_s=duration)


@pytest.fixture
def fastapi_server(stand_in: StandInServer) -> Iterator[str]:
    """The FastAPI RAG sample served by uvicorn on a free localhost port, in a thread."""
    import uvicorn

    from sample_apps.fastapi_rag.app import create_app

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(create_app(max_retries=0), log_level="warning", ws="none", lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started and thread.is_alive() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started
    try:
        yield f"http://127.0.0.1:{port}/ask"
    finally:
        server.should_exit = True
        thread.join(20)
        sock.close()


def test_drives_the_fastapi_sample_over_http(
    fastapi_server: str, stand_in: StandInServer, telemetry: CapturedTelemetry
) -> None:
    send = loadgen.http_sender(fastapi_server, "question")

    stats = loadgen.run_load(send, rate=10, duration_s=1, concurrency=4)

    assert stats.failed == 0, stats.errors
    assert stats.ok == stats.sent > 0
    # the server span ends after the last body message is sent, so the client may read the response
    # a moment before the server thread ends its span: wait for every request's root span
    deadline = time.monotonic() + 10
    while True:
        traces = telemetry.traces()
        complete = all(any(span.name == "POST /ask" for span in spans) for spans in traces.values())
        if (len(traces) == stats.sent and complete) or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert len(traces) == stats.sent
    for spans in traces.values():
        telemetry.assert_single_trace({"POST /ask": {"invoke_workflow rag": {"chat gpt-4o-mini": {}}}}, spans=spans)
    assert_tokens_match(telemetry, ground_truth(stand_in.requests))
    assert telemetry.histogram_sum("llm.cost.usd") > 0


def test_main_drives_the_router_in_process(
    stand_in: StandInServer, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "none")
    monkeypatch.setenv("OTEL_METRICS_EXPORTER", "none")

    assert loadgen.main(["router", "--rate", "10", "--duration", "1"]) == 0

    summary = capsys.readouterr().out
    sent = int(summary.split("sent ", 1)[1].split()[0])
    assert 1 <= sent <= 10
    assert f"{sent} ok, 0 failed" in summary
    assert stand_in.request_count == sent
