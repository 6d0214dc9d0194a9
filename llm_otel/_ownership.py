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

from llm_otel._context import current_call

_WIRE_RESPONSES_MAX = 4096  # ids of recent wire-level records; an outer layer ends within moments
_wire_responses: OrderedDict[str, None] = OrderedDict()
_lock = threading.Lock()


def defer_enclosing_call() -> None:
    """A call is starting: the current call of the kit, if any, encloses it and defers to it."""
    outer = current_call.get()
    if outer is not None and not outer.ended:
        outer.deferred = True


def mark_wire_response(response_id: str | None) -> None:
    """A provider SDK instrumentor recorded this response: a framework layer reporting the same
    id later is the same API call."""
    if not response_id:
        return
    with _lock:
        _wire_responses[response_id] = None
        if len(_wire_responses) > _WIRE_RESPONSES_MAX:
            _wire_responses.popitem(last=False)


def wire_recorded(response_id: str) -> bool:
    if not _wire_responses:  # no instrumentor active: the common case costs one truth test
        return False
    with _lock:
        return response_id in _wire_responses
