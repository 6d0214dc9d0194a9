"""Helpers for the fault tests: broken endpoints, latency percentiles, drop counts, processes.

* :func:`free_port` - a localhost port nothing listens on (connections are refused).
* :class:`StallingServer` - accepts TCP connections, reads what arrives, never answers.
* :func:`timed_calls` / :func:`p99` / :func:`latency_bound` - per-call latency, compared
  within one test run (never against an absolute number).
* :func:`dropped` - the kit's own ``llm_otel.telemetry.dropped`` counter, read from an
  extra in-process ``InMemoryMetricReader``.
* :class:`Component` / :func:`process_command` - a stack process started by the test
  itself (a restart with the same command line, or a collector with extra config
  overlays), stopped when the test ends.
* :func:`spans_of` / :func:`services_in` - the collector's OTLP JSON file output.
"""

from __future__ import annotations

import contextlib
import json
import math
import selectors
import signal
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from opentelemetry.sdk.metrics.export import InMemoryMetricReader

# The SDK's OTLP exporters take their per-export deadline from this variable (seconds,
# default 10). Fault tests set it to 1 so that a failing export, and the flush and
# shutdown waiting for it, take about a second.
EXPORTER_TIMEOUT_ENV = "OTEL_EXPORTER_OTLP_TIMEOUT"
DROPPED = "llm_otel.telemetry.dropped"


def free_port(host: str = "127.0.0.1") -> int:
    """A port that was free a moment ago; nothing listens on it, so connects are refused."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


class StallingServer:
    """A TCP server that accepts connections and never answers: a hung collector.

    Bytes sent to it are read and discarded (so the client's writes never block on a
    full socket buffer); nothing is ever written back.
    """

    def __init__(self, host: str = "127.0.0.1") -> None:
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.bind((host, 0))
        self._listener.listen(64)
        self._listener.setblocking(False)
        self.host = host
        self.port = int(self._listener.getsockname()[1])
        self.accepted = 0
        self.bytes_received = 0
        self._selector = selectors.DefaultSelector()
        self._selector.register(self._listener, selectors.EVENT_READ)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="stalling-server", daemon=True)

    @property
    def endpoint(self) -> str:
        return f"http://{self.host}:{self.port}"

    def __enter__(self) -> StallingServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)
        for key in list(self._selector.get_map().values()):
            with contextlib.suppress(OSError):
                key.fileobj.close()  # type: ignore[union-attr]
        self._selector.close()

    def _serve(self) -> None:
        while not self._stop.is_set():
            for key, _ in self._selector.select(timeout=0.05):
                sock: socket.socket = key.fileobj  # type: ignore[assignment]
                if sock is self._listener:
                    with contextlib.suppress(BlockingIOError):
                        conn, _ = sock.accept()
                        conn.setblocking(False)
                        self._selector.register(conn, selectors.EVENT_READ)
                        self.accepted += 1
                    continue
                try:
                    data = sock.recv(65536)
                except (BlockingIOError, InterruptedError):
                    continue
                except OSError:
                    data = b""
                if data:
                    self.bytes_received += len(data)
                else:
                    self._selector.unregister(sock)
                    sock.close()


# --------------------------------------------------------------------------- latency


def timed_calls(call: Callable[[int], object], count: int) -> list[float]:
    """Seconds taken by each of ``count`` calls of ``call(index)``."""
    clock = time.perf_counter
    samples = []
    for index in range(count):
        start = clock()
        call(index)
        samples.append(clock() - start)
    return samples


def p99(samples: Sequence[float]) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, math.ceil(0.99 * len(ordered)) - 1)]


def latency_bound(baseline_p99: float) -> float:
    """How much slower the app may get while the backend is broken: hardly at all.

    Generous on purpose (a shared 2-core machine, GC pauses, the exporter thread holding
    the GIL while gRPC fails a connection, which took p99 to 5.5 ms once next to a
    0.3 ms baseline); blocking on an export would cost a whole export timeout (250 ms
    for the stalled collector, a second for the refused one), far above this bound.
    """
    return max(5 * baseline_p99, baseline_p99 + 0.05)


# --------------------------------------------------------------------------- the kit's own counter


def dropped(reader: InMemoryMetricReader) -> dict[tuple[str, str], int]:
    """``{(signal, reason): count}`` of ``llm_otel.telemetry.dropped`` as collected right now."""
    counts: dict[tuple[str, str], int] = {}
    data = reader.get_metrics_data()
    for resource_metrics in data.resource_metrics if data else ():
        for scope_metrics in resource_metrics.scope_metrics:
            for metric in scope_metrics.metrics:
                if metric.name != DROPPED:
                    continue
                for point in metric.data.data_points:
                    attributes = point.attributes or {}
                    key = (str(attributes.get("signal")), str(attributes.get("reason")))
                    counts[key] = counts.get(key, 0) + int(point.value)  # type: ignore[union-attr]
    return counts


def dropped_for(source: InMemoryMetricReader | Mapping[tuple[str, str], int], signal_name: str) -> int:
    """Total dropped of one signal, from a reader (collected now) or from :func:`dropped`'s result."""
    counts = dropped(source) if isinstance(source, InMemoryMetricReader) else source
    return sum(count for (sig, _), count in counts.items() if sig == signal_name)


