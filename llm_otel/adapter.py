"""The surface every adapter builds on: framework handlers, web middleware, provider SDK instrumentors.

An adapter translates its framework's events into one LLM call record and hands it to the core;
it never creates a Meter or an instrument, never computes cost, and never imports a private
``llm_otel._*`` module or writes into a call's internals. Everything it needs is here:

>>> from llm_otel import adapter
>>> call = adapter.start_call(provider="openai", model="gpt-4o", parent=parent_context)
>>> call.set_response(response)                       # or add_chunk / set_usage / set_* setters
>>> call.end()                                        # call.fail(exc), call.end(outcome="closed_early")
>>> span = adapter.tracer().start_span("chain plan")  # spans that are not LLM calls
>>> adapter.fail_span(span, exc); span.end()
>>> adapter.count_unknown_input("my_framework", "run_id_missing")
>>> adapter.span_name(name), adapter.span_attributes(attrs)   # bounded before they reach the SDK
>>> span.set_attribute(adapter.names.GEN_AI_TOOL_NAME, "search")
>>> body = adapter.WatchedStream(body, MyWatch())          # follow a stream to its end, failure or close
>>> chunks = adapter.watch_generator(chunks, adapter.CallWatch(call, activate=True))  # a call over a stream

Read ``current()`` (or call ``tracer()``) at event time, never at construction, so a later
``configure()`` takes effect everywhere at once. See docs/adapters.md.
"""

from __future__ import annotations

from collections.abc import Mapping as _Mapping
from typing import Any as _Any

from opentelemetry.trace import Span as _Span
from opentelemetry.trace import Tracer

from llm_otel import _bounds
from llm_otel import _names as names
from llm_otel._call import CallSpec, LLMCall, start_call
from llm_otel._content import captured_text as _captured_text
from llm_otel._context import RequestRollup, labels, request_rollup
from llm_otel._errors import error_type, fail_span, interruption_of, mark_closed_early
from llm_otel._errors import record_error as _record_error
from llm_otel._log import internal_error, log_once, never_raises
from llm_otel._retrieved import add_retrieved_context
from llm_otel._runtime import Telemetry, current
from llm_otel._streams import (
    AsyncWatchedStream,
    CallWatch,
    StreamWatch,
    WatchedStream,
    watch_async_generator,
    watch_generator,
)

__all__ = [
    "CANCELLED",
    "CLOSED_EARLY",
    "AsyncWatchedStream",
    "CallSpec",
    "CallWatch",
    "LLMCall",
    "RequestRollup",
    "StreamWatch",
    "Telemetry",
    "WatchedStream",
    "add_retrieved_context",
    "capture_text",
    "clean_text",
    "count_unknown_input",
    "current",
    "error_type",
    "fail_span",
    "internal_error",
    "interruption_of",
    "labels",
    "log_once",
    "mark_closed_early",
    "names",
    "never_raises",
    "record_error",
    "request_rollup",
    "rollup_attributes",
    "span_attributes",
    "span_name",
    "start_call",
    "tracer",
    "watch_async_generator",
    "watch_generator",
]

CLOSED_EARLY = names.STREAM_CLOSED_EARLY
"""``call.end(outcome=CLOSED_EARLY)``: the consumer stopped reading a stream (not a failure)."""
CANCELLED = names.STREAM_CANCELLED
"""``call.end(outcome=CANCELLED)``: the caller was cancelled or interrupted (not a failure).

``call.fail(exc)`` and ``fail_span(span, exc)`` already turn ``asyncio.CancelledError``,
``GeneratorExit`` and ``KeyboardInterrupt`` into these outcomes; ``interruption_of(exc)``
says which (None for a real failure), for adapters that end spans of their own."""


def tracer() -> Tracer:
    """The tracer for spans that are not LLM calls: chains, agents, tools, retrievers, HTTP server spans."""
    return current().tracer


def count_unknown_input(source: str, reason: str) -> bool:
    """Count one piece of bad or missing input (``llm_otel_input_unknown_total{source, reason}``).

    ``source`` names the adapter (``"langchain"``), ``reason`` the problem (``"run_id_missing"``);
    both must be bounded. Never raises; counts nothing while instrumentation is disabled and then
    returns False (so the adapter's explaining log line can be skipped too).
    """
    try:
        telemetry = current()
        if telemetry.enabled:
            telemetry.recorder.count_unknown_input(source, reason)
            return True
    except Exception as exc:
        internal_error("adapter.count_unknown_input", exc)
    return False


def rollup_attributes(rollup: RequestRollup) -> dict[str, int | float]:
    """Span attributes totalling the LLM calls of one request (a web middleware's server span).

    The cost total is left out when any call was unpriced: a partial sum would read as the
    request's cost, and an unknown price is not $0; the unpriced count says why it is missing.
    """
    attributes: dict[str, int | float] = {names.LLM_ROLLUP_CALLS: rollup.calls}
    if rollup.calls:
        attributes[names.LLM_ROLLUP_INPUT_TOKENS] = rollup.input_tokens
        attributes[names.LLM_ROLLUP_OUTPUT_TOKENS] = rollup.output_tokens
        attributes[names.LLM_ROLLUP_ERRORS] = rollup.errors
        attributes[names.LLM_ROLLUP_UNPRICED] = rollup.unpriced
        if not rollup.unpriced:
            attributes[names.LLM_ROLLUP_COST_USD] = rollup.cost_usd
    return attributes


# --- bounds: every value from a framework or the wire is bounded before it reaches the SDK ------


def span_name(name: str) -> str:
    """``name`` as a span name: valid UTF-8, no control characters, capped (docs/metrics.md, bounds)."""
    return _bounds.span_name(name)


def clean_text(text: str, limit: int) -> str:
    """``text`` made valid UTF-8 without control characters other than tab/CR/LF, cut at ``limit``."""
    return _bounds.text(text, limit)


def span_attributes(attributes: _Mapping[str, _Any]) -> dict[str, _Any]:
    """Attributes from a framework or a client, each cleaned and capped at ``attribute_max_length``;
    values that cannot be attributes are left out."""
    return _bounds.attributes(attributes, _attribute_cap())


def capture_text(text: str) -> str:
    """Opt-in captured content (a tool's arguments, a retrieval query): capped, then redacted."""
    telemetry = current()
    return _captured_text(text, telemetry.redactor, telemetry.settings)


def record_error(span: _Span, error: BaseException | str) -> None:
    """Error status and exception event on ``span``, the message redacted and capped (any capture mode)."""
    telemetry = current()
    _record_error(span, error, telemetry.redactor, _attribute_cap())


def _attribute_cap() -> int:
    cap = current().settings.get("attribute_max_length", _bounds.DEFAULT_ATTRIBUTE_MAX_CHARS)
    return int(cap)
