"""Reads model, provider, request parameters, usage and text from LlamaIndex payloads.

Duck-typed on purpose: event payloads are pydantic models whose fields vary
between LlamaIndex releases and third-party LLM packages, and a field that is
missing or of an odd type must give ``None`` rather than an exception.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from llm_otel.adapter import LLMCall
from llm_otel.adapter import names as n

# LlamaIndex integration package (``llama_index.llms.<pkg>`` / ``llama_index.embeddings.<pkg>``)
# -> ``gen_ai.provider.name`` as the GenAI semantic conventions spell it.
_PROVIDER_BY_PACKAGE: Mapping[str, str] = {
    "openai": "openai",
    "azure_openai": "azure.ai.openai",
    "azure_inference": "azure.ai.inference",
    "anthropic": "anthropic",
    "bedrock": "aws.bedrock",
    "bedrock_converse": "aws.bedrock",
    "vertex": "gcp.vertex_ai",
    "gemini": "gcp.gemini",
    "google_genai": "gcp.gen_ai",
    "mistralai": "mistral_ai",
    "cohere": "cohere",
    "groq": "groq",
    "deepseek": "deepseek",
    "perplexity": "perplexity",
    "ibm": "ibm.watsonx.ai",
    "xai": "x_ai",
}
# Longest first, so ``azure_openai_llm`` is not taken for ``openai``; with and without underscores.
_CLASS_NAME_PREFIXES: tuple[tuple[str, str], ...] = tuple(
    sorted(
        {
            (spelling, provider)
            for package, provider in _PROVIDER_BY_PACKAGE.items()
            for spelling in (package, package.replace("_", ""))
        },
        key=lambda item: len(item[0]),
        reverse=True,
    )
)
_FRAMEWORK_KINDS = ("llms", "embeddings")
_USAGE_KEYS = ("prompt_tokens", "completion_tokens", "input_tokens", "output_tokens")
_PLACEHOLDER_MODELS = frozenset({"", "unknown", "default"})

_provider_cache: dict[type, str | None] = {}


def get(obj: Any, name: str) -> Any:
    """``obj.name`` or ``obj[name]``; None when absent or when reading it raises."""
    if obj is None:
        return None
    if isinstance(obj, Mapping):
        try:
            return obj.get(name)
        except Exception:
            return None
    try:
        return getattr(obj, name, None)
    except Exception:  # properties of half-built objects can raise
        return None


def text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _model_name(value: Any) -> str | None:
    name = text(value)
    return None if name is None or name.lower() in _PLACEHOLDER_MODELS else name


def provider_of(instance: Any) -> str | None:
    """Provider from the LlamaIndex integration package that defines the LLM/embedding class."""
    if instance is None:
        return None
    cls = type(instance)
    if cls in _provider_cache:
        return _provider_cache[cls]
    parts = (getattr(cls, "__module__", "") or "").split(".")
    provider = None
    if len(parts) >= 3 and parts[0] == "llama_index" and parts[1] in _FRAMEWORK_KINDS:
        provider = _PROVIDER_BY_PACKAGE.get(parts[2])
    _provider_cache[cls] = provider
    return provider


def provider_from_class_name(model_dict: Any) -> str | None:
    """Fallback when the instance is unknown: LlamaIndex ``class_name()`` values like ``openai_llm``."""
    name = text(get(model_dict, "class_name"))
    if name is None:
        return None
    lowered = name.lower()
    return next((provider for prefix, provider in _CLASS_NAME_PREFIXES if lowered.startswith(prefix)), None)


def model_of(model_dict: Any, instance: Any) -> str | None:
    """Request model from the event's ``model_dict`` or, failing that, the LLM's metadata."""
    for key in ("model", "model_name", "deployment_name", "engine"):
        found = _model_name(get(model_dict, key))
        if found is not None:
            return found
    if instance is None:
        return None
    return _model_name(get(get(instance, "metadata"), "model_name")) or _model_name(
        get(instance, "model_name")
    )


def request_attributes(model_dict: Any) -> dict[str, Any] | None:
    attributes: dict[str, Any] = {}
    temperature = get(model_dict, "temperature")
    if isinstance(temperature, (int, float)) and not isinstance(temperature, bool):
        attributes[n.GEN_AI_REQUEST_TEMPERATURE] = float(temperature)
    max_tokens = get(model_dict, "max_tokens")
    if isinstance(max_tokens, int) and not isinstance(max_tokens, bool) and max_tokens > 0:
        attributes[n.GEN_AI_REQUEST_MAX_TOKENS] = max_tokens
    return attributes or None


def input_messages(messages: Any) -> Any:
    """LlamaIndex ``ChatMessage`` list (or a prompt string) as role/content dicts for the core."""
    if isinstance(messages, str):
        return messages
    if not isinstance(messages, Sequence):
        return None
    converted = []
    for message in messages:
        role = get(message, "role")
        role = get(role, "value") or role
        converted.append({"role": str(role or "user"), "content": get(message, "content")})
    return converted


def usage_from_kwargs(response: Any) -> dict[str, Any] | None:
    """Token counts some LlamaIndex LLM packages put in ``additional_kwargs``."""
    for holder in (response, get(response, "message")):
        extra = get(holder, "additional_kwargs")
        if isinstance(extra, Mapping):
            found = {key: extra[key] for key in _USAGE_KEYS if extra.get(key) is not None}
            if found:
                return found
    return None


def response_text(response: Any) -> str | None:
    return text(get(response, "text")) or text(get(get(response, "message"), "content"))


def apply_response(call: LLMCall, response: Any, *, with_text: bool = True) -> None:
    """Fold a ``ChatResponse``/``CompletionResponse`` into the call: raw payload first, then kwargs."""
    raw = get(response, "raw")
    if raw is not None:
        call.set_response(raw)
    if not call.usage_known:
        usage = usage_from_kwargs(response)
        if usage is not None:
            call.set_usage(usage)
    if with_text and call.wants_text and not call.has_output_text:
        found = response_text(response)
        if found is not None:
            call.add_output_text(found)


def is_stream(result: Any) -> bool:
    """A generator an LLM method returned: the call goes on until the stream ends."""
    return hasattr(result, "__next__") or hasattr(result, "__anext__")
