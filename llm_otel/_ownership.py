"""One record per provider API call, however many layers of the kit see it.

A decorator, a framework handler and a provider SDK instrumentor may all watch the
same API call. The call nearest the wire knows the exact usage, so it owns the
record (tokens, cost, metrics); every enclosing call keeps its span as a parent and
records nothing else. Three signals tell an outer call that an inner one owns the record:

* an inner call started while the outer one was the current call (decorators,
  ``llm_call``, activated ``start_call``);
* an inner call claimed it as *lent*: a call that is not made current (a framework
  handler's, whose callbacks run inline with the model's code but whose end may come
  from elsewhere, or never) is lent to its context, and the first call of the kit that
  starts there before it has any chunk or response is the API call it stands for. This
  holds whenever the wire call opens, at invoke time or inside a stream's generator;
* a provider SDK instrumentor already recorded the response id the outer call
  reports at its end (a framework call made where the SDK call cannot see it).

The rule is documented in docs/instrumentation.md ("One record per API call").
"""

from __future__ import annotations

import threading
import time
import weakref
from collections import OrderedDict
from collections.abc import Mapping
from contextvars import ContextVar
from typing import TYPE_CHECKING, NamedTuple

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import Span

from llm_otel import _fork
from llm_otel import _names as n
from llm_otel._context import current_call

if TYPE_CHECKING:
    from llm_otel._call import LLMCall

_WIRE_RESPONSES_MAX = 4096  # ids of recent wire-level records; an outer layer ends within moments


class _Lent(NamedTuple):
    call: weakref.ref[LLMCall]  # weak: a call whose framework forgot it is not kept alive by its context
    under: Span  # the span that was current where it was lent


# Calls lent to this context, oldest first: the next calls of the kit started here take them, in order
# (a framework that starts several calls before their requests, e.g. a batch, sends them in that order).
_lent: ContextVar[tuple[_Lent, ...]] = ContextVar("llm_otel_lent_calls", default=())
_claim_lock = threading.Lock()  # contexts copied after a lend (tasks, executors) share its entries


def _new_claim_lock() -> None:
    global _claim_lock
    _claim_lock = threading.Lock()  # another thread may have held it at the fork


_fork.on_fork(_new_claim_lock)


def _claimable(call: LLMCall | None) -> bool:
    """Still waiting for the call nearer the wire: open, unclaimed, and nothing came back yet (a
    chunk the caller already read means its request was sent, by a call that was not the kit's)."""
    return call is not None and not call.ended and not call.deferred and call.chunks == 0 and call.facts.empty


def lend(call: LLMCall) -> None:
    """``call`` is starting without becoming the current call: the next call of the kit that
    starts in this context while it waits (see ``_claimable``) is the API call it stands for."""
    kept = tuple(entry for entry in _lent.get() if _claimable(entry.call()))
    _lent.set((*kept, _Lent(weakref.ref(call), trace.get_current_span())))


def _claim(model: str | None, parent: Context | None) -> tuple[LLMCall, Context | None] | None:
    """The oldest lent call waiting here for a call of this model, now deferred, and the parent
    context for the claiming call: the lent call's span unless a span was opened since it was lent."""
    entries = _lent.get()
    if not entries:  # nothing lent here: the common case costs one ContextVar read
        return None
    for entry in entries:
        call = entry.call()
        if call is None or not _claimable(call):
            continue
        if model is not None and call.request_model is not None and model != call.request_model:
            continue  # another API call: the framework names the model it asks for
        with _claim_lock:
            if call.deferred:
                continue
            call.deferred = True
        current = trace.get_current_span(parent)
        if current is entry.under or current is call.span:
            parent = trace.set_span_in_context(call.span, parent)
        _lent.set(tuple(e for e in entries if e is not entry and _claimable(e.call())))
        return call, parent
    return None


def defer_enclosing_call(
    *, claims: bool, model: str | None, parent: Context | None
) -> tuple[Mapping[str, str] | None, Context | None]:
    """A call is starting: the call of the kit enclosing it, if any, defers to it.

    ``claims``: the starting call runs the model's code (it is current while it runs, or it is
    a wire call), so it may take a call lent to this context (``lend``); a lent call is nearer
    the wire than the current call, which it already deferred when it started. Otherwise the
    current call encloses it. Returns the enclosing call's own labels (without its operation
    name), which the inner call carries since it records the API call (a decorator's task type,
    a prompt version from framework metadata), and the parent context of the starting call.
    """
    claimed = _claim(model, parent) if claims else None
    if claimed is not None:
        outer, parent = claimed
    else:
        outer = current_call.get()
        if outer is None or outer.ended:
            return None, parent
        outer.deferred = True
    labels = outer.labels
    own = {key: value for key, value in labels.items() if key != n.GEN_AI_OPERATION_NAME} if labels else None
    return own, parent


class WireResponses:
    """Response ids recorded by provider SDK instrumentors (one set per ``configure()``), so a
    framework layer reporting the same id later knows it is the same API call.

    An id counts only when it was recorded while the framework call was open: some servers
    reuse ids (small counters, caching gateways), and an id seen long before is another call.
    """

    __slots__ = ("_ids", "_lock")

    def __init__(self) -> None:
        self._ids: OrderedDict[str, float] = OrderedDict()
        self._lock = threading.Lock()

    def add(self, response_id: str | None) -> None:
        if not response_id:
            return
        now = time.perf_counter()
        with self._lock:
            self._ids[response_id] = now
            self._ids.move_to_end(response_id)
            if len(self._ids) > _WIRE_RESPONSES_MAX:
                self._ids.popitem(last=False)

    def recorded_since(self, response_id: str, since: float) -> bool:
        """Whether a wire-level call recorded ``response_id`` at or after ``since`` (perf_counter)."""
        if not self._ids:  # no instrumentor active: the common case costs one truth test
            return False
        with self._lock:
            recorded = self._ids.get(response_id)
        return recorded is not None and recorded >= since


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
