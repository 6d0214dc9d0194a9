"""Flush, shutdown and interpreter exit return within their timeouts, whatever the collector does.

Each case runs a short application in its own interpreter (``tests/faults/_exit_probe.py``):
2,000 calls, ``force_flush(timeout_millis=1500)``, then the interpreter exits with
``shutdown_timeout_ms=2000``; the test times the flush and the exit (from the end of the
work to the end of the process). The export timeouts stay at their defaults (10 s for
spans, 5 s for metrics) and the exporters' retry back-off is the SDK's, so every bound
here is the kit's doing. Outage modes, for both OTLP protocols where they exist:

* refused        nothing listens on the port;
* stalled        a socket server that accepts and never answers (and, with the stack
                 tools, a real Collector frozen with SIGSTOP);
* unavailable    an HTTP server answering 503 with Retry-After;
* exhausted      a gRPC server answering RESOURCE_EXHAUSTED with a RetryInfo.

Nothing reaches a collector in any of them, so every span is counted as dropped and the
one line printed at exit says how many.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from llm_otel.tools._stack import StackPorts, collector_environment
from tests.faults._outage import (
    Component,
    ExhaustedGrpcServer,
    StallingServer,
    UnavailableHttpServer,
    free_port,
)
from tests.stack._support import COLLECTOR_DIR

ROOT = Path(__file__).resolve().parents[2]
CALLS = 2000
FLUSH_MS = 1500
SHUTDOWN_MS = 2000
SLACK_S = 1.0  # "within the timeout + 1 s": an upper bound on correctness, not a speed goal
RETRY_NOISE = re.compile(r"Transient error|Failed to export|retrying in|Shutdown in progress")

pytestmark = pytest.mark.slow


@dataclass
class Probe:
    report: dict[str, Any]
    exit_s: float
    stderr: str
    returncode: int

    @property
    def lines(self) -> list[str]:
        return [line for line in self.stderr.splitlines() if line.strip()]


def run_probe(plan: dict[str, Any], env: dict[str, str] | None = None, timeout: float = 90.0) -> Probe:
    """Run the probe; ``exit_s`` is the time from the end of its work to the end of its process."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "LLM_OTEL_"))}
    environment["PYTHONPATH"] = str(ROOT)
    environment.update(env or {})
    with tempfile.TemporaryFile("w+") as errors:
        process = subprocess.Popen(
            [sys.executable, "-m", "tests.faults._exit_probe", json.dumps(plan)], cwd=ROOT, env=environment,
            stdout=subprocess.PIPE, stderr=errors, text=True,
        )
        try:
            assert process.stdout is not None
            line = process.stdout.readline()
            process.wait(timeout)
            exited = time.time()
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
            if process.stdout is not None:
                process.stdout.close()
        errors.seek(0)
        stderr = errors.read()
    assert line, f"the probe printed nothing (exit {process.returncode}):\n{stderr}"
    report = json.loads(line)
    return Probe(report, exited - float(report["done_at"]), stderr, process.returncode)


@dataclass
class Outage:
    name: str
    protocol: str
    endpoint: str


@contextlib.contextmanager
def outage(name: str, protocol: str) -> Iterator[Outage]:
    if name == "refused":
        yield Outage(name, protocol, f"http://127.0.0.1:{free_port()}")
    elif name == "stalled":
        with StallingServer() as stalling:
            yield Outage(name, protocol, stalling.endpoint)
    elif name == "unavailable":
        with UnavailableHttpServer() as server:
            yield Outage(name, protocol, server.endpoint)
    else:
        with ExhaustedGrpcServer() as server:
            yield Outage(name, protocol, server.endpoint)


MODES = [
    ("refused", "grpc"), ("refused", "http/protobuf"),
    ("stalled", "grpc"), ("stalled", "http/protobuf"),
    ("unavailable", "http/protobuf"), ("exhausted", "grpc"),
]


def plan_for(broken: Outage, **more: Any) -> dict[str, Any]:
    configure = {
        "service_name": f"faults-exit-{broken.name}", "endpoint": broken.endpoint, "protocol": broken.protocol,
        "shutdown_timeout_ms": SHUTDOWN_MS, "set_global": False,
    }
    return {"configure": configure, "calls": CALLS, **more}


def assert_one_counted_line(probe: Probe, spans: int) -> None:
    """No stack of exporter retry lines; the kit's closing line says how much was lost."""
    noise = [line for line in probe.lines if RETRY_NOISE.search(line)]
    assert not noise, "\n".join(noise[:5])
    closing = [line for line in probe.lines if "could not deliver" in line]
    assert len(closing) == 1, probe.stderr
    assert f"{spans} span" in closing[0], closing[0]
    assert "llm_otel_telemetry_dropped_total" in closing[0]


