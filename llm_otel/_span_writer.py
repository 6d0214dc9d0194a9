"""The span side of a finished call: GenAI attributes, cost, status and the exception event."""

from __future__ import annotations

from typing import Any

from opentelemetry.trace import Span

from llm_otel import _bounds as bounds
from llm_otel import _names as n
from llm_otel._content import ContentBudget, input_messages_json, output_messages_json
from llm_otel._errors import error_type as classify_error
from llm_otel._errors import record_error
from llm_otel._outcome import Outcome
from llm_otel._runtime import Telemetry


def write_span(
    span: Span,
    outcome: Outcome,
    telemetry: Telemetry,
    *,
    on_span: tuple[str | None, str | None],
    span_server: tuple[str | None, int | None] = (None, None),
) -> None:
    """Annotate a recording span; ``on_span`` is the (provider, request model) the span already has,
    ``span_server`` the (server address, port) it started with."""
    facts = outcome.facts
    usage = facts.usage
    provider, request_model = outcome.provider, outcome.request_model
    start_provider, start_model = on_span
    attributes: dict[str, Any] = {}
    if provider != start_provider or not provider:  # already on the span unless it changed since start
        attributes[n.GEN_AI_PROVIDER_NAME] = provider or n.UNKNOWN_VALUE
    if request_model and not start_model:
        span.update_name(f"{outcome.operation} {request_model}")
        attributes[n.GEN_AI_REQUEST_MODEL] = request_model
    server = outcome.server_address
    if server and (server, outcome.server_port) != span_server:  # set after the span started
        attributes[n.SERVER_ADDRESS] = server
        if outcome.server_port:
            attributes[n.SERVER_PORT] = outcome.server_port
    latest = telemetry.semconv == n.SEMCONV_LATEST
    for key, value in (
        (n.GEN_AI_RESPONSE_MODEL, facts.response_model),
        (n.GEN_AI_RESPONSE_ID, facts.response_id),
        (n.GEN_AI_USAGE_INPUT_TOKENS, usage.input_tokens),
        (n.GEN_AI_USAGE_OUTPUT_TOKENS, usage.output_tokens),
        (n.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS, usage.cache_read_input_tokens),
        (n.GEN_AI_USAGE_CACHE_WRITE_INPUT_TOKENS if latest else n.GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS,
         usage.cache_creation_input_tokens),
        (n.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS, usage.reasoning_output_tokens),
        (n.LLM_COST_USD, outcome.cost_usd),
        (n.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK, outcome.time_to_first_chunk_s),
    ):
        if value is not None:
            attributes[key] = value
    if facts.finish_reasons:
        attributes[n.GEN_AI_RESPONSE_FINISH_REASONS] = list(facts.finish_reasons)
    quote = outcome.quote
    if quote is not None:
        attributes[n.LLM_COST_SOURCE] = quote.source
        if quote.reason:
            attributes[n.LLM_COST_UNPRICED_REASON] = quote.reason
    elif outcome.unpriced:
        attributes[n.LLM_COST_SOURCE] = n.UNKNOWN_VALUE
        # an adapter's own reason (note_usage_unknown), e.g. usage:stream_not_requested
        said = [r for r in outcome.problems if r.startswith("usage:") and r != "usage:missing"]
        attributes[n.LLM_COST_UNPRICED_REASON] = said[0].partition(":")[2] if said else "usage_unknown"
    if outcome.problems:
        attributes[n.LLM_USAGE_UNKNOWN] = list(outcome.problems)
    if outcome.stream_outcome is not None:
        attributes[n.LLM_STREAM_OUTCOME] = outcome.stream_outcome
    if outcome.streaming:
        attributes[n.GEN_AI_REQUEST_STREAM] = True
        attributes[n.LLM_STREAM_CHUNKS] = outcome.chunks
    elif outcome.error is None and not facts.empty:  # a whole response came back: not a stream
        attributes[n.GEN_AI_REQUEST_STREAM] = False
    if telemetry.capture_content:
        settings = telemetry.settings
        # each message capped, then the call's total, before redaction (docs/content-capture.md)
        budget = ContentBudget(
            telemetry.redactor,
            settings.get("content_max_message_chars", _CONTENT_MESSAGE_DEFAULT),
            settings.get("content_max_call_chars", _CONTENT_CALL_DEFAULT),
        )
        if outcome.input_messages is not None:
            rendered = input_messages_json(outcome.input_messages, budget)
            if rendered is not None:
                attributes[n.GEN_AI_INPUT_MESSAGES] = rendered
        if facts.output_text:
            attributes[n.GEN_AI_OUTPUT_MESSAGES] = output_messages_json(
                facts.output_text, facts.finish_reasons, budget
            )
        if budget.truncated:
            attributes[n.LLM_CONTENT_TRUNCATED] = True
    error, error_type = outcome.error, outcome.error_type
    if error_type is not None:
        attributes[n.ERROR_TYPE] = error_type
    span.set_attributes(attributes)
    if error is not None and error_type is not None:
        _record_error(span, error, error_type, telemetry)


def write_shared_span(span: Span, outcome: Outcome) -> None:
    """Another vendor's span of the same API call: only what it does not know (cost, why unknown)."""
    attributes: dict[str, Any] = {}
    if outcome.cost_usd is not None:
        attributes[n.LLM_COST_USD] = outcome.cost_usd
    quote = outcome.quote
    if quote is not None:
        attributes[n.LLM_COST_SOURCE] = quote.source
        if quote.reason:
            attributes[n.LLM_COST_UNPRICED_REASON] = quote.reason
    elif outcome.unpriced:
        attributes[n.LLM_COST_SOURCE] = n.UNKNOWN_VALUE
    if outcome.problems:
        attributes[n.LLM_USAGE_UNKNOWN] = list(outcome.problems)
    span.set_attributes(attributes)


def write_deferred_span(
    span: Span,
    operation: str,
    renamed_model: str | None,
    error: BaseException | str | None,
    telemetry: Telemetry,
    stream_outcome: str | None = None,
) -> None:
    """A call whose API call a call nearer the wire records: the span stays, marked, as its parent.
    A stream stopped early says so here too, as the record beneath it does."""
    attributes: dict[str, Any] = {n.LLM_RECORD_DEFERRED: True}
    if stream_outcome is not None:
        attributes[n.LLM_STREAM_OUTCOME] = stream_outcome
    if renamed_model:
        span.update_name(f"{operation} {renamed_model}")
    if error is not None:
        error_type = classify_error(error)
        attributes[n.ERROR_TYPE] = error_type
        _record_error(span, error, error_type, telemetry)
    span.set_attributes(attributes)


_CONTENT_MESSAGE_DEFAULT = 16384
_CONTENT_CALL_DEFAULT = 65536


def _record_error(span: Span, error: BaseException | str, error_type: str, telemetry: Telemetry) -> None:
    """Status and exception event, the message redacted and capped in every capture mode."""
    record_error(span, error if isinstance(error, BaseException) else error_type, telemetry.redactor,
                 telemetry.settings.get("attribute_max_length", bounds.DEFAULT_ATTRIBUTE_MAX_CHARS))
