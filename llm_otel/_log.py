"""Diagnostics that never disturb the host application.

Every internal problem is logged at most once per cause and then swallowed;
the anomaly counters live on the recorder so they reach the dashboards.
"""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Callable
from typing import Any, TypeVar

logger = logging.getLogger("llm_otel")

_seen: set[str] = set()
_seen_lock = threading.Lock()

F = TypeVar("F", bound=Callable[..., Any])


def log_once(cause: str, message: str, *args: object, level: int = logging.WARNING) -> None:
    """Log ``message`` the first time ``cause`` is seen in this process."""
    if cause in _seen:
        return
    with _seen_lock:
        if cause in _seen:
            return
        _seen.add(cause)
    logger.log(level, message, *args)


def forget_logged_causes() -> None:
    """Let every cause log again (tests use this to assert on log lines)."""
    with _seen_lock:
        _seen.clear()


def internal_error(where: str, exc: BaseException) -> None:
    """Log the kit's own failure once per place and exception class; the caller then carries on."""
    log_once(
        f"internal:{where}:{type(exc).__name__}",
        "llm-otel: internal error in %s (%s: %s); instrumentation continues, the application is unaffected",
        where,
        type(exc).__name__,
        exc,
        level=logging.ERROR,
    )


def never_raises(where: str, default: Any = None) -> Callable[[F], F]:
    """Wrap instrumentation code so its own failures never reach the host app."""

    def decorate(fn: F) -> F:
        @functools.wraps(fn)
        def guarded(*args: Any, **kwargs: Any) -> Any:
            try:
                return fn(*args, **kwargs)
            except Exception as exc:  # the host app must never see our bugs
                internal_error(where, exc)
                return default

        return guarded  # type: ignore[return-value]

    return decorate
