"""Exporters that account for what they cannot deliver, and say so in one line.

Every OTLP exporter the kit creates is wrapped here: a failed export is counted in
``llm_otel.telemetry.dropped`` (through :class:`DropSink`), the SDK exporter's own
log lines for that export (one per retry) are folded into the kit's single
explanation, and at shutdown the exporter is told to try once instead of retrying
with back-off, so an unreachable collector never holds the process at exit.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from opentelemetry.sdk.metrics.export import MetricExporter, MetricExportResult, MetricsData
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from llm_otel import _export_guard
from llm_otel._log import internal_error, log_once

_logger = logging.getLogger("llm_otel")

# The loggers the OTLP exporters (and their HTTP transport) report failed attempts on.
_EXPORTER_LOGGERS = (
    "opentelemetry.exporter.otlp.proto.grpc.exporter",
    "opentelemetry.exporter.otlp.proto.grpc.trace_exporter",
    "opentelemetry.exporter.otlp.proto.grpc.metric_exporter",
    "opentelemetry.exporter.otlp.proto.http.trace_exporter",
    "opentelemetry.exporter.otlp.proto.http.metric_exporter",
    "opentelemetry.exporter.otlp.common.http",
    "opentelemetry.exporter.http.transport._requests",
    "opentelemetry.exporter.http.transport._urllib3",
)
_in_export = threading.local()


class _FoldExportLogs(logging.Filter):
    """Keeps the exporter's per-attempt lines for the kit's own exports out of the log.

    Only records emitted while one of the kit's counting exporters is exporting (on that
    thread) are held back; the last one is kept as the cause in the kit's own line.
    Exports of the application's own exporters log as they always did.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        owner = getattr(_in_export, "owner", None)
        if owner is None:
            return True
        if record.levelno >= logging.WARNING and "shutdown" not in str(record.msg).lower():
            with contextlib.suppress(Exception):  # a record whose arguments do not format is not kept
                owner.sink.last_error = _short_cause(record.getMessage())
        return False


def _short_cause(message: str) -> str:
    """``UNAVAILABLE: failed to connect to all addresses`` or ``Connection refused`` out of an
    exporter's long line."""
    grpc_status = re.search(r"StatusCode\.(\w+).*?[Ee]rror details: ([^;]*)", message)
    if grpc_status:
        return f"{grpc_status.group(1)}: {grpc_status.group(2)}".strip()[:160]
    os_error = re.search(r"\[Errno -?\d+\] ([^'\")]+)", message)
    if os_error:
        return os_error.group(1).strip()[:160]
    transient = re.search(r"Transient error (.*?) encountered", message)
    if transient:
        return transient.group(1).strip()[:160]
    return message.strip()[:160]


_fold_filter = _FoldExportLogs()
_filter_installed = False


def fold_exporter_logs() -> None:
    global _filter_installed
    if not _filter_installed:
        for name in _EXPORTER_LOGGERS:
            logging.getLogger(name).addFilter(_fold_filter)
        _filter_installed = True


