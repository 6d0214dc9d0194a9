"""Token usage as the core understands it, and the checks that make bad payloads harmless.

``input_tokens`` always includes cached input (read and written) and
``output_tokens`` always includes reasoning tokens: that is what providers
bill and what the GenAI conventions ask for. Providers that report them
separately (Anthropic's cache fields) are normalised by the extractors.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from llm_otel._bounds import TOKEN_COUNT_LIMIT


@dataclass(frozen=True)
class TokenUsage:
    input_tokens: int | None = None
    output_tokens: int | None = None
    cache_read_input_tokens: int | None = None
    cache_creation_input_tokens: int | None = None
    reasoning_output_tokens: int | None = None

    @property
    def known(self) -> bool:
        return self.input_tokens is not None or self.output_tokens is not None

    def merged(self, newer: TokenUsage) -> TokenUsage:
        """Fields of ``newer`` win where present (later stream events carry the final counts)."""
        return TokenUsage(
            _first(newer.input_tokens, self.input_tokens),
            _first(newer.output_tokens, self.output_tokens),
            _first(newer.cache_read_input_tokens, self.cache_read_input_tokens),
            _first(newer.cache_creation_input_tokens, self.cache_creation_input_tokens),
            _first(newer.reasoning_output_tokens, self.reasoning_output_tokens),
        )


def _first(a: int | None, b: int | None) -> int | None:
    return a if a is not None else b


class UsageProblems:
    """Collects why parts of a usage payload were unusable (one reason per field)."""

    __slots__ = ("reasons",)

    def __init__(self) -> None:
        self.reasons: list[str] = []

    def add(self, reason: str) -> None:
        if reason not in self.reasons:
            self.reasons.append(reason)


def token_count(value: Any, field: str, problems: UsageProblems) -> int | None:
    """An int in [0, 2**53) from whatever a provider or user handed us, else None with a reason.

    Larger counts are no real usage; past 2**63 they would make every later metric export of
    the process fail to encode, and past 2**53 they are no longer exact as floats.
    """
    if value is None:
        return None
    if isinstance(value, bool):
        problems.add(f"{field}:not_a_number")
        return None
    if isinstance(value, int):
        if value < 0:
            problems.add(f"{field}:negative")
            return None
        if value >= TOKEN_COUNT_LIMIT:
            problems.add(f"{field}:out_of_range")
            return None
        return int(value)  # an int subclass becomes a plain int
    if isinstance(value, float):
        if not math.isfinite(value) or value != int(value):
            problems.add(f"{field}:not_an_integer")
            return None
        if value < 0:
            problems.add(f"{field}:negative")
            return None
        if value >= TOKEN_COUNT_LIMIT:
            problems.add(f"{field}:out_of_range")
            return None
        return int(value)
    if isinstance(value, str):
        text = value.strip()
        # isdigit() alone admits '²' and other digits int() refuses; 16 digits already exceed the limit
        if text.isascii() and text.isdigit():
            if len(text) < 17 and int(text) < TOKEN_COUNT_LIMIT:
                return int(text)
            problems.add(f"{field}:out_of_range")
            return None
        problems.add(f"{field}:not_a_number")
        return None
    problems.add(f"{field}:unsupported_type")
    return None


def bounded(usage: TokenUsage, problems: UsageProblems) -> TokenUsage:
    """``usage`` with every count outside [0, 2**53) dropped (with a reason): the last check before
    the counts reach the SDK, whatever path (reader, setter, ``TokenUsage`` given directly) set them."""
    fields = (usage.input_tokens, usage.output_tokens, usage.cache_read_input_tokens,
              usage.cache_creation_input_tokens, usage.reasoning_output_tokens)
    for value in fields:
        if value is not None and (type(value) is not int or not 0 <= value < TOKEN_COUNT_LIMIT):
            break
    else:
        return usage
    names = ("input_tokens", "output_tokens", "cache_read_tokens", "cache_creation_tokens", "reasoning_tokens")
    return TokenUsage(*(token_count(value, name, problems) for value, name in zip(fields, names, strict=True)))


def consistent(usage: TokenUsage, problems: UsageProblems) -> TokenUsage:
    """Drop sub-counts that exceed their totals rather than price impossible usage."""
    cache_read = usage.cache_read_input_tokens
    cache_creation = usage.cache_creation_input_tokens
    reasoning = usage.reasoning_output_tokens
    if usage.input_tokens is not None and (cache_read or 0) + (cache_creation or 0) > usage.input_tokens:
        problems.add("cache_tokens:exceed_input")
        cache_read = cache_creation = None
    if usage.output_tokens is not None and reasoning is not None and reasoning > usage.output_tokens:
        problems.add("reasoning_tokens:exceed_output")
        reasoning = None
    if (cache_read, cache_creation, reasoning) == (
        usage.cache_read_input_tokens,
        usage.cache_creation_input_tokens,
        usage.reasoning_output_tokens,
    ):
        return usage
    return TokenUsage(usage.input_tokens, usage.output_tokens, cache_read, cache_creation, reasoning)
