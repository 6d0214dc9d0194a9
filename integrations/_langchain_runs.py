"""Open LangChain runs, keyed by ``run_id``, shared safely between threads and tasks.

Callbacks of one run arrive on different threads (``RunnableParallel``,
``batch``) or tasks (``abatch``, concurrent requests), so the parent of a run is
never read from "the current context". Each run stores the OpenTelemetry
``Context`` its children start in; a child looks its parent up here. The lock
guards only dictionary operations: spans are started and ended outside it.

A run can end after its root (a consumer that stops reading a stream closes the
inner generators later) or never (a generator that is never closed). Such runs
stay open for ``orphan_timeout_s`` after their root ended, then a sweep ends
them as abandoned; ``max_open_runs`` bounds memory whatever happens.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Hashable, Mapping
from dataclasses import dataclass, field
from typing import Any

from opentelemetry.context import Context
from opentelemetry.trace import Span

from llm_otel import adapter
from llm_otel.adapter import LLMCall

# How many ended runs are remembered so late children and late end events still find their trace.
_RECENT_LIMIT = 1024
_SWEEP_INTERVAL_S = 1.0
# error.type of runs that never reported their end and were ended by the handler.
ABANDONED_ERROR_TYPE = "abandoned"


@dataclass(eq=False)
class Run:
    """One open LangChain run: a span of its own, an LLM call, or neither (hidden / not recorded)."""

    key: Hashable
    root: Hashable | None  # None when this run is a root
    context: Context  # the context this run's children start in
    span: Span | None = None
    call: LLMCall | None = None
    started: float = field(default_factory=time.monotonic)


class RunRegistry:
    def __init__(self, *, max_open_runs: int, orphan_timeout_s: float, run_timeout_s: float | None) -> None:
        self._lock = threading.Lock()
        self._runs: dict[Hashable, Run] = {}
        self._open_in_tree: dict[Hashable, int] = {}  # root -> open descendants
        self._orphaned: dict[Hashable, float] = {}  # root that ended while descendants were open -> when
        self._recent: OrderedDict[Hashable, tuple[Context, Hashable]] = OrderedDict()
        self._max_open = max(1, max_open_runs)
        self._orphan_timeout_s = orphan_timeout_s
        self._run_timeout_s = run_timeout_s
        self._next_sweep = 0.0
        timeouts = (orphan_timeout_s,) if run_timeout_s is None else (orphan_timeout_s, run_timeout_s)
        self._sweep_interval_s = min(_SWEEP_INTERVAL_S, *timeouts)

    def __len__(self) -> int:
        return len(self._runs)

    def parent_of(self, parent_key: Hashable | None) -> tuple[Context, Hashable] | None:
        """The context and root for a child of ``parent_key``; None when the parent is unknown."""
        if parent_key is None:
            return None
        with self._lock:
            parent = self._runs.get(parent_key)
            if parent is not None:
                return parent.context, parent.root if parent.root is not None else parent.key
            return self._recent.get(parent_key)

    def add(self, run: Run) -> list[Run]:
        """Register ``run``; returns runs pushed out (a reused run_id, or over ``max_open_runs``)."""
        evicted: list[Run] = []
        with self._lock:
            previous = self._runs.pop(run.key, None)
            if previous is not None:
                self._forget(previous)
                evicted.append(previous)
            self._runs[run.key] = run
            if run.root is not None:
                self._open_in_tree[run.root] = self._open_in_tree.get(run.root, 0) + 1
                if run.root not in self._runs:  # a child starting after its root ended
                    self._orphaned.setdefault(run.root, time.monotonic())
            while len(self._runs) > self._max_open:
                oldest = self._runs.pop(next(iter(self._runs)))
                self._forget(oldest)
                evicted.append(oldest)
        return evicted

    def call_of(self, key: Hashable | None) -> LLMCall | None:
        if key is None:
            return None
        with self._lock:
            run = self._runs.get(key)
        return run.call if run is not None else None

    def pop(self, key: Hashable | None) -> tuple[Run | None, bool]:
        """Remove and return the run; the flag says whether an unknown key was seen recently (a late end)."""
        if key is None:
            return None, False
        with self._lock:
            run = self._runs.pop(key, None)
            if run is None:
                return None, key in self._recent
            self._forget(run)
            return run, False

    def pop_descendants(self, root: Hashable) -> list[Run]:
        """Remove every open run under ``root`` (whose own run just ended)."""
        with self._lock:
            victims = [self._runs.pop(key) for key in [k for k, run in self._runs.items() if run.root == root]]
            for run in victims:
                self._forget(run)
            self._orphaned.pop(root, None)
        return victims

    def _forget(self, run: Run) -> None:
        """Bookkeeping for a run leaving the open set (lock held)."""
        root = run.root
        if root is None:
            if self._open_in_tree.get(run.key):
                self._orphaned[run.key] = time.monotonic()
        else:
            remaining = self._open_in_tree.get(root, 1) - 1
            if remaining > 0:
                self._open_in_tree[root] = remaining
            else:
                self._open_in_tree.pop(root, None)
                self._orphaned.pop(root, None)
        self._recent[run.key] = (run.context, root if root is not None else run.key)
        if len(self._recent) > _RECENT_LIMIT:
            self._recent.popitem(last=False)

    def due_for_sweep(self, now: float) -> bool:
        """Cheap, lock-free check made on every run start."""
        return now >= self._next_sweep and (bool(self._orphaned) or self._run_timeout_s is not None)

    def sweep(self, now: float) -> list[Run]:
        """Runs orphaned longer than ``orphan_timeout_s`` or open longer than ``run_timeout_s``, removed."""
        with self._lock:
            self._next_sweep = now + self._sweep_interval_s
            expired_roots = {root for root, since in self._orphaned.items() if now - since >= self._orphan_timeout_s}
            timeout = self._run_timeout_s
            keys = [
                key
                for key, run in self._runs.items()
                if (run.root is not None and run.root in expired_roots)
                or (timeout is not None and now - run.started >= timeout)
            ]
            victims = [self._runs.pop(key) for key in keys]
            for run in victims:
                self._forget(run)
            for root in expired_roots:
                self._orphaned.pop(root, None)
        return victims

    def drain(self, older_than_s: float | None = None) -> list[Run]:
        """Remove every open run (or those open longer than ``older_than_s``)."""
        now = time.monotonic()
        with self._lock:
            keys = [k for k, run in self._runs.items() if older_than_s is None or now - run.started >= older_than_s]
            victims = [self._runs.pop(key) for key in keys]
            for run in victims:
                self._forget(run)
        return victims


def close_run(run: Run, error: BaseException | str | None, extra: Mapping[str, Any] | None = None) -> None:
    """End a run's span (or LLM call) with its outcome; ``error`` may be an error.type string."""
    call = run.call
    if call is not None:
        _close_call(call, error)
        return
    span = run.span
    if span is None:
        return
    try:
        if span.is_recording() and extra:
            span.set_attributes(extra)
        if isinstance(error, GeneratorExit):  # the consumer stopped reading a stream: not a failure
            adapter.mark_closed_early(span)
        elif error is not None:
            adapter.fail_span(span, error)
    finally:
        span.end()


def _close_call(call: LLMCall, error: BaseException | str | None) -> None:
    if error is None:
        call.end()
    elif adapter.interruption_of(error) is not None:
        call.fail(error)  # the core records it as an outcome (closed_early / cancelled), not an error
    elif isinstance(error, BaseException) and _unprintable(error):
        call.fail(adapter.error_type(error))  # an exception that cannot be printed is recorded by its type
    else:
        call.fail(error)


def _unprintable(error: BaseException) -> bool:
    try:
        str(error)
    except Exception:
        return True
    return False
