"""Anthropic-compatible endpoints of the development stand-in server.

``POST /v1/messages`` (plain and streamed) and ``GET /v1/models`` in the
Anthropic shape. Credentials (``x-api-key`` or ``Authorization``) and
``anthropic-version`` are accepted and not checked. Usage follows Anthropic's
semantics: ``input_tokens`` excludes the cached tokens, which are reported as
``cache_read_input_tokens``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ._content import Reply, Usage, count_tokens, expected_reply, split_pieces
from ._wire import (
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

ANTHROPIC_MODELS = (
    "claude-haiku-4-5",
    "claude-sonnet-4-6",
    "claude-opus-4-7",
)

_STOP_REASONS = {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use"}

_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    405: "invalid_request_error",
    413: "request_too_large",
    429: "rate_limit_error",
    529: "overloaded_error",
}


def anthropic_error(status: int, message: str, request_id: str) -> dict[str, Any]:
    kind = _ERROR_TYPES.get(status, "api_error" if status >= 500 else "invalid_request_error")
    return {"type": "error", "error": {"type": kind, "message": message}, "request_id": request_id}


ANTHROPIC = ApiFamily("anthropic", "request-id", anthropic_error)


def anthropic_usage(usage: Usage, *, output_tokens: int | None = None) -> dict[str, Any]:
    data: dict[str, Any] = {
        "input_tokens": usage.uncached_input_tokens,
        "output_tokens": usage.output_tokens if output_tokens is None else output_tokens,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": usage.cached_input_tokens,
        "service_tier": "standard",
    }
    if usage.reasoning_tokens:
        data["output_tokens_details"] = {"thinking_tokens": usage.reasoning_tokens}
    return data


def _block(reply: Reply, *, done: bool) -> dict[str, Any]:
    call = reply.tool_call
    if call is None:
        return {"type": "text", "text": reply.text if done else ""}
    return {
        "type": "tool_use",
        "id": f"toolu_{call.key}",
        "name": call.name,
        "input": call.input if done else {},
    }


def _stream(reply: Reply, message: dict[str, Any]) -> tuple[Frame, ...]:
    def event(kind: str, tokens: int = 0, **fields: Any) -> Frame:
        return sse({"type": kind, **fields}, kind, tokens=tokens)

    usage = reply.usage
    start = {**message, "content": [], "stop_reason": None, "stop_sequence": None}
    start["usage"] = anthropic_usage(usage, output_tokens=min(1, usage.output_tokens))
    call = reply.tool_call
    frames = [
        event("message_start", message=start),
        event(
            "content_block_start",
            count_tokens(call.name) if call else 0,
            index=0,
            content_block=_block(reply, done=False),
        ),
        event("ping"),
    ]
    if call is None:
        frames.extend(
            event("content_block_delta", 1, index=0, delta={"type": "text_delta", "text": piece})
            for piece in split_pieces(reply.text)
        )
    else:
        frames.extend(
            event(
                "content_block_delta", 1, index=0, delta={"type": "input_json_delta", "partial_json": piece}
            )
            for piece in split_pieces(call.arguments)
        )
    delta_usage: dict[str, Any] = {"output_tokens": usage.output_tokens}
    if usage.reasoning_tokens:
        delta_usage["output_tokens_details"] = {"thinking_tokens": usage.reasoning_tokens}
    frames += [
        event("content_block_stop", index=0),
        event(
            "message_delta",
            delta={"stop_reason": message["stop_reason"], "stop_sequence": None},
            usage=delta_usage,
        ),
        event("message_stop"),
    ]
    return tuple(frames)


def messages(body: Mapping[str, Any], ctx: Context) -> Answer:
    model = require_str(body, "model")
    history = require_list(body, "messages")
    max_tokens = optional_int(body, "max_tokens")
    if max_tokens is None:
        raise RequestError(400, "'max_tokens' is required")
    reply = expected_reply(
        model,
        history,
        system=body.get("system"),
        tools=body.get("tools"),
        tool_choice=body.get("tool_choice"),
        max_tokens=max_tokens,
    )
    message: dict[str, Any] = {
        "id": ctx.new_id("msg_"),
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [_block(reply, done=True)],
        "stop_reason": _STOP_REASONS[reply.finish_reason],
        "stop_sequence": None,
        "usage": anthropic_usage(reply.usage),
    }
    if body.get("stream") is True:
        return answer_for(reply, frames=_stream(reply, message))
    return answer_for(reply, body=message)


def list_models(body: Mapping[str, Any], ctx: Context) -> Answer:
    data = [
        {"type": "model", "id": model, "display_name": model, "created_at": "2025-01-01T00:00:00Z"}
        for model in ANTHROPIC_MODELS
    ]
    return Answer(
        body={"data": data, "has_more": False, "first_id": data[0]["id"], "last_id": data[-1]["id"]}
    )


def retrieve_model(body: Mapping[str, Any], ctx: Context) -> Answer:
    model = require_str(body, "model")
    return Answer(
        body={"type": "model", "id": model, "display_name": model, "created_at": "2025-01-01T00:00:00Z"}
    )
