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

import functools
import os
import sys
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


def _fresh_cached_property_locks() -> None:
    """Before Python 3.12 each ``functools.cached_property`` serialises its first computation
    with one RLock shared by every instance; a thread of the parent inside it at the fork
    leaves it held forever in the child. The kit's own properties get a new one."""
    for name, module in list(sys.modules.items()):
        if module is None or not (name == "llm_otel" or name.startswith("llm_otel.")):
            continue
        for value in list(vars(module).values()):
            if isinstance(value, type) and value.__module__ == name:
                for attribute in list(vars(value).values()):
                    if isinstance(attribute, functools.cached_property) and hasattr(attribute, "lock"):
                        attribute.lock = threading.RLock()


def _in_child() -> None:
    global _lock
    _lock = threading.Lock()  # the parent may have held it while forking
    _guarded(_fresh_cached_property_locks)
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
