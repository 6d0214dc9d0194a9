"""The metrics side of a finished call: instruments, unknown-input counters, the request roll-up,
and the ``gen_ai.client.operation.exception`` event of a failed call."""

from __future__ import annotations

import traceback
from typing import Any

from opentelemetry._logs import SeverityNumber
from opentelemetry.context import Context

from llm_otel import _names as n
from llm_otel._context import request_rollup
from llm_otel._errors import bounded_redacted, describe
from llm_otel._log import internal_error, log_once
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
        chunk_gaps=outcome.chunk_gaps,
        inference=outcome.inference,
    )
    if outcome.error is not None and telemetry.event_logger is not None:
        _emit_exception_event(outcome, outcome.error, telemetry, context)
    rollup = request_rollup.get()
    if rollup is not None:
        rollup.add(
            input_tokens=usage.input_tokens,
            output_tokens=usage.output_tokens,
            cost_usd=outcome.cost_usd,
            failed=outcome.error is not None,
            unpriced=outcome.unpriced,
        )


_EXCEPTION_MESSAGE_MAX = 1000
_STACKTRACE_MAX = 8000


def _emit_exception_event(outcome: Outcome, error: BaseException | str, telemetry: Telemetry, context: Context) -> None:
    """The conventions' ``gen_ai.client.operation.exception`` event: a log record at WARN,
    in the call span's context, so a log backend links it to the trace."""
    logger = telemetry.event_logger
    assert logger is not None
    enabled = getattr(logger, "enabled", None)  # API >= 1.40: skip the stack trace nobody receives
    if enabled is not None and not enabled(severity_number=SeverityNumber.WARN,
                                           event_name=n.GEN_AI_CLIENT_OPERATION_EXCEPTION):
        return
    attributes: dict[str, Any] = {
        n.GEN_AI_OPERATION_NAME: outcome.operation,
        n.GEN_AI_PROVIDER_NAME: outcome.provider or n.UNKNOWN_VALUE,
    }
    if outcome.request_model:
        attributes[n.GEN_AI_REQUEST_MODEL] = outcome.request_model
    if outcome.error_type is not None:
        attributes[n.ERROR_TYPE] = outcome.error_type
    if isinstance(error, BaseException):
        cls = type(error)
        module = cls.__module__
        attributes[n.EXCEPTION_TYPE] = cls.__qualname__ if module == "builtins" else f"{module}.{cls.__qualname__}"
        # redacted and capped like the span's exception event: messages may quote prompts or keys
        redact = telemetry.redactor
        described = describe(error)
        attributes[n.EXCEPTION_MESSAGE] = bounded_redacted(
            cls.__name__ if described is None else described, redact, _EXCEPTION_MESSAGE_MAX)
        attributes[n.EXCEPTION_STACKTRACE] = bounded_redacted(
            "".join(traceback.format_exception(cls, error, error.__traceback__)), redact, _STACKTRACE_MAX,
            keep_tail=True)
    else:
        attributes[n.EXCEPTION_TYPE] = error
    try:
        logger.emit(
            event_name=n.GEN_AI_CLIENT_OPERATION_EXCEPTION,
            severity_number=SeverityNumber.WARN,
            severity_text="WARN",
            context=context,
            attributes=attributes,
        )
    except Exception as exc:
        internal_error("call.exception_event", exc)
