"""The one metrics recorder: instruments are created once per MeterProvider."""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from opentelemetry.context import Context
from opentelemetry.metrics import CallbackOptions, MeterProvider, Observation

from llm_otel import _fork
from llm_otel import _names as n
from llm_otel._bounds import INT64_MAX
from llm_otel._cardinality import CardinalityGuard
from llm_otel._log import log_once
from llm_otel._usage import TokenUsage
from llm_otel._version import VERSION

CALL_SCOPE = "call"
QUALITY_SCOPE = "quality"
_INPUT = {n.GEN_AI_TOKEN_TYPE: "input"}
_OUTPUT = {n.GEN_AI_TOKEN_TYPE: "output"}
_MODALITY = {n.GEN_AI_TOKEN_MODALITY: n.TOKEN_MODALITY_UNKNOWN}
_NO_EXEMPLAR = Context()  # no span in it: the trace-based exemplar filter offers nothing


class TokenTotals:
    """Per-series running sums of token counts, read by observable counters.

    The token counters move on every call; a synchronous SDK counter pays for attribute
    cleaning, hashing and an exemplar offer on each ``add``, which is most of a call's
    overhead. Summing here (one dict update under a short lock) and letting the SDK read
    the sums when it collects exports the same cumulative series. Keys are the sorted
    attribute items, so one attribute set is one series whatever order it arrived in;
    the attributes are already bounded by the cardinality guard. Each slot is one counter
    (input and output tokens; in the latest conventions also cache read/write and reasoning).
    """

    _by_provider: weakref.WeakKeyDictionary[Any, dict[int, TokenTotals]] = weakref.WeakKeyDictionary()
    _registry_lock = threading.Lock()

    def __init__(self, slots: int = 2) -> None:
        # a slot never added to stays None: no zero series for, say, the output of an embedding
        self._sums: dict[tuple[tuple[str, str], ...], list[int | None]] = {}
        self._slots = slots
        self._lock = threading.Lock()
        _fork.after_fork_in_child(self, TokenTotals._after_fork)

    @classmethod
    def of(cls, meter_provider: Any, slots: int = 2) -> TokenTotals:
        """The sums behind one MeterProvider's token counters, shared by every recorder on it.

        The SDK hands a second ``create_observable_counter`` of the same name back the first
        instrument with its first callback, so a recorder built by a second ``configure()``
        on the same provider must add to the sums that callback reads (or its tokens freeze).
        ``slots`` tells the kit's two counters (2) from the latest conventions' usage counters (5).
        """
        with cls._registry_lock:
            try:
                by_slots = cls._by_provider.get(meter_provider)
                if by_slots is None:
                    by_slots = cls._by_provider[meter_provider] = {}
                totals = by_slots.get(slots)
                if totals is None:
                    totals = by_slots[slots] = cls(slots)
            except TypeError:  # a provider that cannot be weakly referenced: its own sums
                totals = cls(slots)
            return totals

    def _after_fork(self) -> None:
        """A forked child starts from zero: its parent exports the sums it had."""
        self._lock = threading.Lock()
        self._sums = {}
        TokenTotals._registry_lock = threading.Lock()

    def add(self, key: tuple[tuple[str, str], ...], *counts: int | None) -> None:
        with self._lock:
            sums = self._sums.get(key)
            if sums is None:
                sums = self._sums[key] = [None] * self._slots
            # saturate rather than wrap or overflow: an OTLP integer point past int64 fails to encode,
            # and with it the whole metric export of the process (reaching it takes ~1,000 calls of
            # 2**53 tokens, so a saturated total is a poisoned one, and is logged)
            saturated = False
            for index, count in enumerate(counts):
                if count is not None:
                    total = sums[index] = min((sums[index] or 0) + count, INT64_MAX)
                    saturated = saturated or total == INT64_MAX
        if saturated:
            log_once("tokens:saturated", "llm-otel: a token total reached the int64 limit and stays there")

    def observer(self, index: int) -> Callable[[CallbackOptions], list[Observation]]:
        def observe(options: CallbackOptions) -> list[Observation]:
            return self._observe(index)
        return observe

    def observe_input(self, options: CallbackOptions) -> list[Observation]:
        return self._observe(0)

    def observe_output(self, options: CallbackOptions) -> list[Observation]:
        return self._observe(1)

    def _observe(self, index: int) -> list[Observation]:
        with self._lock:
            sums = [(key, totals[index]) for key, totals in self._sums.items()]
        return [Observation(total, dict(key)) for key, total in sums if total is not None]


