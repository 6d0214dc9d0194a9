"""SDK providers and OTLP exporters built from the resolved settings.

Exports never block the application: spans go through a bounded batch queue,
metrics through a periodic reader with a timeout. What cannot be delivered is
counted in ``llm_otel.telemetry.dropped`` instead of vanishing.
"""

from __future__ import annotations

import logging
import os
import threading
import uuid
from collections import deque
from collections.abc import Mapping, Sequence
from typing import Any

from opentelemetry import metrics, trace
from opentelemetry.metrics import MeterProvider, NoOpMeterProvider
from opentelemetry.sdk.metrics import MeterProvider as SdkMeterProvider
from opentelemetry.sdk.metrics.export import (
    ConsoleMetricExporter,
    MetricExporter,
    MetricExportResult,
    MetricsData,
    PeriodicExportingMetricReader,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor
from opentelemetry.sdk.trace import TracerProvider as SdkTracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    ConsoleSpanExporter,
    SpanExporter,
    SpanExportResult,
)
from opentelemetry.trace import TracerProvider

from llm_otel import _names as n
from llm_otel._log import log_once

_logger = logging.getLogger("llm_otel")


class DropSink:
    """Late-bound target for drop counts (the recorder is built after the providers)."""

    def __init__(self) -> None:
        self.recorder: Any = None

    def dropped(self, signal: str, reason: str, amount: int) -> None:
        if self.recorder is not None and amount > 0:
            self.recorder.count_dropped(signal, reason, amount)
        log_once(
            f"dropped:{signal}:{reason}",
            "llm-otel: %s could not be delivered (%s); counted in llm_otel_telemetry_dropped_total",
            signal,
            reason,
        )


class CountingSpanExporter(SpanExporter):
    def __init__(self, inner: SpanExporter, sink: DropSink) -> None:
        self._inner = inner
        self._sink = sink

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        try:
            result = self._inner.export(spans)
        except Exception:
            result = SpanExportResult.FAILURE
        if result is not SpanExportResult.SUCCESS:
            self._sink.dropped("spans", "export_failed", len(spans))
        return result

    def shutdown(self) -> None:
        self._inner.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self._inner.force_flush(timeout_millis)


class _EvictionCountingQueue(deque[Any]):
    """The batch processor's bounded queue, made to report what it evicts.

    The SDK appends new spans on the left of a ``deque(maxlen=...)``, which silently
    pushes the oldest one out on the right when full, while its worker pops batches
    from the right. Appends and pops share one short lock here (held for the deque
    operation only, never across an export), so "full at append" means exactly one
    span was evicted: every span the queue loses is counted, none twice.
    """

    def __init__(self, maxlen: int, evicted: Any) -> None:
        super().__init__(maxlen=maxlen)
        self._lock = threading.Lock()
        self._evicted = evicted

    def appendleft(self, item: Any) -> None:
        with self._lock:
            full = len(self) == self.maxlen
            super().appendleft(item)
        if full:
            self._evicted()

    def pop(self) -> Any:  # type: ignore[override]  # deque.pop takes no index
        with self._lock:
            return super().pop()


