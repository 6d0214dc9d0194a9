"""Caps the distinct values each metric attribute can take.

A user id passed as a label by mistake would otherwise create one Prometheus
series per user. Past the cap a value becomes ``_other``; the call is still
counted, only the label is folded.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping

from llm_otel._log import log_once
from llm_otel._names import OVERFLOW_VALUE


class CardinalityGuard:
    """Admits at most ``limit`` distinct values per attribute key within one scope.

    A scope is a family of instruments that are always recorded together with
    the same attributes (all the per-call instruments), so the cap holds for
    each instrument in it.
    """

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError(f"cardinality limit must be >= 1, got {limit}")
        self.limit = limit
        # scope -> attribute key -> admitted values; the hot path reads it without the lock
        self._admitted: dict[str, dict[str, set[str]]] = {}
        self._lock = threading.Lock()
        self.overflowed: dict[tuple[str, str], int] = {}

    def admitted(self, scope: str, key: str) -> int:
        """How many distinct values of ``key`` have been let through in ``scope``."""
        return len(self._admitted.get(scope, {}).get(key, ()))

    def bound(self, scope: str, attributes: Mapping[str, str]) -> dict[str, str]:
        return self.bound_in_place(scope, dict(attributes))

    def bound_in_place(self, scope: str, attributes: dict[str, str]) -> dict[str, str]:
        """``bound`` without a copy: over-cap values are replaced in ``attributes``, which is returned."""
        for key, value in attributes.items():
            seen = self._admitted.get(scope, {}).get(key)
            if seen is not None and value in seen:  # admitted before: no lock
                continue
            if not self._admit(scope, key, value):
                attributes[key] = OVERFLOW_VALUE  # same key: safe while iterating
        return attributes

    def _admit(self, scope: str, key: str, value: str) -> bool:
        with self._lock:
            seen = self._admitted.setdefault(scope, {}).setdefault(key, set())
            if value in seen:
                return True
            if len(seen) < self.limit:
                seen.add(value)
                return True
            self.overflowed[(scope, key)] = self.overflowed.get((scope, key), 0) + 1
        log_once(
            f"cardinality:{scope}:{key}",
            "llm-otel: metric attribute %r reached %d distinct values; further values are recorded as %r. "
            "Raise cardinality_limit if this is expected, or stop passing unbounded values (ids, prompts).",
            key,
            self.limit,
            OVERFLOW_VALUE,
        )
        return False
