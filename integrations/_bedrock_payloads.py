"""What Bedrock runtime answers say, read into a call: Converse responses and stream events, and the
model-specific bodies of ``invoke_model`` and ``invoke_model_with_response_stream``.

Bedrock counts cached input apart from ``inputTokens``; the kit's input count includes it, so every
reader goes through ``set_bedrock_usage``. Of the model families, Anthropic Claude (the Messages
API's bodies and stream events), Amazon Nova (Converse-shaped) and Amazon Titan text are read; every
family's stream ends with ``amazon-bedrock-invocationMetrics``, which carries the token counts
whatever the model, and wins over the model's own.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from llm_otel import LLMCall

INVOCATION_METRICS = "amazon-bedrock-invocationMetrics"
# Nova's invoke bodies and stream chunks use the Converse API's shapes
_CONVERSE_EVENTS = frozenset(("messageStart", "contentBlockStart", "contentBlockDelta", "contentBlockStop",
                              "messageStop", "metadata"))
# most chunks of a stream are text deltas: when the kit keeps no text they need no parsing
# (a chunk that does not start so exactly is parsed, so this is a shortcut, never a rule)
_DELTA_PREFIXES = (b'{"type":"content_block_delta"', b'{"contentBlockDelta"')


_INPUT_HEADER = "x-amzn-bedrock-input-token-count"
_OUTPUT_HEADER = "x-amzn-bedrock-output-token-count"
_CACHE_READ_HEADER = "x-amzn-bedrock-cache-read-input-token-count"
_CACHE_WRITE_HEADER = "x-amzn-bedrock-cache-write-input-token-count"


def _header_count(value: Any) -> Any:
    try:
        return int(value) if isinstance(value, str) else value
    except ValueError:
        return value  # not a number: the core counts it as unknown


def _count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def set_bedrock_usage(call: LLMCall, base_input: Any, output: Any, cache_read: Any, cache_write: Any) -> None:
    """Bedrock's counts: ``base_input`` leaves out the cached input that ``cache_read``/``cache_write`` count.

    A cache count Bedrock leaves out is taken from what the model's own events said, so the input
    stays the sum of the same parts. A value that is not a count is handed on as it is, for the
    core to count as unknown.
    """
    usage = call.usage
    read = cache_read if cache_read is not None else usage.cache_read_input_tokens
    write = cache_write if cache_write is not None else usage.cache_creation_input_tokens
    total = base_input
    if _count(base_input) and (read is None or _count(read)) and (write is None or _count(write)):
        total = base_input + (read or 0) + (write or 0)
    call.set_usage(input_tokens=total, output_tokens=output,
                   cache_read_input_tokens=read, cache_creation_input_tokens=write)


def set_converse_usage(call: LLMCall, usage: Mapping[str, Any]) -> None:
    set_bedrock_usage(call, usage.get("inputTokens"), usage.get("outputTokens"),
                      usage.get("cacheReadInputTokens"), usage.get("cacheWriteInputTokens"))


def read_converse(call: LLMCall, response: Mapping[str, Any]) -> None:
    """A Converse response (or a Nova ``invoke_model`` body): usage and stop reason."""
    usage = response.get("usage")
    if isinstance(usage, Mapping):
        set_converse_usage(call, usage)
    call.set_finish_reasons(response.get("stopReason"))
    if call.wants_text:
        output = response.get("output")
        message = output.get("message") if isinstance(output, Mapping) else None
        content = message.get("content") if isinstance(message, Mapping) else None
        for block in content if isinstance(content, list) else ():
            if isinstance(block, Mapping) and isinstance(block.get("text"), str):
                call.add_output_text(block["text"])


def read_converse_event(call: LLMCall, event: Mapping[str, Any]) -> None:
    """One ConverseStream event (or a Nova stream chunk): a content delta is a chunk (the first sets
    time to first chunk); the stop reason and usage come with ``messageStop`` and ``metadata``."""
    delta = event.get("contentBlockDelta")
    if delta is not None:
        call.add_chunk(None)
        if call.wants_text and isinstance(delta, Mapping):
            inner = delta.get("delta")
            text = inner.get("text") if isinstance(inner, Mapping) else None
            if isinstance(text, str):
                call.add_output_text(text)
        return
    stop = event.get("messageStop")
    if isinstance(stop, Mapping):
        call.set_finish_reasons(stop.get("stopReason"))
        return
    metadata = event.get("metadata")
    if isinstance(metadata, Mapping):
        usage = metadata.get("usage")
        if isinstance(usage, Mapping):
            set_converse_usage(call, usage)


def _without_model(message: dict[str, Any]) -> dict[str, Any]:
    """A Claude message without its ``model``: that name lacks the inference profile of the request's
    ``modelId`` (``global.``, ``us.``, an ARN), which decides the price; the call is priced by ``modelId``."""
    return {**message, "model": None} if "model" in message else message


def read_invoke_headers(call: LLMCall, headers: Mapping[str, Any]) -> None:
    """The token counts Bedrock sends as headers with every ``invoke_model`` answer, whatever the model."""
    if _INPUT_HEADER in headers or _OUTPUT_HEADER in headers:
        set_bedrock_usage(call, *(_header_count(headers.get(name)) for name in
                                  (_INPUT_HEADER, _OUTPUT_HEADER, _CACHE_READ_HEADER, _CACHE_WRITE_HEADER)))


def read_invoke_body(call: LLMCall, body: Any) -> None:
    """An ``invoke_model`` JSON body: Claude (usage, stop reason, id, model), Nova, Titan text."""
    if not isinstance(body, dict):
        return
    if body.get("type") == "message":
        call.set_response(_without_model(body))  # the Anthropic Messages API's own shape
    elif isinstance(body.get("output"), Mapping):
        read_converse(call, body)
    elif isinstance(body.get("results"), list):  # Titan text
        first = body["results"][0] if body["results"] else None
        if isinstance(first, Mapping):
            call.set_finish_reasons(first.get("completionReason"))
    else:
        call.set_finish_reasons(body.get("stop_reason"))  # Meta Llama, Claude text completions


def read_invoke_chunk(call: LLMCall, event: Mapping[str, Any]) -> None:
    """One event of ``invoke_model_with_response_stream``: ``{"chunk": {"bytes": b"<model JSON>"}}``."""
    chunk = event.get("chunk")
    data = chunk.get("bytes") if isinstance(chunk, Mapping) else None
    if not isinstance(data, bytes):
        return
    if data.startswith(_DELTA_PREFIXES) and not call.wants_text:
        call.add_chunk(None)
        return
    try:
        payload = json.loads(data)
    except ValueError:
        return
    if isinstance(payload, dict):
        read_invoke_payload(call, payload)


def read_invoke_payload(call: LLMCall, payload: dict[str, Any]) -> None:
    kind = payload.get("type")
    if isinstance(kind, str):  # Claude: the Messages API's stream events
        if kind == "content_block_delta":
            call.add_chunk(payload)  # the core keeps its text when text is wanted
        elif kind == "message_start" and isinstance(payload.get("message"), dict):
            call.set_response({**payload, "message": _without_model(payload["message"])})  # id, input usage
        else:
            call.set_response(payload)  # message_delta: stop reason, output usage
    elif not _CONVERSE_EVENTS.isdisjoint(payload):
        read_converse_event(call, payload)  # Nova
    elif "outputText" in payload:  # Titan text
        call.add_chunk(None)
        text = payload["outputText"]
        if isinstance(text, str) and text:
            call.add_output_text(text)
        call.set_finish_reasons(payload.get("completionReason"))
    else:  # another family: every chunk carries its text; Llama and Claude text completions name a stop
        call.add_chunk(None)
        call.set_finish_reasons(payload.get("stop_reason"))
    metrics = payload.get(INVOCATION_METRICS)
    if isinstance(metrics, Mapping):
        set_bedrock_usage(call, metrics.get("inputTokenCount"), metrics.get("outputTokenCount"),
                          metrics.get("cacheReadInputTokenCount"), metrics.get("cacheWriteInputTokenCount"))


__all__ = [
    "read_converse",
    "read_converse_event",
    "read_invoke_body",
    "read_invoke_chunk",
    "read_invoke_headers",
    "set_bedrock_usage",
]
