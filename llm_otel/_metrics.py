"""The one metrics recorder: instruments are created once per MeterProvider."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

from opentelemetry.context import Context
from opentelemetry.metrics import CallbackOptions, MeterProvider, Observation

from llm_otel import _names as n
from llm_otel._cardinality import CardinalityGuard
from llm_otel._usage import TokenUsage
from llm_otel._version import VERSION

CALL_SCOPE = "call"
QUALITY_SCOPE = "quality"
_INPUT = {n.GEN_AI_TOKEN_TYPE: "input"}
_OUTPUT = {n.GEN_AI_TOKEN_TYPE: "output"}


class RunningTotals:
    """Per-attribute-set running sums read by an observable counter at each collection.

    The token counters move on every call; a synchronous SDK counter pays for attribute
    cleaning, hashing and an exemplar offer on each ``add``, which is most of a call's
    overhead. Summing here (one dict update under a short lock) and letting the SDK read
    the sums when it collects exports the same cumulative series. Keys are the sorted
    attribute items, so one attribute set is one series whatever order it arrived in;
    the attributes are already bounded by the cardinality guard.
    """

    def __init__(self) -> None:
        self._sums: dict[tuple[tuple[str, str], ...], int | float] = {}
        self._lock = threading.Lock()

    def add(self, key: tuple[tuple[str, str], ...], amount: int | float) -> None:
        with self._lock:
            self._sums[key] = self._sums.get(key, 0) + amount

    def observe(self, options: CallbackOptions) -> list[Observation]:
        with self._lock:
            sums = list(self._sums.items())
        return [Observation(total, dict(key)) for key, total in sums]


def _create(meter: Any, spec: n.Instrument) -> Any:
    if spec.kind == "counter":
        return meter.create_counter(spec.name, unit=spec.unit, description=spec.description)
    if spec.kind == "gauge":
        return meter.create_gauge(spec.name, unit=spec.unit, description=spec.description)
    return meter.create_histogram(
        spec.name,
        unit=spec.unit,
        description=spec.description,
        explicit_bucket_boundaries_advisory=list(spec.buckets or ()),
    )


class Recorder:
    def __init__(self, meter_provider: MeterProvider, guard: CardinalityGuard) -> None:
        meter = meter_provider.get_meter("llm_otel", VERSION)
        self.guard = guard
        self.input_totals = RunningTotals()
        self.output_totals = RunningTotals()
        self.tokens_input = meter.create_observable_counter(
            n.TOKENS_INPUT.name, [self.input_totals.observe], unit=n.TOKENS_INPUT.unit,
            description=n.TOKENS_INPUT.description,
        )
        self.tokens_output = meter.create_observable_counter(
            n.TOKENS_OUTPUT.name, [self.output_totals.observe], unit=n.TOKENS_OUTPUT.unit,
            description=n.TOKENS_OUTPUT.description,
        )
        self.cost = _create(meter, n.COST)
        self.cost_unpriced = _create(meter, n.COST_UNPRICED)
        self.token_usage = _create(meter, n.TOKEN_USAGE)
        self.duration = _create(meter, n.OPERATION_DURATION)
        self.time_to_first_chunk = _create(meter, n.TIME_TO_FIRST_CHUNK)
        self.errors = _create(meter, n.ERRORS)
        self.rate_limited = _create(meter, n.RATE_LIMITED)
        self.hallucination = _create(meter, n.HALLUCINATION)
        self.context_utilization = _create(meter, n.CONTEXT_UTILIZATION)
        self.telemetry_dropped = _create(meter, n.TELEMETRY_DROPPED)
        self.input_unknown = _create(meter, n.INPUT_ANOMALIES)

    def bound(self, attributes: Mapping[str, str], scope: str = CALL_SCOPE) -> dict[str, str]:
        return self.guard.bound(scope, attributes)

    def bound_in_place(self, attributes: dict[str, str], scope: str = CALL_SCOPE) -> dict[str, str]:
        """Like ``bound`` for a dict the caller owns: over-cap values are replaced in it."""
        return self.guard.bound_in_place(scope, attributes)

    def record_call(
        self,
        attributes: Mapping[str, str],
        *,
        duration_s: float,
        usage: TokenUsage,
        cost_usd: float | None,
        unpriced: bool,
        time_to_first_chunk_s: float | None,
        error_type: str | None,
        rate_limited: bool,
        context_window: int | None,
        context: Context | None = None,
    ) -> None:
        """Record one finished call; ``attributes`` are already bounded.

        ``context`` carries the call's span so exemplars link the histograms to its trace.
        """
        self.duration.record(duration_s, attributes, context)
        key = tuple(sorted(attributes.items())) if usage.known else ()
        if time_to_first_chunk_s is not None:
            self.time_to_first_chunk.record(time_to_first_chunk_s, attributes, context)
        if usage.input_tokens is not None:
            self.input_totals.add(key, usage.input_tokens)
            self.token_usage.record(usage.input_tokens, {**attributes, **_INPUT}, context)
            if context_window:
                self.context_utilization.record(usage.input_tokens / context_window, attributes, context)
        if usage.output_tokens is not None:
            self.output_totals.add(key, usage.output_tokens)
            self.token_usage.record(usage.output_tokens, {**attributes, **_OUTPUT}, context)
        if cost_usd is not None:
            self.cost.record(cost_usd, attributes, context)
        elif unpriced:
            self.cost_unpriced.add(1, attributes, context)
        if error_type is not None:
            self.errors.add(1, attributes, context)
            if rate_limited:
                self.rate_limited.add(1, attributes, context)

    def record_quality(self, score: float, attributes: Mapping[str, str]) -> None:
        self.hallucination.set(score, attributes)

    def count_unknown_input(self, source: str, reason: str) -> None:
        self.input_unknown.add(1, {"source": source, "reason": reason})

    def count_dropped(self, signal: str, reason: str, amount: int = 1) -> None:
        self.telemetry_dropped.add(amount, {"signal": signal, "reason": reason})
