"""The metrics side of a finished call: instruments, unknown-input counters, the request roll-up."""

from __future__ import annotations

from opentelemetry.context import Context

from llm_otel._context import request_rollup
from llm_otel._log import log_once
from llm_otel._outcome import Outcome
from llm_otel._runtime import Telemetry


def record(outcome: Outcome, telemetry: Telemetry, context: Context) -> None:
    """Record ``outcome``; ``context`` carries the call's span so exemplars link to its trace."""
    recorder = telemetry.recorder
    for reason in outcome.problems:
        recorder.count_unknown_input("usage", reason)
        log_once(f"usage-problem:{reason}", "llm-otel: usage payload problem %r; recorded as unknown", reason)
    usage = outcome.facts.usage
    quote = outcome.quote
    recorder.record_call(
        outcome.series,
        duration_s=outcome.duration_s,
        usage=usage,
        cost_usd=outcome.cost_usd,
        unpriced=outcome.unpriced,
        time_to_first_chunk_s=outcome.time_to_first_chunk_s,
        error_type=outcome.error_type,
        rate_limited=outcome.rate_limited,
        context_window=quote.context_window if quote is not None else None,
        context=context,
        semconv=not outcome.shared_span,
    )
    rollup = request_rollup.get()
    if rollup is not None:
        rollup.add(
            input_tokens=usage.input_tokens,
            output_tokens=usage.output_tokens,
            cost_usd=outcome.cost_usd,
            failed=outcome.error is not None,
            unpriced=outcome.unpriced,
        )
