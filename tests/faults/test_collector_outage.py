"""A broken collector never hurts the application.

* Down from the start (nothing listens) and stalled (accepts, never answers): calls
  never raise, their p99 stays within a small factor of a run that exports to memory,
  memory stays bounded by the span queue, and every undelivered span and metric
  export is counted in the kit's own ``llm_otel.telemetry.dropped``.
* Killed mid-run (SIGKILL) and restarted on the same ports with ``stack_up``: the
  Prometheus totals of the counters equal the ground truth of every call, including
  the calls made while the collector was dead (cumulative temporality).
"""

from __future__ import annotations

import gc
import os
import signal
import time
import tracemalloc
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import llm_otel
from llm_otel.tools._stack import StackInfo, stack_up
from tests.e2e import _traffic
from tests.e2e.test_pipeline import by_label, query, wait_for
from tests.faults._outage import (
    EXPORTER_TIMEOUT_ENV,
    StallingServer,
    dropped,
    dropped_for,
    eventually,
    free_port,
    http_ok,
    latency_bound,
    p99,
    spans_of,
    timed_calls,
)

CALLS = 2_000
QUEUE = 256  # span_queue_size in these tests: small, so the bound is reached quickly
USAGE = (120, 5, 0)


@dataclass
class Broken:
    endpoint: str
    timeout_ms: int  # per export attempt: configure()'s setting and the SDK exporter's own variable
    stalling: StallingServer | None = None


