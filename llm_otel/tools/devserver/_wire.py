"""What an endpoint of the development stand-in server hands back to the HTTP layer.

Endpoints are pure: they turn a parsed JSON request into an :class:`Answer`
(a JSON body or a list of server-sent-event frames). Timing, faults and the
socket belong to the server.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from ._content import Reply


class RequestError(Exception):
    """A request the stand-in refuses, answered with ``status`` in the provider's error shape."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class Frame:
    """One encoded server-sent event; ``tokens`` output tokens are generated before it is sent."""

    data: bytes
    tokens: int = 0


@dataclass(frozen=True)
class Answer:
    """A successful answer: ``body`` (JSON) or ``frames`` (a stream), plus what drives timing."""

    body: object = None
    frames: tuple[Frame, ...] | None = None
    output_tokens: int = 0
    reasoning_tokens: int = 0
    markers: Mapping[str, str] = field(default_factory=dict)


def answer_for(reply: Reply, *, body: object = None, frames: tuple[Frame, ...] | None = None) -> Answer:
    """An :class:`Answer` timed by the reply's output and reasoning tokens."""
    usage = reply.usage
    return Answer(body, frames, usage.output_tokens, usage.reasoning_tokens, reply.markers)


class Context(Protocol):
    """Per-server services an endpoint may use."""

    def new_id(self, prefix: str) -> str: ...

    def now(self) -> int: ...


Endpoint = Callable[[Mapping[str, Any], Context], Answer]


@dataclass(frozen=True)
class ApiFamily:
    """Provider-specific error body and request-id header."""

    name: str
    request_id_header: str
    error_body: Callable[[int, str, str], dict[str, Any]]


def dumps(value: object) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


def sse(data: object, event: str | None = None, *, tokens: int = 0) -> Frame:
    """Encode one server-sent event (``event:`` line only when named, like the real APIs)."""
    prefix = f"event: {event}\n".encode() if event else b""
    return Frame(prefix + b"data: " + dumps(data) + b"\n\n", tokens)


DONE = Frame(b"data: [DONE]\n\n")
"""The OpenAI chat stream terminator."""


def require_str(body: Mapping[str, Any], name: str) -> str:
    value = body.get(name)
    if not isinstance(value, str) or not value:
        raise RequestError(400, f"'{name}' is required and must be a non-empty string")
    return value


def optional_int(body: Mapping[str, Any], *names: str) -> int | None:
    """The first of ``names`` present in ``body``, validated as a non-negative integer."""
    for name in names:
        value = body.get(name)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise RequestError(400, f"'{name}' must be a non-negative integer")
        return value
    return None


def require_list(body: Mapping[str, Any], name: str) -> list[Any]:
    value = body.get(name)
    if not isinstance(value, list):
        raise RequestError(400, f"'{name}' is required and must be an array")
    return value
