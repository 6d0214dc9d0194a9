"""The ``openai`` SDK instrumentor: chat completions, Responses, embeddings and completions.

    >>> from llm_otel.integrations.openai import OpenAIInstrumentor
    >>> OpenAIInstrumentor().instrument()      # or llm_otel.instrument("openai"), or opentelemetry-instrument

Wrapped, sync and async: ``chat.completions.create`` / ``parse`` (and ``stream``, which calls
``create``), ``responses.create`` / ``parse`` (and ``stream``), ``embeddings.create`` and the
legacy ``completions.create``; ``with_raw_response`` and ``with_streaming_response`` go through
the same methods. What the SDK returns is returned as it is: the same stream object (its
iterator is watched in place), the same raw response. The provider is read from the client's
base URL (Azure OpenAI, Groq, OpenRouter, Together, Ollama, ...; docs/integrations/openai.md).

A chat stream reports usage only when its request asks for it
(``stream_options={"include_usage": True}``). Without it the call is counted as unpriced with
the reason ``stream_not_requested``; the request is left as it is unless
``instrument(request_stream_usage=True)`` (or ``LLM_OTEL_OPENAI_STREAM_USAGE=true``) asks the
kit to add the option (the stream then ends with one extra chunk without choices).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from llm_otel.adapter import internal_error
from llm_otel.adapter import names as n
from llm_otel.integrations._instrumentor import (
    Describe,
    Request,
    SDKInstrumentor,
    Target,
    Wrapper,
    async_wrapper,
    client_server,
    request_numbers,
    sync_wrapper,
)
from llm_otel.integrations._openai_compatible import ProviderResolver
from llm_otel.integrations._sdk_results import sdk_result_handlers

STREAM_USAGE_ENV = "LLM_OTEL_OPENAI_STREAM_USAGE"
_REQUEST_NUMBERS = (
    ("max_tokens", n.GEN_AI_REQUEST_MAX_TOKENS),
    ("max_completion_tokens", n.GEN_AI_REQUEST_MAX_TOKENS),
    ("max_output_tokens", n.GEN_AI_REQUEST_MAX_TOKENS),
    ("temperature", n.GEN_AI_REQUEST_TEMPERATURE),
    ("top_p", n.GEN_AI_REQUEST_TOP_P),
)


def _server(resource: Any) -> tuple[str, int | None] | None:
    return client_server(getattr(resource, "_client", None))


class _Describer:
    """Reads a request from the SDK method's keyword arguments (the SDK's methods take no others)."""

    def __init__(self, resolver: ProviderResolver, request_stream_usage: bool) -> None:
        self.resolver = resolver
        self.request_stream_usage = request_stream_usage

    def _common(self, instance: Any, kwargs: Mapping[str, Any]) -> tuple[str, str | None, dict[str, Any] | None]:
        provider = self.resolver.provider_of(getattr(instance, "_client", None))
        model = kwargs.get("model")
        attributes = request_numbers(kwargs.get, _REQUEST_NUMBERS)
        return provider, model if isinstance(model, str) else None, attributes

    def chat(self, instance: Any, kwargs: dict[str, Any], operation: str = n.OP_CHAT) -> Request:
        provider, model, attributes = self._common(instance, kwargs)
        stream = kwargs.get("stream") is True
        usage_requested: bool | None = None
        if stream:
            options = kwargs.get("stream_options")
            usage_requested = isinstance(options, Mapping) and options.get("include_usage") is True
            if not usage_requested and self.request_stream_usage:
                kwargs["stream_options"] = {**(options if isinstance(options, Mapping) else {}), "include_usage": True}
                usage_requested = True
        messages = kwargs.get("messages") if operation == n.OP_CHAT else kwargs.get("prompt")
        return Request(provider, model, operation, attributes, messages, stream, usage_requested,
                       server=_server(instance))

    def completion(self, instance: Any, kwargs: dict[str, Any]) -> Request:
        return self.chat(instance, kwargs, n.OP_TEXT_COMPLETION)

    def responses(self, instance: Any, kwargs: dict[str, Any]) -> Request:
        provider, model, attributes = self._common(instance, kwargs)
        # a Responses stream always ends with response.completed, which carries usage
        return Request(provider, model, n.OP_CHAT, attributes, kwargs.get("input"), kwargs.get("stream") is True,
                       server=_server(instance))

    def embeddings(self, instance: Any, kwargs: dict[str, Any]) -> Request:
        provider, model, _ = self._common(instance, kwargs)
        return Request(provider, model, n.OP_EMBEDDINGS, server=_server(instance))


_finish, _finish_async = sdk_result_handlers("openai")


_CHAT = "openai.resources.chat.completions.completions"
_RESPONSES = "openai.resources.responses.responses"
_EMBEDDINGS = "openai.resources.embeddings"
_COMPLETIONS = "openai.resources.completions"


class OpenAIInstrumentor(SDKInstrumentor):
    """``instrument(provider_by_host={"vllm.internal:8000": "vllm"}, request_stream_usage=False,
    tracer_provider=None, meter_provider=None, logger_provider=None)``"""

    name: ClassVar[str] = "openai"
    instruments: ClassVar[tuple[str, ...]] = ("openai >= 1.40",)

    def targets(self) -> Sequence[Target]:
        by_host = self.options.get("provider_by_host")
        request_usage = self.options.get("request_stream_usage")
        if request_usage is None:
            raw = os.environ.get(STREAM_USAGE_ENV, "").strip().lower()
            request_usage = raw in ("1", "true", "yes", "on")
            if raw and not request_usage and raw not in ("0", "false", "no", "off"):
                internal_error(f"setting {STREAM_USAGE_ENV}", ValueError(f"expected true/false, got {raw!r}"))
        describe = _Describer(ProviderResolver(by_host), bool(request_usage))
        chat, telemetry = describe.chat, self.telemetry

        def sync(read: Describe) -> Wrapper:
            return sync_wrapper(read, _finish, telemetry)

        def async_(read: Describe) -> Wrapper:
            return async_wrapper(read, _finish_async, telemetry)

        return (
            Target(_CHAT, "Completions", "create", sync(chat)),
            Target(_CHAT, "Completions", "parse", sync(chat)),
            Target(_CHAT, "AsyncCompletions", "create", async_(chat)),
            Target(_CHAT, "AsyncCompletions", "parse", async_(chat)),
            Target(_RESPONSES, "Responses", "create", sync(describe.responses)),
            Target(_RESPONSES, "Responses", "parse", sync(describe.responses)),
            Target(_RESPONSES, "AsyncResponses", "create", async_(describe.responses)),
            Target(_RESPONSES, "AsyncResponses", "parse", async_(describe.responses)),
            Target(_EMBEDDINGS, "Embeddings", "create", sync(describe.embeddings)),
            Target(_EMBEDDINGS, "AsyncEmbeddings", "create", async_(describe.embeddings)),
            Target(_COMPLETIONS, "Completions", "create", sync(describe.completion)),
            Target(_COMPLETIONS, "AsyncCompletions", "create", async_(describe.completion)),
        )


__all__ = ["OpenAIInstrumentor"]
