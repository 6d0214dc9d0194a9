"""Request-scoped state carried in ContextVars, so it follows asyncio tasks and copied contexts."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from llm_otel import _bounds as bounds

_EMPTY: Mapping[str, str] = {}

# Labels that flow to every LLM call made inside a scope: routing decisions, allow-listed baggage.
ambient_labels: ContextVar[Mapping[str, str]] = ContextVar("llm_otel_ambient_labels", default=_EMPTY)
current_call: ContextVar[Any] = ContextVar("llm_otel_current_call", default=None)


class RequestRollup:
    """Totals of the LLM calls made while serving one request (read by the web middleware)."""

    __slots__ = ("_lock", "calls", "cost_usd", "errors", "input_tokens", "output_tokens", "unpriced")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.calls = 0
        self.errors = 0
        self.input_tokens = 0
        self.output_tokens = 0
        self.cost_usd = 0.0
        self.unpriced = 0

    def add(
        self,
        *,
        input_tokens: int | None,
        output_tokens: int | None,
        cost_usd: float | None,
        failed: bool,
        unpriced: bool,
    ) -> None:
        with self._lock:
            self.calls += 1
            self.errors += failed
            self.input_tokens += input_tokens or 0
            self.output_tokens += output_tokens or 0
            self.cost_usd += cost_usd or 0.0
            self.unpriced += unpriced


request_rollup: ContextVar[RequestRollup | None] = ContextVar("llm_otel_request_rollup", default=None)


def _bounded_labels(extra: Mapping[str, str]) -> dict[str, str]:
    try:
        return bounds.labels(extra)
    except Exception as exc:  # a hostile mapping: the block runs without its labels
        from llm_otel._log import internal_error

        internal_error("labels", exc)
        return {}


@contextmanager
def labels(extra: Mapping[str, str]) -> Iterator[None]:
    """Add bounded labels to every LLM call made inside the block.

    Keys and values are cleaned and capped (``llm_otel._bounds.labels``); the values also count
    against the cardinality cap when a call records them.
    """
    token = ambient_labels.set({**ambient_labels.get(), **_bounded_labels(extra)})
    try:
        yield
    finally:
        ambient_labels.reset(token)
