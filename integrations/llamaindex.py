"""LlamaIndex adapter: a span handler and an event handler on LlamaIndex's instrumentation dispatcher.

>>> import llm_otel
>>> from llm_otel.integrations import llamaindex
>>> llm_otel.configure(service_name="rag-api")
>>> llamaindex.instrument()          # once, at startup; idempotent
>>> index.as_query_engine().query("What is our refund policy?")

Every query becomes one trace, nested under whatever span is current when it
starts (an HTTP server span, say)::

    query
    ├── retrieve
    │   └── embeddings text-embedding-3-small
    └── synthesize
        └── chat gpt-4o-mini

``query``/``retrieve``/``synthesize`` are INTERNAL spans. LLM and embedding
calls go through ``llm_otel.start_call`` (GenAI CLIENT spans), so tokens, cost,
latency, time to first chunk and errors are recorded by the core exactly as for
any other call. Parent/child links follow LlamaIndex's span ids; the dozens of
inner LlamaIndex spans (``_query``, ``get_response``, text splitting, ...) are
folded into their nearest shown ancestor.
"""

from __future__ import annotations

import inspect
import threading
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

try:
    from llama_index.core.base.base_query_engine import BaseQueryEngine
    from llama_index.core.base.base_retriever import BaseRetriever
    from llama_index.core.base.embeddings.base import BaseEmbedding
    from llama_index.core.base.llms.base import BaseLLM
    from llama_index.core.bridge.pydantic import PrivateAttr
    from llama_index.core.instrumentation import (  # type: ignore[attr-defined]  # implicit re-export
        Dispatcher,
        get_dispatcher,
    )
    from llama_index.core.instrumentation.event_handlers import BaseEventHandler
    from llama_index.core.instrumentation.events import BaseEvent
    from llama_index.core.instrumentation.events import embedding as _embedding_events
    from llama_index.core.instrumentation.events.exception import ExceptionEvent
    from llama_index.core.instrumentation.events.llm import (
        LLMChatEndEvent,
        LLMChatInProgressEvent,
        LLMChatStartEvent,
        LLMCompletionEndEvent,
        LLMCompletionInProgressEvent,
        LLMCompletionStartEvent,
    )
    from llama_index.core.instrumentation.span import BaseSpan
    from llama_index.core.instrumentation.span_handlers import BaseSpanHandler
    from llama_index.core.response_synthesizers.base import BaseSynthesizer
except ImportError as exc:  # pragma: no cover - exercised only without the extra installed
    raise ImportError(
        "llm_otel.integrations.llamaindex needs LlamaIndex: pip install 'llm-otel[llamaindex]'"
    ) from exc

from llm_otel.adapter import internal_error
from llm_otel.adapter import names as n

from ._llamaindex_payload import get
from ._llamaindex_state import Tracker, count_unknown

__all__ = [
    "QUERY_SPAN",
    "RETRIEVE_SPAN",
    "SYNTHESIZE_SPAN",
    "Instrumentation",
    "LLMOtelEventHandler",
    "LLMOtelSpanHandler",
    "instrument",
    "uninstrument",
]

QUERY_SPAN = "query"
RETRIEVE_SPAN = "retrieve"
SYNTHESIZE_SPAN = "synthesize"

# Which LlamaIndex methods become INTERNAL spans, by component base class.
_SHOWN_METHODS: tuple[tuple[type, Mapping[str, str]], ...] = (
    (BaseQueryEngine, {"query": QUERY_SPAN, "aquery": QUERY_SPAN}),
    (BaseRetriever, {"retrieve": RETRIEVE_SPAN, "aretrieve": RETRIEVE_SPAN}),
    (BaseSynthesizer, {"synthesize": SYNTHESIZE_SPAN, "asynthesize": SYNTHESIZE_SPAN}),
)
_MODEL_CLASSES = (BaseLLM, BaseEmbedding)
_NO_METHODS: Mapping[str, str] = {}

# Per class: (shown method -> span name, whether it is an LLM/embedding model). Bounded by classes.
_class_roles: dict[type, tuple[Mapping[str, str], bool]] = {}


def _role_of(cls: type) -> tuple[Mapping[str, str], bool]:
    role = _class_roles.get(cls)
    if role is None:
        methods = next((m for base, m in _SHOWN_METHODS if issubclass(cls, base)), _NO_METHODS)
        role = (methods, issubclass(cls, _MODEL_CLASSES))
        _class_roles[cls] = role
    return role