class Series:
    """One bounded attribute set of the per-call instruments, with what recording it needs."""

    __slots__ = ("attributes", "chunk_attributes", "input_attributes", "key", "output_attributes", "recorder",
                 "usage_key")

    def __init__(self, recorder: Recorder, attributes: dict[str, str]) -> None:
        self.recorder = recorder
        self.attributes = attributes
        self.key = tuple(sorted(attributes.items()))
        # the streaming histograms and the latest usage counters carry no error.type
        chunk = self.chunk_attributes = (
            {k: v for k, v in attributes.items() if k != n.ERROR_TYPE} if n.ERROR_TYPE in attributes else attributes
        )
        if recorder.latest:
            self.input_attributes = self.output_attributes = attributes
            self.usage_key = tuple(sorted({**chunk, **_MODALITY}.items()))
        else:
            self.input_attributes = {**attributes, **_INPUT}
            self.output_attributes = {**attributes, **_OUTPUT}
            self.usage_key = ()


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


_USAGE_COUNTERS = (
    n.USAGE_INPUT_TOKENS,
    n.USAGE_OUTPUT_TOKENS,
    n.USAGE_CACHE_READ_INPUT_TOKENS,
    n.USAGE_CACHE_WRITE_INPUT_TOKENS,
    n.USAGE_REASONING_OUTPUT_TOKENS,
)


