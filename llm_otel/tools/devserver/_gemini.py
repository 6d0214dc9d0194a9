"""Gemini-compatible endpoints of the development stand-in server (``google-genai`` SDK).

``POST /{version}/[publishers/google/]models/{model}:generateContent``, ``:streamGenerateContent``
(server-sent events, ``?alt=sse``), ``:batchEmbedContents`` and ``:embedContent``, for the
Gemini Developer API paths (``/v1``, ``/v1beta``) and the Vertex AI express paths
(``/v1beta1/publishers/google/models/...``). Credentials (``x-goog-api-key``) are accepted and
not checked. Usage follows Gemini's semantics: ``promptTokenCount`` includes the cached tokens
(``cachedContentTokenCount``), and thoughts (``thoughtsTokenCount``) are counted apart from the
answer (``candidatesTokenCount``). Every stream chunk carries the usage so far; the last one
carries the totals and the finish reason.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
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
from ._wire import Answer, ApiFamily, Context, Endpoint, Frame, RequestError, answer_for, require_list, sse

PATH = re.compile(r"^/v1(?:alpha|beta\d*)?/(?:.+/)?models/(?P<model>[^/:]+):(?P<method>[A-Za-z]+)$")

_STATUS_NAMES = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    409: "ABORTED",
    429: "RESOURCE_EXHAUSTED",
    499: "CANCELLED",
    500: "INTERNAL",
    501: "NOT_IMPLEMENTED",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}
_FINISH_REASONS = {"stop": "STOP", "length": "MAX_TOKENS", "tool_calls": "STOP"}


def gemini_error(status: int, message: str, request_id: str) -> dict[str, Any]:
    name = _STATUS_NAMES.get(status, "INTERNAL" if status >= 500 else "FAILED_PRECONDITION")
    return {"error": {"code": status, "message": message, "status": name}}


GEMINI = ApiFamily("gemini", "x-request-id", gemini_error)


def gemini_usage(usage: Usage, *, answer_tokens: int | None = None, final: bool = True) -> dict[str, Any]:
    """``usageMetadata``; a stream chunk before the last one reports the answer tokens so far."""
    answer = usage.output_tokens - usage.reasoning_tokens if answer_tokens is None else answer_tokens
    data: dict[str, Any] = {
        "promptTokenCount": usage.input_tokens,
        "candidatesTokenCount": answer,
        "totalTokenCount": usage.input_tokens + usage.reasoning_tokens + answer,
    }
    if usage.cached_input_tokens:
        data["cachedContentTokenCount"] = usage.cached_input_tokens
    if usage.reasoning_tokens:
        data["thoughtsTokenCount"] = usage.reasoning_tokens
    if final:
        data["promptTokensDetails"] = [{"modality": "TEXT", "tokenCount": usage.input_tokens}]
    return data


def _part_blocks(parts: object) -> tuple[list[dict[str, Any]], bool]:
    """A content's parts as chat-style blocks, and whether it answers a function call."""
    blocks: list[dict[str, Any]] = []
    answers_tool = False
    for part in parts if isinstance(parts, Sequence) and not isinstance(parts, str) else ():
        if not isinstance(part, Mapping):
            continue
        call, result = part.get("functionCall"), part.get("functionResponse")
        if isinstance(part.get("text"), str) and part.get("thought") is not True:
            blocks.append({"type": "text", "text": part["text"]})
        elif isinstance(call, Mapping):
            blocks.append({"type": "tool_use", "input": call.get("args") or {}})
        elif isinstance(result, Mapping):
            answers_tool = True
            blocks.append({"type": "text", "text": json.dumps(result.get("response"), sort_keys=True)})
    return blocks, answers_tool


def _history(contents: list[Any]) -> list[dict[str, Any]]:
    """Gemini ``contents`` as chat messages (``model`` -> assistant, function responses -> tool)."""
    messages = []
    for content in contents:
        if not isinstance(content, Mapping):
            raise RequestError(400, "each item of 'contents' must be an object with 'parts'")
        blocks, answers_tool = _part_blocks(content.get("parts"))
        role = "assistant" if content.get("role") == "model" else "tool" if answers_tool else "user"
        messages.append({"role": role, "content": blocks})
    return messages


def _system(body: Mapping[str, Any]) -> list[dict[str, Any]] | None:
    instruction = body.get("systemInstruction")
    if not isinstance(instruction, Mapping):
        return None
    return _part_blocks(instruction.get("parts"))[0]


def _tools(body: Mapping[str, Any]) -> tuple[list[dict[str, Any]], object]:
    """Function declarations as (name, parameters) tool specs, and the tool choice of ``toolConfig``."""
    specs = []
    for tool in body.get("tools") or ():
        for declaration in (tool.get("functionDeclarations") or ()) if isinstance(tool, Mapping) else ():
            schema: Mapping[str, Any] = next((declaration[key] for key in ("parameters", "parametersJsonSchema", "parameters_json_schema")
                           if isinstance(declaration.get(key), Mapping)), {})
            specs.append({"name": declaration.get("name"), "parameters": schema})
    config = (body.get("toolConfig") or {}).get("functionCallingConfig") or {}
    mode = str(config.get("mode") or "AUTO").upper()
    allowed = config.get("allowedFunctionNames")
    choice: object = None
    if mode == "NONE":
        choice = "none"
    elif mode == "ANY":
        single = isinstance(allowed, list) and len(allowed) == 1
        choice = {"type": "tool", "name": allowed[0]} if single and allowed else "any"
    return specs, choice


