"""Open LlamaIndex spans and LLM calls, keyed by LlamaIndex span id.

The span handler and the event handler of one installation share a
``Tracker``. Each LlamaIndex span becomes a light ``_Node`` that remembers
the OpenTelemetry context its children should use, so only the spans worth
showing (query, retrieve, synthesize, LLM and embedding calls) are exported
while the parent/child chain still follows LlamaIndex's span ids. A span whose
LlamaIndex parent is unknown (a root, or a stream consumed after its query
returned) is parented on the ambient OpenTelemetry context instead.

Dict updates happen under one lock; spans are started and ended outside it,
because span processors may export synchronously.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import weakref
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Span, SpanKind

import llm_otel
from llm_otel import adapter
from llm_otel.adapter import CLOSED_EARLY, LLMCall, fail_span, internal_error, log_once
from llm_otel.adapter import names as n

from . import _llamaindex_payload as payload

SOURCE = "llamaindex"
ABANDONED = "abandoned"


@dataclass
class _Node:
    """One open LlamaIndex span."""

    context: otel_context.Context  # what children of this span are parented on
    span: Span | None = None  # the INTERNAL span, when this one is shown
    call: LLMCall | None = None  # the LLM call open here or in an ancestor (nested calls fold into it)
    instance: Any = None  # the LLM / embedding model, read for its metadata at the start event
    provider: str | None = None
    attached: list[tuple[object, otel_context.Context]] = field(default_factory=list)


def _retrieved_nodes(result: Any) -> bool:
    """A retriever's result: a list of scored nodes (NodeWithScore)."""
    return (isinstance(result, list) and bool(result)
            and hasattr(result[0], "node") and hasattr(result[0], "score"))


@dataclass
class _CallEntry:
    call: LLMCall
    nested: bool  # an inner call (chat -> complete) whose facts fold into the outer one
    instance: Any = None
    stream: weakref.ref[Any] | None = None  # the generator the LLM method returned, once it did

    def is_streaming_now(self, instance: Any) -> bool:
        """This call's stream is executing right now, for the same model object."""
        stream = self.stream() if self.stream is not None else None
        return (
            stream is not None
            and instance is not None
            and self.instance is instance
            and bool(getattr(stream, "gi_running", False) or getattr(stream, "ag_running", False))
        )


def count_unknown(reason: str) -> None:
    adapter.count_unknown_input(SOURCE, reason)


def _attach(node: _Node, ctx: otel_context.Context) -> None:
    node.attached.append((otel_context.attach(ctx), ctx))


def _detach(node: _Node) -> None:
    while node.attached:
        token, ctx = node.attached.pop()
        # Only restore in the context we attached in; elsewhere (a future's callback) detaching
        # would fail, and the attached context dies with the task that owns it.
        if otel_context.get_current() is ctx:
            otel_context.detach(token)  # type: ignore[arg-type]
        else:
            log_once(
                "llamaindex:detach-elsewhere",
                "llm-otel: a LlamaIndex span ended in another context",
                level=logging.DEBUG,
            )




class _ReadInContext(adapter.StreamWatch):
    """Pull a lazy stream with ``ctx`` current, so the LLM call it makes nests under it."""

    def __init__(self, ctx: otel_context.Context) -> None:
        self._ctx = ctx

    def enter(self) -> Any:
        return otel_context.attach(self._ctx)

    def exit(self, token: Any) -> None:
        otel_context.detach(token)


_WRAPPED: weakref.WeakSet[Any] = weakref.WeakSet()  # streams this module made, never wrapped twice


def _keep_stream_in_context(result: Any, ctx: otel_context.Context) -> None:
    """A streaming query response calls the LLM only when read: read it under the span that made it."""
    stream = payload.get(result, "response_gen")
    if stream is None or stream in _WRAPPED:
        return
    try:
        if hasattr(stream, "__anext__"):
            wrapped: Any = adapter.watch_async_generator(stream, _ReadInContext(ctx))
        elif hasattr(stream, "__next__"):
            wrapped = adapter.watch_generator(stream, _ReadInContext(ctx))
        else:
            return
        result.response_gen = wrapped
        _WRAPPED.add(wrapped)
    except Exception as exc:  # a frozen or slotted response: the stream still works, only nesting is lost
        internal_error("llamaindex.stream_context", exc)


