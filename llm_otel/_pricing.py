"""Cost of a call in USD, from the maintained ``genai-prices`` database plus user overrides.

The database lookup is resolved once per (provider, model) and cached; the
per-call arithmetic is a few multiplications. Prices that the fast path cannot
express (tiered prices, unusual units) fall back to ``genai_prices.calc_price``.
An unknown model is never priced at $0: it is reported as unpriced with a reason.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from llm_otel import _names as n
from llm_otel._log import log_once
from llm_otel._usage import TokenUsage

_CACHE_TTL_S = 3600.0
_PER_MTOK = 1e-6


@dataclass(frozen=True)
class Price:
    """Per-million-token prices (USD) for one model."""

    input: float
    output: float
    cache_read: float | None = None
    cache_write: float | None = None
    context_window: int | None = None

    @classmethod
    def from_mapping(cls, model: str, raw: Mapping[str, Any]) -> Price:
        def number(*names: str) -> float | None:
            for name in names:
                if raw.get(name) is not None:
                    value = float(raw[name])
                    if value < 0:
                        raise ValueError(f"price override for {model!r}: {name} must be >= 0")
                    return value
            return None

        input_price = number("input_per_mtok", "input_mtok", "input")
        output_price = number("output_per_mtok", "output_mtok", "output")
        if input_price is None or output_price is None:
            raise ValueError(f"price override for {model!r} needs input_per_mtok and output_per_mtok")
        window = raw.get("context_window")
        return cls(
            input_price,
            output_price,
            number("cache_read_per_mtok", "cache_read_mtok", "cache_read"),
            number("cache_write_per_mtok", "cache_write_mtok", "cache_write"),
            int(window) if window is not None else None,
        )

    def cost(self, usage: TokenUsage) -> float | None:
        input_tokens = usage.input_tokens or 0
        cache_read = usage.cache_read_input_tokens or 0
        cache_write = usage.cache_creation_input_tokens or 0
        if (cache_read and self.cache_read is None) or (cache_write and self.cache_write is None):
            return None
        uncached = input_tokens - cache_read - cache_write
        total = (
            uncached * self.input
            + cache_read * (self.cache_read or 0.0)
            + cache_write * (self.cache_write or 0.0)
            + (usage.output_tokens or 0) * self.output
        )
        return total * _PER_MTOK


@dataclass(frozen=True)
class Quote:
    cost_usd: float | None
    source: str
    reason: str | None = None
    context_window: int | None = None


def load_price_file(path: str | Path) -> dict[str, Mapping[str, Any]]:
    """Read a JSON or YAML mapping ``model -> {input_per_mtok, output_per_mtok, ...}``."""
    text = Path(path).read_text(encoding="utf-8")
    if str(path).endswith((".yaml", ".yml")):
        import yaml

        data = yaml.safe_load(text)
    else:
        data = json.loads(text)
    if not isinstance(data, Mapping):
        raise ValueError(f"{path}: expected a mapping of model name to prices")
    return {str(k): v for k, v in data.items()}


class _DatabaseEntry:
    __slots__ = ("context_window", "expires", "fast", "model", "provider")

    def __init__(self, provider: Any, model: Any, fast: Price | None, expires: float) -> None:
        self.provider = provider
        self.model = model
        self.fast = fast
        self.context_window: int | None = getattr(model, "context_window", None)
        self.expires = expires


_FAST_FIELDS = ("input_mtok", "output_mtok", "cache_read_mtok", "cache_write_mtok")


def _fast_price(model_price: Any) -> Price | None:
    """The linear price when every text-token price is a plain per-million figure."""
    values: dict[str, float | None] = {}
    for name in _FAST_FIELDS:
        value = getattr(model_price, name, None)
        if value is not None and not isinstance(value, Decimal):
            return None
        values[name] = float(value) if value is not None else None
    if values["input_mtok"] is None or values["output_mtok"] is None:
        return None
    return Price(
        values["input_mtok"] or 0.0,
        values["output_mtok"] or 0.0,
        values["cache_read_mtok"],
        values["cache_write_mtok"],
    )


class PriceBook:
    def __init__(self, overrides: Mapping[str, Mapping[str, Any] | Price] | None = None) -> None:
        self._overrides: dict[str, Price] = {}
        for model, raw in (overrides or {}).items():
            price = raw if isinstance(raw, Price) else Price.from_mapping(model, raw)
            self._overrides[model.lower()] = price
        self._db: dict[tuple[str, str], _DatabaseEntry | None] = {}
        self._lock = threading.Lock()

    def quote(self, provider: str | None, model: str | None, usage: TokenUsage) -> Quote:
        if not model:
            return Quote(None, n.UNKNOWN_VALUE, "model_unknown")
        override = self._override(provider, model)
        if override is not None:
            return Quote(override.cost(usage), "override", None, override.context_window)
        entry = self._entry(provider, model)
        if entry is None:
            return Quote(None, n.UNKNOWN_VALUE, "model_not_in_price_database")
        cost = entry.fast.cost(usage) if entry.fast is not None else None
        if cost is None:
            cost = self._full_calc(entry, usage)
        if cost is None:
            return Quote(None, n.UNKNOWN_VALUE, "price_calculation_failed", entry.context_window)
        return Quote(cost, "genai-prices", None, entry.context_window)

    def _override(self, provider: str | None, model: str) -> Price | None:
        if not self._overrides:
            return None
        key = model.lower()
        if provider:
            found = self._overrides.get(f"{provider.lower()}/{key}")
            if found is not None:
                return found
        return self._overrides.get(key)

    def _entry(self, provider: str | None, model: str) -> _DatabaseEntry | None:
        key = (provider or "", model)
        now = time.monotonic()
        if key in self._db:
            entry = self._db[key]
            if entry is None or entry.expires > now:
                return entry
        resolved = self._resolve(provider, model, now)
        with self._lock:
            self._db[key] = resolved
        return resolved

    @staticmethod
    def _resolve(provider: str | None, model: str, now: float) -> _DatabaseEntry | None:
        from datetime import datetime, timezone

        from genai_prices import data_snapshot

        snapshot = data_snapshot.get_snapshot()
        try:
            found_provider, found_model = snapshot.find_provider_model(model, None, provider or None, None)
        except LookupError:
            try:  # the provider name may be ours (e.g. "azure.ai.openai"); the model may still be known
                found_provider, found_model = snapshot.find_provider_model(model, None, None, None)
            except LookupError:
                log_once(
                    f"price:{provider}:{model}",
                    "llm-otel: no price for model %r (provider %r); its calls are counted in "
                    "llm_cost_unpriced_total. Add it with configure(prices=...) or LLM_OTEL_PRICES_FILE.",
                    model,
                    provider,
                )
                return None
        model_price = found_model.get_prices(datetime.now(tz=timezone.utc))
        return _DatabaseEntry(found_provider, found_model, _fast_price(model_price), now + _CACHE_TTL_S)

    @staticmethod
    def _full_calc(entry: _DatabaseEntry, usage: TokenUsage) -> float | None:
        from genai_prices import Usage

        try:
            result = entry.model.calc_price(
                Usage(
                    input_tokens=usage.input_tokens or 0,
                    output_tokens=usage.output_tokens or 0,
                    cache_read_tokens=usage.cache_read_input_tokens,
                    cache_write_tokens=usage.cache_creation_input_tokens,
                ),
                entry.provider,
            )
        except Exception as exc:
            log_once(f"price-calc:{entry.model.id}", "llm-otel: price calculation failed for %r: %s", entry.model.id, exc)
            return None
        return float(result.total_price)

