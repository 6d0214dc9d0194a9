"""Injected failures of the development stand-in server.

Faults are forced per request (header or prompt marker) or drawn at seeded
random rates, so a run with the same seed and request order fails the same way.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Literal

FAULT_HEADER = "x-standin-fault"
"""Request header that forces a fault: ``429``, ``500`` (any 4xx/5xx), ``timeout``, ``truncate`` or ``none``."""


@dataclass(frozen=True)
class Fault:
    """One injected failure: an HTTP error status, a held connection, or a cut response."""

    kind: Literal["status", "timeout", "truncate"]
    status: int = 0

    @property
    def label(self) -> str:
        return str(self.status) if self.kind == "status" else self.kind


def parse_fault(spec: str) -> Fault | None:
    """Parse a fault name from the header or a ``[[standin:fault=...]]`` marker.

    Returns None for ``none``; raises ValueError for an unknown name.
    """
    spec = spec.strip().lower()
    if spec == "none":
        return None
    if spec == "timeout":
        return Fault("timeout")
    if spec == "truncate":
        return Fault("truncate")
    if spec.isdigit() and 400 <= int(spec) <= 599:
        return Fault("status", int(spec))
    raise ValueError(
        f"unknown stand-in fault {spec!r}: use a 4xx/5xx status, 'timeout', 'truncate' or 'none'"
    )


@dataclass(frozen=True)
class FaultPlan:
    """Failures injected at random (seeded) rates, on top of forced ones.

    A request header ``x-standin-fault: <name>`` wins over a
    ``[[standin:fault=<name>]]`` marker in the prompt, which wins over the
    rates. ``timeout`` holds the request for ``timeout_hold_s`` before answering
    normally (longer than any sensible client timeout); ``truncate`` closes the
    connection after ``truncate_after_events`` stream events (or half way
    through a plain JSON body). 429 answers carry ``retry-after: retry_after_s``.
    """

    rate_429: float = 0.0
    rate_500: float = 0.0
    rate_timeout: float = 0.0
    rate_truncate: float = 0.0
    retry_after_s: float = 1.0
    timeout_hold_s: float = 30.0
    truncate_after_events: int = 2

    def __post_init__(self) -> None:
        rates = (self.rate_429, self.rate_500, self.rate_timeout, self.rate_truncate)
        if any(rate < 0 for rate in rates) or sum(rates) > 1:
            raise ValueError("fault rates must be >= 0 and add up to at most 1")
        if self.retry_after_s < 0 or self.timeout_hold_s < 0 or self.truncate_after_events < 0:
            raise ValueError("retry_after_s, timeout_hold_s and truncate_after_events must be >= 0")

    def draw(self, rng: random.Random) -> Fault | None:
        """Pick a fault (or none) according to the rates."""
        if not (self.rate_429 or self.rate_500 or self.rate_timeout or self.rate_truncate):
            return None
        value = rng.random()
        for rate, fault in (
            (self.rate_429, Fault("status", 429)),
            (self.rate_500, Fault("status", 500)),
            (self.rate_timeout, Fault("timeout")),
            (self.rate_truncate, Fault("truncate")),
        ):
            if value < rate:
                return fault
            value -= rate
        return None