def eventually(probe: Callable[[], Any], what: str, timeout: float = 30.0, interval: float = 0.1) -> Any:
    """Poll ``probe`` until it returns something truthy; fail with ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


# --------------------------------------------------------------------------- processes


def http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return 200 <= int(response.status) < 300
    except (urllib.error.URLError, OSError, ValueError):
        return False


def process_command(pid: int) -> tuple[list[str], dict[str, str]]:
    """The exact command line and environment of a running process (Linux /proc)."""
    proc = Path(f"/proc/{pid}")
    argv = [part.decode() for part in (proc / "cmdline").read_bytes().split(b"\0") if part]
    env = {}
    for entry in (proc / "environ").read_bytes().split(b"\0"):
        key, sep, value = entry.decode(errors="replace").partition("=")
        if sep:
            env[key] = value
    return argv, env


class Component:
    """A stack process the test starts and stops itself (logs to ``run_dir/<name>.log``)."""

    def __init__(self, name: str, command: Sequence[str], run_dir: Path, env: Mapping[str, str]) -> None:
        self.name = name
        self.run_dir = run_dir
        self.log_path = run_dir / f"{name}.log"
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                list(command), stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                cwd=run_dir, env=dict(env), start_new_session=True,
            )

    @property
    def pid(self) -> int:
        return self.process.pid

    def wait_healthy(self, url: str, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"{self.name} exited during startup:\n{self.log_tail()}")
            if http_ok(url):
                return
            time.sleep(0.1)
        raise AssertionError(f"{self.name} not healthy at {url} within {timeout:.0f}s:\n{self.log_tail()}")

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def stop(self, timeout: float = 20.0) -> None:
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


# --------------------------------------------------------------------------- collector file output


def otlp_lines(path: Path | None) -> list[dict[str, Any]]:
    """Every complete OTLP JSON line the collector's file exporter wrote so far."""
    if path is None or not path.exists():
        return []
    lines = []
    for line in path.read_text(errors="replace").splitlines():
        with contextlib.suppress(ValueError):
            lines.append(json.loads(line))
    return lines


def _service(resource: Mapping[str, Any]) -> str | None:
    for attribute in resource.get("attributes", []):
        if attribute.get("key") == "service.name":
            return str(attribute.get("value", {}).get("stringValue"))
    return None


def spans_of(path: Path | None, service: str) -> list[dict[str, Any]]:
    """The spans of one service.name in a traces file."""
    spans = []
    for line in otlp_lines(path):
        for resource_spans in line.get("resourceSpans", []):
            if _service(resource_spans.get("resource", {})) != service:
                continue
            for scope in resource_spans.get("scopeSpans", []):
                spans.extend(scope.get("spans", []))
    return spans


def services_in(path: Path | None) -> set[str]:
    found = set()
    for line in otlp_lines(path):
        for key in ("resourceSpans", "resourceMetrics"):
            for resource_data in line.get(key, []):
                name = _service(resource_data.get("resource", {}))
                if name:
                    found.add(name)
    return found


# --------------------------------------------------------------------------- collectors that answer "not now"