class Recorder:
    """Creates the instruments once per MeterProvider, under the names of one conventions mode."""

    def __init__(self, meter_provider: MeterProvider, guard: CardinalityGuard,
                 semconv: str = n.SEMCONV_DEFAULT) -> None:
        self.latest = semconv == n.SEMCONV_LATEST
        schema = None if self.latest else n.SCHEMA_URL_V1_41
        meter = meter_provider.get_meter("llm_otel", VERSION, schema_url=schema)
        self.guard = guard
        self.token_totals = TokenTotals.of(meter_provider)
        self.tokens_input = meter.create_observable_counter(
            n.TOKENS_INPUT.name, [self.token_totals.observe_input], unit=n.TOKENS_INPUT.unit,
            description=n.TOKENS_INPUT.description,
        )
        self.tokens_output = meter.create_observable_counter(
            n.TOKENS_OUTPUT.name, [self.token_totals.observe_output], unit=n.TOKENS_OUTPUT.unit,
            description=n.TOKENS_OUTPUT.description,
        )
        self.cost = _create(meter, n.COST)
        self.cost_unpriced = _create(meter, n.COST_UNPRICED)
        self.duration = _create(meter, n.OPERATION_DURATION)
        if self.latest:
            self.inference_duration = _create(meter, n.INFERENCE_DURATION)
            self.token_usage = None
            self.input_tokens = _create(meter, n.INFERENCE_OPERATION_INPUT_TOKENS)
            self.output_tokens = _create(meter, n.INFERENCE_OPERATION_OUTPUT_TOKENS)
            self.time_to_first_chunk = _create(meter, n.INFERENCE_TIME_TO_FIRST_CHUNK)
            self.time_per_output_chunk = _create(meter, n.INFERENCE_TIME_PER_OUTPUT_CHUNK)
            self.usage_totals = TokenTotals.of(meter_provider, len(_USAGE_COUNTERS))
            for index, spec in enumerate(_USAGE_COUNTERS):
                meter.create_observable_counter(
                    spec.name, [self.usage_totals.observer(index)], unit=spec.unit, description=spec.description,
                )
        else:
            self.inference_duration = self.duration
            self.token_usage = self.input_tokens = self.output_tokens = _create(meter, n.TOKEN_USAGE)
            self.time_to_first_chunk = _create(meter, n.TIME_TO_FIRST_CHUNK)
            self.time_per_output_chunk = _create(meter, n.TIME_PER_OUTPUT_CHUNK)
        self.errors = _create(meter, n.ERRORS)
        self.rate_limited = _create(meter, n.RATE_LIMITED)
        self.hallucination = _create(meter, n.HALLUCINATION)
        self.evaluation_score = _create(meter, n.EVALUATION_SCORE)
        self.drift = _create(meter, n.DRIFT)
        self.context_utilization = _create(meter, n.CONTEXT_UTILIZATION)
        self.telemetry_dropped = _create(meter, n.TELEMETRY_DROPPED)
        self.input_unknown = _create(meter, n.INPUT_ANOMALIES)

    def bound(self, attributes: Mapping[str, str], scope: str = CALL_SCOPE) -> dict[str, str]:
        return self.guard.bound(scope, attributes)

    def bound_in_place(self, attributes: dict[str, str], scope: str = CALL_SCOPE) -> dict[str, str]:
        """Like ``bound`` for a dict the caller owns: over-cap values are replaced in it."""
        return self.guard.bound_in_place(scope, attributes)

    def series(self, attributes: dict[str, str]) -> Series:
        """The series of already bounded ``attributes`` (callers may keep it for later calls)."""
        return Series(self, attributes)

    def record_call(
        self,
        series: Series,
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
        semconv: bool = True,
        chunk_gaps: Sequence[float] = (),
        inference: bool = True,
    ) -> None:
        """Record one finished call of ``series``.

        ``context`` carries the call's span so exemplars link the histograms to its trace.
        ``semconv=False`` leaves out the GenAI conventions' own client metrics (another
        instrumentation of the same call records them already). ``chunk_gaps`` are the times
        between a stream's chunks after the first; ``inference`` says the operation generates
        (chat, completions), not embeds or retrieves.
        """
        attributes = series.attributes
        if semconv:
            (self.inference_duration if inference else self.duration).record(duration_s, attributes, context)
            if time_to_first_chunk_s is not None:
                self.time_to_first_chunk.record(time_to_first_chunk_s, series.chunk_attributes, context)
            if chunk_gaps:
                # one observation per chunk: an exemplar on each would cost more than the observation
                # and link the same trace the duration histogram's exemplar already links
                record_gap = self.time_per_output_chunk.record
                chunk_attributes = series.chunk_attributes
                for gap in chunk_gaps:
                    record_gap(gap, chunk_attributes, _NO_EXEMPLAR)
        input_tokens, output_tokens = usage.input_tokens, usage.output_tokens
        if input_tokens is not None or output_tokens is not None:
            self.token_totals.add(series.key, input_tokens, output_tokens)
        if semconv and self.latest and (inference or usage.known):
            # every inference operation counts, failed ones and ones without usage as 0
            self.usage_totals.add(
                series.usage_key, input_tokens or 0, output_tokens or 0, usage.cache_read_input_tokens or 0,
                usage.cache_creation_input_tokens or 0, usage.reasoning_output_tokens or 0,
            )
        if input_tokens is not None:
            if semconv:
                self.input_tokens.record(input_tokens, series.input_attributes, context)
            if context_window:
                self.context_utilization.record(input_tokens / context_window, attributes, context)
        if output_tokens is not None and semconv:
            self.output_tokens.record(output_tokens, series.output_attributes, context)
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

    def record_evaluation(self, score: float, attributes: Mapping[str, str], *, is_hallucination: bool) -> None:
        """One score into the histogram (by evaluation name); hallucination scores also set the gauge."""
        self.evaluation_score.record(score, attributes)
        if is_hallucination:
            self.hallucination.set(score, {k: v for k, v in attributes.items() if k != n.GEN_AI_EVALUATION_NAME})

    def record_drift(self, distance: float, task_type: str, signal: str) -> None:
        self.drift.set(distance, {n.LLM_TASK_TYPE: task_type, n.LLM_DRIFT_SIGNAL: signal})

    def count_unknown_input(self, source: str, reason: str) -> None:
        self.input_unknown.add(1, {n.SOURCE: source, n.REASON: reason})

    def count_dropped(self, signal: str, reason: str, amount: int = 1) -> None:
        self.telemetry_dropped.add(amount, {n.SIGNAL: signal, n.REASON: reason})
