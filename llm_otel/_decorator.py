"""``@traced_llm``: sync functions, coroutines, generators and async generators."""

from __future__ import annotations

import contextlib
import functools
import inspect
from collections.abc import Callable
from typing import Any, TypeVar, overload

import opentelemetry.metrics._internal as _metrics_api
import opentelemetry.trace as _trace_api
from opentelemetry.metrics import NoOpMeterProvider
from opentelemetry.metrics._internal import _ProxyMeterProvider
from opentelemetry.trace import NoOpTracerProvider, ProxyTracerProvider
from typing_extensions import ParamSpec

from llm_otel import _names as n
from llm_otel._call import CallSpec, LLMCall, UsageReader, server_of
from llm_otel._context import request_rollup
from llm_otel._log import internal_error
from llm_otel._runtime import Telemetry, current
from llm_otel._streams import (
    AsyncWatchedStream,
    CallWatch,
    StreamManagerProxy,
    WatchedStream,
    is_async_sdk_stream,
    is_sdk_stream,
    is_stream_manager,
    maybe_stream,
    traced_async_generator,
    traced_generator,
)

P = ParamSpec("P")
R = TypeVar("R")

_REQUEST_PARAMS = {"max_tokens": n.GEN_AI_REQUEST_MAX_TOKENS, "temperature": n.GEN_AI_REQUEST_TEMPERATURE,
                   "top_p": n.GEN_AI_REQUEST_TOP_P, "max_output_tokens": n.GEN_AI_REQUEST_MAX_TOKENS}
_MESSAGE_PARAMS = ("messages", "input", "prompt")


_UNSET_TRACING = (ProxyTracerProvider, NoOpTracerProvider)


def _idle(telemetry: Telemetry) -> bool:
    """No SDK anywhere would receive this call's span or metrics (configure() never ran and no
    global provider is set): skip the work, so an uninstrumented deployment pays ~nothing.

    Checked per call because a global provider may be installed later (the API's own
    module globals say so without a lookup); for configured SDK providers it costs one
    isinstance check.
    """
    tracer_provider = telemetry.tracer_provider
    if not isinstance(tracer_provider, _UNSET_TRACING):
        return False
    if isinstance(tracer_provider, ProxyTracerProvider) and _trace_api._TRACER_PROVIDER is not None:
        return False
    meter_provider = telemetry.meter_provider
    if isinstance(meter_provider, _ProxyMeterProvider):
        if _metrics_api._METER_PROVIDER is not None:
            return False
    elif not isinstance(meter_provider, NoOpMeterProvider):
        return False
    # the built-in scorers alone record only through the providers checked above
    return telemetry.evaluator is None or not telemetry.evaluator.scores_every_call


