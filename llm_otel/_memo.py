"""Bounded memo tables for the hot path: what is derived once (per type, per call site) and reused.

Every table of the kit's hot path is a ``Memo`` and follows one rule:

- an entry holds while the *owner* it was derived under is current. Tables derived from types
  alone have no owner; tables derived from a configuration pass the object that carries it
  (the metrics recorder of the current ``configure()``) and are emptied when it changes;
- a full table stops admitting new keys and never evicts, so what it holds stays exact and a
  flood of new keys (model names, payload types) costs a recomputation per call, never memory.

Reads on the hottest paths may go straight to ``memo.data`` (a plain dict) when the table has no owner.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class Memo(Generic[K, V]):
    __slots__ = ("_seed", "data", "limit", "owner")

    def __init__(self, limit: int, seed: Mapping[K, V] | None = None) -> None:
        self.limit = limit
        self._seed = dict(seed or {})
        self.data: dict[K, V] = dict(self._seed)
        self.owner: object = None

    def get(self, key: K, owner: object = None) -> V | None:
        if owner is not self.owner:
            self._renew(owner)
            return None
        return self.data.get(key)

    def admit(self, key: K, value: V, owner: object = None) -> None:
        """Keep ``value`` for ``key`` unless the table is full (a known key is always refreshed)."""
        if owner is not self.owner:
            self._renew(owner)
        data = self.data
        if key in data or len(data) < self.limit:
            data[key] = value

    def __len__(self) -> int:
        return len(self.data)

    def _renew(self, owner: object) -> None:
        self.data = dict(self._seed)
        self.owner = owner