@pytest.fixture(params=["refused", "stalled"])
def broken(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[Broken]:
    """An OTLP endpoint where nothing listens, or one that accepts and never answers.

    Each export attempt is bounded so that failing exports, flush and shutdown stay
    short: a stalled attempt lasts its whole deadline (a quarter second here); a refused
    one fails at once, and the exporter's retry back-off (about a second) paces the next.
    """
    timeout_ms = 1000 if request.param == "refused" else 250
    monkeypatch.setenv(EXPORTER_TIMEOUT_ENV, str(timeout_ms / 1000))
    if request.param == "refused":
        yield Broken(f"http://127.0.0.1:{free_port()}", timeout_ms)
        return
    with StallingServer() as server:
        yield Broken(server.endpoint, timeout_ms, server)


def configure_broken(broken: Broken, reader: InMemoryMetricReader, service: str, batch: int = QUEUE) -> None:
    llm_otel.configure(
        service_name=service, endpoint=broken.endpoint, protocol="grpc", set_global=False,
        span_queue_size=QUEUE, span_batch_size=batch, span_schedule_delay_ms=50,
        span_export_timeout_ms=broken.timeout_ms, metric_export_timeout_ms=broken.timeout_ms,
        metric_export_interval_ms=200, metric_readers=[reader],
    )


def configure_in_memory(service: str) -> InMemorySpanExporter:
    """The comparison run: the same instrumentation, exporting to memory."""
    spans = InMemorySpanExporter()
    llm_otel.configure(
        service_name=service, set_global=False, traces_exporter="none", metrics_exporter="none",
        span_processors=[BatchSpanProcessor(spans, max_queue_size=QUEUE, max_export_batch_size=QUEUE)],
        metric_readers=[InMemoryMetricReader()],
    )
    return spans


def chat(index: int) -> None:
    response = _traffic.openai_chat("gpt-4o-mini", USAGE)
    assert response["id"] == "chatcmpl-e2e"  # the app gets its own return value back


def test_calls_never_raise_and_keep_their_latency(broken: Broken) -> None:
    in_memory = configure_in_memory("faults-latency-baseline")
    try:
        timed_calls(chat, 200)  # warm-up: caches, first span, first metric points
        baseline = p99(timed_calls(chat, CALLS))
    finally:
        llm_otel.shutdown()
    assert in_memory.get_finished_spans()  # the comparison run did record and export spans

    reader = InMemoryMetricReader()
    configure_broken(broken, reader, "faults-latency-outage")
    try:
        timed_calls(chat, 200)
        outage = p99(timed_calls(chat, CALLS))
        assert dropped_for(reader, "spans") > 0  # the queue overflowed; spans were not exported
    finally:
        llm_otel.shutdown()
    assert outage < latency_bound(baseline), (
        f"p99 per call {outage * 1e6:.0f}us with the collector broken vs {baseline * 1e6:.0f}us exporting to memory"
    )


@pytest.mark.slow
def test_memory_stays_bounded(broken: Broken) -> None:
    configure_in_memory("faults-memory-warm-up")  # one-time imports (the price database) happen here
    try:
        timed_calls(chat, 10)
    finally:
        llm_otel.shutdown()
    reader = InMemoryMetricReader()
    # Small export batches: the spans held outside the queue (the batch being exported)
    # stay a small share of the total, so the peak is about the queue itself.
    configure_broken(broken, reader, "faults-memory", batch=QUEUE // 4)
    tracemalloc.start()
    try:
        gc.collect()
        start = tracemalloc.get_traced_memory()[0]
        timed_calls(chat, 500)
        first = tracemalloc.get_traced_memory()[1] - start
        tracemalloc.reset_peak()
        timed_calls(chat, 3_500)
        after = tracemalloc.get_traced_memory()[1] - start
    finally:
        tracemalloc.stop()
        llm_otel.shutdown()
    # Both peaks are measured from before the first call. Eight times the calls would hold
    # about eight times the memory if spans piled up anywhere; the full queue caps it. (The
    # peak still moves a little: failed exports leave garbage that the cyclic GC frees later.)
    assert after < 4 * first, f"peak {first} B after 500 calls, {after} B after 4000 calls"


def test_every_undelivered_span_and_metric_export_is_counted(broken: Broken) -> None:
    reader = InMemoryMetricReader()
    configure_broken(broken, reader, "faults-dropped")
    try:
        timed_calls(chat, CALLS)
        eventually(lambda: dropped_for(reader, "metrics"), "a failed metric export to be counted", timeout=20)
        llm_otel.force_flush()  # what is still queued is exported now, and fails
        counts = dropped(reader)
    finally:
        llm_otel.shutdown()
    spans = dropped_for(counts, "spans")
    # Nothing reached the collector, so every span ended is either dropped from the full
    # queue or lost in a failed export, and each is counted exactly once.
    assert spans == CALLS, counts
    assert counts.get(("spans", "export_failed"), 0) > 0, counts
    assert counts.get(("metrics", "export_failed"), 0) > 0, counts
    if broken.stalling is not None:
        assert broken.stalling.accepted > 0  # the exporter did connect and was left hanging
        assert counts.get(("spans", "queue_full"), 0) > 0, counts  # exports hang, the queue overflows


def test_configured_export_timeouts_bound_an_export_to_a_stalled_collector(monkeypatch: pytest.MonkeyPatch) -> None:
    """``span_export_timeout_ms`` / ``metric_export_timeout_ms`` are the documented upper
    bound of one export; a hung collector must not hold a flush (or the shutdown at
    application exit) for the SDK exporter's own 10 s default."""
    for name in (EXPORTER_TIMEOUT_ENV, "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "OTEL_EXPORTER_OTLP_METRICS_TIMEOUT"):
        monkeypatch.delenv(name, raising=False)
    with StallingServer() as stalling:
        telemetry = llm_otel.configure(
            service_name="faults-export-timeout", endpoint=stalling.endpoint, protocol="grpc", set_global=False,
            span_export_timeout_ms=500, metric_export_timeout_ms=500,
            span_schedule_delay_ms=600_000, metric_export_interval_ms=600_000,
        )
        try:
            chat(0)
            start = time.perf_counter()
            telemetry.tracer_provider.force_flush()  # type: ignore[attr-defined]
            spans_flush = time.perf_counter() - start
            start = time.perf_counter()
            telemetry.meter_provider.force_flush()  # type: ignore[attr-defined]
            metrics_flush = time.perf_counter() - start
        finally:
            start = time.perf_counter()
            llm_otel.shutdown()
            shutdown = time.perf_counter() - start
    assert stalling.accepted > 0
    assert max(spans_flush, metrics_flush, shutdown) < 3.0, (
        f"one export to a stalled collector took {spans_flush:.1f}s (spans), {metrics_flush:.1f}s (metrics), "
        f"shutdown {shutdown:.1f}s, with 0.5s export timeouts configured"
    )


# --------------------------------------------------------------------------- killed and restarted

JOB = "faults-collector-restart"
PHASE_MODELS = {"before": "gpt-4o-mini", "down": "gpt-4o", "after": "o3-mini"}
PHASE_CALLS = 400


def _drive(phase: str, truth: _traffic.Truth, count: int = PHASE_CALLS) -> list[float]:
    """``count`` calls of the phase's model (so Prometheus can tell the phases apart)."""
    model = PHASE_MODELS[phase]

    def call(index: int) -> None:
        usage = (100 + index % 7, 3 + index % 5, 0)
        _traffic.openai_chat(model, usage)
        truth.input_tokens[model] += usage[0]
        truth.output_tokens[model] += usage[1]
        truth.calls_by_model[model] += 1

    return timed_calls(call, count)


def _restart(info: StackInfo, collector_bin: Path, prometheus_bin: Path) -> StackInfo:
    """`llm-otel stack up` again: the dead collector's leftovers are cleared, same ports."""
    return stack_up(
        info.run_dir, mode="native", ports=info.ports, scrape_interval="1s",
        collector=collector_bin, prometheus=prometheus_bin, timeout=120,
    )


@pytest.mark.stack
def test_collector_killed_mid_run_and_restarted(
    native_stack: StackInfo, collector_bin: Path, prometheus_bin: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(EXPORTER_TIMEOUT_ENV, "1")  # a live collector on a busy machine gets a full second
    reader = InMemoryMetricReader()
    llm_otel.configure(
        service_name=JOB, endpoint=native_stack.otlp_grpc_endpoint, protocol="grpc", set_global=False,
        span_queue_size=QUEUE, span_schedule_delay_ms=100, span_export_timeout_ms=1000,
        metric_export_interval_ms=300, metric_export_timeout_ms=1000, metric_readers=[reader],
    )
    truth = _traffic.Truth()
    try:
        _drive("before", truth, 100)  # warm-up, also checks the path works
        llm_otel.force_flush()
        wait_for(native_stack, f'sum(llm_tokens_input_total{{job="{JOB}"}})', float(sum(truth.input_tokens.values())))
        before = _drive("before", truth)

        old_pid = native_stack.pids["collector"]
        os.kill(old_pid, signal.SIGKILL)
        eventually(lambda: not http_ok(native_stack.collector_health_url), "the killed collector to stop answering")
        failed_before = dropped_for(reader, "metrics")
        down = _drive("down", truth)
        eventually(lambda: dropped_for(reader, "metrics") > failed_before,
                   "a metric export to the dead collector to fail and be counted", timeout=20)
        down += _drive("down", truth)

        restarted = _restart(native_stack, collector_bin, prometheus_bin)
        assert restarted.ports == native_stack.ports
        assert restarted.pids["collector"] != old_pid
        after = _drive("after", truth)
        llm_otel.force_flush()

        # Counters are cumulative: the first export after the restart carries every call.
        wait_for(restarted, f'sum(llm_tokens_input_total{{job="{JOB}"}})', float(sum(truth.input_tokens.values())))
        wait_for(restarted, f'sum(gen_ai_client_operation_duration_seconds_count{{job="{JOB}"}})',
                 float(sum(truth.calls_by_model.values())))
        by_model = f'sum by (gen_ai_request_model) (%s{{job="{JOB}"}})'
        assert by_label(restarted, by_model % "llm_tokens_input_total", "gen_ai_request_model") == {
            model: float(tokens) for model, tokens in truth.input_tokens.items()
        }
        assert by_label(restarted, by_model % "llm_tokens_output_total", "gen_ai_request_model") == {
            model: float(tokens) for model, tokens in truth.output_tokens.items()
        }
        assert by_label(
            restarted, by_model % "gen_ai_client_operation_duration_seconds_count", "gen_ai_request_model"
        ) == {model: float(calls) for model, calls in truth.calls_by_model.items()}

        # What could not be delivered while the collector was dead is on the dashboard too.
        def dropped_visible() -> bool:
            rows = query(restarted, f'sum(llm_otel_telemetry_dropped_total{{job="{JOB}"}})')
            local = sum(dropped(reader).values())
            return bool(rows) and local > 0 and float(rows[0]["value"][1]) == local

        eventually(dropped_visible, "llm_otel_telemetry_dropped_total in Prometheus to equal the local count",
                   timeout=60, interval=0.5)

        # Spans flow again once the collector is back.
        _drive("after", truth, 5)
        llm_otel.force_flush()
        after_span = f"chat {PHASE_MODELS['after']}"
        eventually(lambda: any(span["name"] == after_span for span in spans_of(restarted.traces_file, JOB)),
                   "spans sent after the restart in the collector's traces file", timeout=30, interval=0.5)
    finally:
        llm_otel.shutdown()

    bound = latency_bound(p99(before))
    assert p99(down) < bound, f"p99 {p99(down) * 1e6:.0f}us while down vs {p99(before) * 1e6:.0f}us before"
    assert p99(after) < bound, f"p99 {p99(after) * 1e6:.0f}us after restart vs {p99(before) * 1e6:.0f}us before"
