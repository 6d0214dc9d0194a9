"""Test helpers for applications instrumented with llm-otel (and for the kit's own tests).

>>> from llm_otel.testing import capture
>>> with capture() as telemetry:
...     answer("hi")
...     telemetry.assert_single_trace({"POST /chat": {"chat gpt-4o": {}}})
...     assert telemetry.counter("llm.tokens.input") == 12
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.id_generator import IdGenerator

import llm_otel
from llm_otel._runtime import Telemetry

TraceShape = Mapping[str, "TraceShape"]


class CapturedTelemetry:
    """Spans and metrics recorded in memory while the ``capture()`` block runs."""

    def __init__(self, telemetry: Telemetry, spans: InMemorySpanExporter, reader: InMemoryMetricReader) -> None:
        self.telemetry = telemetry
        self.exporter = spans
        self.reader = reader
        self._metrics_cache: Any = None

    # -- spans -------------------------------------------------------------
    def spans(self) -> list[ReadableSpan]:
        return list(self.exporter.get_finished_spans())

    def span(self, name: str) -> ReadableSpan:
        found = [s for s in self.spans() if s.name == name]
        if len(found) != 1:
            raise AssertionError(f"expected one span named {name!r}, found {len(found)}: {self.span_names()}")
        return found[0]

    def span_names(self) -> list[str]:
        return [s.name for s in self.spans()]

    def traces(self) -> dict[int, list[ReadableSpan]]:
        by_trace: dict[int, list[ReadableSpan]] = {}
        for span in self.spans():
            assert span.context is not None
            by_trace.setdefault(span.context.trace_id, []).append(span)
        return by_trace

    def tree(self, spans: Sequence[ReadableSpan] | None = None) -> dict[str, Any]:
        """Nested ``{name: {child name: {...}}}`` of one trace (siblings with equal names merge)."""
        spans = list(self.spans() if spans is None else spans)
        ids = {s.context.span_id for s in spans if s.context is not None}
        children: dict[int | None, list[ReadableSpan]] = {}
        for span in spans:
            parent = span.parent.span_id if span.parent is not None and span.parent.span_id in ids else None
            children.setdefault(parent, []).append(span)

        def build(parent: int | None) -> dict[str, Any]:
            node: dict[str, Any] = {}
            for child in sorted(children.get(parent, []), key=lambda s: s.start_time or 0):
                assert child.context is not None
                node.setdefault(child.name, {}).update(build(child.context.span_id))
            return node

        return build(None)

    def assert_single_trace(self, shape: TraceShape, *, spans: Sequence[ReadableSpan] | None = None) -> None:
        """Assert all spans form ONE trace whose tree contains ``shape`` (names; extra spans allowed)."""
        spans = list(self.spans() if spans is None else spans)
        trace_ids = {s.context.trace_id for s in spans if s.context is not None}
        if len(trace_ids) != 1:
            raise AssertionError(f"expected one trace, found {len(trace_ids)}: {[s.name for s in spans]}")
        assert_tree_contains(self.tree(spans), shape)

    # -- metrics -----------------------------------------------------------
    def collect(self) -> None:
        self._metrics_cache = self.reader.get_metrics_data()

    def points(self, instrument: str, attributes: Mapping[str, Any] | None = None, **match: str) -> list[Any]:
        """Data points of one instrument whose attributes contain ``attributes`` and ``match``.

        Keyword names spell each dot as ``__``: ``gen_ai__request__model="gpt-4o"``.
        """
        if self._metrics_cache is None:
            self.collect()
        wanted = {**(attributes or {}), **{k.replace("__", "."): v for k, v in match.items()}}
        found = []
        keys_seen: set[str] = set()
        data = self._metrics_cache
        for resource in data.resource_metrics if data is not None else ():
            for scope in resource.scope_metrics:
                for metric in scope.metrics:
                    if metric.name != instrument:
                        continue
                    for point in metric.data.data_points:
                        attributes = dict(point.attributes or {})
                        keys_seen.update(attributes)
                        if all(attributes.get(k) == v for k, v in wanted.items()):
                            found.append(point)
        unknown = set(wanted) - keys_seen
        if keys_seen and unknown:
            # a misspelt key would otherwise match nothing and read as zero
            raise AssertionError(f"{instrument} has no attribute {sorted(unknown)}; it has {sorted(keys_seen)}")
        return found

    def counter(self, instrument: str, attributes: Mapping[str, Any] | None = None, **match: str) -> float:
        self.collect()
        return float(sum(p.value for p in self.points(instrument, attributes, **match)))

    def histogram_sum(self, instrument: str, attributes: Mapping[str, Any] | None = None, **match: str) -> float:
        self.collect()
        return float(sum(p.sum for p in self.points(instrument, attributes, **match)))

    def histogram_count(self, instrument: str, attributes: Mapping[str, Any] | None = None, **match: str) -> int:
        self.collect()
        return int(sum(p.count for p in self.points(instrument, attributes, **match)))

    def gauge(self, instrument: str, attributes: Mapping[str, Any] | None = None, **match: str) -> float | None:
        self.collect()
        points = self.points(instrument, attributes, **match)
        return float(points[-1].value) if points else None

    def metric(self, instrument: str) -> Any:
        self.collect()
        data = self._metrics_cache
        for resource in data.resource_metrics if data is not None else ():
            for scope in resource.scope_metrics:
                for metric in scope.metrics:
                    if metric.name == instrument:
                        return metric
        return None

    def clear(self) -> None:
        self.exporter.clear()


def assert_tree_contains(tree: Mapping[str, Any], shape: TraceShape, path: str = "") -> None:
    for name, children in shape.items():
        if name not in tree:
            raise AssertionError(f"missing span {path + name!r}; present at this level: {sorted(tree)}")
        assert_tree_contains(tree[name], children, path + name + " > ")


class _IsolatedIdGenerator(IdGenerator):
    """Ids from the OS, so tests that reseed ``random`` (hypothesis does) never repeat trace ids."""

    def generate_span_id(self) -> int:
        return int.from_bytes(os.urandom(8), "big") or 1

    def generate_trace_id(self) -> int:
        return int.from_bytes(os.urandom(16), "big") or 1


@contextmanager
def capture(**configure_options: Any) -> Iterator[CapturedTelemetry]:
    """Configure llm-otel with in-memory providers for the block, then shut them down.

    The sampled built-in scorers (groundedness, drift) are off unless asked for
    (``capture(groundedness="auto")``), so a test sees the same spans on every run.
    """
    configure_options.setdefault("groundedness", "off")
    configure_options.setdefault("drift", "off")
    exporter = InMemorySpanExporter()
    tracer_provider = TracerProvider(id_generator=_IsolatedIdGenerator())
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    reader = InMemoryMetricReader()
    meter_provider = MeterProvider(metric_readers=[reader])
    telemetry = llm_otel.configure(
        tracer_provider=tracer_provider,
        meter_provider=meter_provider,
        set_global=False,
        **configure_options,
    )
    try:
        yield CapturedTelemetry(telemetry, exporter, reader)
    finally:
        llm_otel.shutdown()
        tracer_provider.shutdown()
        meter_provider.shutdown()
