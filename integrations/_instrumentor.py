"""The base every provider SDK instrumentor is built on.

An instrumentor is an OpenTelemetry ``BaseInstrumentor`` (so ``opentelemetry-instrument``
finds it through the ``opentelemetry_instrumentor`` entry point group) that wraps a few
SDK methods in place with ``wrapt``. Each wrapped call becomes one ``llm_otel.start_call(...,
wire=True)``: the call nearest the wire, which owns the record of its API call
(docs/instrumentation.md, "One record per API call").

A subclass names its SDK and lists its targets; the base does the wrapping, the
unwrapping and the bookkeeping of what it wrapped. The SDK is imported only when
``instrument()`` runs, so a missing SDK is a debug line, never an error.
"""

from __future__ import annotations

import importlib
import logging
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar
from urllib.parse import urlsplit

import opentelemetry.instrumentation.instrumentor as _otel_instrumentor
import wrapt

from llm_otel import LLMCall, adapter
from llm_otel.adapter import Telemetry, internal_error

_logger = logging.getLogger("llm_otel")

# mypy cannot see the class through this module (it reports no attribute); taken untyped
BaseInstrumentor: Any = vars(_otel_instrumentor)["BaseInstrumentor"]

Wrapper = Callable[[Any, Any, tuple[Any, ...], dict[str, Any]], Any]
TelemetrySource = Callable[[], Telemetry]  # read at each call, so a later configure() takes effect

#: the providers an OpenTelemetry instrumentor takes as ``instrument()`` keywords
PROVIDER_OPTIONS = (("tracer_provider", "get_tracer"), ("meter_provider", "get_meter"),
                    ("logger_provider", "get_logger"))


@dataclass(frozen=True)
class Target:
    """One SDK method to wrap: ``module.owner.method`` (owner is a class path inside the module,
    or ``""`` for a function of the module itself); ``fallback`` is wrapped instead when the
    owner has no ``method`` (an SDK version that names it differently)."""

    module: str
    owner: str
    method: str
    wrapper: Wrapper
    fallback: str | None = None


class SDKInstrumentor(BaseInstrumentor):  # type: ignore[misc]  # the base class is typed Any here
    """Wraps the methods ``targets()`` lists; ``instrument()`` twice wraps once (the base guards it)."""

    #: the ``llm_otel.instrument("name")`` name, also the entry point's suffix (``llm_otel_<name>``)
    name: ClassVar[str] = ""
    #: requirement strings checked by ``opentelemetry-instrument`` before loading
    instruments: ClassVar[tuple[str, ...]] = ()

    # The base class makes each instrumentor a singleton whose __init__ runs on every
    # ``Instrumentor()``: state is set by _instrument only, never reset by a constructor.
    _wrapped: list[tuple[Any, str, Any]] = []
    options: dict[str, Any] = {}
    _providers: tuple[Any, Any, Any] = (None, None, None)

    def instrumentation_dependencies(self) -> Collection[str]:
        return self.instruments

    def targets(self) -> Sequence[Target]:
        raise NotImplementedError

    def telemetry(self) -> Telemetry:
        """What the wrapped calls record through: the kit's current setup, on the providers given
        to ``instrument(tracer_provider=..., meter_provider=..., logger_provider=...)`` if any, as
        every OpenTelemetry instrumentor honours them (docs/instrumentation.md, "Providers")."""
        current = adapter.current()
        tracer_provider, meter_provider, logger_provider = self._providers
        if tracer_provider is None and meter_provider is None and logger_provider is None:
            return current
        return current.on_providers(tracer_provider, meter_provider, logger_provider,
                                    source=f"the {self.name} instrumentor")

    def _instrument(self, **kwargs: Any) -> None:
        providers = []
        for option, method in PROVIDER_OPTIONS:
            given = kwargs.get(option)
            if given is not None and not callable(getattr(given, method, None)):
                raise TypeError(f"{type(self).__name__}().instrument({option}=...) takes an OpenTelemetry "
                                f"{option.replace('_', ' ')}, got {type(given).__name__}")
            providers.append(given)
        self.options = dict(kwargs)
        self._providers = (providers[0], providers[1], providers[2])
        wrapped: list[tuple[Any, str, Any]] = []
        for target in self.targets():
            try:
                module = importlib.import_module(target.module)
                owner: Any = module
                for part in filter(None, target.owner.split(".")):
                    owner = getattr(owner, part)
                found = target.method if hasattr(owner, target.method) else target.fallback
                if found is None or not hasattr(owner, found):
                    continue  # an older SDK without this method: nothing to wrap
                wrapped.append(_wrap_innermost(owner, found, target.wrapper))
            except ImportError as exc:
                _logger.debug("llm-otel: %s not instrumented (%s)", target.module, exc)
            except Exception as exc:  # an SDK whose layout changed: skip that method, keep the rest
                internal_error(f"instrument.{self.name}", exc)
        self._wrapped = wrapped

    def _uninstrument(self, **kwargs: Any) -> None:
        for owner, method, ours in reversed(self._wrapped):
            try:
                _unwrap(owner, method, ours)
            except Exception as exc:
                internal_error(f"uninstrument.{self.name}", exc)
        self._wrapped = []


