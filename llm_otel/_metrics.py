"""The one metrics recorder: instruments are created once per MeterProvider."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from opentelemetry.context import Context
from opentelemetry.metrics import MeterProvider

from llm_otel import _names as n
from llm_otel._cardinality import CardinalityGuard
from llm_otel._usage import TokenUsage
from llm_otel._version import VERSION

CALL_SCOPE = "call"
QUALITY_SCOPE = "quality"
_INPUT = {n.GEN_AI_TOKEN_TYPE: "input"}
_OUTPUT = {n.GEN_AI_TOKEN_TYPE: "output"}


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
        self.tokens_input = _create(meter, n.TOKENS_INPUT)
        self.tokens_output = _create(meter, n.TOKENS_OUTPUT)
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

        ``context`` carries the call's span so exemplars link each series to its trace.
        """
        self.duration.record(duration_s, attributes, context)
        if time_to_first_chunk_s is not None:
            self.time_to_first_chunk.record(time_to_first_chunk_s, attributes, context)
        if usage.input_tokens is not None:
            self.tokens_input.add(usage.input_tokens, attributes, context)
            self.token_usage.record(usage.input_tokens, {**attributes, **_INPUT}, context)
            if context_window:
                self.context_utilization.record(usage.input_tokens / context_window, attributes, context)
        if usage.output_tokens is not None:
            self.tokens_output.add(usage.output_tokens, attributes, context)
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
