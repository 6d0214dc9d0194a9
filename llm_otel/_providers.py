"""SDK providers and OTLP exporters built from the resolved settings.

Exports never block the application: spans go through a bounded batch queue,
metrics through a periodic reader with a timeout. What cannot be delivered is
counted in ``llm_otel.telemetry.dropped`` instead of vanishing. The providers built
here are the kit's own: created without the SDK's exit hook (which waits up to 30 s
on a hung collector) and shut down by the kit within ``shutdown_timeout_ms``.
"""

from __future__ import annotations

import logging
import os
import threading
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from opentelemetry import metrics, trace
from opentelemetry.metrics import MeterProvider, NoOpMeterProvider
from opentelemetry.sdk.metrics import MeterProvider as SdkMeterProvider
from opentelemetry.sdk.metrics.export import (
    ConsoleMetricExporter,
    MetricExporter,
    PeriodicExportingMetricReader,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor
from opentelemetry.sdk.trace import TracerProvider as SdkTracerProvider
from opentelemetry.sdk.trace.export import ConsoleSpanExporter, SpanExporter
from opentelemetry.trace import TracerProvider

from llm_otel import _fork
from llm_otel import _names as n
from llm_otel._batch import CountingBatchSpanProcessor
from llm_otel._delivery import CountingMetricExporter, CountingSpanExporter, DropSink
from llm_otel._log import log_once

__all__ = [
    "CountingBatchSpanProcessor",
    "CountingMetricExporter",
    "CountingSpanExporter",
    "DropSink",
    "meter_provider",
    "set_global_if_unset",
    "tracer_provider",
]

_logger = logging.getLogger("llm_otel")

_INSTANCE_ID = str(uuid.uuid4())


def _new_instance_id() -> None:
    """A forked child is another instance: its series must not overwrite its parent's."""
    global _INSTANCE_ID
    _INSTANCE_ID = str(uuid.uuid4())


_fork.on_fork(_new_instance_id)


def _resource(settings: Mapping[str, Any], extra: Mapping[str, Any] | None) -> tuple[Resource, bool]:
    """service.instance.id is unique per process unless set, so two replicas of one service
    never overwrite each other's series in the collector's prometheus exporter.

    Also says whether the id is the kit's own (then a forked child gets a new one)."""
    attributes: dict[str, Any] = {n.SERVICE_INSTANCE_ID: _INSTANCE_ID}
    attributes.update(extra or {})
    attributes[n.SERVICE_NAME] = settings["service_name"]
    resource = Resource.create(attributes)
    env_resource = Resource.create({})
    if n.SERVICE_INSTANCE_ID in env_resource.attributes and n.SERVICE_INSTANCE_ID not in (extra or {}):
        resource = resource.merge(Resource({n.SERVICE_INSTANCE_ID: env_resource.attributes[n.SERVICE_INSTANCE_ID]}))
    return resource, resource.attributes.get(n.SERVICE_INSTANCE_ID) == _INSTANCE_ID


def target(settings: Mapping[str, Any]) -> str:
    """Where the kit's OTLP exporters send, as said in its log lines."""
    protocol = settings["protocol"]
    endpoint = settings["endpoint"] or os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") or (
        "http://localhost:4317" if protocol == "grpc" else "http://localhost:4318")
    return f"{endpoint} ({protocol})"


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
    resource, own_id = _resource(settings, resource_attributes)
    provider = SdkTracerProvider(resource=resource, shutdown_on_exit=False)
    exporter = _span_exporter(settings)
    if exporter is not None:
        provider.add_span_processor(
            CountingBatchSpanProcessor(
                CountingSpanExporter(exporter, sink, factory=lambda: _span_exporter(settings) or exporter),
                sink,
                max_queue_size=settings["span_queue_size"],
                max_export_batch_size=min(settings["span_batch_size"], settings["span_queue_size"]),
                schedule_delay_millis=settings["span_schedule_delay_ms"],
                export_timeout_millis=settings["span_export_timeout_ms"],
                shutdown_timeout_millis=settings["shutdown_timeout_ms"],
            )
        )
    for processor in extra:
        provider.add_span_processor(processor)
    _fork.after_fork_in_child(provider, lambda p: _tracer_provider_after_fork(p, own_id))
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
                CountingMetricExporter(exporter, sink, factory=lambda: _metric_exporter(settings) or exporter),
                export_interval_millis=settings["metric_export_interval_ms"],
                export_timeout_millis=settings["metric_export_timeout_ms"],
            )
        )
    if not readers:
        return NoOpMeterProvider()
    resource, own_id = _resource(settings, resource_attributes)
    provider = SdkMeterProvider(resource=resource, metric_readers=readers, shutdown_on_exit=False)
    _fork.after_fork_in_child(provider, lambda p: _meter_provider_after_fork(p, own_id))
    return provider


def _tracer_provider_after_fork(provider: Any, own_id: bool) -> None:
    provider._tracers_lock = threading.Lock()  # the SDK resets it too, but may run after this
    if own_id:
        provider._update_resource(Resource({n.SERVICE_INSTANCE_ID: _INSTANCE_ID}))


def _meter_provider_after_fork(provider: Any, own_id: bool) -> None:
    """The child starts from zero: every aggregation of the kit's meter provider is emptied
    (the parent's totals stay the parent's to export) and every lock in it is new."""
    from llm_otel import _sdk_fork

    _sdk_fork.reset_meter_provider(provider)
    if own_id:
        provider._update_resource(Resource({n.SERVICE_INSTANCE_ID: _INSTANCE_ID}))


def is_api_default(provider: Any) -> bool:
    """Whether ``provider`` is the API's placeholder (nothing installed globally yet)."""
    from opentelemetry.metrics._internal import _ProxyMeterProvider

    return isinstance(provider, (trace.ProxyTracerProvider, _ProxyMeterProvider))


def set_global_if_unset(tracer: TracerProvider, meter: MeterProvider) -> None:
    if is_api_default(trace.get_tracer_provider()):
        trace.set_tracer_provider(tracer)
    if is_api_default(metrics.get_meter_provider()) and not isinstance(meter, NoOpMeterProvider):
        metrics.set_meter_provider(meter)
