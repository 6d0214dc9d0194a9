"""The ``litellm`` instrumentor: ``litellm.completion`` and ``litellm.acompletion``, streaming or not.

    >>> from llm_otel.integrations.litellm import LiteLLMInstrumentor
    >>> LiteLLMInstrumentor().instrument()     # or llm_otel.instrument("litellm"), or opentelemetry-instrument

One call of the kit per ``completion()``; its provider is the one litellm routed to (the
response's ``custom_llm_provider``, else the model's ``provider/`` prefix), mapped to
``gen_ai.provider.name`` (``bedrock`` -> ``aws.bedrock``, ``vertex_ai`` -> ``gcp.vertex_ai``, ...).

litellm reaches some providers through their own SDK (``openai`` for OpenAI, Azure and
OpenAI-compatible servers) and others over its own HTTP client. When that SDK is
instrumented too, its call is the one nearest the wire and owns the record; the litellm
call stays as its parent span, marked ``llm.record.deferred`` (docs/instrumentation.md).

A stream is litellm's own ``CustomStreamWrapper``, returned as it is: the class's
``__next__``/``__anext__`` are watched while instrumented, for the streams this
instrumentor started only. litellm puts usage into a stream only when the request asks
for it (``stream_options={"include_usage": True}``); without it the call is counted as
unpriced with the reason ``stream_not_requested`` (litellm's own token estimate is never
taken for the provider's count).
"""

from __future__ import annotations

import functools
import weakref
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from llm_otel import LLMCall, adapter
from llm_otel.integrations._instrumentor import (
    Request,
    SDKInstrumentor,
    Target,
    TelemetrySource,
    Wrapper,
    end_stream,
)

n = adapter.names

# litellm's provider names -> gen_ai.provider.name, where the two differ
PROVIDER_NAMES: Mapping[str, str] = {
    "azure": "azure.ai.openai",
    "azure_ai": "azure.ai.inference",
    "bedrock": "aws.bedrock",
    "sagemaker": "aws.sagemaker",
    "vertex_ai": "gcp.vertex_ai",
    "vertex_ai_beta": "gcp.vertex_ai",
    "gemini": "gcp.gemini",
    "mistral": "mistral_ai",
    "xai": "x_ai",
    "watsonx": "ibm.watsonx.ai",
    "text-completion-openai": "openai",
}
_REQUEST_NUMBERS = (
    ("max_tokens", n.GEN_AI_REQUEST_MAX_TOKENS),
    ("max_completion_tokens", n.GEN_AI_REQUEST_MAX_TOKENS),
    ("temperature", n.GEN_AI_REQUEST_TEMPERATURE),
    ("top_p", n.GEN_AI_REQUEST_TOP_P),
)


def provider_name(litellm_provider: Any) -> str | None:
    """``gen_ai.provider.name`` for one of litellm's provider names."""
    if not isinstance(litellm_provider, str) or not litellm_provider:
        return None
    return PROVIDER_NAMES.get(litellm_provider, litellm_provider)


def _routed_provider(kwargs: Mapping[str, Any]) -> str | None:
    """The provider before the call: ``custom_llm_provider=`` or the model's known prefix."""
    explicit = kwargs.get("custom_llm_provider")
    if isinstance(explicit, str) and explicit:
        return provider_name(explicit)
    model = kwargs.get("model")
    if not isinstance(model, str) or "/" not in model:
        return None
    import litellm  # loaded already: this runs inside litellm.completion's wrapper

    prefix = model.split("/", 1)[0]
    return provider_name(prefix) if prefix in litellm.provider_list else None


def _describe(instance: Any, kwargs: dict[str, Any]) -> Request:
    model = kwargs.get("model")
    attributes = None
    for name, key in _REQUEST_NUMBERS:
        value = kwargs.get(name)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            attributes = attributes or {}
            attributes[key] = value
    stream = kwargs.get("stream") is True
    usage_requested: bool | None = None
    if stream:
        options = kwargs.get("stream_options")
        usage_requested = isinstance(options, Mapping) and options.get("include_usage") is True
    return Request(
        _routed_provider(kwargs), model if isinstance(model, str) else None, n.OP_CHAT, attributes,
        kwargs.get("messages"), stream, usage_requested,
    )


def _hidden_provider(result: Any) -> str | None:
    hidden = getattr(result, "_hidden_params", None)
    return provider_name(hidden.get("custom_llm_provider")) if isinstance(hidden, Mapping) else None