class CountingBatchSpanProcessor(BatchSpanProcessor):
    """A BatchSpanProcessor that accounts for every span it cannot deliver.

    A span ended while the queue is full is dropped here (counted as ``queue_full``)
    rather than handed to the SDK, which would evict the oldest queued span and log a
    warning per span; a span ended after shutdown is counted as ``shutdown``; spans
    still queued when shutdown gives up are counted as ``shutdown_timeout``; failed
    exports are counted by :class:`CountingSpanExporter`. So spans ended = spans
    exported + spans counted in ``llm_otel.telemetry.dropped``.
    """

    def __init__(self, exporter: SpanExporter, sink: DropSink, **options: Any) -> None:
        super().__init__(exporter, **options)
        self._sink = sink
        batch = getattr(self, "_batch_processor", None)
        capacity = getattr(batch, "_max_queue_size", None)
        queue = getattr(batch, "_queue", None)
        self._batch: Any = None
        self._capacity = 0
        self._queue: Any = None
        if batch is not None and isinstance(capacity, int) and isinstance(queue, deque) and not queue:
            # an SDK whose internals differ keeps its own queue: drops are then counted best-effort
            self._queue = _EvictionCountingQueue(capacity, self._evicted)
            batch._queue = self._queue
            self._batch = batch
            self._capacity = capacity

    def _evicted(self) -> None:
        self._sink.dropped("spans", "queue_full", 1)

    def on_end(self, span: ReadableSpan) -> None:
        queue = self._queue
        if queue is not None and self._batch._queue is not queue:  # the SDK rebuilt it (after a fork)
            queue = self._queue = _EvictionCountingQueue(self._capacity, self._evicted)
            queue.extend(self._batch._queue)
            self._batch._queue = queue
        if queue is not None and span.context is not None and span.context.trace_flags.sampled:
            if self._batch._shutdown:
                self._sink.dropped("spans", "shutdown", 1)
                return
            if len(queue) >= self._capacity:
                self._sink.dropped("spans", "queue_full", 1)
                return
        super().on_end(span)

    def shutdown(self) -> None:
        super().shutdown()  # type: ignore[no-untyped-call]
        left = len(self._queue) if self._queue is not None else 0
        if left:  # the exporter did not finish within the shutdown timeout
            self._sink.dropped("spans", "shutdown_timeout", left)


class CountingMetricExporter(MetricExporter):
    def __init__(self, inner: MetricExporter, sink: DropSink) -> None:
        super().__init__(
            preferred_temporality=getattr(inner, "_preferred_temporality", None),
            preferred_aggregation=getattr(inner, "_preferred_aggregation", None),
        )
        self._inner = inner
        self._sink = sink

    def export(self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: Any) -> MetricExportResult:
        try:
            result = self._inner.export(metrics_data, timeout_millis=timeout_millis, **kwargs)
        except Exception:
            result = MetricExportResult.FAILURE
        if result is not MetricExportResult.SUCCESS:
            self._sink.dropped("metrics", "export_failed", 1)
        return result

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        return self._inner.force_flush(timeout_millis)

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        self._inner.shutdown(timeout_millis=timeout_millis, **kwargs)


_INSTANCE_ID = str(uuid.uuid4())


def _resource(settings: Mapping[str, Any], extra: Mapping[str, Any] | None) -> Resource:
    """service.instance.id is unique per process unless set, so two replicas of one service
    never overwrite each other's series in the collector's prometheus exporter."""
    attributes: dict[str, Any] = {n.SERVICE_INSTANCE_ID: _INSTANCE_ID}
    attributes.update(extra or {})
    attributes[n.SERVICE_NAME] = settings["service_name"]
    resource = Resource.create(attributes)
    env_resource = Resource.create({})
    if n.SERVICE_INSTANCE_ID in env_resource.attributes and n.SERVICE_INSTANCE_ID not in (extra or {}):
        resource = resource.merge(Resource({n.SERVICE_INSTANCE_ID: env_resource.attributes[n.SERVICE_INSTANCE_ID]}))
    return resource


def _endpoint(settings: Mapping[str, Any], signal: str) -> str | None:
    """The base endpoint plus the per-signal path that the HTTP exporters expect."""
    base = settings["endpoint"]
    if base is None:
        return None
    if settings["protocol"] == "grpc":
        return str(base)
    return str(base).rstrip("/") + f"/v1/{signal}"


def _export_timeout_s(settings: Mapping[str, Any], setting: str, signal: str) -> float:
    """The exporter's own deadline: ``setting`` (the documented upper bound of one export),
    or the OTLP exporter's environment variable when that asks for less (seconds)."""
    bound = float(settings[setting]) / 1000
    for var in (f"OTEL_EXPORTER_OTLP_{signal.upper()}_TIMEOUT", "OTEL_EXPORTER_OTLP_TIMEOUT"):
        raw = os.environ.get(var, "").strip()
        if raw:
            try:
                return min(bound, float(raw))
            except ValueError:
                log_once(f"timeout-env:{var}", "llm-otel: ignoring %s=%r (not a number of seconds)", var, raw)
    return bound


