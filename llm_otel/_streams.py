"""Watched streams: one sync/async base that follows a stream until it ends, fails or is dropped.

A ``StreamWatch`` says what to do around each pull (``enter``/``exit``: make a context current),
with each item, and at the one finish a stream has: ``end`` (exhausted), ``fail`` (the source
raised) or ``close`` (the consumer stopped early: closed it, left a ``with`` block, or dropped it
unread — a generator that never ran included: a finalizer reports it when it is collected). Two shapes share the watch: ``watch_generator``/``watch_async_generator`` keep a
generator a generator (``send``/``throw`` pass through), and ``WatchedStream``/``AsyncWatchedStream``
wrap an iterator object (an SDK stream, a response body) and forward everything else to it.
LLM calls (``CallWatch``) and the framework adapters build on these.
"""

from __future__ import annotations

import weakref
from collections.abc import AsyncGenerator, AsyncIterator, Generator, Iterator
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace

from llm_otel import _names as n
from llm_otel._call import LLMCall
from llm_otel._context import current_call
from llm_otel._log import internal_error
from llm_otel._memo import Memo


class StreamWatch:
    """Hooks of one watched stream; the base calls exactly one of ``end``/``fail``/``close``."""

    def enter(self) -> Any:
        """Before each pull from the source; the result is handed to ``exit``."""
        return None

    def exit(self, token: Any) -> None:
        """After each pull, whatever it gave."""

    def item(self, item: Any) -> None:
        """An item the source yielded, before the consumer sees it."""

    def end(self) -> None:
        """The source is exhausted."""

    def fail(self, error: BaseException) -> None:
        """The source raised ``error`` (it propagates unchanged)."""

    def close(self) -> None:
        """The consumer stopped before the end: closed the stream or dropped it unread."""


class CallWatch(StreamWatch):
    """An LLM call that stays open while its stream is read."""

    __slots__ = ("call", "context")

    def __init__(self, call: LLMCall, *, activate: bool) -> None:
        self.call = call
        # while a generator body runs, the call's span is current (HTTP client spans nest under it)
        self.context = trace.set_span_in_context(call.span) if activate else None

    def enter(self) -> Any:
        if self.context is None:
            return None
        return otel_context.attach(self.context), current_call.set(self.call)

    def exit(self, token: Any) -> None:
        if token is not None:
            otel_context.detach(token[0])
            current_call.reset(token[1])

    def item(self, item: Any) -> None:
        self.call.add_chunk(item)

    def end(self) -> None:
        self.call.end()

    def fail(self, error: BaseException) -> None:
        self.call.fail(error)

    def close(self) -> None:
        if not self.call.ended:
            self.call.end(outcome=n.STREAM_CLOSED_EARLY)


def _close_unread(watch: StreamWatch) -> None:
    try:
        watch.close()
    except Exception as exc:  # runs inside the garbage collector: never raise there
        internal_error("stream.collected", exc)


def _close_when_collected(stream: object, watch: StreamWatch) -> weakref.finalize[[StreamWatch], object]:
    """Report ``close`` if ``stream`` is collected before it ever ran.

    Only an unstarted generator needs this: once started, collecting it throws GeneratorExit
    into it, which reports the close, so the generator detaches this finalizer on its first
    step (and the registry stops holding the watch). ``weakref.finalize`` (not a plain weak
    reference) because the generator, its frame and the watch may form a cycle whose
    weak-reference callbacks the cycle collector would drop; its registry keeps it alive instead.
    """
    finalizer = weakref.finalize(stream, _close_unread, watch)
    finalizer.atexit = False  # at exit the providers are shutting down; nothing left to record to
    return finalizer


Unstarted = list["weakref.finalize[[StreamWatch], object]"]


def watch_generator(gen: Iterator[Any], watch: StreamWatch) -> Generator[Any, Any, Any]:
    """``gen`` (a generator or any iterator) as a generator under ``watch``; dropped unread, it reports ``close``."""
    unstarted: Unstarted = []
    watched = _watch_generator(gen, watch, unstarted)
    unstarted.append(_close_when_collected(watched, watch))
    return watched


