"""What is known about a call before it starts, and what its call site remembers between calls."""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from llm_otel import _bounds as bounds
from llm_otel import _names as n
from llm_otel._log import log_once
from llm_otel._memo import Memo

if TYPE_CHECKING:
    from llm_otel._metrics import Series

UsageReader = Callable[[Any], Any]
_START_ATTRIBUTES_MAX = 64
_SERIES_MAX = 64  # per call site; model names and error types may be unbounded
_SCHEME_PORTS = {"https": 443, "http": 80, "wss": 443, "ws": 80}


def server_of(address: Any, port: Any = None) -> tuple[str | None, int | None]:
    """``(host, port)`` from a host and port or a base URL; ``(None, None)`` when unusable (never raises)."""
    try:
        if isinstance(address, str) and "://" in address:
            parsed = urlsplit(address)
            address = parsed.hostname
            if port is None:
                port = parsed.port or _SCHEME_PORTS.get(parsed.scheme)
        if not isinstance(address, str) or not address:
            return None, None
        if isinstance(port, int) and not isinstance(port, bool) and 0 < port < 65536:
            return address, port
        return address, None
    except Exception as exc:  # a malformed URL (bad port) costs the attribute, never the call
        log_once("server:bad-url", "llm-otel: server address %r not understood (%s); not recorded",
                 address, type(exc).__name__)
        return None, None


class SiteMemo:
    """The call site's memo tables (see ``_memo``): span start attributes and metric series.

    Used only by calls whose labels are the site's own static labels (no ambient labels, no
    per-call request attributes), the only calls whose derived values repeat; the start attributes
    belong to the telemetry of the current ``configure()`` (its semconv keys), the series table to
    its metrics recorder.
    """

    __slots__ = ("series", "start_attributes")

    def __init__(self) -> None:
        # keyed by (provider, request model, server address, server port)
        self.start_attributes: Memo[tuple[Any, ...], dict[str, Any]] = Memo(_START_ATTRIBUTES_MAX)
        self.series: Memo[tuple[Any, ...], Series] = Memo(_SERIES_MAX)


@dataclass(frozen=True)
class CallSpec:
    """What is known before the call: fixed at decoration time, reused for every call."""

    operation: str = n.OP_CHAT
    provider: str | None = None
    model: str | None = None
    task_type: str | None = None
    prompt_name: str | None = None
    prompt_version: str | None = None
    usage: UsageReader | None = None
    labels: Mapping[str, str] = field(default_factory=dict)
    server_address: str | None = None  # already parsed (server_of)
    server_port: int | None = None

    @functools.cached_property
    def static_labels(self) -> dict[str, str]:
        static = {n.GEN_AI_OPERATION_NAME: bounds.label(str(self.operation))}
        for key, value in (
            (n.LLM_TASK_TYPE, self.task_type),
            (n.LLM_PROMPT_NAME, self.prompt_name),
            (n.LLM_PROMPT_VERSION, self.prompt_version),
        ):
            if value is not None:
                static[key] = bounds.label(str(value))
        static.update(bounds.labels(self.labels))
        return static

    @functools.cached_property
    def memo(self) -> SiteMemo:
        return SiteMemo()


_SHARED_SPECS: Memo[tuple[Any, ...], CallSpec] = Memo(256)  # model names and labels may be unbounded


def shared_spec(
    operation: str,
    provider: str | None,
    model: str | None,
    task_type: str | None,
    prompt_name: str | None,
    prompt_version: str | None,
    labels: Mapping[str, str] | None,
) -> CallSpec:
    """Callback integrations start each call afresh; calls that look alike share one spec, and
    with it the call site memo a decorated site has."""
    key: tuple[Any, ...] | None
    try:
        key = (operation, provider, model, task_type, prompt_name, prompt_version,
               tuple(sorted(labels.items())) if labels else ())
        spec = _SHARED_SPECS.get(key)
    except TypeError:  # an unhashable or unorderable label: nothing to share
        key, spec = None, None
    if spec is None:
        spec = CallSpec(operation, provider, model, task_type, prompt_name, prompt_version, None, dict(labels or {}))
        if key is not None:
            _SHARED_SPECS.admit(key, spec)
    return spec
