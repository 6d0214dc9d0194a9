"""Low-cardinality names for exceptions, and rate-limit detection without importing SDKs."""

from __future__ import annotations

from typing import Any


def error_type_of(exc: BaseException) -> str:
    """``module.Class`` with private module segments dropped (``openai.RateLimitError``)."""
    cls = type(exc)
    module = cls.__module__
    if module == "builtins":
        return cls.__qualname__
    public = [part for part in module.split(".") if not part.startswith("_")]
    return ".".join([public[0] if public else module.split(".")[0], cls.__qualname__])


def _status_code(exc: BaseException) -> Any:
    status = getattr(exc, "status_code", None)
    if status is None:
        status = getattr(getattr(exc, "response", None), "status_code", None)
    return status


def is_rate_limit(exc: BaseException) -> bool:
    try:
        if _status_code(exc) == 429:
            return True
    except Exception:  # exotic exception objects must not break classification
        return False
    name = type(exc).__name__.lower()
    return "ratelimit" in name or "rate_limit" in name or "toomanyrequests" in name