def watch_async_generator(agen: AsyncIterator[Any], watch: StreamWatch) -> AsyncGenerator[Any, Any]:
    """``agen`` (an async generator or any async iterator) as an async generator under ``watch``."""
    unstarted: Unstarted = []
    watched = _watch_async_generator(agen, watch, unstarted)
    unstarted.append(_close_when_collected(watched, watch))
    return watched


def _watch_generator(gen: Iterator[Any], watch: StreamWatch, unstarted: Unstarted) -> Generator[Any, Any, Any]:
    unstarted.pop().detach()
    source: Any = gen  # send/throw are used only when the consumer sends or throws, as on a generator
    sent: Any = None
    thrown: BaseException | None = None
    while True:
        token = watch.enter()
        try:
            if thrown is not None:
                item = source.throw(thrown)
                thrown = None
            else:  # next() for plain iterators; a value sent by the consumer goes through
                item = next(gen) if sent is None else source.send(sent)
        except StopIteration as stop:
            watch.end()
            return stop.value
        except BaseException as exc:
            watch.fail(exc)
            raise
        finally:
            watch.exit(token)
        watch.item(item)
        try:
            sent = yield item
        except GeneratorExit:
            try:
                close = getattr(gen, "close", None)
                if close is not None:
                    close()
            finally:
                watch.close()
            raise
        except BaseException as exc:
            thrown = exc


async def _watch_async_generator(
    agen: AsyncIterator[Any], watch: StreamWatch, unstarted: Unstarted
) -> AsyncGenerator[Any, Any]:
    unstarted.pop().detach()
    source: Any = agen
    sent: Any = None
    thrown: BaseException | None = None
    while True:
        token = watch.enter()
        try:
            if thrown is not None:
                item = await source.athrow(thrown)
                thrown = None
            else:
                item = await (agen.__anext__() if sent is None else source.asend(sent))
        except StopAsyncIteration:
            watch.end()
            return
        except BaseException as exc:
            watch.fail(exc)
            raise
        finally:
            watch.exit(token)
        watch.item(item)
        try:
            sent = yield item
        except GeneratorExit:
            try:
                aclose = getattr(agen, "aclose", None)
                if aclose is not None:
                    await aclose()
            finally:
                watch.close()
            raise
        except BaseException as exc:
            thrown = exc


class WatchedStream:
    """An iterator object (``openai.Stream``, ``anthropic.Stream``, a response body) under a watch.

    Everything but iteration and closing is forwarded, so ``stream.response`` and ``with stream:``
    keep working. Attribute names are prefixed so they never shadow the wrapped object's.
    """

    def __init__(self, source: Any, watch: StreamWatch) -> None:
        self._llm_otel_source = source
        self._llm_otel_watch = watch
        self._llm_otel_iter: Iterator[Any] | None = None
        self._llm_otel_done = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self._llm_otel_source, name)

    def __iter__(self) -> WatchedStream:
        return self

    def __next__(self) -> Any:
        watch = self._llm_otel_watch
        if self._llm_otel_iter is None:
            self._llm_otel_iter = iter(self._llm_otel_source)
        token = watch.enter()
        try:
            item = next(self._llm_otel_iter)
        except StopIteration:
            self._llm_otel_finish(watch.end)
            raise
        except BaseException as exc:
            if not self._llm_otel_done:
                self._llm_otel_done = True
                watch.fail(exc)
            raise
        finally:
            watch.exit(token)
        watch.item(item)
        return item

    def __enter__(self) -> WatchedStream:
        enter = getattr(self._llm_otel_source, "__enter__", None)
        if enter is not None:
            enter()
        return self

    def __exit__(self, *exc_info: Any) -> Any:
        try:
            exit_ = getattr(self._llm_otel_source, "__exit__", None)
            return exit_(*exc_info) if exit_ is not None else None
        finally:
            self._llm_otel_finish(self._llm_otel_watch.close)

    def close(self) -> None:
        try:
            close = getattr(self._llm_otel_source, "close", None)
            if close is not None:
                close()
        finally:
            self._llm_otel_finish(self._llm_otel_watch.close)

    def __del__(self) -> None:
        if not self.__dict__.get("_llm_otel_done", True):
            self._llm_otel_finish(self._llm_otel_watch.close)

    def _llm_otel_finish(self, hook: Any) -> None:
        if not self._llm_otel_done:
            self._llm_otel_done = True
            hook()