class UnavailableHttpServer:
    """An OTLP/HTTP endpoint that answers every export ``503 Service Unavailable`` (Retry-After: 1)."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                outer.requests += 1
                self.send_response(503)
                self.send_header("Retry-After", "1")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.requests = 0
        self._server = ThreadingHTTPServer((host, 0), Handler)
        self._server.daemon_threads = True
        self.endpoint = f"http://{host}:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, name="http-503", daemon=True)

    def __enter__(self) -> UnavailableHttpServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()


class ExhaustedGrpcServer:
    """An OTLP/gRPC endpoint that rejects every export with RESOURCE_EXHAUSTED and a RetryInfo
    of one second, as a collector over its memory limit does."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        from concurrent import futures

        import grpc
        from google.protobuf.duration_pb2 import Duration
        from google.rpc.error_details_pb2 import RetryInfo
        from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2_grpc
        from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc

        retry = RetryInfo(retry_delay=Duration(seconds=1)).SerializeToString()
        outer = self

        def refuse(request: object, context: Any) -> None:
            outer.requests += 1
            context.set_trailing_metadata((("google.rpc.retryinfo-bin", retry),))
            context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, "data refused due to high memory usage")

        class Traces(trace_service_pb2_grpc.TraceServiceServicer):
            Export = staticmethod(refuse)

        class Metrics(metrics_service_pb2_grpc.MetricsServiceServicer):
            Export = staticmethod(refuse)

        self.requests = 0
        self._server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        trace_service_pb2_grpc.add_TraceServiceServicer_to_server(Traces(), self._server)
        metrics_service_pb2_grpc.add_MetricsServiceServicer_to_server(Metrics(), self._server)
        port = self._server.add_insecure_port(f"{host}:0")
        self.endpoint = f"http://{host}:{port}"

    def __enter__(self) -> ExhaustedGrpcServer:
        self._server.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.stop(grace=None)


class RecordingGrpcReceiver:
    """An OTLP/gRPC endpoint that accepts every export and keeps the decoded requests."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        from concurrent import futures

        import grpc
        from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2, metrics_service_pb2_grpc
        from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

        self.metric_requests: list[Any] = []
        self.span_requests: list[Any] = []
        self._lock = threading.Lock()
        outer = self

        class Traces(trace_service_pb2_grpc.TraceServiceServicer):
            def Export(self, request: Any, context: Any) -> Any:
                with outer._lock:
                    outer.span_requests.append(request)
                return trace_service_pb2.ExportTraceServiceResponse()

        class Metrics(metrics_service_pb2_grpc.MetricsServiceServicer):
            def Export(self, request: Any, context: Any) -> Any:
                with outer._lock:
                    outer.metric_requests.append(request)
                return metrics_service_pb2.ExportMetricsServiceResponse()

        self._server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
        trace_service_pb2_grpc.add_TraceServiceServicer_to_server(Traces(), self._server)
        metrics_service_pb2_grpc.add_MetricsServiceServicer_to_server(Metrics(), self._server)
        port = self._server.add_insecure_port(f"{host}:0")
        self.endpoint = f"http://{host}:{port}"

    def __enter__(self) -> RecordingGrpcReceiver:
        self._server.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.stop(grace=None)

    @staticmethod
    def _instance(resource: Any) -> str:
        for attribute in resource.attributes:
            if attribute.key == "service.instance.id":
                return str(attribute.value.string_value)
        return ""

    def latest_sums(self, metric: str) -> dict[str, int]:
        """Per service.instance.id, the last exported cumulative total of ``metric`` (all series)."""
        latest: dict[str, int] = {}
        with self._lock:
            requests = list(self.metric_requests)
        for request in requests:
            for resource_metrics in request.resource_metrics:
                total, seen = 0, False
                for scope in resource_metrics.scope_metrics:
                    for item in scope.metrics:
                        if item.name == metric:
                            seen = True
                            total += sum(int(p.as_int or p.as_double) for p in item.sum.data_points)
                if seen:
                    latest[self._instance(resource_metrics.resource)] = total
        return latest

    def span_names(self) -> dict[str, list[str]]:
        """Per service.instance.id, the names of every span received."""
        names: dict[str, list[str]] = {}
        with self._lock:
            requests = list(self.span_requests)
        for request in requests:
            for resource_spans in request.resource_spans:
                instance = self._instance(resource_spans.resource)
                for scope in resource_spans.scope_spans:
                    names.setdefault(instance, []).extend(span.name for span in scope.spans)
        return names
