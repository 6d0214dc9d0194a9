"""Nothing is lost silently: every span that is not exported is counted, exactly.

The span queue is forced to fill (a tiny ``span_queue_size`` and an exporter that
stalls until the test releases it), and the kit's ``llm_otel.telemetry.dropped``
counter must equal the number of ended spans that never reached a successful
export — from one thread and from several at once. Everything here is in-process
(no network), so it is fast and exact.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator, Sequence

import pytest
import yaml
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

import llm_otel
from llm_otel import _providers
from llm_otel._runtime import Telemetry
from tests.e2e import _traffic
from tests.faults._outage import dropped
from tests.stack._support import ALERTS, DASHBOARDS, iter_panels, load_dashboard

QUEUE = 32
BATCH = 8


class GatedExporter(SpanExporter):
    """Blocks every export until ``gate`` opens (a hung collector), then fails every other batch."""

    def __init__(self) -> None:
        self.gate = threading.Event()
        self.delivered = 0
        self.failed = 0
        self.batches = 0
        self._lock = threading.Lock()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.gate.wait(30)
        with self._lock:
            self.batches += 1
            if self.batches % 2:
                self.delivered += len(spans)
                return SpanExportResult.SUCCESS
            self.failed += len(spans)
            return SpanExportResult.FAILURE

    def shutdown(self) -> None:
        self.gate.set()


@pytest.fixture
def gated() -> Iterator[tuple[Telemetry, GatedExporter, InMemoryMetricReader]]:
    """The kit's own counting batch processor around a gated exporter, drops counted by the kit."""
    exporter = GatedExporter()
    reader = InMemoryMetricReader()
    sink = _providers.DropSink()
    processor = _providers.CountingBatchSpanProcessor(
        _providers.CountingSpanExporter(exporter, sink), sink,
        max_queue_size=QUEUE, max_export_batch_size=BATCH, schedule_delay_millis=10,
    )
    telemetry = llm_otel.configure(
        service_name="faults-drops", set_global=False, traces_exporter="none", metrics_exporter="none",
        span_processors=[processor], metric_readers=[reader],
    )
    sink.recorder = telemetry.recorder
    try:
        yield telemetry, exporter, reader
    finally:
        exporter.gate.set()
        llm_otel.shutdown()


def _calls(count: int) -> None:
    for i in range(count):
        _traffic.openai_chat("gpt-4o-mini", (10 + i % 7, 3, 0))


def _settle(telemetry: Telemetry, exporter: GatedExporter) -> None:
    exporter.gate.set()
    assert telemetry.tracer_provider.force_flush(10_000)  # type: ignore[attr-defined]


def test_every_span_is_exported_or_counted_exactly(
    gated: tuple[Telemetry, GatedExporter, InMemoryMetricReader], caplog: pytest.LogCaptureFixture
) -> None:
    telemetry, exporter, reader = gated
    caplog.set_level(logging.WARNING)
    calls = 1_000
    _calls(calls)  # the exporter hangs: the queue fills and stays full
    _settle(telemetry, exporter)
    counts = dropped(reader)
    spans_dropped = sum(n for (signal, _), n in counts.items() if signal == "spans")
    assert exporter.delivered + spans_dropped == calls, (exporter.delivered, counts)
    assert counts[("spans", "queue_full")] >= calls - QUEUE - 2 * BATCH
    assert counts[("spans", "export_failed")] == exporter.failed > 0
    # one explanation, not one log line per dropped span (the SDK alone would warn per span)
    queue_full_logs = [r for r in caplog.records if "queue" in r.getMessage().lower()]
    assert len(queue_full_logs) <= 1, [r.getMessage() for r in queue_full_logs[:5]]


def test_exact_under_concurrent_producers(gated: tuple[Telemetry, GatedExporter, InMemoryMetricReader]) -> None:
    telemetry, exporter, reader = gated
    threads = [threading.Thread(target=_calls, args=(300,)) for _ in range(4)]
    for thread in threads:
        thread.start()
    releaser = threading.Timer(0.05, exporter.gate.set)  # exports resume while producers still run
    releaser.start()
    for thread in threads:
        thread.join(60)
    releaser.join()
    _settle(telemetry, exporter)
    spans_dropped = sum(n for (signal, _), n in dropped(reader).items() if signal == "spans")
    assert exporter.delivered + spans_dropped == 4 * 300


def test_spans_ended_after_shutdown_are_counted() -> None:
    exporter = GatedExporter()
    sink = _providers.DropSink()
    counted: list[tuple[str, str, int]] = []

    class Recorder:
        def count_dropped(self, signal: str, reason: str, amount: int = 1) -> None:
            counted.append((signal, reason, amount))

    sink.recorder = Recorder()
    processor = _providers.CountingBatchSpanProcessor(
        _providers.CountingSpanExporter(exporter, sink), sink, max_queue_size=QUEUE,
        max_export_batch_size=BATCH, schedule_delay_millis=60_000, export_timeout_millis=100,
    )
    provider = TracerProvider()
    provider.add_span_processor(processor)
    tracer = provider.get_tracer("faults")
    for _ in range(3):
        tracer.start_span("queued").end()
    exporter.gate.set()
    processor.shutdown()
    tracer.start_span("late").end()  # the processor is shut down: dropped, and counted
    reasons = {(signal, reason) for signal, reason, _ in counted}
    assert ("spans", "shutdown") in reasons
    assert exporter.delivered + sum(n for s, _, n in counted if s == "spans") == 4


def test_the_drop_counter_is_on_the_dashboard_and_alerted_for_every_signal() -> None:
    series = "llm_otel_telemetry_dropped_total"
    panels = [p for path in DASHBOARDS for p in iter_panels(load_dashboard(path).get("panels", []))
              if any(series in t.get("expr", "") for t in p.get("targets", []))]
    assert panels, "no dashboard panel shows the kit's dropped telemetry"
    rules = [r for g in yaml.safe_load(ALERTS.read_text())["groups"] for r in g["rules"]
             if r.get("alert") == "LLMOtelTelemetryDropped"]
    assert len(rules) == 1
    expr = rules[0]["expr"]
    assert series in expr
    # no filter on signal or reason: spans, metrics and evaluations, every reason, all alert
    assert "signal=" not in expr and "reason=" not in expr
