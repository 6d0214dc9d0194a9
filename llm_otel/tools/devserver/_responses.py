"""OpenAI Responses API endpoint (``POST /v1/responses``) of the development stand-in server.

Streams carry the same event sequence as the real API, which the ``openai``
SDK's ``responses.stream()`` helper checks: ``response.created``,
``response.in_progress``, ``response.output_item.added``, content or
argument deltas, their ``.done`` events, ``response.output_item.done`` and
``response.completed`` (``response.incomplete`` when ``max_output_tokens`` cut
the answer).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ._content import Reply, Usage, count_tokens, expected_reply, split_pieces
from ._wire import Answer, Context, Frame, RequestError, answer_for, optional_int, require_str, sse


def responses_usage(usage: Usage) -> dict[str, Any]:
    return {
        "input_tokens": usage.input_tokens,
        "input_tokens_details": {"cached_tokens": usage.cached_input_tokens, "cache_write_tokens": 0},
        "output_tokens": usage.output_tokens,
        "output_tokens_details": {"reasoning_tokens": usage.reasoning_tokens},
        "total_tokens": usage.total_tokens,
    }


def _output_item(reply: Reply, item_id: str, *, done: bool) -> dict[str, Any]:
    status = "incomplete" if reply.finish_reason == "length" else "completed"
    if reply.tool_call is not None:
        call = reply.tool_call
        return {
            "type": "function_call",
            "id": item_id,
            "call_id": f"call_{call.key}",
            "name": call.name,
            "arguments": call.arguments if done else "",
            "status": status if done else "in_progress",
        }
    return {
        "type": "message",
        "id": item_id,
        "status": status if done else "in_progress",
        "role": "assistant",
        "content": [_text_part(reply.text)] if done else [],
    }


def _text_part(text: str) -> dict[str, Any]:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


def _response(reply: Reply, base: dict[str, Any], item_id: str) -> dict[str, Any]:
    incomplete = reply.finish_reason == "length"
    return {
        **base,
        "status": "incomplete" if incomplete else "completed",
        "incomplete_details": {"reason": "max_output_tokens"} if incomplete else None,
        "output": [_output_item(reply, item_id, done=True)],
        "usage": responses_usage(reply.usage),
    }


def _stream(reply: Reply, base: dict[str, Any], final: dict[str, Any], item_id: str) -> tuple[Frame, ...]:
    events: list[Frame] = []

    def emit(kind: str, tokens: int = 0, **fields: Any) -> None:
        events.append(sse({"type": kind, "sequence_number": len(events), **fields}, kind, tokens=tokens))

    pending = {**base, "status": "in_progress", "incomplete_details": None, "output": [], "usage": None}
    emit("response.created", response=pending)
    emit("response.in_progress", response=pending)
    at: dict[str, Any] = {"item_id": item_id, "output_index": 0}
    call = reply.tool_call
    name_tokens = count_tokens(call.name) if call is not None else 0
    emit(
        "response.output_item.added",
        name_tokens,
        output_index=0,
        item=_output_item(reply, item_id, done=False),
    )
    if call is None:
        emit("response.content_part.added", **at, content_index=0, part=_text_part(""))
        for piece in split_pieces(reply.text):
            emit("response.output_text.delta", 1, **at, content_index=0, delta=piece, logprobs=[])
        emit("response.output_text.done", **at, content_index=0, text=reply.text, logprobs=[])
        emit("response.content_part.done", **at, content_index=0, part=_text_part(reply.text))
    else:
        for piece in split_pieces(call.arguments):
            emit("response.function_call_arguments.delta", 1, **at, delta=piece)
        emit("response.function_call_arguments.done", **at, name=call.name, arguments=call.arguments)
    emit("response.output_item.done", output_index=0, item=_output_item(reply, item_id, done=True))
    emit("response.incomplete" if final["status"] == "incomplete" else "response.completed", response=final)
    return tuple(events)


def responses(body: Mapping[str, Any], ctx: Context) -> Answer:
    model = require_str(body, "model")
    given = body.get("input")
    if not isinstance(given, (str, list)):
        raise RequestError(400, "'input' is required and must be a string or an array of input items")
    instructions = body.get("instructions")
    max_output_tokens = optional_int(body, "max_output_tokens")
    reply = expected_reply(
        model,
        given,
        system=instructions,
        tools=body.get("tools"),
        tool_choice=body.get("tool_choice"),
        max_tokens=max_output_tokens,
    )
    base: dict[str, Any] = {
        "id": ctx.new_id("resp_"),
        "object": "response",
        "created_at": ctx.now(),
        "model": model,
        "error": None,
        "instructions": instructions,
        "max_output_tokens": max_output_tokens,
        "metadata": body.get("metadata") or {},
        "parallel_tool_calls": True,
        "previous_response_id": body.get("previous_response_id"),
        "reasoning": {"effort": None, "summary": None},
        "store": body.get("store", True),
        "temperature": body.get("temperature", 1.0),
        "text": {"format": {"type": "text"}},
        "tool_choice": body.get("tool_choice", "auto"),
        "tools": body.get("tools") or [],
        "top_p": body.get("top_p", 1.0),
        "truncation": "disabled",
        "user": None,
    }
    prefix = "fc_" if reply.tool_call is not None else "msg_"
    item_id = ctx.new_id(prefix)
    final = _response(reply, base, item_id)
    if body.get("stream") is True:
        return answer_for(reply, frames=_stream(reply, base, final, item_id))
    return answer_for(reply, body=final)