def _method_of(span_id: str) -> str:
    """``RetrieverQueryEngine.query-<uuid4>`` -> ``query``."""
    return span_id.partition("-")[0].rpartition(".")[2]


class LLMOtelSpanHandler(BaseSpanHandler[BaseSpan]):
    """Opens query/retrieve/synthesize spans and tracks the LlamaIndex span tree for parenting."""

    _tracker: Tracker = PrivateAttr(default_factory=Tracker)

    @classmethod
    def class_name(cls) -> str:
        return "LLMOtelSpanHandler"

    @property
    def tracker(self) -> Tracker:
        return self._tracker

    @property
    def in_flight(self) -> int:
        """Spans and calls still open; 0 once every query, stream and call has finished."""
        return self._tracker.in_flight

    def span_enter(
        self,
        id_: str,
        bound_args: inspect.BoundArguments,
        instance: Any | None = None,
        parent_id: str | None = None,
        tags: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        try:
            if not isinstance(id_, str):
                count_unknown("span_without_id")
                return
            if not isinstance(parent_id, str):
                parent_id = None
            name = None
            model = None
            if instance is not None:
                methods, is_model = _role_of(type(instance))
                name = methods.get(_method_of(id_)) if methods else None
                model = instance if is_model else None
            self._tracker.enter(id_, parent_id, name, model)
        except Exception as exc:  # the host application must never see our bugs
            internal_error("llamaindex.span_enter", exc)

    def span_exit(
        self,
        id_: str,
        bound_args: inspect.BoundArguments,
        instance: Any | None = None,
        result: Any | None = None,
        **kwargs: Any,
    ) -> None:
        try:
            if isinstance(id_, str):
                self._tracker.exit(id_, result)
        except Exception as exc:
            internal_error("llamaindex.span_exit", exc)

    def span_drop(
        self,
        id_: str,
        bound_args: inspect.BoundArguments,
        instance: Any | None = None,
        err: BaseException | None = None,
        **kwargs: Any,
    ) -> None:
        try:
            if isinstance(id_, str):
                self._tracker.drop(id_, err if isinstance(err, BaseException) else None)
        except Exception as exc:
            internal_error("llamaindex.span_drop", exc)

    def close(self) -> None:
        """Called by ``Dispatcher.shutdown()``: end whatever is still open."""
        try:
            self._tracker.close()
        except Exception as exc:
            internal_error("llamaindex.close", exc)

    # BaseSpanHandler's bookkeeping hooks are unused: the tracker keeps its own state.
    def new_span(
        self,
        id_: str,
        bound_args: inspect.BoundArguments,
        instance: Any | None = None,
        parent_span_id: str | None = None,
        tags: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> BaseSpan | None:
        return None

    def prepare_to_exit_span(
        self,
        id_: str,
        bound_args: inspect.BoundArguments,
        instance: Any | None = None,
        result: Any | None = None,
        **kwargs: Any,
    ) -> BaseSpan | None:
        return None

    def prepare_to_drop_span(
        self,
        id_: str,
        bound_args: inspect.BoundArguments,
        instance: Any | None = None,
        err: BaseException | None = None,
        **kwargs: Any,
    ) -> BaseSpan | None:
        return None


EventAction = Callable[[Tracker, Any], None]


def _model_dict(event: Any) -> Any:
    model_dict = get(event, "model_dict")
    if not isinstance(model_dict, Mapping):
        count_unknown("start_event_without_model_dict")
    return model_dict


def _chat_start(tracker: Tracker, event: Any) -> None:
    tracker.llm_start(get(event, "span_id"), n.OP_CHAT, _model_dict(event), get(event, "messages"))


def _completion_start(tracker: Tracker, event: Any) -> None:
    tracker.llm_start(get(event, "span_id"), n.OP_TEXT_COMPLETION, _model_dict(event), get(event, "prompt"))


def _llm_chunk(tracker: Tracker, event: Any) -> None:
    response = get(event, "response")
    if response is None:
        count_unknown("chunk_event_without_response")
    tracker.llm_chunk(get(event, "span_id"), response)


def _llm_end(tracker: Tracker, event: Any) -> None:
    tracker.llm_end(get(event, "span_id"), get(event, "response"))


def _exception(tracker: Tracker, event: Any) -> None:
    exception = get(event, "exception")
    if not isinstance(exception, BaseException):
        count_unknown("exception_event_without_exception")
    tracker.llm_exception(get(event, "span_id"), exception)


def _embedding_start(tracker: Tracker, event: Any) -> None:
    tracker.embedding_start(get(event, "span_id"), _model_dict(event))


def _embedding_end(tracker: Tracker, event: Any) -> None:
    tracker.embedding_end(get(event, "span_id"))


_ACTIONS: dict[type, EventAction] = {
    LLMChatStartEvent: _chat_start,
    LLMChatInProgressEvent: _llm_chunk,
    LLMChatEndEvent: _llm_end,
    LLMCompletionStartEvent: _completion_start,
    LLMCompletionInProgressEvent: _llm_chunk,
    LLMCompletionEndEvent: _llm_end,
    ExceptionEvent: _exception,
    _embedding_events.EmbeddingStartEvent: _embedding_start,
    _embedding_events.EmbeddingEndEvent: _embedding_end,
}
# Sparse embeddings (newer releases) are embedding calls too; their end event is not a subclass.
for _name, _action in (
    ("SparseEmbeddingStartEvent", _embedding_start),
    ("SparseEmbeddingEndEvent", _embedding_end),
):
    _sparse = getattr(_embedding_events, _name, None)
    if isinstance(_sparse, type):
        _ACTIONS[_sparse] = _action


_actions_by_class: dict[type, EventAction | None] = dict(
    _ACTIONS
)  # every event class seen, incl. ignored ones


def _action_for(cls: type) -> EventAction | None:
    try:
        return _actions_by_class[cls]
    except KeyError:
        action = next((_ACTIONS[base] for base in cls.__mro__ if base in _ACTIONS), None)
        _actions_by_class[cls] = action
        return action


class LLMOtelEventHandler(BaseEventHandler):
    """Turns LLM and embedding events into calls on the core; pair it with an ``LLMOtelSpanHandler``."""

    _tracker: Tracker = PrivateAttr(default_factory=Tracker)

    def __init__(self, span_handler: LLMOtelSpanHandler | None = None, **data: Any) -> None:
        super().__init__(**data)
        if span_handler is not None:
            self._tracker = span_handler.tracker

    @classmethod
    def class_name(cls) -> str:
        return "LLMOtelEventHandler"

    def handle(self, event: BaseEvent, **kwargs: Any) -> None:
        try:
            action = _action_for(type(event))
            if action is not None:
                action(self._tracker, event)
        except Exception as exc:
            internal_error("llamaindex.event", exc)


class Instrumentation(NamedTuple):
    """What ``instrument()`` registered; ``span_handler.in_flight`` counts what is still open."""

    span_handler: LLMOtelSpanHandler
    event_handler: LLMOtelEventHandler
    dispatcher: Dispatcher


_install_lock = threading.Lock()
_installed: dict[int, Instrumentation] = {}


def instrument(dispatcher: Dispatcher | None = None) -> Instrumentation:
    """Register the handlers on LlamaIndex's root dispatcher (or ``dispatcher``); safe to call twice."""
    target = dispatcher if dispatcher is not None else get_dispatcher()
    with _install_lock:
        found = _installed.get(id(target))
        if found is not None and found.dispatcher is target:
            return found
        span_handler = next((h for h in target.span_handlers if isinstance(h, LLMOtelSpanHandler)), None)
        event_handler = next((h for h in target.event_handlers if isinstance(h, LLMOtelEventHandler)), None)
        if span_handler is None:
            span_handler = LLMOtelSpanHandler()
            target.add_span_handler(span_handler)
        if event_handler is None:
            event_handler = LLMOtelEventHandler(span_handler)
            target.add_event_handler(event_handler)
        installed = Instrumentation(span_handler, event_handler, target)
        _installed[id(target)] = installed
        return installed


def uninstrument() -> None:
    """Remove what ``instrument()`` registered and end anything it still had open."""
    with _install_lock:
        installed = list(_installed.values())
        _installed.clear()
    for span_handler, event_handler, target in installed:
        target.span_handlers = [h for h in target.span_handlers if h is not span_handler]
        target.event_handlers = [h for h in target.event_handlers if h is not event_handler]
        span_handler.close()
