"""Exit and flush time per collector outage mode, each in a fresh interpreter.

    python benchmarks/exits.py

For each mode an application (``tests/faults/_exit_probe.py``) makes 2,000 calls,
calls ``force_flush(timeout_millis=2000)`` and exits with the default settings
(``shutdown_timeout_ms`` 5 s, span export timeout 10 s, metric export timeout 5 s).
Reported: the flush time, and the exit time from the end of the work to the end of
the process, against their bounds (timeout + 1 s). A healthy receiver is the
comparison row; "no collector" is the quickstart script (one call, default
configure()), whose exit must stay within 1 s of the same interpreter's exit with
nothing to export (measured in turns with it). Median of three runs.
"""

from __future__ import annotations

import contextlib
import statistics
import sys
from collections.abc import Iterator
from pathlib import Path

from _timing import Row

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

FLUSH_MS = 2000
SHUTDOWN_S = 5.0
RUNS = 3


@contextlib.contextmanager
def _endpoint(mode: str) -> Iterator[str]:
    from tests.faults import _outage

    if mode == "refused":
        yield f"http://127.0.0.1:{_outage.free_port()}"
        return
    server: contextlib.AbstractContextManager[object]
    if mode == "stalled":
        server = _outage.StallingServer()
    elif mode == "503":
        server = _outage.UnavailableHttpServer()
    elif mode == "RESOURCE_EXHAUSTED":
        server = _outage.ExhaustedGrpcServer()
    else:
        server = _outage.RecordingGrpcReceiver()
    with server as running:
        yield str(running.endpoint)  # type: ignore[attr-defined]


CASES = (
    ("healthy receiver", "grpc"), ("refused", "grpc"), ("refused", "http/protobuf"),
    ("stalled", "grpc"), ("stalled", "http/protobuf"), ("503", "http/protobuf"), ("RESOURCE_EXHAUSTED", "grpc"),
)


def _median(values: list[float]) -> float:
    return statistics.median(values)


def rows() -> list[Row]:
    from tests.faults.test_exit_bounded import EXPORTER_MODULES, free_port, run_probe

    result: list[Row] = []
    for mode, protocol in CASES:
        flushes, exits = [], []
        for _ in range(RUNS):
            with _endpoint(mode) as endpoint:
                plan = {"configure": {"service_name": "bench-exit", "endpoint": endpoint, "protocol": protocol,
                                      "set_global": False}, "calls": 2000, "flush_ms": FLUSH_MS}
                probe = run_probe(plan)
            flushes.append(float(probe.report["flush_s"]))
            exits.append(probe.exit_s)
        flush, exit_s = _median(flushes), _median(exits)
        flush_bound, exit_bound = FLUSH_MS / 1000 + 1, SHUTDOWN_S + 1
        ok = flush < flush_bound and exit_s < exit_bound
        result.append(Row("exit", f"{mode} ({protocol})", f"flush {flush:.2f}s, exit {exit_s:.2f}s",
                          f"bounds {flush_bound:.0f}s / {exit_bound:.0f}s", "within bounds",
                          "ok" if ok else "MISSED", "2,000 calls, force_flush(2000), default timeouts"))
    for protocol in ("grpc", "http/protobuf"):
        exits, quiet = [], []
        for _ in range(RUNS):
            quiet.append(run_probe({"configure": {"service_name": "bench-no-collector", "traces_exporter": "none",
                                                  "metrics_exporter": "none"}, "calls": 1,
                                    "imports": EXPORTER_MODULES[protocol]}).exit_s)
            env = {"OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{free_port()}",
                   "OTEL_EXPORTER_OTLP_PROTOCOL": protocol}
            probe = run_probe({"configure": {"service_name": "bench-no-collector"}, "calls": 1}, env)
            exits.append(probe.exit_s)
        exit_s, baseline = _median(exits), _median(quiet)
        result.append(Row("exit", f"no collector ({protocol})", f"exit {exit_s:.2f}s beyond the work",
                          f"{baseline:.2f}s with nothing to export", "<= that + 1 s",
                          "ok" if exit_s <= baseline + 1.0 else "MISSED",
                          "quickstart script: default configure(), one call"))
    return result


if __name__ == "__main__":
    for row in rows():
        print(f"{row.variant:32} {row.value:30} {row.ratio:18} {row.verdict}")
