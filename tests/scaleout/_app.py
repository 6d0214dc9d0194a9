"""One application process of the scale-out test: the real kit, exporting to an agent.

Run as ``python -m tests.scaleout._app SERVICE INSTANCE ENDPOINT TOKEN_FILE``; the
agent's CA comes from ``OTEL_EXPORTER_OTLP_CERTIFICATE``. Commands arrive as JSON
lines on stdin, each answered by one JSON line on stdout:

* ``{"units": N, "pause_s": S}``: N traces, each an ``llm.route`` span with two LLM
  calls (a plain one and one of the kinds in :data:`KINDS`), then a flush. The
  answer is the ground truth: tokens, cost, calls and every trace id with its kind.
  ``{"seconds": S, "plain": true}`` instead runs plain traces for S seconds
  (benchmarks/scaleout.py).
* ``{"exit": true}``: shut the kit down; answers with the kit's own drop counts.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

from opentelemetry import trace
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

import llm_otel
from tests.e2e import _traffic
from tests.faults._outage import dropped

# Trace kinds in the order they repeat; "plain" traces are what tail sampling may drop.
KINDS = ("plain", "error", "plain", "rate_limited", "plain", "slow", "plain", "expensive", "plain", "low_quality")
SLOW_CALL_S = 1.3  # over the gateways' slow-call budget in the test (1000 ms)
PLAIN = ("gpt-4o-mini", (100, 5, 0))
EXPENSIVE = ("gpt-4o", (200_000, 1_000, 0))  # about $0.51, over the test's $0.05 threshold


@llm_otel.traced_llm(provider="openai")
def slow_chat(model: str, usage: tuple[int, int, int]) -> dict[str, Any]:
    time.sleep(SLOW_CALL_S)
    return _traffic._chat(model, usage)


class Truth:
    def __init__(self) -> None:
        self.input_tokens = 0
        self.output_tokens = 0
        self.cost = 0.0
        self.calls = 0
        self.errors = 0
        self.traces: list[dict[str, Any]] = []

    def priced(self, model: str, usage: tuple[int, int, int]) -> None:
        self.input_tokens += usage[0]
        self.output_tokens += usage[1]
        self.cost += _traffic._cost("openai", model, usage[0], usage[1], usage[2])
        self.calls += 1

    def failed(self) -> None:
        self.calls += 1
        self.errors += 1


def _second_call(kind: str, truth: Truth) -> None:
    if kind in ("plain", "low_quality"):  # both scored: 0.1 is grounded, 0.9 is not
        _plain(truth, score=0.9 if kind == "low_quality" else 0.1)
        return
    if kind == "slow":
        slow_chat(*PLAIN)
        truth.priced(*PLAIN)
        return
    if kind == "expensive":
        _traffic.openai_chat(*EXPENSIVE)
        truth.priced(*EXPENSIVE)
        return
    error = _traffic.ProviderRateLimit("429") if kind == "rate_limited" else _traffic.ProviderDown("upstream 500")
    try:
        _traffic.failing(PLAIN[0], error)
    except (_traffic.ProviderRateLimit, _traffic.ProviderDown):
        truth.failed()


def _plain(truth: Truth, score: float | None = None) -> None:
    _traffic.openai_chat(*PLAIN, score=score)
    truth.priced(*PLAIN)


def run_units(count: int, pause_s: float, start: int, *, seconds: float = 0.0, plain: bool = False) -> Truth:
    """``count`` traces, or as many as fit in ``seconds``; only plain ones when ``plain``."""
    truth = Truth()
    deadline = time.monotonic() + seconds
    for index in range(start, start + count if not seconds else 2**62):
        if seconds and time.monotonic() >= deadline:
            break
        kind = "plain" if plain else KINDS[index % len(KINDS)]
        began = time.time()
        with llm_otel.route(task_type="scaleout", model=PLAIN[0]):
            trace_id = format(trace.get_current_span().get_span_context().trace_id, "032x")
            _plain(truth)
            _second_call(kind, truth)
        ended = time.time()
        truth.traces.append({"trace_id": trace_id, "kind": kind, "start": began, "end": ended, "spans": 3})
        if pause_s:
            time.sleep(pause_s)
    return truth


def main() -> None:
    service, instance, endpoint, token_file = sys.argv[1:5]
    token = Path(token_file).read_text().split()[0]
    reader = InMemoryMetricReader()
    llm_otel.configure(
        service_name=service, endpoint=endpoint, protocol="grpc", set_global=False,
        headers={"authorization": f"Bearer {token}"}, resource_attributes={"service.instance.id": instance},
        metric_export_interval_ms=500, span_schedule_delay_ms=200, metric_readers=[reader],
    )
    done = 0
    try:
        for line in sys.stdin:
            command = json.loads(line)
            if command.get("exit"):
                break
            truth = run_units(int(command.get("units", 0)), float(command.get("pause_s", 0)), done,
                              seconds=float(command.get("seconds", 0)), plain=bool(command.get("plain")))
            done += len(truth.traces)
            llm_otel.force_flush(10_000)
            print(json.dumps(truth.__dict__), flush=True)
        llm_otel.force_flush(10_000)
        print(json.dumps({"dropped": {f"{s}/{r}": c for (s, r), c in dropped(reader).items()}}), flush=True)
    finally:
        llm_otel.shutdown()


if __name__ == "__main__":
    main()