class _CallSite:
    """What the decorator learns once from the wrapped function's signature."""

    __slots__ = ("message_index", "model_default", "model_index", "retrieved_index", "retrieved_param", "spec")

    def __init__(self, fn: Callable[..., Any], spec: CallSpec, retrieved_param: str | None = None) -> None:
        self.spec = spec
        self.retrieved_param = retrieved_param
        self.model_index = self.message_index = self.retrieved_index = -1
        self.model_default: Any = None
        try:
            signature = inspect.signature(fn).parameters
        except (TypeError, ValueError):
            signature = {}  # type: ignore[assignment]
        params = list(signature)
        if "model" in params:
            self.model_index = params.index("model")
            default = signature["model"].default
            self.model_default = default if isinstance(default, str) else None
        for name in _MESSAGE_PARAMS:
            if name in params:
                self.message_index = params.index(name)
                break
        if retrieved_param is not None and retrieved_param in params:
            self.retrieved_index = params.index(retrieved_param)

    def open(self, args: tuple[Any, ...], kwargs: dict[str, Any], *, activate: bool) -> LLMCall | None:
        telemetry = current()
        if not telemetry.enabled or _idle(telemetry):
            return None
        # sampled out with no metrics pipeline and no request rollup: nothing would ever see this call
        unseen_unless_sampled = not telemetry.needs_unsampled_calls and request_rollup.get() is None
        if unseen_unless_sampled and telemetry.drop_forecast.possible and telemetry.drop_forecast.dropped():
            return None
        model = self.spec.model
        if model is None:
            model = kwargs.get("model")
            if model is None:
                model = args[self.model_index] if 0 <= self.model_index < len(args) else self.model_default
        request = {key: kwargs[name] for name, key in _REQUEST_PARAMS.items() if name in kwargs} if kwargs else None
        call = LLMCall(
            self.spec,
            model=model if isinstance(model, str) else None,
            request_attributes=request,
            telemetry=telemetry,
        )
        if self.retrieved_param is not None:
            self._retrieved(call, args, kwargs)
        if telemetry.wants_text:
            call.set_input_messages(self._messages(args, kwargs))
        call.start()
        if unseen_unless_sampled and not call.span.is_recording():
            return None
        if activate:
            try:
                call.activate()
            except Exception as exc:
                internal_error("call.activate", exc)
        return call

    def _retrieved(self, call: LLMCall, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        documents = kwargs.get(self.retrieved_param) if self.retrieved_param in kwargs else (
            args[self.retrieved_index] if 0 <= self.retrieved_index < len(args) else None)
        if documents is not None:
            call.set_retrieved_context(documents)

    def _messages(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        for name in _MESSAGE_PARAMS:
            if name in kwargs:
                return kwargs[name]
        if 0 <= self.message_index < len(args):
            return args[self.message_index]
        return None


def _wrap(fn: Callable[P, R], spec: CallSpec, retrieved_param: str | None = None) -> Callable[P, R]:
    site = _CallSite(fn, spec, retrieved_param)

    if inspect.isasyncgenfunction(fn):

        @functools.wraps(fn)
        def async_gen_wrapper(*args: Any, **kwargs: Any) -> Any:
            call = site.open(args, kwargs, activate=False)
            if call is None:
                return fn(*args, **kwargs)
            try:
                agen = fn(*args, **kwargs)
            except BaseException as exc:  # wrong arguments: the body never ran
                call.fail(exc)
                raise
            return traced_async_generator(agen, call)

        return async_gen_wrapper

    if inspect.isgeneratorfunction(fn):

        @functools.wraps(fn)
        def gen_wrapper(*args: Any, **kwargs: Any) -> Any:
            call = site.open(args, kwargs, activate=False)
            if call is None:
                return fn(*args, **kwargs)
            try:
                gen = fn(*args, **kwargs)
            except BaseException as exc:  # wrong arguments: the body never ran
                call.fail(exc)
                raise
            return traced_generator(gen, call)

        return gen_wrapper

    if inspect.iscoroutinefunction(fn):

        @functools.wraps(fn)
        async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
            call = site.open(args, kwargs, activate=True)
            if call is None:
                return await fn(*args, **kwargs)
            try:
                result = await fn(*args, **kwargs)
            except BaseException as exc:
                call.fail(exc)
                raise
            return _finish(call, result)

        return async_wrapper  # type: ignore[return-value]

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        call = site.open(args, kwargs, activate=True)
        if call is None:
            return fn(*args, **kwargs)
        try:
            result = fn(*args, **kwargs)
        except BaseException as exc:
            call.fail(exc)
            raise
        return _finish(call, result)

    return wrapper


def _finish(call: LLMCall, result: Any) -> Any:
    """End the call, unless the function handed back a stream that is still to be consumed."""
    if maybe_stream(result):
        if is_sdk_stream(result):
            call.deactivate()
            _server_of(call, result)
            return WatchedStream(result, CallWatch(call, activate=False))
        if is_async_sdk_stream(result):
            call.deactivate()
            _server_of(call, result)
            return AsyncWatchedStream(result, CallWatch(call, activate=False))
        # an SDK whose streams are plain generators (google-genai): the request is sent on the
        # first pull, so the call is current while each chunk is pulled and a call nearer the wire
        # nests under it
        if inspect.isgenerator(result):
            call.deactivate()
            return traced_generator(result, call)
        if inspect.isasyncgen(result):
            call.deactivate()
            return traced_async_generator(result, call)
    elif is_stream_manager(result):  # the request is sent when the caller enters it
        call.deactivate()
        return StreamManagerProxy(result, call)
    call.set_response(result)
    call.end()
    return result


def _server_of(call: LLMCall, stream: Any) -> None:
    """An SDK stream carries its HTTP response, whose request names the server (server.address/port)."""
    if call.server_address is None:
        # a stream without the usual response: no server attribute, nothing else lost
        with contextlib.suppress(Exception):
            call.set_server(str(stream.response.request.url))


@overload
def traced_llm(fn: Callable[P, R], /) -> Callable[P, R]: ...


@overload
def traced_llm(
    fn: None = None,
    /,
    *,
    provider: str | None = None,
    model: str | None = None,
    operation: str = n.OP_CHAT,
    task_type: str | None = None,
    prompt_name: str | None = None,
    prompt_version: str | None = None,
    usage: UsageReader | None = None,
    retrieved_param: str | None = None,
    server_address: str | None = None,
    server_port: int | None = None,
) -> Callable[[Callable[P, R]], Callable[P, R]]: ...


def traced_llm(
    fn: Callable[P, R] | None = None,
    /,
    *,
    provider: str | None = None,
    model: str | None = None,
    operation: str = n.OP_CHAT,
    task_type: str | None = None,
    prompt_name: str | None = None,
    prompt_version: str | None = None,
    usage: UsageReader | None = None,
    retrieved_param: str | None = None,
    server_address: str | None = None,
    server_port: int | None = None,
) -> Callable[P, R] | Callable[[Callable[P, R]], Callable[P, R]]:
    """Trace an LLM call site: a span following the GenAI conventions plus tokens, cost and latency.

    Usage, response model, id and finish reasons are read from what the
    function returns (OpenAI, Anthropic, LangChain shapes or dicts like them);
    ``usage=`` takes a callable for anything else. The request model comes
    from ``model=`` here or from the function's own ``model`` argument.
    ``retrieved_param`` names the function's argument that holds the retrieved
    passages; the groundedness scorer checks the answer against them. ``server_address``
    is the server's host or the client's base URL (``server.address``/``server.port``;
    an SDK stream names its own).
    """
    host, port = server_of(server_address, server_port)
    spec = CallSpec(operation, provider, model, task_type, prompt_name, prompt_version, usage,
                    server_address=host, server_port=port)
    if fn is not None:
        return _wrap(fn, spec)
    return lambda inner: _wrap(inner, spec, retrieved_param)