class AsyncWatchedStream:
    """The async counterpart of ``WatchedStream`` (``openai.AsyncStream``, async response bodies)."""

    def __init__(self, source: Any, watch: StreamWatch) -> None:
        self._llm_otel_source = source
        self._llm_otel_watch = watch
        self._llm_otel_iter: AsyncIterator[Any] | None = None
        self._llm_otel_done = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self._llm_otel_source, name)

    def __aiter__(self) -> AsyncWatchedStream:
        return self

    async def __anext__(self) -> Any:
        watch = self._llm_otel_watch
        if self._llm_otel_iter is None:
            self._llm_otel_iter = self._llm_otel_source.__aiter__()
        token = watch.enter()
        try:
            item = await self._llm_otel_iter.__anext__()
        except StopAsyncIteration:
            self._llm_otel_finish(watch.end)
            raise
        except BaseException as exc:
            if not self._llm_otel_done:
                self._llm_otel_done = True
                watch.fail(exc)
            raise
        finally:
            watch.exit(token)
        watch.item(item)
        return item

    async def __aenter__(self) -> AsyncWatchedStream:
        enter = getattr(self._llm_otel_source, "__aenter__", None)
        if enter is not None:
            await enter()
        return self

    async def __aexit__(self, *exc_info: Any) -> Any:
        try:
            exit_ = getattr(self._llm_otel_source, "__aexit__", None)
            return await exit_(*exc_info) if exit_ is not None else None
        finally:
            self._llm_otel_finish(self._llm_otel_watch.close)

    async def close(self) -> None:
        try:
            close = getattr(self._llm_otel_source, "close", None)
            if close is not None:
                await close()
        finally:
            self._llm_otel_finish(self._llm_otel_watch.close)

    async def aclose(self) -> None:
        try:
            aclose = getattr(self._llm_otel_source, "aclose", None)
            if aclose is not None:
                await aclose()
        finally:
            self._llm_otel_finish(self._llm_otel_watch.close)

    def __del__(self) -> None:
        if not self.__dict__.get("_llm_otel_done", True):
            self._llm_otel_finish(self._llm_otel_watch.close)

    def _llm_otel_finish(self, hook: Any) -> None:
        if not self._llm_otel_done:
            self._llm_otel_done = True
            hook()


def traced_generator(gen: Generator[Any, Any, Any], call: LLMCall) -> Generator[Any, Any, Any]:
    return watch_generator(gen, CallWatch(call, activate=True))


def traced_async_generator(agen: AsyncGenerator[Any, Any], call: LLMCall) -> AsyncGenerator[Any, Any]:
    return watch_async_generator(agen, CallWatch(call, activate=True))


_NOT_ITERATORS: Memo[type, bool] = Memo(512, dict.fromkeys((dict, list, tuple, str, bytes, type(None)), True))


def maybe_stream(value: Any) -> bool:
    """Cheap first test for a call's result: only iterator types can be SDK streams (cached per type)."""
    cls = type(value)
    if cls in _NOT_ITERATORS.data:
        return False
    try:
        iterator = hasattr(cls, "__next__") or hasattr(cls, "__anext__")
    except Exception:  # a hostile metaclass: let the full checks decide
        return True
    if not iterator:
        _NOT_ITERATORS.admit(cls, True)
    return iterator


def is_sdk_stream(value: Any) -> bool:
    """An SDK stream object (iterable with a ``response``), not a plain list or dict."""
    return hasattr(value, "__next__") and hasattr(value, "response") and hasattr(value, "close")