def _reply(model: str, body: Mapping[str, Any]) -> Reply:
    config = body.get("generationConfig")
    config = config if isinstance(config, Mapping) else {}
    max_tokens = config.get("maxOutputTokens")
    if max_tokens is not None and (isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 0):
        raise RequestError(400, "'generationConfig.maxOutputTokens' must be a non-negative integer")
    tools, choice = _tools(body)
    return expected_reply(model, _history(require_list(body, "contents")), system=_system(body),
                          tools=tools, tool_choice=choice, max_tokens=max_tokens)


def _parts(reply: Reply) -> list[dict[str, Any]]:
    call = reply.tool_call
    if call is None:
        return [{"text": reply.text}]
    return [{"functionCall": {"name": call.name, "args": call.input}}]


def _response(reply: Reply, model: str, response_id: str, parts: list[dict[str, Any]],
              usage: dict[str, Any], finish: bool) -> dict[str, Any]:
    candidate: dict[str, Any] = {"content": {"role": "model", "parts": parts}, "index": 0}
    if finish:
        candidate["finishReason"] = _FINISH_REASONS[reply.finish_reason]
    return {"candidates": [candidate], "usageMetadata": usage, "modelVersion": model, "responseId": response_id}


def _stream(reply: Reply, model: str, response_id: str) -> tuple[Frame, ...]:
    """One chunk per answer token (a function call comes whole); usage so far on each."""
    if reply.tool_call is not None:
        pieces: list[list[dict[str, Any]]] = [_parts(reply)]
        tokens = [reply.usage.output_tokens - reply.usage.reasoning_tokens]
    else:
        texts = split_pieces(reply.text) or [""]
        pieces = [[{"text": text}] for text in texts]
        tokens = [count_tokens(text) for text in texts]
    frames = []
    so_far = 0
    for index, (parts, count) in enumerate(zip(pieces, tokens, strict=True)):
        so_far += count
        last = index == len(pieces) - 1
        usage = gemini_usage(reply.usage, answer_tokens=None if last else so_far, final=last)
        frames.append(sse(_response(reply, model, response_id, parts, usage, last), tokens=count))
    return tuple(frames)


def _generate(model: str, body: Mapping[str, Any], ctx: Context, *, stream: bool) -> Answer:
    reply = _reply(model, body)
    response_id = ctx.new_id("")
    if stream:
        return answer_for(reply, frames=_stream(reply, model, response_id))
    return answer_for(reply, body=_response(reply, model, response_id, _parts(reply), gemini_usage(reply.usage),
                                            finish=True))


def _embedding_texts(request: Mapping[str, Any]) -> tuple[str, int | None]:
    content = request.get("content")
    blocks = _part_blocks(content.get("parts") if isinstance(content, Mapping) else None)[0]
    text = " ".join(block["text"] for block in blocks if block["type"] == "text")
    if not text:
        raise RequestError(400, "each embedding request needs 'content' with text parts")
    config = request.get("embedContentConfig")
    dimensions = (config if isinstance(config, Mapping) else request).get("outputDimensionality")
    return text, dimensions if isinstance(dimensions, int) and not isinstance(dimensions, bool) else None


def _embed(model: str, requests: list[Any]) -> tuple[list[dict[str, Any]], dict[str, Any], list[str]]:
    embeddings, texts = [], []
    for request in requests:
        if not isinstance(request, Mapping):
            raise RequestError(400, "each embedding request must be an object")
        text, dimensions = _embedding_texts(request)
        if dimensions is not None and not 1 <= dimensions <= 3072:
            raise RequestError(400, "'outputDimensionality' must be between 1 and 3072")
        embeddings.append({"values": embedding_vector(model, text, dimensions or 3072)})
        texts.append(text)
    tokens = sum(count_tokens(text) for text in texts)
    return embeddings, {"promptTokenCount": tokens, "totalTokenCount": tokens}, texts


def _batch_embed(model: str, body: Mapping[str, Any]) -> Answer:
    embeddings, usage, texts = _embed(model, require_list(body, "requests"))
    return Answer(body={"embeddings": embeddings, "usageMetadata": usage}, markers=normalize_prompt(texts).markers)


def _embed_one(model: str, body: Mapping[str, Any]) -> Answer:
    embeddings, usage, texts = _embed(model, [body])
    return Answer(body={"embedding": embeddings[0], "usageMetadata": usage}, markers=normalize_prompt(texts).markers)


def endpoint(path: str) -> Endpoint | None:
    """The endpoint serving ``path`` (``.../models/{model}:{method}``), or None."""
    match = PATH.match(path)
    if match is None:
        return None
    model, method = match["model"], match["method"]
    if method in ("generateContent", "streamGenerateContent"):
        stream = method == "streamGenerateContent"
        return lambda body, ctx: _generate(model, body, ctx, stream=stream)
    if method == "batchEmbedContents":
        return lambda body, ctx: _batch_embed(model, body)
    if method == "embedContent":
        return lambda body, ctx: _embed_one(model, body)
    return None
