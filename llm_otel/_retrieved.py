"""Retrieved context, held in process by trace until the answer of that trace is scored.

A retriever step (LangChain retriever, LlamaIndex retrieve, or the app calling
``add_retrieved_context``) and the LLM call that answers from it usually share a
trace but not a Python frame, so the passages are kept by trace id. Memory is
bounded three ways: a few recent traces, a few passages per trace, a character
cap per passage. Nothing here is exported; the evaluator drops its copy after
scoring and old traces fall out of the table.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from collections.abc import Set as AbstractSet
from typing import Any

from opentelemetry import trace

MAX_TRACES = 256
MAX_PASSAGES = 16
MAX_PASSAGE_CHARS = 4000

_lock = threading.Lock()
_by_trace: OrderedDict[int, tuple[str, ...]] = OrderedDict()


def _text_of(document: Any) -> str | None:
    """Text of a LangChain Document, a LlamaIndex node (with or without score), a dict or a string."""
    if isinstance(document, str):
        return document
    if isinstance(document, Mapping):
        for key in ("page_content", "text", "content"):
            value = document.get(key)
            if isinstance(value, str):
                return value
        return None
    for attribute in ("page_content", "text"):
        value = getattr(document, attribute, None)
        if isinstance(value, str):
            return value
    node = getattr(document, "node", None)
    get_content = getattr(node if node is not None else document, "get_content", None)
    if callable(get_content):
        value = get_content()
        return value if isinstance(value, str) else None
    return None


def passages_of(documents: Any) -> tuple[str, ...]:
    """Bounded passages from one document or an iterable of them; unreadable items are skipped."""
    if documents is None:
        return ()
    if isinstance(documents, (str, Mapping)) or not isinstance(documents, (Sequence, AbstractSet)):
        # a one-shot iterator (a generator) is the app's to consume, never ours: read as one item
        documents = [documents]
    found = []
    for document in documents:
        text = _text_of(document)
        if text and text.strip():
            found.append(text[:MAX_PASSAGE_CHARS])
            if len(found) >= MAX_PASSAGES:
                break
    return tuple(found)


def remember(trace_id: int, passages: tuple[str, ...]) -> None:
    """Add ``passages`` to what ``trace_id`` retrieved (a second retrieval in a trace adds to the first)."""
    if not trace_id or not passages:
        return
    with _lock:
        earlier = _by_trace.pop(trace_id, ())
        # nested retrieval steps (a query engine's retrieve around its retriever's) report the same nodes
        added = tuple(p for p in dict.fromkeys(passages) if p not in earlier)
        _by_trace[trace_id] = (earlier + added)[:MAX_PASSAGES]
        while len(_by_trace) > MAX_TRACES:
            _by_trace.popitem(last=False)


def recall(trace_id: int) -> tuple[str, ...] | None:
    if not _by_trace:  # the common case for apps without retrieval: no lock
        return None
    with _lock:
        return _by_trace.get(trace_id)


def active() -> bool:
    """Whether any trace holds retrieved context (then answers are worth keeping for scoring)."""
    return bool(_by_trace)


def forget_all() -> None:
    with _lock:
        _by_trace.clear()


def after_fork_in_child() -> None:
    """A forked child starts with no passages and a lock no parent thread can be holding."""
    global _lock
    _lock = threading.Lock()
    _by_trace.clear()


def add_retrieved_context(documents: Any, *, span: trace.Span | None = None) -> int:
    """Keep the passages a retrieval step found, for scoring the answer of the same trace.

    ``documents`` may be strings, LangChain ``Document``s, LlamaIndex nodes or dicts
    with ``page_content``/``text``/``content``. The trace is ``span``'s, else the
    current span's. Returns how many passages were kept; never raises.
    """
    try:
        target = span if span is not None else trace.get_current_span()
        trace_id = target.get_span_context().trace_id
        passages = passages_of(documents)
        remember(trace_id, passages)
        return len(passages) if trace_id else 0
    except Exception:
        return 0