class Tracker:
    """State shared by one span handler and its event handler."""

    def __init__(self) -> None:
        self._lock = threading.RLock()  # re-entrant: a stream finalizer may run during a locked section
        self._nodes: dict[str, _Node] = {}
        self._calls: dict[str, _CallEntry] = {}
        self._embeddings: dict[str, deque[tuple[LLMCall, otel_context.Context]]] = {}
        self._streams: dict[str, _CallEntry] = {}  # outer calls whose stream is still being read

    @property
    def in_flight(self) -> int:
        """Spans and calls still open (0 when every query, stream and call has finished)."""
        with self._lock:
            return len(self._nodes) + len(self._calls) + sum(map(len, self._embeddings.values()))

    # -- LlamaIndex spans ----------------------------------------------------
    def enter(self, span_id: str, parent_id: str | None, name: str | None, model_instance: Any) -> None:
        telemetry = llm_otel.current()
        if not telemetry.enabled:
            return
        with self._lock:
            if span_id in self._nodes:
                count_unknown("span_entered_twice")
                return
            parent = self._nodes.get(parent_id) if parent_id else None
        base = parent.context if parent is not None else otel_context.get_current()
        node = _Node(context=base, call=parent.call if parent is not None else None)
        if name is not None:
            node.span = telemetry.tracer.start_span(adapter.span_name(name), context=base, kind=SpanKind.INTERNAL)
            node.context = trace.set_span_in_context(node.span, base)
            _attach(node, node.context)
        elif model_instance is not None:
            node.instance = model_instance
            node.provider = payload.provider_of(model_instance)
        with self._lock:
            self._nodes[span_id] = node

    def exit(self, span_id: str, result: Any) -> None:
        streaming = payload.is_stream(result)
        with self._lock:
            node = self._nodes.pop(span_id, None)
            entry = self._calls.get(span_id)
            if entry is not None and not streaming:
                del self._calls[span_id]
            elif entry is not None and not entry.nested:
                self._streams[span_id] = entry
            embeddings = self._embeddings.pop(span_id, None)
        try:
            if node is not None:
                _detach(node)
                if _retrieved_nodes(result):  # kept for the groundedness scorer of this trace's answer
                    adapter.add_retrieved_context(result, span=trace.get_current_span(node.context))
            if entry is not None:
                if streaming:  # the call goes on until the stream's end (or exception) event
                    self._watch_stream(span_id, entry, result)
                elif not entry.nested and not entry.call.ended:  # no end event came: use the result
                    payload.apply_response(entry.call, result)
            if node is not None and node.span is not None and payload.get(result, "response_gen") is not None:
                _keep_stream_in_context(result, node.context)
        finally:
            if entry is not None and not entry.nested and not streaming:
                entry.call.end()
            for call, _ in embeddings or ():
                call.end()
            if node is not None and node.span is not None:
                node.span.end()

    def drop(self, span_id: str, err: BaseException | None) -> None:
        entry = self._pop_call(span_id)
        with self._lock:
            node = self._nodes.pop(span_id, None)
            embeddings = self._embeddings.pop(span_id, None)
        error: BaseException | str = err if err is not None else n.UNKNOWN_VALUE
        try:
            if node is not None:
                _detach(node)
            if node is not None and node.span is not None:
                fail_span(node.span, err)
        finally:
            if entry is not None and not entry.nested:
                entry.call.fail(error)
            for call, _ in embeddings or ():
                call.fail(error)
            if node is not None and node.span is not None:
                node.span.end()

    def _watch_stream(self, span_id: str, entry: _CallEntry, stream: Any) -> None:
        """The stream may never be read: when it is garbage collected, whatever is still open ends."""
        with contextlib.suppress(TypeError):  # not weak-referenceable: the end/exception events close it
            entry.stream = weakref.ref(stream)
            weakref.finalize(stream, self._abandon, span_id, entry)

    def _pop_call(self, span_id: Any) -> _CallEntry | None:
        if not isinstance(span_id, str):
            return None
        with self._lock:
            self._streams.pop(span_id, None)
            return self._calls.pop(span_id, None)

    def _abandon(self, span_id: str, entry: _CallEntry) -> None:
        try:
            with self._lock:
                if self._calls.get(span_id) is not entry:
                    return
                del self._calls[span_id]
                self._streams.pop(span_id, None)
            if not entry.nested and not entry.call.ended:
                entry.call.end(outcome=CLOSED_EARLY)
        except Exception as exc:
            internal_error("llamaindex.abandon", exc)

    # -- LLM calls -----------------------------------------------------------
    def llm_start(self, span_id: Any, operation: str, model_dict: Any, prompt: Any) -> None:
        telemetry = llm_otel.current()
        if not telemetry.enabled:
            return
        if not isinstance(span_id, str):
            count_unknown("llm_event_without_span_id")
            return
        with self._lock:
            node = self._nodes.get(span_id)
            if span_id in self._calls:
                count_unknown("llm_start_repeated")
                return
            instance = node.instance if node is not None else None
            outer = node.call if node is not None else None
            if outer is None or outer.ended:
                # CustomLLM's async streams read a sync stream lazily, outside the outer LlamaIndex
                # span: the inner call starts while the outer call's generator is executing.
                outer = next((e.call for e in self._streams.values() if e.is_streaming_now(instance)), None)
            if outer is not None and not outer.ended:
                self._calls[span_id] = _CallEntry(outer, nested=True, instance=instance)
                if node is not None:
                    node.call = outer  # calls below this one fold into the outer call too
                return
        parent = node.context if node is not None else otel_context.get_current()
        call = llm_otel.start_call(
            provider=(node.provider if node is not None else None)
            or payload.provider_from_class_name(model_dict),
            model=payload.model_of(model_dict, instance),
            operation=operation,
            parent=parent,
            request_attributes=payload.request_attributes(model_dict),
        )
        if telemetry.wants_text:
            call.set_input_messages(payload.input_messages(prompt))
        with self._lock:
            self._calls[span_id] = _CallEntry(call, nested=False, instance=instance)
        if node is not None:
            node.call = call
            node.context = trace.set_span_in_context(call.span, parent)
            _attach(node, node.context)

    def llm_chunk(self, span_id: Any, response: Any) -> None:
        with self._lock:
            entry = self._calls.get(span_id) if isinstance(span_id, str) else None
        if entry is None:
            count_unknown("llm_chunk_without_start")
            return
        if not entry.nested and not entry.call.ended:
            entry.call.add_chunk(payload.get(response, "raw"))

    def llm_end(self, span_id: Any, response: Any) -> None:
        entry = self._pop_call(span_id)
        if entry is None:
            count_unknown("llm_end_without_start")
            return
        if entry.call.ended:
            return
        payload.apply_response(entry.call, response, with_text=not entry.nested)
        if not entry.nested:
            entry.call.end()

    def llm_exception(self, span_id: Any, exc: Any) -> None:
        entry = self._pop_call(span_id)
        if entry is None or entry.nested or entry.call.ended:
            return
        if isinstance(exc, GeneratorExit):
            entry.call.end(outcome=CLOSED_EARLY)
        else:
            entry.call.fail(exc if isinstance(exc, BaseException) else n.UNKNOWN_VALUE)

    # -- embeddings ----------------------------------------------------------
    def embedding_start(self, span_id: Any, model_dict: Any) -> None:
        if not llm_otel.current().enabled:
            return
        if not isinstance(span_id, str):
            count_unknown("embedding_event_without_span_id")
            return
        with self._lock:
            node = self._nodes.get(span_id)
        parent = node.context if node is not None else otel_context.get_current()
        call = llm_otel.start_call(
            provider=(node.provider if node is not None else None)
            or payload.provider_from_class_name(model_dict),
            model=payload.model_of(model_dict, node.instance if node is not None else None),
            operation=n.OP_EMBEDDINGS,
            parent=parent,
        )
        current = trace.set_span_in_context(call.span, parent)
        with self._lock:
            self._embeddings.setdefault(span_id, deque()).append((call, current))
        if node is not None:
            _attach(node, current)  # the embedding request's own client spans nest under the call

    def embedding_end(self, span_id: Any) -> None:
        found = None
        with self._lock:
            pending = self._embeddings.get(span_id) if isinstance(span_id, str) else None
            if pending:
                found = pending.popleft()  # batches end in the order they started
                if not pending:
                    del self._embeddings[span_id]
            node = self._nodes.get(span_id) if found is not None else None
        if found is None:
            count_unknown("embedding_end_without_start")
            return
        call, current = found
        call.end()
        # Batches run one after another in sync code: stop being current now. Async batches overlap;
        # what they leave attached is restored in order when the LlamaIndex span exits.
        if node is not None and node.attached and node.attached[-1][1] is current:
            token, ctx = node.attached[-1]
            if otel_context.get_current() is ctx:
                node.attached.pop()
                otel_context.detach(token)  # type: ignore[arg-type]

    # -- shutdown ------------------------------------------------------------
    def close(self, reason: str = ABANDONED) -> None:
        """End everything still open (dispatcher shutdown, uninstrument): nothing stays open."""
        with self._lock:
            nodes, self._nodes = self._nodes, {}
            calls, self._calls = self._calls, {}
            self._streams = {}
            embeddings, self._embeddings = self._embeddings, {}
        for entry in calls.values():
            if not entry.nested and not entry.call.ended:
                entry.call.fail(reason)
        for pending in embeddings.values():
            for call, _ in pending:
                call.fail(reason)
        for node in nodes.values():
            if node.call is not None and not node.call.ended:
                node.call.fail(reason)
            if node.span is not None:
                fail_span(node.span, reason)
                node.span.end()
