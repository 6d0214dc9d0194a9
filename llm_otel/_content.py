"""Opt-in capture of prompts and completions, always passed through a redactor first."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from typing import Any

Redactor = Callable[[str], str]

_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")
_API_KEY = re.compile(
    r"\b(?:sk-(?:ant-|proj-)?[A-Za-z0-9_-]{16,}|AKIA[0-9A-Z]{16}|gh[pousr]_[A-Za-z0-9]{30,}|"
    r"xox[abprs]-[A-Za-z0-9-]{10,}|AIza[0-9A-Za-z_-]{35})\b"
)
_BEARER = re.compile(r"(?i)\b(bearer\s+)[A-Za-z0-9._~+/=-]{16,}")
_CARD_CANDIDATE = re.compile(r"\b(?:\d[ -]?){12,18}\d\b")


def _luhn_ok(digits: str) -> bool:
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = int(char)
        if index % 2 == 1:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return total % 10 == 0


def _mask_card(match: re.Match[str]) -> str:
    digits = re.sub(r"\D", "", match.group(0))
    return "[REDACTED_CARD]" if 13 <= len(digits) <= 19 and _luhn_ok(digits) else match.group(0)


def default_redactor(text: str) -> str:
    """Masks e-mail addresses, common API key formats and payment card numbers (Luhn-checked)."""
    text = _API_KEY.sub("[REDACTED_KEY]", text)
    text = _BEARER.sub(r"\1[REDACTED_KEY]", text)
    text = _EMAIL.sub("[REDACTED_EMAIL]", text)
    return _CARD_CANDIDATE.sub(_mask_card, text)


def _message_parts(content: Any) -> list[dict[str, str]]:
    if isinstance(content, str):
        return [{"type": "text", "content": content}]
    parts = []
    if isinstance(content, Sequence):
        for block in content:
            text = block.get("text") if isinstance(block, dict) else getattr(block, "text", None)
            if isinstance(text, str):
                parts.append({"type": "text", "content": text})
    return parts


def input_messages_json(messages: Any, redact: Redactor) -> str | None:
    """GenAI ``gen_ai.input.messages`` JSON from OpenAI/Anthropic-style messages or a prompt string."""
    if isinstance(messages, str):
        messages = [{"role": "user", "content": messages}]
    if not isinstance(messages, Sequence):
        return None
    out = []
    for message in messages:
        role = message.get("role") if isinstance(message, dict) else getattr(message, "type", None)
        content = message.get("content") if isinstance(message, dict) else getattr(message, "content", None)
        parts = [{**p, "content": redact(p["content"])} for p in _message_parts(content)]
        out.append({"role": str(role or "user"), "parts": parts})
    return json.dumps(out, ensure_ascii=False)


def output_messages_json(texts: Sequence[str], finish_reasons: Sequence[str], redact: Redactor) -> str:
    reason = finish_reasons[0] if finish_reasons else "stop"
    text = "".join(texts)
    return json.dumps(
        [{"role": "assistant", "parts": [{"type": "text", "content": redact(text)}], "finish_reason": reason}],
        ensure_ascii=False,
    )