@pytest.mark.parametrize(("mode", "protocol"), MODES)
def test_flush_and_exit_return_within_their_timeouts(mode: str, protocol: str) -> None:
    with outage(mode, protocol) as broken:
        probe = run_probe(plan_for(broken, flush_ms=FLUSH_MS))
    assert probe.returncode == 0, probe.stderr
    assert probe.report["flush_ok"] is False  # nothing could be sent: the flush says so, in time
    assert probe.report["flush_s"] < FLUSH_MS / 1000 + SLACK_S, probe.report
    assert probe.exit_s < SHUTDOWN_MS / 1000 + SLACK_S, f"exit took {probe.exit_s:.1f}s"
    assert_one_counted_line(probe, CALLS)


@pytest.mark.parametrize(("mode", "protocol"), MODES)
def test_shutdown_returns_within_the_given_timeout(mode: str, protocol: str) -> None:
    with outage(mode, protocol) as broken:
        probe = run_probe(plan_for(broken, shutdown_ms=1000))
    assert probe.returncode == 0, probe.stderr
    assert probe.report["shutdown_s"] < 1.0 + SLACK_S, probe.report
    assert probe.exit_s < SHUTDOWN_MS / 1000 + SLACK_S, f"exit after shutdown() took {probe.exit_s:.1f}s"
    assert_one_counted_line(probe, CALLS)


EXPORTER_MODULES = {
    "grpc": ["opentelemetry.exporter.otlp.proto.grpc.trace_exporter",
             "opentelemetry.exporter.otlp.proto.grpc.metric_exporter"],
    "http/protobuf": ["opentelemetry.exporter.otlp.proto.http.trace_exporter",
                      "opentelemetry.exporter.otlp.proto.http.metric_exporter"],
}


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
def test_no_collector_at_all_exits_promptly_with_one_line(protocol: str) -> None:
    """The quickstart script with nothing listening: default configure(), one call, exit.

    "Prompt" is at most 1 s more than the same interpreter takes to exit with the same
    modules loaded and nothing to export (measured just before, so a busy machine slows both).
    """
    quiet = run_probe({"configure": {"service_name": "faults-no-collector", "traces_exporter": "none",
                                     "metrics_exporter": "none"}, "calls": 1, "imports": EXPORTER_MODULES[protocol]})
    env = {"OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{free_port()}", "OTEL_EXPORTER_OTLP_PROTOCOL": protocol}
    probe = run_probe({"configure": {"service_name": "faults-no-collector"}, "calls": 1}, env)
    assert probe.returncode == 0, probe.stderr
    assert probe.exit_s < quiet.exit_s + 1.0, (
        f"exit took {probe.exit_s:.2f}s beyond the work ({quiet.exit_s:.2f}s with nothing to export)")
    assert len(probe.lines) == 1, probe.stderr
    assert re.search(r"could not deliver 1 span and \d+ metric data points", probe.lines[0]), probe.lines[0]
    assert "127.0.0.1" in probe.lines[0]


# --------------------------------------------------------------------------- a real collector, frozen


@pytest.fixture
def frozen_collector(tmp_path: Path, collector_bin: Path) -> Iterator[StackPorts]:
    """A real Collector, healthy, then stopped with SIGSTOP: it keeps its sockets, answers nothing."""
    ports = StackPorts.free()
    env = {**os.environ, **collector_environment(ports, tmp_path)}
    command = [str(collector_bin)] + [f"--config=file:{COLLECTOR_DIR / name}"
                                      for name in ("config.yaml", "file-export.yaml")]
    collector = Component("collector-frozen", command, tmp_path, env)
    try:
        collector.wait_healthy(f"http://127.0.0.1:{ports.collector_health}/")
        os.kill(collector.pid, signal.SIGSTOP)
        yield ports
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(collector.pid, signal.SIGCONT)
        collector.stop()


@pytest.mark.stack
@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
def test_a_frozen_collector_holds_neither_flush_nor_exit(frozen_collector: StackPorts, protocol: str) -> None:
    port = frozen_collector.otlp_grpc if protocol == "grpc" else frozen_collector.otlp_http
    probe = run_probe(plan_for(Outage("frozen", protocol, f"http://127.0.0.1:{port}"), flush_ms=FLUSH_MS))
    assert probe.returncode == 0, probe.stderr
    assert probe.report["flush_s"] < FLUSH_MS / 1000 + SLACK_S, probe.report
    assert probe.exit_s < SHUTDOWN_MS / 1000 + SLACK_S, f"exit took {probe.exit_s:.1f}s"
    assert_one_counted_line(probe, CALLS)