def is_async_sdk_stream(value: Any) -> bool:
    return hasattr(value, "__anext__") and hasattr(value, "response") and hasattr(value, "close")


# The SDKs' stream helpers (``client.chat.completions.stream(...)``, ``client.responses.stream(...)``,
# ``client.messages.stream(...)``) return a manager that sends the request only when entered.
_MANAGER_TYPES: Memo[type, bool] = Memo(512)
_SDK_ROOTS = ("openai", "anthropic")


def is_stream_manager(value: Any) -> bool:
    """An SDK stream manager: a context manager from openai/anthropic named ``*StreamManager``."""
    cls = type(value)
    found = _MANAGER_TYPES.data.get(cls)
    if found is None:
        try:
            found = cls.__name__.endswith("StreamManager") and cls.__module__.partition(".")[0] in _SDK_ROOTS
        except Exception:  # a hostile class
            found = False
        _MANAGER_TYPES.admit(cls, found)
    return found


_SNAPSHOTS: tuple[tuple[str, ...], ...] = (
    ("current_completion_snapshot",),  # openai chat completions
    ("_state", "_completed_response"),  # openai Responses
    ("current_message_snapshot",),  # anthropic messages
)


def _snapshot(stream: Any) -> Any:
    """What the helper accumulated so far (usage included once the stream reported it); never reads on."""
    for path in _SNAPSHOTS:
        found = stream
        try:
            for name in path:
                found = getattr(found, name)
        except Exception:  # not this helper, or nothing received yet
            continue
        if found is not None:
            return found
    return None


class StreamManagerProxy:
    """Keeps a call open from a stream manager's ``__enter__`` (the request) to its ``__exit__``.

    While the request is sent the call is current, so a provider SDK instrumentor's call
    nests under it (and owns the record); without one, usage is read from the helper's
    accumulated snapshot at exit.
    """

    def __init__(self, manager: Any, call: LLMCall) -> None:
        self._llm_otel_manager = manager
        self._llm_otel_call = call
        self._llm_otel_stream: Any = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self._llm_otel_manager, name)

    def __enter__(self) -> Any:
        call = self._llm_otel_call
        watch = CallWatch(call, activate=True)  # the request is sent with the call current
        tokens = watch.enter()
        try:
            self._llm_otel_stream = self._llm_otel_manager.__enter__()
        except BaseException as exc:
            call.fail(exc)
            raise
        finally:
            watch.exit(tokens)
        return self._llm_otel_stream

    def __exit__(self, *exc_info: Any) -> Any:
        try:
            return self._llm_otel_manager.__exit__(*exc_info)
        finally:
            _end_managed(self._llm_otel_call, self._llm_otel_stream, exc_info[1])

    async def __aenter__(self) -> Any:
        call = self._llm_otel_call
        watch = CallWatch(call, activate=True)  # the request is sent with the call current
        tokens = watch.enter()
        try:
            self._llm_otel_stream = await self._llm_otel_manager.__aenter__()
        except BaseException as exc:
            call.fail(exc)
            raise
        finally:
            watch.exit(tokens)
        return self._llm_otel_stream

    async def __aexit__(self, *exc_info: Any) -> Any:
        try:
            return await self._llm_otel_manager.__aexit__(*exc_info)
        finally:
            _end_managed(self._llm_otel_call, self._llm_otel_stream, exc_info[1])

    def __del__(self) -> None:
        call = self.__dict__.get("_llm_otel_call")
        if call is not None and not call.ended:
            call.end(outcome=n.STREAM_CLOSED_EARLY)


def _end_managed(call: LLMCall, stream: Any, error: BaseException | None) -> None:
    if call.ended:
        return
    if error is not None:
        call.fail(error)
        return
    snapshot = _snapshot(stream) if stream is not None else None
    if snapshot is not None:
        call.set_response(snapshot)
        call.streaming = True
    call.end()
