"""Flush and shutdown that return within their timeout, whatever the collector does.

A flush or a shutdown of the SDK can wait far longer than asked: the batch span
processor exports its whole queue whatever the flush timeout, a metric export is
bounded only by the exporter's own deadline, and an exporter retries with back-off.
Here every step gets what is left of one deadline; a step that overruns it is left
running on a daemon thread (it ends with its exporter's deadline) and the caller
goes on. At shutdown the kit's exporters first switch to one attempt per export,
so a collector that refuses connections costs nothing at exit.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from llm_otel._batch import CountingBatchSpanProcessor

_logger = logging.getLogger("llm_otel")


def within(seconds: float, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> bool:
    """Call ``fn`` on a helper thread and wait at most ``seconds``; True if it returned a truthy
    value (or None) in time, False if it raised, returned False or is still running."""
    outcome: list[bool] = []

    def run() -> None:
        try:
            result = fn(*args, **kwargs)
        except Exception:
            outcome.append(False)
        else:
            outcome.append(result is None or bool(result))

    helper = threading.Thread(target=run, name="llm-otel-bounded", daemon=True)
    helper.start()
    helper.join(max(0.0, seconds))  # at 0 it still starts: a shutdown is at least begun
    return bool(outcome) and outcome[0]


def _left(deadline: float) -> float:
    return max(0.0, deadline - time.monotonic())


def span_processors(provider: Any) -> list[Any]:
    active = getattr(provider, "_active_span_processor", None)
    return list(getattr(active, "_span_processors", ()))


def metric_exporters(provider: Any) -> list[Any]:
    return [getattr(reader, "_exporter", None) for reader in getattr(provider, "_metric_readers", ())]


def force_flush(providers: Iterable[Any], timeout_millis: float) -> bool:
    """Flush each provider with what is left of ``timeout_millis``; False if any did not finish."""
    deadline = time.monotonic() + max(0.0, timeout_millis / 1000)
    ok = True
    for provider in providers:
        flush = getattr(provider, "force_flush", None)
        if flush is None:
            continue
        left = _left(deadline)
        ok = within(left, flush, timeout_millis=left * 1000) and ok
    return ok


def shutdown(tracer_providers: Iterable[Any], meter_providers: Iterable[Any], timeout_millis: float) -> None:
    """Shut down the kit's own providers within ``timeout_millis`` in all: spans first (up to
    half the time when metrics follow), then metrics (their final export carries the drop
    counts of the spans)."""
    deadline = time.monotonic() + max(0.0, timeout_millis / 1000)
    tracers, meters = list(tracer_providers), list(meter_providers)
    for provider in tracers:
        for processor in span_processors(provider):
            if hasattr(processor, "stop_retrying"):
                processor.stop_retrying()
    for provider in meters:
        for exporter in metric_exporters(provider):
            if hasattr(exporter, "stop_retrying"):
                exporter.stop_retrying()
    span_deadline = time.monotonic() + _left(deadline) / 2 if meters else deadline
    for provider in tracers:
        for processor in span_processors(provider):
            if isinstance(processor, CountingBatchSpanProcessor):
                processor.shutdown(_left(span_deadline) * 1000)
        within(_left(span_deadline), provider.shutdown)  # other processors; ours are done already
    for provider in meters:
        left = _left(deadline)
        within(left, provider.shutdown, timeout_millis=left * 1000)
