"""The ``anthropic`` SDK instrumentor: ``messages.create`` and ``messages.stream``, sync and async.

    >>> from llm_otel.integrations.anthropic import AnthropicInstrumentor
    >>> AnthropicInstrumentor().instrument()   # or llm_otel.instrument("anthropic"), or opentelemetry-instrument

``AnthropicBedrock`` and ``AnthropicVertex`` (and their async forms) share the SDK's
``Messages`` resource, so they are covered by the same wrappers; their calls report
``gen_ai.provider.name`` ``aws.bedrock`` and ``gcp.vertex_ai``. ``messages.stream()`` returns
the SDK's own stream manager: the call starts when the block is entered (the request is sent
then) and ends when the stream ends or is closed. Anthropic streams always carry usage.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any, ClassVar

from llm_otel.adapter import internal_error
from llm_otel.adapter import names as n
from llm_otel.integrations._instrumentor import (
    Request,
    SDKInstrumentor,
    Target,
    TelemetrySource,
    Wrapper,
    async_wrapper,
    client_server,
    observe_async_stream,
    observe_stream,
    open_call,
    request_numbers,
    sync_wrapper,
)
from llm_otel.integrations._sdk_results import sdk_result_handlers

_finish, _finish_async = sdk_result_handlers("anthropic")

# client class name prefix -> gen_ai.provider.name
_PROVIDER_BY_CLIENT = (
    ("AnthropicBedrock", "aws.bedrock"),
    ("AsyncAnthropicBedrock", "aws.bedrock"),
    ("AnthropicVertex", "gcp.vertex_ai"),
    ("AsyncAnthropicVertex", "gcp.vertex_ai"),
)
_REQUEST_NUMBERS = (
    ("max_tokens", n.GEN_AI_REQUEST_MAX_TOKENS),
    ("temperature", n.GEN_AI_REQUEST_TEMPERATURE),
    ("top_p", n.GEN_AI_REQUEST_TOP_P),
)


def _provider(instance: Any) -> str:
    client_class = type(getattr(instance, "_client", None)).__name__
    for prefix, provider in _PROVIDER_BY_CLIENT:
        if client_class.startswith(prefix):
            return provider
    return "anthropic"


def _describe(instance: Any, kwargs: dict[str, Any]) -> Request:
    model = kwargs.get("model")
    attributes = request_numbers(kwargs.get, _REQUEST_NUMBERS)
    return Request(
        _provider(instance), model if isinstance(model, str) else None, n.OP_CHAT, attributes,
        kwargs.get("messages"), kwargs.get("stream") is True,
        server=client_server(getattr(instance, "_client", None)),
    )


_MANAGER_REQUEST = "_{}__api_request"  # the stream manager's private request (name-mangled)


def _stream_wrapper(
    wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any], telemetry_of: TelemetrySource
) -> Any:
    """``messages.stream()`` sends nothing until its manager is entered: the call starts then."""
    manager = wrapped(*args, **kwargs)
    try:
        attribute = _MANAGER_REQUEST.format(type(manager).__name__)
        send = getattr(manager, attribute, None)
        if not callable(send):
            return manager

        def send_observed() -> Any:
            opened = open_call(_describe, instance, kwargs, telemetry_of)
            if opened is None:
                return send()
            call, request = opened
            try:
                raw = send()
            except BaseException as exc:
                call.fail(exc)
                raise
            call.deactivate()
            if not observe_stream(raw, call, request):
                call.end()
            return raw

        setattr(manager, attribute, send_observed)
    except Exception as exc:
        internal_error("anthropic.stream", exc)
    return manager


def _async_stream_wrapper(
    wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any], telemetry_of: TelemetrySource
) -> Any:
    manager = wrapped(*args, **kwargs)
    try:
        attribute = _MANAGER_REQUEST.format(type(manager).__name__)
        pending = getattr(manager, attribute, None)  # an awaitable made by the SDK, not yet awaited
        if pending is None or not hasattr(pending, "__await__"):
            return manager

        async def send_observed() -> Any:
            opened = open_call(_describe, instance, kwargs, telemetry_of)
            if opened is None:
                return await pending
            call, request = opened
            try:
                raw = await pending
            except BaseException as exc:
                call.fail(exc)
                raise
            call.deactivate()
            if not observe_async_stream(raw, call, request):
                call.end()
            return raw

        setattr(manager, attribute, send_observed())
    except Exception as exc:
        internal_error("anthropic.stream", exc)
    return manager


_MESSAGES = "anthropic.resources.messages.messages"


class AnthropicInstrumentor(SDKInstrumentor):
    name: ClassVar[str] = "anthropic"
    instruments: ClassVar[tuple[str, ...]] = ("anthropic >= 0.40",)

    def targets(self) -> Sequence[Target]:
        telemetry = self.telemetry
        stream: Wrapper = functools.partial(_stream_wrapper, telemetry_of=telemetry)
        async_stream: Wrapper = functools.partial(_async_stream_wrapper, telemetry_of=telemetry)
        return (
            Target(_MESSAGES, "Messages", "create", sync_wrapper(_describe, _finish, telemetry)),
            Target(_MESSAGES, "Messages", "parse", sync_wrapper(_describe, _finish, telemetry)),
            Target(_MESSAGES, "Messages", "stream", stream),
            Target(_MESSAGES, "AsyncMessages", "create", async_wrapper(_describe, _finish_async, telemetry)),
            Target(_MESSAGES, "AsyncMessages", "parse", async_wrapper(_describe, _finish_async, telemetry)),
            Target(_MESSAGES, "AsyncMessages", "stream", async_stream),
        )


__all__ = ["AnthropicInstrumentor"]
