"""OpenAI-compatible endpoints of the development stand-in server.

``POST /v1/chat/completions`` (plain and streamed), ``POST /v1/embeddings`` and
``GET /v1/models[/{id}]``; the Responses API lives in ``_responses.py``. Shapes
follow the public API reference, trimmed to what clients read.
"""

from __future__ import annotations

import base64
import struct
from collections.abc import Mapping
from typing import Any

from ._content import (
    Reply,
    Usage,
    count_tokens,
    embedding_vector,
    expected_reply,
    normalize_prompt,
    split_pieces,
)
from ._wire import (
    DONE,
    Answer,
    ApiFamily,
    Context,
    Frame,
    RequestError,
    answer_for,
    optional_int,
    require_list,
    require_str,
    sse,
)

OPENAI_MODELS = (
    "gpt-4o",
    "gpt-4o-mini",
    "gpt-4.1",
    "gpt-4.1-mini",
    "gpt-4.1-nano",
    "o3-mini",
    "o4-mini",
    "text-embedding-3-small",
    "text-embedding-3-large",
)

_ERROR_KINDS: dict[int, tuple[str, str | None]] = {
    400: ("invalid_request_error", None),
    401: ("invalid_request_error", "invalid_api_key"),
    403: ("invalid_request_error", "unsupported_country_region_territory"),
    404: ("invalid_request_error", "unknown_url"),
    405: ("invalid_request_error", None),
    429: ("requests", "rate_limit_exceeded"),
}


def openai_error(status: int, message: str, request_id: str) -> dict[str, Any]:
    kind, code = _ERROR_KINDS.get(
        status, ("server_error" if status >= 500 else "invalid_request_error", None)
    )
    return {"error": {"message": message, "type": kind, "param": None, "code": code}}


OPENAI = ApiFamily("openai", "x-request-id", openai_error)


def chat_usage(usage: Usage) -> dict[str, Any]:
    return {
        "prompt_tokens": usage.input_tokens,
        "completion_tokens": usage.output_tokens,
        "total_tokens": usage.total_tokens,
        "prompt_tokens_details": {"cached_tokens": usage.cached_input_tokens, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": usage.reasoning_tokens,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


def _message(reply: Reply) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": reply.text, "refusal": None, "annotations": []}
    if reply.tool_call is not None:
        call = reply.tool_call
        message["content"] = None
        message["tool_calls"] = [
            {
                "id": f"call_{call.key}",
                "type": "function",
                "function": {"name": call.name, "arguments": call.arguments},
            }
        ]
    return message


def _chat_frames(reply: Reply, base: dict[str, Any], include_usage: bool) -> tuple[Frame, ...]:
    def chunk(delta: dict[str, Any], finish: str | None = None, tokens: int = 0) -> Frame:
        payload = {
            **base,
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
        }
        if include_usage:
            payload["usage"] = None
        return sse(payload, tokens=tokens)

    frames: list[Frame] = []
    call = reply.tool_call
    if call is None:
        frames.append(chunk({"role": "assistant", "content": "", "refusal": None}))
        frames.extend(chunk({"content": piece}, tokens=1) for piece in split_pieces(reply.text))
    else:
        first = {
            "index": 0,
            "id": f"call_{call.key}",
            "type": "function",
            "function": {"name": call.name, "arguments": ""},
        }
        frames.append(
            chunk(
                {"role": "assistant", "content": None, "tool_calls": [first]}, tokens=count_tokens(call.name)
            )
        )
        frames.extend(
            chunk({"tool_calls": [{"index": 0, "function": {"arguments": piece}}]}, tokens=1)
            for piece in split_pieces(call.arguments)
        )
    frames.append(chunk({}, reply.finish_reason))
    if include_usage:
        frames.append(sse({**base, "choices": [], "usage": chat_usage(reply.usage)}))
    frames.append(DONE)
    return tuple(frames)


def chat_completions(body: Mapping[str, Any], ctx: Context) -> Answer:
    model = require_str(body, "model")
    messages = require_list(body, "messages")
    reply = expected_reply(
        model,
        messages,
        tools=body.get("tools"),
        tool_choice=body.get("tool_choice"),
        max_tokens=optional_int(body, "max_completion_tokens", "max_tokens"),
    )
    base: dict[str, Any] = {
        "id": ctx.new_id("chatcmpl-"),
        "object": "chat.completion",
        "created": ctx.now(),
        "model": model,
        "service_tier": "default",
        "system_fingerprint": "fp_standin",
    }
    if body.get("stream") is True:
        options = body.get("stream_options")
        include_usage = isinstance(options, Mapping) and options.get("include_usage") is True
        frames = _chat_frames(reply, {**base, "object": "chat.completion.chunk"}, include_usage)
        return answer_for(reply, frames=frames)
    choice = {"index": 0, "message": _message(reply), "logprobs": None, "finish_reason": reply.finish_reason}
    completion = {**base, "choices": [choice], "usage": chat_usage(reply.usage)}
    return answer_for(reply, body=completion)


def _embedding_inputs(value: object) -> list[tuple[str, int]]:
    """(text, token count) per input: strings, token arrays, or lists of either."""
    if isinstance(value, str) or (isinstance(value, list) and value and isinstance(value[0], int)):
        value = [value]
    if not isinstance(value, list) or not value:
        raise RequestError(400, "'input' must be a non-empty string or array")
    inputs: list[tuple[str, int]] = []
    for item in value:
        if isinstance(item, str) and item:
            inputs.append((item, count_tokens(item)))
        elif isinstance(item, list) and item and all(isinstance(t, int) for t in item):
            inputs.append((" ".join(map(str, item)), len(item)))
        else:
            raise RequestError(400, "'input' items must be non-empty strings or token arrays")
    return inputs


def embeddings(body: Mapping[str, Any], ctx: Context) -> Answer:
    model = require_str(body, "model")
    inputs = _embedding_inputs(body.get("input"))
    dimensions = optional_int(body, "dimensions") or (3072 if "large" in model else 1536)
    if not 1 <= dimensions <= 8192:
        raise RequestError(400, "'dimensions' must be between 1 and 8192")
    encoding = body.get("encoding_format") or "float"
    if encoding not in ("float", "base64"):
        raise RequestError(400, "'encoding_format' must be 'float' or 'base64'")
    data: list[dict[str, Any]] = []
    for index, (text, _) in enumerate(inputs):
        values = embedding_vector(model, text, dimensions)
        vector: list[float] | str = values
        if encoding == "base64":
            vector = base64.b64encode(struct.pack(f"<{dimensions}f", *values)).decode()
        data.append({"object": "embedding", "index": index, "embedding": vector})
    tokens = sum(count for _, count in inputs)
    usage = {"prompt_tokens": tokens, "total_tokens": tokens}
    answer = {"object": "list", "data": data, "model": model, "usage": usage}
    return Answer(body=answer, markers=normalize_prompt([text for text, _ in inputs]).markers)


def _model(model_id: str) -> dict[str, Any]:
    return {"id": model_id, "object": "model", "created": 1_700_000_000, "owned_by": "llm-otel-devserver"}


def list_models(body: Mapping[str, Any], ctx: Context) -> Answer:
    return Answer(body={"object": "list", "data": [_model(model) for model in OPENAI_MODELS]})


def retrieve_model(body: Mapping[str, Any], ctx: Context) -> Answer:
    return Answer(body=_model(require_str(body, "model")))
