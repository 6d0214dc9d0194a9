"""What a forked child must redo so it starts from zero (gunicorn --preload, multiprocessing fork).

A child is a copy of its parent at the instant of ``fork()``: the token sums and the
SDK's aggregations hold the parent's totals (a child would export them again under
its own instance, inflating every counter), locks another thread held at that instant
stay held forever (the child's first call would deadlock), and the export threads
do not exist in the child. Objects that own such state register a reset here; the
resets run in the child only, in registration order, right after the fork. The
parent keeps its state untouched.
"""

from __future__ import annotations

import os
import threading
import weakref
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")

_lock = threading.Lock()
_resets: list[tuple[weakref.ref[Any], Callable[[Any], None]]] = []
_hooks: list[Callable[[], None]] = []


def after_fork_in_child(owner: T, reset: Callable[[T], None]) -> None:
    """Run ``reset(owner)`` in every child forked while ``owner`` is alive (it is held weakly)."""
    with _lock:
        _resets[:] = [(ref, fn) for ref, fn in _resets if ref() is not None]
        _resets.append((weakref.ref(owner), reset))


def on_fork(hook: Callable[[], None]) -> None:
    """Run ``hook()`` in every forked child (module-level state, e.g. the process's instance id)."""
    with _lock:
        _hooks.append(hook)


def _in_child() -> None:
    global _lock
    _lock = threading.Lock()  # the parent may have held it while forking
    for hook in list(_hooks):
        _guarded(hook)
    for ref, reset in list(_resets):
        owner = ref()
        if owner is not None:
            _guarded(reset, owner)


def _guarded(fn: Callable[..., None], *args: Any) -> None:
    try:
        fn(*args)
    except Exception as exc:  # a child must come up even if one reset fails
        from llm_otel._log import internal_error

        internal_error("fork", exc)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_in_child)
