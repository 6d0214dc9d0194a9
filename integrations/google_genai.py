"""The ``google-genai`` SDK instrumentor (Gemini Developer API and Vertex AI): generate content,
streaming or not, and embeddings, sync and async.

    >>> from llm_otel.integrations.google_genai import GoogleGenAIInstrumentor
    >>> GoogleGenAIInstrumentor().instrument()  # or llm_otel.instrument("google_genai"), or opentelemetry-instrument

``client.models.generate_content`` / ``generate_content_stream`` / ``embed_content`` (and
``client.aio.models.*``, and chats, which call them) may send several requests: automatic
function calling answers the model's function calls and asks again, automatic continuation
resumes a long answer. One record per API call, so the methods wrapped are the ones that
send one request each (``Models._generate_content``, ``_generate_content_stream``,
``_embed_content`` and their ``AsyncModels`` forms; an SDK without one of them gets its
public method wrapped instead); the public methods, their arguments, return values and
exceptions are untouched. A stream is the SDK's own generator, handed on
as a generator (an async one for ``client.aio``) that is watched while it is read.

Spans report ``gen_ai.provider.name`` ``gcp.gemini`` for the Gemini Developer API and
``gcp.vertex_ai`` for a Vertex AI client, and ``gen_ai.operation.name`` ``generate_content``
(``embeddings`` for ``embed_content``). Usage comes from the responses' ``usage_metadata``
(every stream chunk carries the usage so far; the last one is the total).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from llm_otel import LLMCall, adapter
from llm_otel.integrations._instrumentor import (
    AsyncFinish,
    Describe,
    Finish,
    Request,
    SDKInstrumentor,
    Target,
    Wrapper,
    async_wrapper,
    client_server,
    request_numbers,
    sync_wrapper,
)

n = adapter.names

GEMINI = "gcp.gemini"
VERTEX_AI = "gcp.vertex_ai"
_CONFIG_NUMBERS = (
    ("max_output_tokens", n.GEN_AI_REQUEST_MAX_TOKENS),
    ("temperature", n.GEN_AI_REQUEST_TEMPERATURE),
    ("top_p", n.GEN_AI_REQUEST_TOP_P),
)
_ROLES = {"model": "assistant"}  # Gemini's role names -> the conventions' message roles


def _field(value: Any, name: str) -> Any:
    """A field of a dict or of one of the SDK's pydantic types (configs, contents and parts are either)."""
    if isinstance(value, Mapping):
        return value.get(name)
    return getattr(value, name, None)


def _provider(instance: Any) -> str:
    return VERTEX_AI if getattr(getattr(instance, "_api_client", None), "vertexai", False) else GEMINI


def _server(instance: Any) -> tuple[str, int | None] | None:
    """The endpoint the client sends to: Gemini's, a Vertex region's, or the ``base_url`` it was given."""
    api_client = getattr(instance, "_api_client", None)
    url = _field(getattr(api_client, "_http_options", None), "base_url")
    return client_server(api_client, url=url) if isinstance(url, str) and url else None


def _model(model: Any) -> str | None:
    """``gemini-2.5-flash`` from ``models/gemini-2.5-flash`` or a Vertex resource name
    (``projects/p/locations/l/publishers/google/models/gemini-2.5-flash``)."""
    if not isinstance(model, str) or not model:
        return None
    return model.rpartition("models/")[2] or model


def _attributes(config: Any) -> dict[str, Any] | None:
    return request_numbers(lambda name: _field(config, name), _CONFIG_NUMBERS)


def _texts(content: Any) -> list[dict[str, str]]:
    """The text parts of a content, a part, a list of parts or a string, as ``{"text": ...}`` blocks."""
    if isinstance(content, str):
        return [{"text": content}]
    parts = _field(content, "parts")
    if parts is None:
        parts = content if isinstance(content, list) else [content]
    return [{"text": text} for part in parts
            if isinstance(text := part if isinstance(part, str) else _field(part, "text"), str)]


