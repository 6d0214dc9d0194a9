"""Exporters that push everything through the real OTLP protobuf encoders, as the OTLP exporters do,
and keep the serialized requests: an in-process stand-in for the wire that refuses what the wire
would refuse (a value the encoder rejects fails the whole request, as it does in the real exporter)."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from opentelemetry.exporter.otlp.proto.common.metrics_encoder import encode_metrics
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.metrics.export import (
    MetricExporter,
    MetricExportResult,
    MetricsData,
    PeriodicExportingMetricReader,
)
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

import llm_otel
from llm_otel import _providers
from llm_otel._log import forget_logged_causes
from llm_otel._runtime import Telemetry

LIMIT = 4 * 1024 * 1024  # the Collector's default gRPC max_recv_msg_size


class EncodingSpanExporter(SpanExporter):
    def __init__(self) -> None:
        self.requests: list[bytes] = []
        self.failures = 0
        self._lock = threading.Lock()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        try:
            payload = encode_spans(spans).SerializeToString()
        except Exception:
            with self._lock:
                self.failures += 1
            return SpanExportResult.FAILURE
        if len(payload) > LIMIT:
            with self._lock:
                self.failures += 1
            return SpanExportResult.FAILURE  # the Collector answers RESOURCE_EXHAUSTED
        with self._lock:
            self.requests.append(payload)
        return SpanExportResult.SUCCESS

    def span_names(self) -> list[str]:
        names = []
        for payload in self.requests:
            request = ExportTraceServiceRequest.FromString(payload)
            for resource in request.resource_spans:
                for scope in resource.scope_spans:
                    names.extend(span.name for span in scope.spans)
        return names

    def spans(self) -> list[Any]:
        found = []
        for payload in self.requests:
            request = ExportTraceServiceRequest.FromString(payload)
            for resource in request.resource_spans:
                for scope in resource.scope_spans:
                    found.extend(scope.spans)
        return found

    def shutdown(self) -> None:
        pass


class EncodingMetricExporter(MetricExporter):
    def __init__(self) -> None:
        super().__init__()
        self.requests: list[bytes] = []
        self.failures = 0

    def export(self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: Any) -> MetricExportResult:
        try:
            payload = encode_metrics(metrics_data).SerializeToString()
        except Exception:
            self.failures += 1
            return MetricExportResult.FAILURE
        if len(payload) > LIMIT:
            self.failures += 1
            return MetricExportResult.FAILURE
        self.requests.append(payload)
        return MetricExportResult.SUCCESS

    def points(self, name: str) -> list[tuple[dict[str, str], float | int]]:
        """(attributes, value) of every exported point of ``name`` (sum points: the value; histograms: count)."""
        found = []
        for payload in self.requests:
            request = ExportMetricsServiceRequest.FromString(payload)
            for resource in request.resource_metrics:
                for scope in resource.scope_metrics:
                    for metric in scope.metrics:
                        if metric.name != name:
                            continue
                        kind = metric.WhichOneof("data")
                        for point in getattr(metric, kind).data_points:
                            attributes = {a.key: a.value.string_value for a in point.attributes}
                            value: float | int
                            if kind == "histogram":
                                value = point.count
                            elif point.WhichOneof("value") == "as_int":
                                value = point.as_int
                            else:
                                value = point.as_double
                            found.append((attributes, value))
        return found

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        return True

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        pass


@dataclass
class Pipeline:
    """The kit configured with its own export wrappers around the encoding exporters."""

    telemetry: Telemetry
    spans: EncodingSpanExporter
    metrics: EncodingMetricExporter
    sink: _providers.DropSink

    def flush(self) -> None:
        assert self.telemetry.force_flush(10_000)

    def dropped(self, signal: str, reason: str) -> int:
        return self.sink.totals.get((signal, reason), 0)


@contextmanager
def kit_pipeline(**options: Any) -> Iterator[Pipeline]:
    forget_logged_causes()
    spans, metrics, sink = EncodingSpanExporter(), EncodingMetricExporter(), _providers.DropSink()
    processor = _providers.CountingBatchSpanProcessor(
        _providers.CountingSpanExporter(spans, sink), sink,
        max_queue_size=4096, max_export_batch_size=1024, schedule_delay_millis=60_000,
    )
    reader = PeriodicExportingMetricReader(_providers.CountingMetricExporter(metrics, sink),
                                           export_interval_millis=3_600_000)
    telemetry = llm_otel.configure(service_name="bounds", set_global=False, traces_exporter="none",
                                   metrics_exporter="none", span_processors=[processor], metric_readers=[reader],
                                   **options)
    sink.recorder = telemetry.recorder
    try:
        yield Pipeline(telemetry, spans, metrics, sink)
    finally:
        llm_otel.shutdown()