def _span_exporter(settings: Mapping[str, Any]) -> SpanExporter | None:
    kind = settings["traces_exporter"]
    if kind == "none":
        return None
    if kind == "console":
        return ConsoleSpanExporter()
    headers = settings["headers"]
    timeout = _export_timeout_s(settings, "span_export_timeout_ms", "traces")
    if settings["protocol"] == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as Grpc

        return Grpc(endpoint=_endpoint(settings, "traces"), headers=headers, timeout=timeout)
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as Http

    return Http(endpoint=_endpoint(settings, "traces"), headers=headers, timeout=timeout, session=_pinned_session())


def _pinned_session() -> Any:
    """A requests session whose CA file (OTEL_EXPORTER_OTLP_CERTIFICATE) is not replaced by
    REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE from the environment, as a plain session's would be."""
    import requests

    class PinnedVerifySession(requests.Session):
        def merge_environment_settings(self, *args: Any, **kwargs: Any) -> Any:
            settings = super().merge_environment_settings(*args, **kwargs)
            if isinstance(self.verify, str):
                settings["verify"] = self.verify
            return settings

    return PinnedVerifySession()


def _metric_exporter(settings: Mapping[str, Any]) -> MetricExporter | None:
    kind = settings["metrics_exporter"]
    if kind == "none":
        return None
    if kind == "console":
        return ConsoleMetricExporter()
    headers = settings["headers"]
    timeout = _export_timeout_s(settings, "metric_export_timeout_ms", "metrics")
    if settings["protocol"] == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter as Grpc

        return Grpc(endpoint=_endpoint(settings, "metrics"), headers=headers, timeout=timeout)
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter as Http

    return Http(endpoint=_endpoint(settings, "metrics"), headers=headers, timeout=timeout,
                session=_pinned_session())


def tracer_provider(
    settings: Mapping[str, Any],
    resource_attributes: Mapping[str, Any] | None,
    extra: Sequence[SpanProcessor],
    sink: DropSink,
) -> SdkTracerProvider:
    provider = SdkTracerProvider(resource=_resource(settings, resource_attributes))
    exporter = _span_exporter(settings)
    if exporter is not None:
        provider.add_span_processor(
            CountingBatchSpanProcessor(
                CountingSpanExporter(exporter, sink),
                sink,
                max_queue_size=settings["span_queue_size"],
                max_export_batch_size=min(settings["span_batch_size"], settings["span_queue_size"]),
                schedule_delay_millis=settings["span_schedule_delay_ms"],
                export_timeout_millis=settings["span_export_timeout_ms"],
            )
        )
    for processor in extra:
        provider.add_span_processor(processor)
    return provider


def meter_provider(
    settings: Mapping[str, Any],
    resource_attributes: Mapping[str, Any] | None,
    extra: Sequence[Any],
    sink: DropSink,
) -> MeterProvider:
    """The SDK meter provider, or a no-op one when no reader would ever collect (metrics exporter
    ``none`` and no extra readers): measurements nobody reads are then not even taken."""
    readers = list(extra)
    exporter = _metric_exporter(settings)
    if exporter is not None:
        readers.append(
            PeriodicExportingMetricReader(
                CountingMetricExporter(exporter, sink),
                export_interval_millis=settings["metric_export_interval_ms"],
                export_timeout_millis=settings["metric_export_timeout_ms"],
            )
        )
    if not readers:
        return NoOpMeterProvider()
    return SdkMeterProvider(resource=_resource(settings, resource_attributes), metric_readers=readers)


def set_global_if_unset(tracer: TracerProvider, meter: MeterProvider) -> None:
    if isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider):
        trace.set_tracer_provider(tracer)
    from opentelemetry.metrics._internal import _ProxyMeterProvider

    if isinstance(metrics.get_meter_provider(), _ProxyMeterProvider) and not isinstance(meter, NoOpMeterProvider):
        metrics.set_meter_provider(meter)