def _start(
    args: tuple[Any, ...], kwargs: dict[str, Any], telemetry_of: TelemetrySource
) -> tuple[LLMCall, Request] | None:
    """The litellm call: never a wire call (an instrumented SDK beneath it may be the wire),
    current while litellm works, so a call of the SDK beneath it makes it defer."""
    try:
        telemetry = telemetry_of()
        if not telemetry.enabled:
            return None
        # litellm's signature starts (model, messages, ...); read both forms
        request = _describe(None, {**dict(zip(("model", "messages"), args, strict=False)), **kwargs})
        call = adapter.start_call(
            provider=request.provider, model=request.model, operation=request.operation,
            request_attributes=request.attributes, activate=True, telemetry=telemetry,
        )
        if request.messages is not None and telemetry.wants_text:
            call.set_input_messages(request.messages)
        return call, request
    except Exception as exc:
        adapter.internal_error("litellm.start", exc)
        return None


# stream -> (call, request); a stream the kit did not start is not in it
_STREAMS: weakref.WeakKeyDictionary[Any, tuple[LLMCall, Request]] = weakref.WeakKeyDictionary()


def _finish(call: LLMCall, result: Any, request: Request) -> None:
    call.deactivate()
    call.set_provider(_hidden_provider(result))
    if _is_stream(result):
        _STREAMS[result] = (call, request)
        weakref.finalize(result, _abandoned, call)  # never read to its end: still ends
        return
    call.set_response(result)
    call.end()


def _is_stream(result: Any) -> bool:
    from litellm.litellm_core_utils.streaming_handler import CustomStreamWrapper

    return isinstance(result, CustomStreamWrapper)


def _abandoned(call: LLMCall) -> None:
    if not call.ended:
        call.end(outcome=adapter.CLOSED_EARLY)


def _completion(
    wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any], telemetry_of: TelemetrySource
) -> Any:
    opened = _start(args, kwargs, telemetry_of)
    if opened is None:
        return wrapped(*args, **kwargs)
    call, request = opened
    try:
        result = wrapped(*args, **kwargs)
    except BaseException as exc:
        call.fail(exc)
        raise
    try:
        _finish(call, result, request)
    except Exception as exc:
        adapter.internal_error("litellm.finish", exc)
        call.end()
    return result


def _acompletion(
    wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any], telemetry_of: TelemetrySource
) -> Any:
    async def run() -> Any:
        opened = _start(args, kwargs, telemetry_of)
        if opened is None:
            return await wrapped(*args, **kwargs)
        call, request = opened
        try:
            result = await wrapped(*args, **kwargs)
        except BaseException as exc:
            call.fail(exc)
            raise
        try:
            _finish(call, result, request)
        except Exception as exc:
            adapter.internal_error("litellm.finish", exc)
            call.end()
        return result

    return run()


def _next(wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    watched = _STREAMS.get(instance)
    if watched is None:
        return wrapped(*args, **kwargs)
    call, request = watched
    try:
        chunk = wrapped(*args, **kwargs)
    except StopIteration:
        _ended(instance, call, request)
        raise
    except BaseException as exc:
        _failed(instance, call, exc)
        raise
    call.add_chunk(chunk)
    return chunk


def _anext(wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    watched = _STREAMS.get(instance)
    if watched is None:
        return wrapped(*args, **kwargs)
    call, request = watched

    async def run() -> Any:
        try:
            chunk = await wrapped(*args, **kwargs)
        except StopAsyncIteration:
            _ended(instance, call, request)
            raise
        except BaseException as exc:
            _failed(instance, call, exc)
            raise
        call.add_chunk(chunk)
        return chunk

    return run()


def _ended(stream: Any, call: LLMCall, request: Request) -> None:
    _STREAMS.pop(stream, None)
    if not call.ended:
        end_stream(call, request)


def _failed(stream: Any, call: LLMCall, error: BaseException) -> None:
    _STREAMS.pop(stream, None)
    if not call.ended:
        call.fail(error)


_STREAM_MODULE = "litellm.litellm_core_utils.streaming_handler"


class LiteLLMInstrumentor(SDKInstrumentor):
    name: ClassVar[str] = "litellm"
    instruments: ClassVar[tuple[str, ...]] = ("litellm >= 1.60",)

    def targets(self) -> Sequence[Target]:
        completion: Wrapper = functools.partial(_completion, telemetry_of=self.telemetry)
        acompletion: Wrapper = functools.partial(_acompletion, telemetry_of=self.telemetry)
        return (
            Target("litellm", "", "completion", completion),
            Target("litellm", "", "acompletion", acompletion),
            Target(_STREAM_MODULE, "CustomStreamWrapper", "__next__", _next),
            Target(_STREAM_MODULE, "CustomStreamWrapper", "__anext__", _anext),
        )


__all__ = ["LiteLLMInstrumentor", "provider_name"]
