"""What is known about a call before it starts, and what its call site remembers between calls."""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from llm_otel import _bounds as bounds
from llm_otel import _names as n
from llm_otel._memo import Memo

if TYPE_CHECKING:
    from llm_otel._metrics import Series

UsageReader = Callable[[Any], Any]
_START_ATTRIBUTES_MAX = 64
_SERIES_MAX = 64  # per call site; model names and error types may be unbounded


class SiteMemo:
    """The call site's memo tables (see ``_memo``): span start attributes and metric series.

    Used only by calls whose labels are the site's own static labels (no ambient labels, no
    per-call request attributes), the only calls whose derived values repeat; the series table
    belongs to the recorder of the current ``configure()``.
    """

    __slots__ = ("series", "start_attributes")

    def __init__(self) -> None:
        self.start_attributes: Memo[tuple[str | None, str | None], dict[str, Any]] = Memo(_START_ATTRIBUTES_MAX)
        self.series: Memo[tuple[str | None, ...], Series] = Memo(_SERIES_MAX)


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
