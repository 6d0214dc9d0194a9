"""Reads LangChain callback payloads without trusting their shape.

Every function here is duck-typed and total: ``None``, missing keys, odd
types and half-built objects give ``None`` or an empty result, never an
exception. Nothing here imports LangChain.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence, Sized
from dataclasses import dataclass, field
from typing import Any

from llm_otel import adapter
from llm_otel.adapter import LLMCall
from llm_otel.adapter import names as n

# Short local names for the contract's keys (defined once in the core, published as adapter.names).
GEN_AI_TOOL_NAME = n.GEN_AI_TOOL_NAME
GEN_AI_TOOL_DESCRIPTION = n.GEN_AI_TOOL_DESCRIPTION
GEN_AI_TOOL_TYPE = n.GEN_AI_TOOL_TYPE
GEN_AI_TOOL_CALL_ID = n.GEN_AI_TOOL_CALL_ID
GEN_AI_TOOL_CALL_ARGUMENTS = n.GEN_AI_TOOL_CALL_ARGUMENTS
GEN_AI_TOOL_CALL_RESULT = n.GEN_AI_TOOL_CALL_RESULT
GEN_AI_WORKFLOW_NAME = n.GEN_AI_WORKFLOW_NAME
GEN_AI_AGENT_NAME = n.GEN_AI_AGENT_NAME
GEN_AI_RETRIEVAL_QUERY_TEXT = n.GEN_AI_RETRIEVAL_QUERY_TEXT
LLM_RETRIEVAL_DOCUMENT_COUNT = n.LLM_RETRIEVAL_DOCUMENT_COUNT

OP_CHAT = n.OP_CHAT
OP_TEXT_COMPLETION = n.OP_TEXT_COMPLETION
OP_EXECUTE_TOOL = n.OP_EXECUTE_TOOL
OP_RETRIEVAL = n.OP_RETRIEVAL
OP_INVOKE_AGENT = n.OP_INVOKE_AGENT
OP_INVOKE_WORKFLOW = n.OP_INVOKE_WORKFLOW

_NAME_LIMIT = 128

# LangChain's ``ls_provider`` (and ``model_provider``) values -> ``gen_ai.provider.name``.
_PROVIDERS: dict[str, str] = {
    "openai": "openai",
    "azure": "azure.ai.openai",
    "azure_openai": "azure.ai.openai",
    "azureopenai": "azure.ai.openai",
    "azure_ai": "azure.ai.inference",
    "azureai": "azure.ai.inference",
    "anthropic": "anthropic",
    "google_genai": "gcp.gen_ai",
    "google": "gcp.gen_ai",
    "google_vertexai": "gcp.vertex_ai",
    "vertexai": "gcp.vertex_ai",
    "google_anthropic_vertex": "gcp.vertex_ai",
    "gemini": "gcp.gemini",
    "amazon_bedrock": "aws.bedrock",
    "bedrock": "aws.bedrock",
    "bedrock_converse": "aws.bedrock",
    "mistral": "mistral_ai",
    "mistralai": "mistral_ai",
    "cohere": "cohere",
    "groq": "groq",
    "xai": "x_ai",
    "deepseek": "deepseek",
    "perplexity": "perplexity",
    "ibm": "ibm.watsonx.ai",
    "watsonx": "ibm.watsonx.ai",
}
_UNSAFE = re.compile(r"[^a-z0-9._-]+")
_ROLES = {"human": "user", "ai": "assistant", "system": "system", "developer": "system", "tool": "tool",
          "function": "tool"}
# Ids LangChain makes up for messages when the provider sent none (``lc_run-<uuid>``).
_SYNTHETIC_ID_PREFIX = "lc_"


# Whether a payload type is a mapping / a sequence of items, decided once per type: the ABC checks
# are the dearest part of reading a payload (LangChain's objects are not registered with them).
_TYPES_LIMIT = 512
_mapping_types: dict[type, bool] = {dict: True}
_list_types: dict[type, bool] = {list: True, tuple: True, str: False, bytes: False, bytearray: False}


def is_mapping(value: Any) -> bool:
    kind = type(value)
    found = _mapping_types.get(kind)
    if found is None:
        found = isinstance(value, Mapping)
        if len(_mapping_types) < _TYPES_LIMIT:
            _mapping_types[kind] = found
    return found


def get(obj: Any, key: str) -> Any:
    """``obj[key]`` for mappings, ``obj.key`` otherwise; ``None`` whenever that fails."""
    if obj is None:
        return None
    try:
        return obj.get(key) if is_mapping(obj) else getattr(obj, key, None)
    except Exception:  # hostile __getattr__/__getitem__ must not reach the app
        return None


def text(value: Any, limit: int = _NAME_LIMIT) -> str | None:
    return adapter.clean_text(value, limit) if isinstance(value, str) and value else None


def is_list(value: Any) -> bool:
    """A sequence of items (not text or bytes, whose ``in`` and items behave differently)."""
    kind = type(value)
    found = _list_types.get(kind)
    if found is None:
        found = isinstance(value, Sequence) and not isinstance(value, (str, bytes, bytearray))
        if len(_list_types) < _TYPES_LIMIT:
            _list_types[kind] = found
    return found


def number(value: Any) -> int | float | None:
    return value if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def map_provider(raw: Any) -> str | None:
    """The GenAI provider name for a LangChain provider key (unknown keys pass through, sanitised)."""
    name = text(raw, 64)
    if name is None:
        return None
    key = name.strip().lower()
    mapped = _PROVIDERS.get(key)
    if mapped is not None:
        return mapped
    cleaned = _UNSAFE.sub("_", key).strip("_")
    return cleaned or None


def _provider_from_type(llm_type: Any) -> str | None:
    """Fallback from ``invocation_params['_type']`` (``openai-chat``, ``azure-openai-chat``...)."""
    kind = text(llm_type)
    if kind is None:
        return None
    kind = kind.lower()
    for prefix, provider in (("azure", "azure.ai.openai"), ("openai", "openai"), ("anthropic", "anthropic")):
        if kind.startswith(prefix):
            return provider
    return None


def run_name(serialized: Any, kwargs: Mapping[str, Any], default: str) -> str:
    """``name`` from the callback (run_name or the runnable's name), else the serialized name/class."""
    found = text(kwargs.get("name")) or text(get(serialized, "name"))
    if found is None:
        ids = get(serialized, "id")
        if is_list(ids) and ids:
            found = text(ids[-1])
    return found or default


@dataclass
class ModelRequest:
    """What a chat model / LLM start event says about the request."""

    model: str | None = None
    provider: str | None = None
    attributes: dict[str, Any] = field(default_factory=dict)
    task_type: str | None = None
    prompt_name: str | None = None
    prompt_version: str | None = None


# What model_request reads, for its memo key (the values and their types: 1, 1.0 and True are equal keys).
_PARAM_KEYS = ("model", "model_name", "model_id", "deployment_name", "azure_deployment", "_type", "temperature",
               "max_tokens", "max_completion_tokens", "max_output_tokens")
_META_KEYS = ("ls_model_name", "ls_provider", "ls_temperature", "ls_max_tokens", n.LLM_TASK_TYPE, n.LLM_PROMPT_NAME,
              n.LLM_PROMPT_VERSION)
_INIT_KEYS = ("model", "model_name", "model_id", "deployment_name")
_REQUESTS_LIMIT = 256
# Requests read from plain-dict payloads, shared by every start event with the same values (the
# returned ModelRequest is never changed by its users). A full table stops admitting new keys.
_requests: dict[tuple[Any, ...], ModelRequest] = {}


def model_request(serialized: Any, invocation_params: Any, metadata: Any) -> ModelRequest:
    params = invocation_params if is_mapping(invocation_params) else {}
    meta = metadata if is_mapping(metadata) else {}
    init = get(serialized, "kwargs")
    if type(params) is not dict or type(meta) is not dict or (init is not None and type(init) is not dict):
        return _read_request(params, meta, init)
    values = (*map(params.get, _PARAM_KEYS), *map(meta.get, _META_KEYS),
              *(map(init.get, _INIT_KEYS) if init is not None else ()))
    key = (values, tuple(map(type, values)))
    try:
        found = _requests.get(key)
    except Exception:  # an unhashable (or hostile) value where a name belongs: read it, do not keep it
        return _read_request(params, meta, init)
    if found is None:
        found = _read_request(params, meta, init)
        if len(_requests) < _REQUESTS_LIMIT:
            _requests[key] = found
    return found


def _read_request(params: Mapping[str, Any], meta: Mapping[str, Any], init: Any) -> ModelRequest:
    request = ModelRequest()
    for source, keys in (
        (params, ("model", "model_name", "model_id", "deployment_name", "azure_deployment")),
        (meta, ("ls_model_name",)),
        (init, ("model", "model_name", "model_id", "deployment_name")),
    ):
        for key in keys:
            request.model = text(get(source, key), 256)
            if request.model:
                break
        if request.model:
            break
    request.provider = map_provider(meta.get("ls_provider")) or _provider_from_type(params.get("_type"))

    temperature = number(params.get("temperature"))
    if temperature is None:
        temperature = number(meta.get("ls_temperature"))
    max_tokens = None
    for value in (params.get("max_tokens"), params.get("max_completion_tokens"), params.get("max_output_tokens"),
                  meta.get("ls_max_tokens")):
        max_tokens = number(value)
        if max_tokens is not None:
            break
    if temperature is not None:
        request.attributes[n.GEN_AI_REQUEST_TEMPERATURE] = temperature
    if max_tokens is not None:
        request.attributes[n.GEN_AI_REQUEST_MAX_TOKENS] = int(max_tokens)

    # Run metadata can carry the product's routing labels: config={"metadata": {"llm.task_type": "rag"}}.
    request.task_type = text(meta.get(n.LLM_TASK_TYPE))
    request.prompt_name = text(meta.get(n.LLM_PROMPT_NAME))
    request.prompt_version = text(meta.get(n.LLM_PROMPT_VERSION))
    return request


def chat_messages(messages: Any) -> list[dict[str, Any]] | None:
    """The first message list of ``on_chat_model_start`` as role/content dicts (for opt-in capture)."""
    if not is_list(messages) or not messages:
        return None
    first = messages[0]
    if not is_list(first):
        return None
    out = []
    for message in first:
        kind = text(get(message, "type")) or "user"
        role = text(get(message, "role")) if kind == "chat" else _ROLES.get(kind, kind)
        out.append({"role": role or "user", "content": get(message, "content")})
    return out


def first_prompt(prompts: Any) -> str | None:
    if is_list(prompts) and prompts:
        return text(prompts[0], 1_000_000)
    return None


def is_hidden(tags: Any) -> bool:
    return is_list(tags) and "langsmith:hidden" in tags


def apply_llm_result(call: LLMCall, response: Any) -> list[str]:
    """Copy usage, model, id, finish reasons and provider from an ``LLMResult`` onto ``call``.

    Returns the structural problems found (for the unknown-input counter).
    """
    problems: list[str] = []
    generations = get(response, "generations")
    if response is None or generations is None:
        return ["llm_result_missing"]
    candidates: list[Any] = []
    if is_list(generations):
        for batch in generations:
            if is_list(batch):
                candidates.extend(batch)
    if not candidates:
        problems.append("generations_empty")

    reasons: list[str] = []
    read_message = False
    for generation in candidates:
        message = get(generation, "message")
        if message is not None and not read_message:
            # The first candidate carries the usage; providers repeat it on every candidate (n > 1).
            call.set_response(message)
            read_message = True
        elif message is None and call.wants_text:
            generated = text(get(generation, "text"), 1_000_000)
            if generated:
                call.add_output_text(generated)
        for source in (get(generation, "generation_info"), get(message, "response_metadata")):
            reason = text(get(source, "finish_reason")) or text(get(source, "stop_reason"))
            if reason and reason not in reasons:
                reasons.append(reason)
    if reasons:
        call.set_finish_reasons(reasons)

    llm_output = get(response, "llm_output")
    if is_mapping(llm_output):
        if not call.usage_known:
            usage = llm_output.get("token_usage") or llm_output.get("usage")
            if isinstance(usage, Mapping) and usage:
                call.set_usage(usage)
        if call.response_model is None:
            call.set_response_model(text(llm_output.get("model_name"), 256) or text(llm_output.get("model"), 256))
        if call.response_id is None:
            call.set_response_id(text(llm_output.get("id"), 256))

    response_id = call.response_id
    if response_id is not None and response_id.startswith(_SYNTHETIC_ID_PREFIX):
        call.discard_response_id()
    if not call.provider:
        call.set_provider(map_provider(call.response_provider))
    return problems


def output_text(output: Any) -> str | None:
    """A tool's result as text (ToolMessage content, or ``str()`` of anything else)."""
    if output is None:
        return None
    content = get(output, "content") if not isinstance(output, (str, Mapping)) else None
    value = content if content is not None else output
    if isinstance(value, str):
        return value
    try:
        return str(value)
    except Exception:
        return None


def document_count(documents: Any) -> int | None:
    if isinstance(documents, Sized) and not isinstance(documents, (str, bytes, Mapping)):
        try:
            return len(documents)
        except Exception:
            return None
    return None
