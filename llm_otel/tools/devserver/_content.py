"""Deterministic answers for the development stand-in server.

Everything here is a pure function of the request: the same model and the same
messages always give the same reply text, token counts and tool call, so tests
can compute the ground truth with :func:`expected_usage` / :func:`expected_reply`
without talking to the server.

Rules (also in ``docs/devserver.md``):

* a *token* is a run of word characters or a single punctuation mark
  (:func:`count_tokens`); input tokens are the tokens of every text part of the
  system prompt and the messages (tool definitions are not counted);
* the reply is 8-40 filler words chosen from a hash of (model, messages), or the
  text of a ``[[standin:reply=...]]`` marker;
* prompts of 1024 tokens or more report ``input_tokens // 128 * 128`` cached
  tokens (a ``[[standin:cached=N]]`` marker overrides that);
* reasoning models (:func:`is_reasoning_model`) add 32-256 reasoning tokens,
  which are part of the output tokens;
* ``max_tokens`` limits the visible output tokens; a longer reply is cut and
  finishes with ``"length"``.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from ._tools import choose_tool, tool_arguments

FinishReason = Literal["stop", "length", "tool_calls"]

_TOKEN = re.compile(r"\w+|[^\w\s]")
_PIECE = re.compile(r"\s*(?:\w+|[^\w\s])")
_MARKER = re.compile(r"\[\[standin:([a-z_]+)(?:=(.*?))?\]\]", re.DOTALL)
_REASONING_NAME = re.compile(r"^o\d|reason|thinking")

CACHE_MIN_TOKENS = 1024
CACHE_BLOCK_TOKENS = 128

_VOCABULARY = [
    "the",
    "model",
    "answers",
    "with",
    "a",
    "short",
    "deterministic",
    "reply",
    "about",
    "tokens",
    "latency",
    "and",
    "cost",
    "so",
    "every",
    "dashboard",
    "panel",
    "has",
    "real",
    "numbers",
    "to",
    "show",
    "while",
    "the",
    "stand-in",
    "server",
    "keeps",
    "requests",
    "fast",
    "cheap",
    "and",
    "repeatable",
    "across",
    "runs",
    "for",
    "tests",
    "demos",
    "and",
    "load",
    "generators",
    "that",
    "exercise",
    "spans",
    "metrics",
    "traces",
    "retries",
    "errors",
    "streams",
    "embeddings",
    "tools",
    "routing",
]


def count_tokens(text: str) -> int:
    """Count stand-in tokens: runs of word characters plus single punctuation marks."""
    return len(_TOKEN.findall(text))


def split_pieces(text: str) -> list[str]:
    """Split ``text`` into one streaming piece per token; ``"".join`` gives ``text`` back."""
    pieces = _PIECE.findall(text)
    rest = len(text) - sum(len(piece) for piece in pieces)
    if rest and pieces:
        pieces[-1] += text[-rest:]
    elif rest:
        pieces = [text]
    return pieces


def is_reasoning_model(model: str) -> bool:
    """Models named ``o<digit>...`` (o1, o3-mini, o4-mini) or containing "reason"/"thinking"."""
    return bool(_REASONING_NAME.search(model.lower()))


@dataclass(frozen=True)
class Usage:
    """Token usage of one reply.

    ``input_tokens`` includes the cached ones (OpenAI's ``prompt_tokens``
    semantics); Anthropic reports ``uncached_input_tokens`` as ``input_tokens``
    and the cached ones as ``cache_read_input_tokens``. ``output_tokens``
    includes the reasoning tokens.
    """

    input_tokens: int
    output_tokens: int
    cached_input_tokens: int = 0
    reasoning_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    @property
    def uncached_input_tokens(self) -> int:
        return self.input_tokens - self.cached_input_tokens


@dataclass(frozen=True)
class ToolCall:
    """A tool the stand-in decided to call; ``arguments`` is a JSON object string."""

    key: str
    name: str
    arguments: str

    @property
    def input(self) -> dict[str, Any]:
        parsed: dict[str, Any] = json.loads(self.arguments)
        return parsed


@dataclass(frozen=True)
class Reply:
    """What the stand-in answers: text (empty for a tool call), usage, finish reason."""

    text: str
    usage: Usage
    finish_reason: FinishReason
    tool_call: ToolCall | None = None
    key: str = ""
    markers: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Prompt:
    """Messages of any supported API shape, reduced to (role, text) parts."""

    parts: tuple[tuple[str, str], ...]
    last_user_text: str = ""
    answered_by_tool: bool = False
    markers: Mapping[str, str] = field(default_factory=dict)


def _texts(content: object) -> list[str]:
    """Text pieces of a message ``content`` in the OpenAI or Anthropic shape."""
    if isinstance(content, str):
        return [content]
    if isinstance(content, Mapping):
        content = [content]
    if not isinstance(content, Sequence):
        return []
    texts: list[str] = []
    for part in content:
        if isinstance(part, str):
            texts.append(part)
        elif isinstance(part, Mapping):
            kind = part.get("type")
            if isinstance(part.get("text"), str):
                texts.append(part["text"])
            elif kind == "tool_result":
                texts.extend(_texts(part.get("content")))
            elif kind == "tool_use":
                texts.append(json.dumps(part.get("input", {}), sort_keys=True))
    return texts


def _is_tool_result(item: Mapping[str, Any]) -> bool:
    if item.get("role") == "tool" or item.get("type") == "function_call_output":
        return True
    content = item.get("content")
    return (
        isinstance(content, Sequence)
        and not isinstance(content, str)
        and any(isinstance(part, Mapping) and part.get("type") == "tool_result" for part in content)
    )


def _item_texts(item: Mapping[str, Any]) -> list[str]:
    texts = _texts(item.get("content"))
    calls = item.get("tool_calls")
    for call in calls if isinstance(calls, list) else ():
        function = call.get("function") if isinstance(call, Mapping) else None
        if isinstance(function, Mapping) and isinstance(function.get("arguments"), str):
            texts.append(function["arguments"])
    if item.get("type") == "function_call" and isinstance(item.get("arguments"), str):
        texts.append(item["arguments"])
    if item.get("type") == "function_call_output":
        texts.extend(_texts(item.get("output")))
    return texts


def normalize_prompt(messages: object, system: object = None) -> Prompt:
    """Reduce chat/Responses/Anthropic messages (plus system or instructions) to a :class:`Prompt`."""
    parts: list[tuple[str, str]] = [("system", text) for text in _texts(system)]
    last_user_text = ""
    answered_by_tool = False
    items: Sequence[object] = ()
    if isinstance(messages, (str, Mapping)):
        items = [messages]
    elif isinstance(messages, Sequence):
        items = messages
    for item in items:
        if isinstance(item, str):
            item = {"role": "user", "content": item}
        if not isinstance(item, Mapping):
            continue
        role = str(item.get("role") or item.get("type") or "user")
        texts = _item_texts(item)
        parts.extend((role, text) for text in texts)
        if _is_tool_result(item):
            answered_by_tool = True
        elif role == "user":
            last_user_text = "\n".join(texts)
            answered_by_tool = False
    markers: dict[str, str] = {}
    for _, text in parts:
        for match in _MARKER.finditer(text):
            markers[match.group(1)] = (match.group(2) or "").strip()
    return Prompt(tuple(parts), last_user_text, answered_by_tool, markers)


def _digest(model: str, prompt: Prompt) -> bytes:
    hasher = hashlib.sha256(model.encode())
    for role, text in prompt.parts:
        hasher.update(b"\x1e" + role.encode() + b"\x1f" + text.encode())
    return hasher.digest()


def _numbers(digest: bytes) -> Iterator[int]:
    """An endless deterministic stream of 16-bit numbers derived from ``digest``."""
    counter = 0
    while True:
        block = hashlib.sha256(digest + counter.to_bytes(4, "big")).digest()
        for index in range(0, len(block), 2):
            yield int.from_bytes(block[index : index + 2], "big")
        counter += 1


def _filler_text(digest: bytes) -> str:
    numbers = _numbers(digest)
    remaining = 8 + next(numbers) % 33
    sentences: list[str] = []
    while remaining > 0:
        length = min(remaining, 4 + next(numbers) % 9)
        words = [_VOCABULARY[next(numbers) % len(_VOCABULARY)] for _ in range(length)]
        sentences.append(" ".join(words).capitalize() + ".")
        remaining -= length
    return " ".join(sentences)


def _truncate(text: str, max_tokens: int) -> str:
    return "".join(split_pieces(text)[: max(max_tokens, 0)]).rstrip()


def expected_reply(
    model: str,
    messages: object,
    *,
    system: object = None,
    tools: object = None,
    tool_choice: object = None,
    max_tokens: int | None = None,
) -> Reply:
    """The reply the stand-in gives for this request (pure; no server needed).

    ``messages`` is a chat-completions or Anthropic message list, or a
    Responses API ``input`` (string or item list); ``system`` is the Anthropic
    ``system`` or the Responses ``instructions``. With ``tools`` and automatic
    tool choice, the stand-in calls a tool (the one named by a
    ``[[standin:tool=NAME]]`` marker, else the first) until a tool result
    follows the last user message, then answers with text.
    """
    prompt = normalize_prompt(messages, system)
    digest = _digest(model, prompt)
    input_tokens = max(1, sum(count_tokens(text) for _, text in prompt.parts))
    cached = (
        input_tokens // CACHE_BLOCK_TOKENS * CACHE_BLOCK_TOKENS if input_tokens >= CACHE_MIN_TOKENS else 0
    )
    if prompt.markers.get("cached", "").isdigit():
        cached = min(int(prompt.markers["cached"]), input_tokens)
    reasoning = 32 + int.from_bytes(digest[-2:], "big") % 225 if is_reasoning_model(model) else 0
    key = digest.hex()[:24]

    wanted = prompt.markers.get("tool", "")
    chosen = choose_tool(tools, tool_choice, wanted=wanted, answered_by_tool=prompt.answered_by_tool)
    if chosen is not None:
        name, schema = chosen
        call = ToolCall(key, name, tool_arguments(schema, prompt.last_user_text))
        visible = count_tokens(call.name) + count_tokens(call.arguments)
        usage = Usage(input_tokens, visible + reasoning, cached, reasoning)
        return Reply("", usage, "tool_calls", call, key, prompt.markers)

    text = prompt.markers["reply"] if "reply" in prompt.markers else _filler_text(digest)
    finish: FinishReason = "stop"
    if max_tokens is not None and count_tokens(text) > max_tokens:
        text, finish = _truncate(text, max_tokens), "length"
    usage = Usage(input_tokens, count_tokens(text) + reasoning, cached, reasoning)
    return Reply(text, usage, finish, None, key, prompt.markers)


def expected_usage(
    model: str,
    messages: object,
    *,
    system: object = None,
    tools: object = None,
    tool_choice: object = None,
    max_tokens: int | None = None,
) -> Usage:
    """The token usage the stand-in reports for this request; see :func:`expected_reply`."""
    return expected_reply(
        model, messages, system=system, tools=tools, tool_choice=tool_choice, max_tokens=max_tokens
    ).usage


def embedding_vector(model: str, text: str, dimensions: int) -> list[float]:
    """A deterministic unit vector for ``text`` (same text and model, same vector)."""
    numbers = _numbers(hashlib.sha256(f"{model}\x1f{text}".encode()).digest())
    raw = [next(numbers) / 32767.5 - 1.0 for _ in range(dimensions)]
    norm = sum(value * value for value in raw) ** 0.5 or 1.0
    return [value / norm for value in raw]
