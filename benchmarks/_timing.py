"""Shared measurement helpers: interleaved best-of timing, result rows, a null span exporter.

Every comparison in the suite is a ratio of variants measured in ONE process,
interleaved round by round, so a machine that gets busier halfway through slows
all variants alike. The best of several rounds is reported (the least disturbed
one); absolute microseconds depend on the machine and are printed for context.
"""

from __future__ import annotations

import gc
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    SimpleSpanProcessor,
    SpanExporter,
    SpanExportResult,
)


@dataclass
class Row:
    """One line of the results table."""

    section: str
    variant: str
    value: str  # the measured figure, formatted with its unit
    ratio: str = ""  # the comparison the target is about
    target: str = ""
    verdict: str = ""  # "ok", "MISSED", "skipped", "" (informational)
    note: str = ""


class NullExporter(SpanExporter):
    """Accepts every span and does nothing: the cost measured is instrumentation, not I/O."""

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return SpanExportResult.SUCCESS


class EmittedSpans(SpanProcessor):
    """Which spans each instrumentation emitted, by instrumentation scope: proof that a variant did its work."""

    def __init__(self) -> None:
        self.names: set[tuple[str, str]] = set()

    def on_end(self, span: ReadableSpan) -> None:
        self.names.add((span.instrumentation_scope.name if span.instrumentation_scope else "", span.name))

    def by(self, scope: str) -> list[str]:
        return sorted(name for emitted_by, name in self.names if emitted_by == scope)


def child_env() -> dict[str, str]:
    """The environment of a benchmark's child interpreter: the benchmarks and this checkout first on its path."""
    here = Path(__file__).resolve().parent
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(here), str(here.parent), os.environ.get("PYTHONPATH", "")])}


def sdk_providers(processor: str) -> tuple[TracerProvider, MeterProvider]:
    """A tracer provider with a simple or batch processor to a null exporter, and a meter provider."""
    tracer_provider = TracerProvider()
    exporter = NullExporter()
    tracer_provider.add_span_processor(
        SimpleSpanProcessor(exporter) if processor == "simple" else BatchSpanProcessor(exporter, max_queue_size=1 << 16)
    )
    return tracer_provider, MeterProvider(metric_readers=[InMemoryMetricReader()])


def per_call_us(fn: Callable[[], Any], calls: int) -> float:
    start = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - start) / calls * 1e6


def interleaved(
    variants: dict[str, Callable[[], Any]],
    calls: int,
    repeat: int,
    switches: dict[str, tuple[Callable[[], Any], Callable[[], Any]]] | None = None,
) -> dict[str, float]:
    """Best per-call microseconds of each variant over ``repeat`` interleaved rounds (GC stays on).

    ``switches`` gives a variant an (on, off) pair run around each of its rounds, outside the
    timing: how an instrumentor that patches a class for the whole process takes its turn.
    """
    switches = switches or {}
    best = {name: float("inf") for name in variants}

    def timed(name: str, fn: Callable[[], Any], count: int) -> float:
        on, off = switches.get(name, (nothing, nothing))
        on()
        try:
            return per_call_us(fn, count)
        finally:
            off()

    for name, fn in variants.items():
        timed(name, fn, max(calls // 10, 200))  # warm caches (price lookup, attribute sets)
    for _ in range(repeat):
        for name, fn in variants.items():
            gc.collect()
            best[name] = min(best[name], timed(name, fn, calls))
    return best


def nothing() -> None:
    return None


def ratio_verdict(value: float, limit: float) -> str:
    return "ok" if value <= limit else "MISSED"


def fmt_us(value: float) -> str:
    return f"{value:.2f} us" if value < 100 else f"{value:.0f} us"
