"""The dropped counter counts items of one kind per signal: spans, or metric data points."""

from __future__ import annotations

from typing import Any

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import (
    InMemoryMetricReader,
    MetricExporter,
    MetricExportResult,
    MetricsData,
)

from llm_otel._delivery import CountingMetricExporter, DropSink


class RefusingExporter(MetricExporter):
    def export(self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: Any) -> MetricExportResult:
        return MetricExportResult.FAILURE

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        return True

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        return None


def _three_points() -> MetricsData:
    reader = InMemoryMetricReader()
    meter = MeterProvider(metric_readers=[reader]).get_meter("drop-units")
    counter = meter.create_counter("calls")
    for model in ("a", "b"):
        counter.add(1, {"model": model})
    meter.create_histogram("latency").record(0.2, {"model": "a"})
    data = reader.get_metrics_data()
    assert data is not None
    return data


def test_a_failed_metric_export_counts_its_data_points() -> None:
    sink = DropSink()
    exporter = CountingMetricExporter(RefusingExporter(), sink)
    assert exporter.export(_three_points()) is MetricExportResult.FAILURE
    assert exporter.export(_three_points()) is MetricExportResult.FAILURE
    assert sink.totals == {("metrics", "export_failed"): 6}
    assert sink.summary() == ("llm-otel: could not deliver 6 metric data points; "
                              "counted in llm_otel_telemetry_dropped_total")
