"""Response timing of the development stand-in server.

The server draws from one seeded ``random.Random``, so a run with the same seed
and the same request order sees the same delays.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

_Z99 = 2.3263478740408408  # standard normal quantile at 0.99


@dataclass(frozen=True)
class LatencyProfile:
    """Response timing.

    ``mean_ms``/``p99_ms`` describe the time before the first response byte
    (time to first chunk): fixed when ``p99_ms`` is None, otherwise lognormal
    with that mean and 99th percentile. ``per_chunk_ms`` is the generation time
    of every output token: the gap between streamed chunks, and part of the
    total time of a non-streamed answer (reasoning tokens included).
    """

    mean_ms: float = 0.0
    p99_ms: float | None = None
    per_chunk_ms: float = 0.0

    def __post_init__(self) -> None:
        if self.mean_ms < 0 or self.per_chunk_ms < 0:
            raise ValueError("latencies must not be negative")
        if self.p99_ms is not None:
            if self.mean_ms <= 0 or self.p99_ms <= self.mean_ms:
                raise ValueError("a lognormal latency needs 0 < mean_ms < p99_ms")
            if math.log(self.p99_ms / self.mean_ms) > _Z99 * _Z99 / 2:
                raise ValueError("p99_ms is too far above mean_ms for a lognormal (ratio must be < 14.9)")

    @classmethod
    def fixed(cls, ms: float, *, per_chunk_ms: float = 0.0) -> LatencyProfile:
        return cls(mean_ms=ms, per_chunk_ms=per_chunk_ms)

    @classmethod
    def lognormal(cls, mean_ms: float, p99_ms: float, *, per_chunk_ms: float = 0.0) -> LatencyProfile:
        return cls(mean_ms=mean_ms, p99_ms=p99_ms, per_chunk_ms=per_chunk_ms)

    def _mu_sigma(self) -> tuple[float, float]:
        # mean = exp(mu + s^2/2), p99 = exp(mu + z*s)  =>  s^2/2 - z*s + ln(p99/mean) = 0 (smaller root)
        assert self.p99_ms is not None
        sigma = _Z99 - math.sqrt(_Z99 * _Z99 - 2 * math.log(self.p99_ms / self.mean_ms))
        return math.log(self.mean_ms) - sigma * sigma / 2, sigma

    def first_chunk_seconds(self, rng: random.Random) -> float:
        """Draw one time-to-first-chunk, in seconds."""
        if self.p99_ms is None:
            return self.mean_ms / 1000
        mu, sigma = self._mu_sigma()
        return rng.lognormvariate(mu, sigma) / 1000

    @property
    def per_chunk_seconds(self) -> float:
        return self.per_chunk_ms / 1000