class _ForkGate:
    """Lets a fork wait (briefly) for the kit's exports in flight, and holds new ones meanwhile.

    gRPC cannot prepare a child while another thread is inside a call ("Other threads are
    currently calling into gRPC, skipping fork() handlers"): such a child inherits a
    half-busy gRPC core and its new channel hangs. So the kit's exports pass this gate,
    and a fork waits up to ``FORK_WAIT_S`` for them to end. A longer export (a hung
    collector) is not waited for: that child's exports may then fail, counted, bounded by
    their timeouts, and the child itself runs on.
    """

    FORK_WAIT_S = 2.0

    def __init__(self) -> None:
        self._reset()

    def _reset(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._active = 0
        self._forking = False

    def enter(self) -> None:
        with self._cond:
            while self._forking:
                self._cond.wait()
            self._active += 1

    def leave(self) -> None:
        with self._cond:
            self._active -= 1
            self._cond.notify_all()

    def before_fork(self) -> None:
        self._cond.acquire()
        self._forking = True
        self._cond.wait_for(lambda: self._active == 0, self.FORK_WAIT_S)
        self._cond.release()

    def after_fork_in_parent(self) -> None:
        with self._cond:
            self._forking = False
            self._cond.notify_all()


_gate = _ForkGate()
if hasattr(os, "register_at_fork"):
    os.register_at_fork(before=_gate.before_fork, after_in_parent=_gate.after_fork_in_parent,
                        after_in_child=_gate._reset)


_latest_sink: DropSink | None = None


def pipeline_status() -> DropSink | None:
    """The export state of the live ``configure()`` in this process (None before one): what was
    lost and why, when each signal last exported (read by ``llm-otel doctor`` run in-process; a
    metric export that fails whole cannot report itself through metrics)."""
    return _latest_sink


class DropSink:
    """Late-bound target for drop counts (the recorder is built after the providers).

    Also keeps the totals for the one line printed at shutdown; while shutting down
    (``closing``) the per-cause lines are held back so that line is the only one.
    """

    def __init__(self, target: str = "") -> None:
        self._recorder: Any = None
        self.last_success: dict[str, float] = {}
        self.last_failure: dict[str, tuple[float, str]] = {}
        self.failing: dict[str, bool] = {}  # the latest export of the signal delivered nothing
        self.target = target
        self.last_error = ""
        self.closing = False
        self.totals: dict[tuple[str, str], int] = {}
        self._lock = threading.Lock()

    @property
    def recorder(self) -> Any:
        return self._recorder

    @recorder.setter
    def recorder(self, recorder: Any) -> None:
        """Bound to the live recorder: this is now the process's pipeline (for the doctor)."""
        global _latest_sink
        self._recorder = recorder
        if recorder is not None:
            _latest_sink = self

    def exported(self, signal: str) -> None:
        self.last_success[signal] = time.time()
        self.failing[signal] = False

    def dropped(self, signal: str, reason: str, amount: int) -> None:
        if amount <= 0:
            return
        with self._lock:
            self.totals[(signal, reason)] = self.totals.get((signal, reason), 0) + amount
            self.last_failure[signal] = (time.time(), reason)
            if reason == "export_failed":
                self.failing[signal] = True
        if self.recorder is not None:
            self.recorder.count_dropped(signal, reason, amount)
        if self.closing:
            return
        where = f" to {self.target}" if self.target else ""
        cause = f"; last error: {self.last_error}" if self.last_error and reason == "export_failed" else ""
        log_once(
            f"dropped:{signal}:{reason}",
            "llm-otel: %s could not be delivered%s (%s%s); counted in llm_otel_telemetry_dropped_total",
            signal, where, reason, cause,
        )

    def after_fork(self) -> None:
        self._lock = threading.Lock()
        self.totals = {}

    def summary(self) -> str | None:
        """One line saying how much was lost, or None when everything was delivered."""
        with self._lock:
            totals = dict(self.totals)
        if not totals:
            return None
        spans = sum(n for (signal, _), n in totals.items() if signal == "spans")
        points = sum(n for (signal, _), n in totals.items() if signal == "metrics")
        others = sum(n for (signal, _), n in totals.items() if signal not in ("spans", "metrics"))
        parts = []
        if spans:
            parts.append(f"{spans} span{'s' if spans != 1 else ''}")
        if points:
            parts.append(f"{points} metric data point{'s' if points != 1 else ''}")
        if others:
            parts.append(f"{others} other item{'s' if others != 1 else ''}")
        where = f" to {self.target}" if self.target else ""
        cause = f" (last error: {self.last_error})" if self.last_error else ""
        return (f"llm-otel: could not deliver {' and '.join(parts)}{where}{cause}; "
                "counted in llm_otel_telemetry_dropped_total")


def _stop_retrying(exporter: Any) -> None:
    """Ask an OTLP exporter for one attempt per export from now on (no back-off).

    Both OTLP exporters give up their retry loop once their shutdown event is set, and
    still make the attempt in hand; an exporter without such an event keeps its own
    behaviour (the shutdown deadline then bounds it).
    """
    for holder in (exporter, getattr(exporter, "_client", None)):
        for name in ("_shutdown_in_progress", "_shutdown_event"):
            event = getattr(holder, name, None)
            if isinstance(event, threading.Event):
                event.set()


class CountingSpanExporter(SpanExporter):
    """Counts every span of a failed export; ``factory`` rebuilds the exporter in a forked child."""

    def __init__(self, inner: SpanExporter, sink: DropSink,
                 factory: Callable[[], SpanExporter] | None = None) -> None:
        self._inner = inner
        self._sink = sink
        self._factory = factory
        self._lock = threading.Lock()
        self._in_flight: int | None = 0  # None: the batch in hand was already counted by abandon()
        fold_exporter_logs()

    @property
    def sink(self) -> DropSink:
        return self._sink

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        """Sent as requests under the Collector's size limit; a request that fails is checked for
        spans the encoder refuses, which alone are dropped (``encode_failed``), the rest resent."""
        try:
            requests, too_large = _export_guard.span_requests(spans)
        except Exception as exc:  # never lose a batch to the guard itself
            internal_error("export.split_spans", exc)
            requests, too_large = [list(spans)], 0
        if too_large:
            self._sink.dropped("spans", "too_large", too_large)
        outcome = SpanExportResult.SUCCESS
        for request in requests:
            result, counted = self._send(request)
            if result is not SpanExportResult.SUCCESS and not counted:
                good, bad = _export_guard.encodable_spans(request)
                if bad:
                    self._sink.dropped("spans", "encode_failed", bad)
                    result, counted = self._send(good) if good else (SpanExportResult.SUCCESS, False)
                    request = good
                if result is not SpanExportResult.SUCCESS and not counted:
                    self._sink.dropped("spans", "export_failed", len(request))
            if result is not SpanExportResult.SUCCESS:
                outcome = SpanExportResult.FAILURE
        return outcome

    def _send(self, spans: Sequence[ReadableSpan]) -> tuple[SpanExportResult, bool]:
        """One export; also whether its spans were already counted as lost (by ``abandon``)."""
        with self._lock:
            self._in_flight = len(spans)
        _in_export.owner = self
        _gate.enter()
        try:
            result = self._inner.export(spans)
        except Exception:
            result = SpanExportResult.FAILURE
        finally:
            _gate.leave()
            _in_export.owner = None
        with self._lock:
            counted, self._in_flight = self._in_flight is None, 0
        if result is SpanExportResult.SUCCESS:
            self._sink.exported("spans")
        return result, counted

    def abandon(self) -> int:
        """The spans of an export still in hand, now given up for lost (counted once, here)."""
        with self._lock:
            spans, self._in_flight = self._in_flight or 0, None
        return spans

    def stop_retrying(self) -> None:
        _stop_retrying(self._inner)

    def after_fork(self) -> None:
        """A forked child must not share the parent's connection: a new exporter for it."""
        self._lock = threading.Lock()
        self._in_flight = 0
        if self._factory is not None:
            self._inner = self._factory()

    def shutdown(self) -> None:
        _in_export.owner = self
        try:
            self._inner.shutdown()
        finally:
            _in_export.owner = None

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self._inner.force_flush(timeout_millis)


class CountingMetricExporter(MetricExporter):
    """Counts the data points of every failed metric export; ``factory`` rebuilds the exporter in a forked child."""

    def __init__(self, inner: MetricExporter, sink: DropSink,
                 factory: Callable[[], MetricExporter] | None = None) -> None:
        super().__init__(
            preferred_temporality=getattr(inner, "_preferred_temporality", None),
            preferred_aggregation=getattr(inner, "_preferred_aggregation", None),
        )
        self._inner = inner
        self._sink = sink
        self._factory = factory
        fold_exporter_logs()

    @property
    def sink(self) -> DropSink:
        return self._sink

    def export(self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: Any) -> MetricExportResult:
        """Sent as requests that encode and fit under the Collector's size limit: a data point the
        encoder refuses (an integer past int64) costs itself (counted per point), not the export."""
        try:
            requests, bad, too_large = _export_guard.metric_requests(metrics_data)
        except Exception as exc:  # never lose an export to the guard itself
            internal_error("export.split_metrics", exc)
            requests, bad, too_large = [metrics_data], 0, 0
        if bad:
            self._sink.dropped("metrics", "encode_failed", bad)
        if too_large:
            self._sink.dropped("metrics", "too_large", too_large)
        outcome = MetricExportResult.SUCCESS
        for request in requests:
            _in_export.owner = self
            _gate.enter()
            try:
                result = self._inner.export(request, timeout_millis=timeout_millis, **kwargs)
            except Exception:
                result = MetricExportResult.FAILURE
            finally:
                _gate.leave()
                _in_export.owner = None
            if result is MetricExportResult.SUCCESS:
                self._sink.exported("metrics")
            else:
                self._sink.dropped("metrics", "export_failed", _export_guard.point_count(request))
                outcome = result
        return outcome

    def stop_retrying(self) -> None:
        _stop_retrying(self._inner)

    def after_fork(self) -> None:
        if self._factory is not None:
            self._inner = self._factory()

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        return self._inner.force_flush(timeout_millis)

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        _in_export.owner = self
        try:
            self._inner.shutdown(timeout_millis=timeout_millis, **kwargs)
        finally:
            _in_export.owner = None