def _wrap_innermost(owner: Any, method: str, wrapper: Wrapper) -> tuple[Any, str, Any]:
    """Wrap ``owner.method``, beneath any wrapper another instrumentation put there first.

    The kit's wrapper is then always the one nearest the wire: inside another vendor's
    span for the same call (which it enriches instead of opening a second one), whichever
    of the two was instrumented first.
    """
    current: Any = vars(owner).get(method)
    if isinstance(current, wrapt.FunctionWrapper):
        ours = wrapt.FunctionWrapper(current.__wrapped__, wrapper)
        current.__wrapped__ = ours
        return owner, method, ours
    wrapt.wrap_function_wrapper(owner, method, wrapper)
    return owner, method, vars(owner)[method]


def _unwrap(owner: Any, method: str, ours: Any) -> None:
    """Take the kit's wrapper out wherever it sits in a chain of wrappers."""
    original: Any = ours.__wrapped__
    current: Any = vars(owner).get(method)
    # another instrumentation's unwrap may have put back our wrapper bound to the class
    if current is ours or getattr(current, "_self_parent", None) is ours:
        setattr(owner, method, original)
        return
    while isinstance(current, wrapt.FunctionWrapper):
        inner: Any = current.__wrapped__
        if inner is ours:
            current.__wrapped__ = original
            return
        current = inner


@dataclass(frozen=True)
class Request:
    """What a wrapped SDK call asks for, read from its arguments before it is sent."""

    provider: str | None
    model: str | None
    operation: str = adapter.names.OP_CHAT
    attributes: dict[str, Any] | None = None
    messages: Any = None
    stream: bool = False
    #: for a stream: whether the request asked the server for usage (None: the API always sends it)
    usage_requested: bool | None = None
    #: the server the SDK client sends to, as (host, port): server.address / server.port
    server: tuple[str, int | None] | None = None


_SCHEME_PORTS = {"https": 443, "http": 80}
_servers: weakref.WeakKeyDictionary[Any, tuple[Any, tuple[str, int | None] | None]] = weakref.WeakKeyDictionary()


def client_server(client: Any, url: Any = None) -> tuple[str, int | None] | None:
    """(host, port) of an SDK client's base URL (``url`` when the SDK keeps it elsewhere),
    remembered per client and URL object (a client's ``base_url`` can be replaced); None when
    the client has none usable."""
    try:
        if url is None:
            url = getattr(client, "_base_url", None) or getattr(client, "base_url", None)
        if url is None:
            return None
        known = _servers.get(client)
        if known is not None and known[0] is url:
            return known[1]
        parts = urlsplit(str(url))
        host = parts.hostname
        server = (host, parts.port or _SCHEME_PORTS.get(parts.scheme)) if host else None
        _servers[client] = (url, server)
        return server
    except (TypeError, ValueError):  # not weak-referenceable, or a malformed URL: no server attribute
        return None


def request_numbers(read: Callable[[str], Any], table: Sequence[tuple[str, str]]) -> dict[str, Any] | None:
    """The numeric request parameters an SDK call was given: ``table`` maps the SDK's name to
    the attribute key, ``read`` looks a name up; None when there is none (bools are no numbers)."""
    found: dict[str, Any] | None = None
    for name, key in table:
        value = read(name)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if found is None:
                found = {}
            found[key] = value
    return found


Describe = Callable[[Any, dict[str, Any]], Request]
Finish = Callable[[LLMCall, Any, Request], Any]
AsyncFinish = Callable[[LLMCall, Any, Request], Awaitable[Any]]

STREAM_USAGE_NOT_REQUESTED = "usage:stream_not_requested"