def _messages(contents: Any, config: Any) -> list[dict[str, Any]]:
    """Gemini ``contents`` (and the config's system instruction) as chat messages for content capture.

    A list mixes contents (with a role) and loose parts or strings, which the SDK sends as one
    user turn; they are gathered the same way here.
    """
    messages: list[dict[str, Any]] = []
    system = _field(config, "system_instruction")
    if system is not None:
        messages.append({"role": "system", "content": _texts(system)})
    loose: list[dict[str, str]] | None = None
    for item in contents if isinstance(contents, list) else [contents]:
        if _field(item, "parts") is None:
            if loose is None:
                loose = []
                messages.append({"role": "user", "content": loose})
            loose.extend(_texts(item))
            continue
        loose = None
        role = _field(item, "role")
        messages.append({"role": _ROLES.get(role, role) if isinstance(role, str) else "user", "content": _texts(item)})
    return messages


def _describe(operation: str) -> Describe:
    def describe(instance: Any, kwargs: dict[str, Any]) -> Request:
        config = kwargs.get("config")
        # content settings are shared by every provider binding of the setup: the current one says
        wants_text = operation != n.OP_EMBEDDINGS and adapter.current().wants_text
        messages = _messages(kwargs.get("contents"), config) if wants_text else None
        attributes = _attributes(config) if operation != n.OP_EMBEDDINGS else None
        return Request(_provider(instance), _model(kwargs.get("model")), operation, attributes, messages,
                       server=_server(instance))

    return describe


def _finish(call: LLMCall, result: Any, request: Request) -> Any:
    call.set_response(result)
    call.end()
    return result


async def _finish_async(call: LLMCall, result: Any, request: Request) -> Any:
    return _finish(call, result, request)


def _finish_stream(call: LLMCall, result: Any, request: Request) -> Any:
    """The SDK's chunk generator (nothing sent yet: the request goes out on the first pull),
    watched until it ends, fails or is closed."""
    return adapter.watch_generator(result, adapter.CallWatch(call, activate=True))


async def _finish_async_stream(call: LLMCall, result: Any, request: Request) -> Any:
    """The async generator the awaited call hands back (the request is answered already)."""
    return adapter.watch_async_generator(result, adapter.CallWatch(call, activate=True))


_MODELS = "google.genai.models"


class GoogleGenAIInstrumentor(SDKInstrumentor):
    name: ClassVar[str] = "google_genai"
    instruments: ClassVar[tuple[str, ...]] = ("google-genai >= 1.0",)

    def targets(self) -> Sequence[Target]:
        generate, embed = _describe(n.OP_GENERATE_CONTENT), _describe(n.OP_EMBEDDINGS)
        telemetry = self.telemetry

        def sync(describe: Describe, finish: Finish) -> Wrapper:
            return sync_wrapper(describe, finish, telemetry)

        def async_(describe: Describe, finish: AsyncFinish) -> Wrapper:
            return async_wrapper(describe, finish, telemetry)

        # the one-request methods; the public ones (same arguments and results) where they are missing
        return (
            Target(_MODELS, "Models", "_generate_content", sync(generate, _finish), "generate_content"),
            Target(_MODELS, "Models", "_generate_content_stream", sync(generate, _finish_stream),
                   "generate_content_stream"),
            Target(_MODELS, "Models", "_embed_content", sync(embed, _finish), "embed_content"),
            Target(_MODELS, "AsyncModels", "_generate_content", async_(generate, _finish_async), "generate_content"),
            Target(_MODELS, "AsyncModels", "_generate_content_stream", async_(generate, _finish_async_stream),
                   "generate_content_stream"),
            Target(_MODELS, "AsyncModels", "_embed_content", async_(embed, _finish_async), "embed_content"),
        )


__all__ = ["GoogleGenAIInstrumentor"]
