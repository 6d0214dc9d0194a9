"""Telling, before a span is started, that the SDK's sampler would drop it.

When nothing but the span would see a call (no metrics pipeline, no evaluator),
a call the sampler is certain to drop needs no work at all. Only the samplers
whose answer follows from the parent alone are forecast: ``always_off`` and the
parent-based ones whose delegates for that case are ``always_off`` (the SDK
defaults for unsampled parents). Anything else is asked the usual way.
"""

from __future__ import annotations

from typing import Any

from opentelemetry.trace import get_current_span


class DropForecast:
    __slots__ = ("local_unsampled", "possible", "remote_unsampled", "roots")

    def __init__(self, tracer_provider: Any) -> None:
        sampler = getattr(tracer_provider, "sampler", None)
        # not an SDK provider: importing the SDK just to learn that would cost ~8 ms
        drops = (False, False, False) if sampler is None else _drops(sampler)
        self.roots, self.local_unsampled, self.remote_unsampled = drops
        self.possible = any(drops)

    def dropped(self) -> bool:
        """A span started now, under the current context, would certainly not be recorded."""
        parent = get_current_span().get_span_context()
        if not parent.is_valid:
            return self.roots
        if parent.trace_flags.sampled:
            return False
        return self.remote_unsampled if parent.is_remote else self.local_unsampled


def _drops(sampler: Any) -> tuple[bool, bool, bool]:
    """Whether roots, unsampled local parents' and unsampled remote parents' children are dropped."""
    from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ParentBased

    if sampler is ALWAYS_OFF:
        return True, True, True
    if isinstance(sampler, ParentBased):
        # ParentBased keeps its delegates in private fields; if they are ever renamed the
        # forecast simply says "don't know" and the sampler is asked as usual.
        root, local, remote = (
            getattr(sampler, name, None) is ALWAYS_OFF
            for name in ("_root", "_local_parent_not_sampled", "_remote_parent_not_sampled")
        )
        return root, local, remote
    return False, False, False