def open_call(
    describe: Describe, instance: Any, kwargs: dict[str, Any], telemetry_of: TelemetrySource = adapter.current
) -> tuple[LLMCall, Request] | None:
    """Start the wire-level call, or None when the kit is off or anything about it fails."""
    try:
        telemetry = telemetry_of()
        if not telemetry.enabled:
            return None
        request = describe(instance, kwargs)
        call = adapter.start_call(
            provider=request.provider, model=request.model, operation=request.operation,
            request_attributes=request.attributes, activate=True, wire=True, telemetry=telemetry,
            server_address=request.server[0] if request.server else None,
            server_port=request.server[1] if request.server else None,
        )
        if request.messages is not None and telemetry.wants_text:
            call.set_input_messages(request.messages)
        return call, request
    except Exception as exc:
        internal_error("instrumentor.start", exc)
        return None


def sync_wrapper(describe: Describe, finish: Finish, telemetry_of: TelemetrySource = adapter.current) -> Wrapper:
    """A wrapt wrapper: one wire-level call around the SDK method; its result is handed to
    ``finish`` (which ends the call or leaves it open for a stream) and returned unchanged."""

    def wrapper(wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        opened = open_call(describe, instance, kwargs, telemetry_of)
        if opened is None:
            return wrapped(*args, **kwargs)
        call, request = opened
        try:
            result = wrapped(*args, **kwargs)
        except BaseException as exc:
            call.fail(exc)
            raise
        try:
            call.deactivate()
            return finish(call, result, request)
        except Exception as exc:
            internal_error("instrumentor.finish", exc)
            call.end()
            return result

    return wrapper


def async_wrapper(
    describe: Describe, finish: AsyncFinish, telemetry_of: TelemetrySource = adapter.current
) -> Wrapper:
    def wrapper(wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        async def run() -> Any:
            opened = open_call(describe, instance, kwargs, telemetry_of)
            if opened is None:
                return await wrapped(*args, **kwargs)
            call, request = opened
            try:
                result = await wrapped(*args, **kwargs)
            except BaseException as exc:
                call.fail(exc)
                raise
            try:
                call.deactivate()
                return await finish(call, result, request)
            except Exception as exc:
                internal_error("instrumentor.finish", exc)
                call.end()
                return result

        return run()

    return wrapper


def end_stream(call: LLMCall, request: Request) -> None:
    """The stream ran to its end: say why usage is unknown when the request never asked for it."""
    if request.usage_requested is False and call.usage.input_tokens is None:
        call.note_usage_unknown(STREAM_USAGE_NOT_REQUESTED)
    call.end()


def observe_stream(stream: Any, call: LLMCall, request: Request) -> bool:
    """Watch an SDK stream (``openai.Stream``, ``anthropic.Stream``) in place, so the caller keeps
    the very object the SDK returned: its chunk iterator is wrapped, and its ``close`` ends the
    call as closed early. False when the stream is not shaped as expected (left untouched)."""
    iterator = getattr(stream, "_iterator", None)
    close = getattr(stream, "close", None)
    if iterator is None or close is None:
        return False
    stream._iterator = _observed(iterator, call, request)
    weakref.finalize(stream, _abandoned, call)  # never iterated nor closed: still ends

    def close_observed() -> None:
        try:
            close()
        finally:
            if not call.ended:
                call.end(outcome="closed_early")

    stream.close = close_observed
    return True


def _abandoned(call: LLMCall) -> None:
    if not call.ended:
        call.end(outcome="closed_early")


def _observed(iterator: Iterator[Any], call: LLMCall, request: Request) -> Iterator[Any]:
    try:
        for chunk in iterator:
            call.add_chunk(chunk)
            yield chunk
    except GeneratorExit:
        if not call.ended:
            call.end(outcome="closed_early")
        raise
    except BaseException as exc:
        call.fail(exc)
        raise
    end_stream(call, request)


def observe_async_stream(stream: Any, call: LLMCall, request: Request) -> bool:
    iterator = getattr(stream, "_iterator", None)
    close = getattr(stream, "close", None)
    if iterator is None or close is None:
        return False
    stream._iterator = _observed_async(iterator, call, request)
    weakref.finalize(stream, _abandoned, call)

    async def close_observed() -> None:
        try:
            await close()
        finally:
            if not call.ended:
                call.end(outcome="closed_early")

    stream.close = close_observed
    return True


async def _observed_async(iterator: AsyncIterator[Any], call: LLMCall, request: Request) -> AsyncIterator[Any]:
    try:
        async for chunk in iterator:
            call.add_chunk(chunk)
            yield chunk
    except GeneratorExit:
        if not call.ended:
            call.end(outcome="closed_early")
        raise
    except BaseException as exc:
        call.fail(exc)
        raise
    end_stream(call, request)
