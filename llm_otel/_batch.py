"""The kit's batch span processor: bounded in memory, in flush time and in shutdown time.

The SDK's ``BatchSpanProcessor`` ignores the timeout of ``force_flush`` (it exports
the whole queue, each export bounded only by the exporter's own deadline) and waits
up to 30 s at shutdown, so a hung collector held ``force_flush(2000)`` for 12-22 s
and interpreter exit for 35 s. Here a flush waits at most its timeout (the worker
keeps exporting afterwards), and shutdown gives the exporter one attempt per batch
until its deadline, then gives up what is left — counted, never silently lost.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections import deque
from typing import Any

from opentelemetry.context import _SUPPRESS_INSTRUMENTATION_KEY, attach, detach, set_value
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor
from opentelemetry.sdk.trace.export import SpanExporter

from llm_otel import _fork
from llm_otel._delivery import DropSink

DEFAULT_SHUTDOWN_TIMEOUT_MS = 5000


class CountingBatchSpanProcessor(SpanProcessor):
    """Batches ended spans to ``exporter`` and accounts for every span it cannot deliver.

    A span ended while the queue is full is dropped (``queue_full``), one ended after
    shutdown is dropped (``shutdown``), spans still queued or in an export when shutdown
    gives up are dropped (``shutdown_timeout``); failed exports are counted by the
    counting exporter. So spans ended = spans exported + spans counted in
    ``llm_otel.telemetry.dropped``.
    """

    def __init__(
        self,
        exporter: SpanExporter,
        sink: DropSink,
        *,
        max_queue_size: int = 2048,
        schedule_delay_millis: float = 5000,
        max_export_batch_size: int = 512,
        export_timeout_millis: float = 30000,
        shutdown_timeout_millis: float = DEFAULT_SHUTDOWN_TIMEOUT_MS,
    ) -> None:
        self._exporter = exporter
        self._sink = sink
        self._capacity = max(1, int(max_queue_size))
        self._batch_size = max(1, min(int(max_export_batch_size), self._capacity))
        self._delay = max(0.0, float(schedule_delay_millis) / 1000)
        self.export_timeout_millis = export_timeout_millis  # the exporter's own deadline bounds one export
        self.shutdown_timeout_millis = shutdown_timeout_millis
        self._shutdown = False
        self._reset_state()
        _fork.after_fork_in_child(self, CountingBatchSpanProcessor._after_fork)

    def _reset_state(self) -> None:
        self._queue: deque[ReadableSpan] = deque()
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._enqueued = 0  # spans ever queued
        self._finished = 0  # of those, spans whose export returned (or that were given up)
        self._flush_target = 0
        self._worker = threading.Thread(target=self._work, name="llm-otel-span-export", daemon=True)
        if not self._shutdown:
            self._worker.start()

    def _after_fork(self) -> None:
        """A forked child starts empty: the parent exports its own queue; new lock, new thread."""
        exporter_after_fork = getattr(self._exporter, "after_fork", None)
        if exporter_after_fork is not None:
            exporter_after_fork()
        self._reset_state()

    # -- recording (the application's threads) ---------------------------------------
    def on_start(self, span: Any, parent_context: Any = None) -> None:
        pass

    def on_end(self, span: ReadableSpan) -> None:
        context = span.context
        if context is None or not context.trace_flags.sampled:
            return
        with self._lock:  # the bare lock: cheaper on every span than entering the condition
            queue = self._queue
            if not self._shutdown and len(queue) < self._capacity:
                queue.append(span)
                self._enqueued += 1
                if len(queue) == self._batch_size:
                    self._cond.notify()
                return
            reason = "shutdown" if self._shutdown else "queue_full"
        self._sink.dropped("spans", reason, 1)

    # -- the export thread ------------------------------------------------------------
    def _next_batch(self) -> list[ReadableSpan] | None:
        """Wait until a batch is due (full, timer, flush or shutdown); None when done."""
        with self._cond:
            timer = time.monotonic() + self._delay
            while True:
                queue = self._queue
                if queue and (self._shutdown or len(queue) >= self._batch_size
                              or self._flush_target > self._finished or time.monotonic() >= timer):
                    count = min(self._batch_size, len(queue))
                    return [queue.popleft() for _ in range(count)]
                if self._shutdown:
                    return None
                remaining = timer - time.monotonic()
                if remaining <= 0:
                    timer = time.monotonic() + self._delay
                    remaining = self._delay
                self._cond.wait(remaining if remaining > 0 else None)

    def _work(self) -> None:
        while True:
            batch = self._next_batch()
            if batch is None:
                return
            token = attach(set_value(_SUPPRESS_INSTRUMENTATION_KEY, True))
            try:
                self._exporter.export(batch)
            except Exception:  # the counting exporter never raises; another exporter might
                self._sink.dropped("spans", "export_failed", len(batch))
            finally:
                detach(token)
            with self._cond:
                self._finished += len(batch)
                self._cond.notify_all()

    # -- flush and shutdown -----------------------------------------------------------
    def force_flush(self, timeout_millis: int | None = 30000) -> bool:
        """Export what is queued now; wait at most ``timeout_millis`` (the export goes on after)."""
        deadline = time.monotonic() + (30.0 if timeout_millis is None else max(0.0, timeout_millis / 1000))
        with self._cond:
            if self._shutdown:
                return False
            target = self._enqueued
            self._flush_target = max(self._flush_target, target)
            self._cond.notify_all()
            while self._finished < target:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._cond.wait(remaining)
        return True

    def stop_retrying(self) -> None:
        stop = getattr(self._exporter, "stop_retrying", None)
        if stop is not None:
            stop()

    def shutdown(self, timeout_millis: float | None = None) -> None:
        """Export what is queued, one attempt per batch, for at most ``timeout_millis``; then stop."""
        timeout = self.shutdown_timeout_millis if timeout_millis is None else timeout_millis
        deadline = time.monotonic() + max(0.0, timeout / 1000)
        with self._cond:
            if self._shutdown:
                return
            self._shutdown = True
            self._cond.notify_all()
        self.stop_retrying()
        worker = self._worker
        if worker.is_alive():
            worker.join(max(0.0, deadline - time.monotonic()))
        left = 0
        if worker.is_alive():  # an export hangs past the deadline: give up what is left
            with self._cond:
                left = len(self._queue)
                self._queue.clear()
            abandon = getattr(self._exporter, "abandon", None)
            if abandon is not None:
                left += abandon()
        with contextlib.suppress(Exception):
            self._exporter.shutdown()  # closes the connection; a hung gRPC export is cancelled
        if left:
            self._sink.dropped("spans", "shutdown_timeout", left)
