"""Opt-in capture of prompts and completions, always passed through a redactor first."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from itertools import islice
from typing import Any

from llm_otel import _bounds as bounds

Redactor = Callable[[str], str]
_MESSAGES_MAX = 1000  # messages kept per call; each still within the per-call budget

# Every pattern starts where its text starts (a literal prefix, or a look-behind that fails
# inside a run) and repeats a bounded number of times, so redaction is linear in the text:
# an unanchored ``[...]+@`` retries from every character of a long run (quadratic).
_EMAIL = re.compile(r"(?<![A-Za-z0-9._%+-])[A-Za-z0-9._%+-]{1,64}@[A-Za-z0-9-]{1,63}(?:\.[A-Za-z0-9-]{1,63}){0,8}"
                    r"\.[A-Za-z]{2,24}(?![A-Za-z])")
_API_KEY = re.compile(
    r"\b(?:sk-(?:ant-|proj-)?[A-Za-z0-9_-]{16,}|(?:sk|rk)_(?:live|test)_[A-Za-z0-9]{16,}|AKIA[0-9A-Z]{16}|"
    r"github_pat_[A-Za-z0-9_]{22,}|gh[pousr]_[A-Za-z0-9]{30,}|xox[abprs]-[A-Za-z0-9-]{10,}|AIza[0-9A-Za-z_-]{35})\b"
)
_JWT = re.compile(r"\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*")
_BEARER = re.compile(r"(?i)\b(bearer\s{1,8})[A-Za-z0-9._~+/=-]{16,}")
# key=value and key: value pairs whose value is a secret whatever it looks like
_SECRET_PAIR = re.compile(
    r"(?i)\b((?:password|passwd|pwd|passphrase|secret|client_secret|api[_-]?key|access[_-]?token|auth[_-]?token|"
    r"aws_secret_access_key)[\"']?\s{0,4}[:=]\s{0,4}[\"']?)([^\s\"'&,;]{1,256})"
)
# AWS secret access keys: 40 characters of base64 standing alone, mixed case (not a hex digest)
_AWS_SECRET = re.compile(r"(?<![A-Za-z0-9/+=])[A-Za-z0-9/+]{40}(?![A-Za-z0-9/+=])")
_CARD_CANDIDATE = re.compile(r"(?<![\d.-])\d(?:[ .-]{0,3}\d){12,18}(?!\d)")


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


def _mask_aws_secret(match: re.Match[str]) -> str:
    found = match.group(0)
    mixed = (any(c.isupper() for c in found) and any(c.islower() for c in found)
             and any(c.isdigit() or c in "/+" for c in found))
    return "[REDACTED_KEY]" if mixed else found


def default_redactor(text: str) -> str:
    """Masks e-mail addresses, common API key and token formats (OpenAI, Anthropic, Stripe,
    GitHub, AWS, Slack, Google, JWTs, bearer tokens), ``password=``-style pairs and payment card
    numbers (Luhn-checked, with or without separators). Linear in the length of ``text``."""
    text = _API_KEY.sub("[REDACTED_KEY]", text)
    text = _JWT.sub("[REDACTED_TOKEN]", text)
    text = _BEARER.sub(r"\1[REDACTED_KEY]", text)
    text = _SECRET_PAIR.sub(r"\1[REDACTED]", text)
    text = _AWS_SECRET.sub(_mask_aws_secret, text)
    text = _EMAIL.sub("[REDACTED_EMAIL]", text)
    return _CARD_CANDIDATE.sub(_mask_card, text)


def _message_parts(content: Any) -> list[str]:
    if isinstance(content, str):
        return [content]
    parts = []
    if isinstance(content, Sequence):
        for block in content:
            text = block.get("text") if isinstance(block, dict) else getattr(block, "text", None)
            if isinstance(text, str):
                parts.append(text)
    return parts


# A secret that starts before the cut is redacted whole when it is shorter than this.
_REDACT_MARGIN = 256


class ContentBudget:
    """Caps captured text per message and per call, before it is redacted (so redaction time is
    bounded too) and before it is exported (so one call cannot make a batch too large)."""

    __slots__ = ("left", "per_message", "redact", "truncated")

    def __init__(self, redact: Redactor, per_message: int, per_call: int) -> None:
        self.redact = redact
        self.per_message = per_message
        self.left = per_call
        self.truncated = False

    def take(self, text: str) -> str:
        limit = min(self.per_message, self.left)
        cut = len(text) > limit
        redacted = self.redact(text[: limit + _REDACT_MARGIN] if cut else text)
        if len(redacted) > limit:
            redacted = redacted[:limit] + bounds.TRUNCATION_MARK
            cut = True
        self.truncated = self.truncated or cut
        self.left = max(0, self.left - len(redacted))
        return bounds.text(redacted, len(redacted))  # valid UTF-8 for the encoder


def captured_text(text: str, redact: Redactor, settings: Mapping[str, Any]) -> str:
    """One piece of captured content outside a call record (a tool's arguments, a retrieval
    query), capped before it is redacted, like a message."""
    budget = ContentBudget(redact, settings.get("content_max_message_chars", _MESSAGE_DEFAULT),
                           settings.get("content_max_call_chars", _CALL_DEFAULT))
    return budget.take(text)


_MESSAGE_DEFAULT = 16384  # the defaults of content_max_message_chars / content_max_call_chars
_CALL_DEFAULT = 65536


def input_messages_json(messages: Any, budget: ContentBudget) -> str | None:
    """GenAI ``gen_ai.input.messages`` JSON from OpenAI/Anthropic-style messages or a prompt string."""
    if isinstance(messages, str):
        messages = [{"role": "user", "content": messages}]
    if not isinstance(messages, Sequence):
        return None
    out = []
    for message in islice(messages, _MESSAGES_MAX):
        role = message.get("role") if isinstance(message, dict) else getattr(message, "type", None)
        content = message.get("content") if isinstance(message, dict) else getattr(message, "content", None)
        parts = [{"type": "text", "content": budget.take(text)} for text in _message_parts(content)]
        out.append({"role": bounds.label(str(role or "user")), "parts": parts})
    if len(messages) > _MESSAGES_MAX:
        budget.truncated = True
    return json.dumps(out, ensure_ascii=False)


def output_messages_json(texts: Sequence[str], finish_reasons: Sequence[str], budget: ContentBudget) -> str:
    reason = finish_reasons[0] if finish_reasons else "stop"
    text = "".join(texts)
    return json.dumps(
        [{"role": "assistant", "parts": [{"type": "text", "content": budget.take(text)}],
          "finish_reason": bounds.label(reason)}],
        ensure_ascii=False,
    )
