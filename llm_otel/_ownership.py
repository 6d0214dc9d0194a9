"""One record per provider API call, however many layers of the kit see it.

A decorator, a framework handler and a provider SDK instrumentor may all watch the
same API call. The call nearest the wire knows the exact usage, so it owns the
record (tokens, cost, metrics); every enclosing call keeps its span as a parent and
records nothing else. Two signals tell an outer call that an inner one owns the record:

* an inner call started while the outer one was the current call (decorators,
  ``llm_call``, activated ``start_call``);
* a provider SDK instrumentor already recorded the response id the outer call
  reports (framework handlers, whose calls are never the current call).

The rule is documented in docs/instrumentation.md ("One record per API call").
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Mapping

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import Span

from llm_otel import _names as n
from llm_otel._context import current_call

_WIRE_RESPONSES_MAX = 4096  # ids of recent wire-level records; an outer layer ends within moments


def defer_enclosing_call() -> Mapping[str, str] | None:
    """A call is starting: the current call of the kit, if any, encloses it and defers to it.

    Returns the enclosing call's own labels (without its operation name): the inner call
    records the API call, so it carries them (a decorator's task type or prompt version).
    """
    outer = current_call.get()
    if outer is None or outer.ended:
        return None
    outer.deferred = True
    labels = outer.labels
    return {key: value for key, value in labels.items() if key != n.GEN_AI_OPERATION_NAME} if labels else None


class WireResponses:
    """Response ids recorded by provider SDK instrumentors (one set per ``configure()``), so a
    framework layer reporting the same id later knows it is the same API call."""

    __slots__ = ("_ids", "_lock")

    def __init__(self) -> None:
        self._ids: OrderedDict[str, None] = OrderedDict()
        self._lock = threading.Lock()

    def add(self, response_id: str | None) -> None:
        if not response_id:
            return
        with self._lock:
            self._ids[response_id] = None
            if len(self._ids) > _WIRE_RESPONSES_MAX:
                self._ids.popitem(last=False)

    def __contains__(self, response_id: str) -> bool:
        if not self._ids:  # no instrumentor active: the common case costs one truth test
            return False
        with self._lock:
            return response_id in self._ids


_OWN_SCOPE = "llm_otel"


def foreign_genai_span(parent: Context | None) -> Span | None:
    """The current span when another vendor's GenAI instrumentation (openai-v2, OpenLLMetry, ...)
    opened it for the API call a provider SDK instrumentor of the kit is about to record.

    Both wrap the same SDK method, so the kit's wrapper runs inside theirs: that span is
    the call's span. The kit then adds cost to it and records its own metrics, instead of
    a second span carrying the same usage.
    """
    span = trace.get_current_span(parent)
    if not span.is_recording():
        return None
    scope = getattr(span, "instrumentation_scope", None)
    if scope is None or getattr(scope, "name", _OWN_SCOPE) == _OWN_SCOPE:
        return None
    attributes = getattr(span, "attributes", None) or {}
    if n.GEN_AI_OPERATION_NAME in attributes or n.GEN_AI_PROVIDER_NAME in attributes:
        return span
    return span if any(str(key).startswith(n.GEN_AI_NAMESPACE) for key in attributes) else None
