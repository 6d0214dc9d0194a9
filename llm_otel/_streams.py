"""Streamed responses: the call stays open until the stream is exhausted, closed or abandoned.

While the wrapped generator runs, the call's span is the current span, so
HTTP client spans made inside it nest correctly; between chunks the caller's
context is restored.

A traced generator's call starts when the generator function is called (the
caller's span is its parent, as for any other call). A generator that is then
never iterated never runs its body, so nothing would end that call: a
finalizer ends it as ``closed_early`` when the generator is garbage-collected.
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


def _activate(call: LLMCall, ctx: otel_context.Context) -> tuple[object, Any]:
    token = otel_context.attach(ctx)
    return token, current_call.set(call)


def _deactivate(tokens: tuple[object, Any]) -> None:
    otel_context.detach(tokens[0])  # type: ignore[arg-type]
    current_call.reset(tokens[1])


def _closed_early(call: LLMCall) -> None:
    call.end(outcome=n.STREAM_CLOSED_EARLY)


def _end_if_open(call: LLMCall) -> None:
    try:
        if not call.ended:
            _closed_early(call)
    except Exception as exc:  # runs inside the garbage collector: never raise there
        internal_error("stream.collected", exc)


def _end_when_collected(stream: object, call: LLMCall) -> weakref.finalize[[LLMCall], object]:
    """End ``call`` as closed early if ``stream`` is collected before it ever ran.

    Only an unstarted generator needs this: once started, collecting it throws
    GeneratorExit into it, which ends the call, so the generator detaches this
    finalizer on its first step (and the registry stops holding the call).
    ``weakref.finalize`` (not a plain weak reference) because the generator, its
    frame and the call may form a cycle whose weak-reference callbacks the cycle
    collector would drop; its registry keeps the finalizer alive instead.
    """
    finalizer = weakref.finalize(stream, _end_if_open, call)
    finalizer.atexit = False  # at exit the providers are shutting down; nothing left to record to
    return finalizer


Unstarted = list["weakref.finalize[[LLMCall], object]"]


def traced_generator(gen: Generator[Any, Any, Any], call: LLMCall) -> Generator[Any, Any, Any]:
    unstarted: Unstarted = []
    traced = _traced_generator(gen, call, unstarted)
    unstarted.append(_end_when_collected(traced, call))
    return traced


def traced_async_generator(agen: AsyncGenerator[Any, Any], call: LLMCall) -> AsyncGenerator[Any, Any]:
    unstarted: Unstarted = []
    traced = _traced_async_generator(agen, call, unstarted)
    unstarted.append(_end_when_collected(traced, call))
    return traced


def _traced_generator(gen: Generator[Any, Any, Any], call: LLMCall, unstarted: Unstarted) -> Generator[Any, Any, Any]:
    unstarted.pop().detach()
    ctx = trace.set_span_in_context(call.span)  # built once, attached around each chunk
    sent: Any = None
    thrown: BaseException | None = None
    while True:
        tokens = _activate(call, ctx)
        try:
            if thrown is not None:
                chunk = gen.throw(thrown)
                thrown = None
            else:
                chunk = gen.send(sent)
        except StopIteration as stop:
            call.end()
            return stop.value
        except BaseException as exc:
            call.fail(exc)
            raise
        finally:
            _deactivate(tokens)
        call.add_chunk(chunk)
        try:
            sent = yield chunk
        except GeneratorExit:
            try:
                gen.close()
            finally:
                _closed_early(call)
            raise
        except BaseException as exc:
            thrown = exc


async def _traced_async_generator(
    agen: AsyncGenerator[Any, Any], call: LLMCall, unstarted: Unstarted
) -> AsyncGenerator[Any, Any]:
    unstarted.pop().detach()
    ctx = trace.set_span_in_context(call.span)  # built once, attached around each chunk
    sent: Any = None
    thrown: BaseException | None = None
    while True:
        tokens = _activate(call, ctx)
        try:
            if thrown is not None:
                chunk = await agen.athrow(thrown)
                thrown = None
            else:
                chunk = await agen.asend(sent)
        except StopAsyncIteration:
            call.end()
            return
        except BaseException as exc:
            call.fail(exc)
            raise
        finally:
            _deactivate(tokens)
        call.add_chunk(chunk)
        try:
            sent = yield chunk
        except GeneratorExit:
            try:
                await agen.aclose()
            finally:
                _closed_early(call)
            raise
        except BaseException as exc:
            thrown = exc


class StreamProxy:
    """Wraps an SDK stream object (``openai.Stream``, ``anthropic.Stream``) a function returned.

    Everything but iteration and closing is forwarded, so ``stream.response``
    and ``with stream:`` keep working.
    """

    def __init__(self, stream: Any, call: LLMCall) -> None:
        self._llm_otel_stream = stream
        self._llm_otel_call = call
        self._llm_otel_iter: Iterator[Any] | None = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self._llm_otel_stream, name)

    def __iter__(self) -> StreamProxy:
        return self

    def __next__(self) -> Any:
        call = self._llm_otel_call
        if self._llm_otel_iter is None:
            self._llm_otel_iter = iter(self._llm_otel_stream)
        try:
            chunk = next(self._llm_otel_iter)
        except StopIteration:
            call.end()
            raise
        except BaseException as exc:
            call.fail(exc)
            raise
        call.add_chunk(chunk)
        return chunk

    def __enter__(self) -> StreamProxy:
        enter = getattr(self._llm_otel_stream, "__enter__", None)
        if enter is not None:
            enter()
        return self

    def __exit__(self, *exc_info: Any) -> Any:
        try:
            exit_ = getattr(self._llm_otel_stream, "__exit__", None)
            return exit_(*exc_info) if exit_ is not None else None
        finally:
            if not self._llm_otel_call.ended:
                _closed_early(self._llm_otel_call)

    def close(self) -> None:
        try:
            close = getattr(self._llm_otel_stream, "close", None)
            if close is not None:
                close()
        finally:
            if not self._llm_otel_call.ended:
                _closed_early(self._llm_otel_call)

    def __del__(self) -> None:
        call = self.__dict__.get("_llm_otel_call")
        if call is not None and not call.ended:
            _closed_early(call)


class AsyncStreamProxy:
    def __init__(self, stream: Any, call: LLMCall) -> None:
        self._llm_otel_stream = stream
        self._llm_otel_call = call
        self._llm_otel_iter: AsyncIterator[Any] | None = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self._llm_otel_stream, name)

    def __aiter__(self) -> AsyncStreamProxy:
        return self

    async def __anext__(self) -> Any:
        call = self._llm_otel_call
        if self._llm_otel_iter is None:
            self._llm_otel_iter = self._llm_otel_stream.__aiter__()
        try:
            chunk = await self._llm_otel_iter.__anext__()
        except StopAsyncIteration:
            call.end()
            raise
        except BaseException as exc:
            call.fail(exc)
            raise
        call.add_chunk(chunk)
        return chunk

    async def __aenter__(self) -> AsyncStreamProxy:
        enter = getattr(self._llm_otel_stream, "__aenter__", None)
        if enter is not None:
            await enter()
        return self

    async def __aexit__(self, *exc_info: Any) -> Any:
        try:
            exit_ = getattr(self._llm_otel_stream, "__aexit__", None)
            return await exit_(*exc_info) if exit_ is not None else None
        finally:
            if not self._llm_otel_call.ended:
                _closed_early(self._llm_otel_call)

    async def close(self) -> None:
        try:
            close = getattr(self._llm_otel_stream, "close", None)
            if close is not None:
                await close()
        finally:
            if not self._llm_otel_call.ended:
                _closed_early(self._llm_otel_call)

    def __del__(self) -> None:
        call = self.__dict__.get("_llm_otel_call")
        if call is not None and not call.ended:
            _closed_early(call)


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
        tokens = _activate(call, trace.set_span_in_context(call.span))
        try:
            self._llm_otel_stream = self._llm_otel_manager.__enter__()
        except BaseException as exc:
            call.fail(exc)
            raise
        finally:
            _deactivate(tokens)
        return self._llm_otel_stream

    def __exit__(self, *exc_info: Any) -> Any:
        try:
            return self._llm_otel_manager.__exit__(*exc_info)
        finally:
            _end_managed(self._llm_otel_call, self._llm_otel_stream, exc_info[1])

    async def __aenter__(self) -> Any:
        call = self._llm_otel_call
        tokens = _activate(call, trace.set_span_in_context(call.span))
        try:
            self._llm_otel_stream = await self._llm_otel_manager.__aenter__()
        except BaseException as exc:
            call.fail(exc)
            raise
        finally:
            _deactivate(tokens)
        return self._llm_otel_stream

    async def __aexit__(self, *exc_info: Any) -> Any:
        try:
            return await self._llm_otel_manager.__aexit__(*exc_info)
        finally:
            _end_managed(self._llm_otel_call, self._llm_otel_stream, exc_info[1])

    def __del__(self) -> None:
        call = self.__dict__.get("_llm_otel_call")
        if call is not None and not call.ended:
            _closed_early(call)


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
