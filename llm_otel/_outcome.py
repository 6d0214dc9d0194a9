"""A finished call as one value: what happened, what it cost, and under which bounded labels.

``settle()`` decides everything once (error type, metric series, price or why there is none,
usage problems); the metrics recorder (``_record``) and the span writer (``_span_writer``) only
read the outcome, so a span and its metric points never disagree.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from llm_otel import _names as n
from llm_otel._errors import error_type as classify_error
from llm_otel._extract import ResponseFacts
from llm_otel._log import log_once
from llm_otel._metrics import Recorder, Series
from llm_otel._pricing import Quote
from llm_otel._usage import TokenUsage

if TYPE_CHECKING:
    from llm_otel._call import LLMCall


@dataclass(eq=False)
class Outcome:
    operation: str
    provider: str | None  # as the call or its response named it
    request_model: str | None  # the request model, else the response model
    facts: ResponseFacts
    duration_s: float
    time_to_first_chunk_s: float | None
    streaming: bool
    chunks: int
    error: BaseException | str | None
    error_type: str | None
    stream_outcome: str | None  # closed_early / cancelled: stopped without failing (llm.stream.outcome)
    rate_limited: bool
    series: Series  # the bounded metric attributes
    quote: Quote | None
    cost_usd: float | None
    unpriced: bool
    problems: tuple[str, ...]  # usage payload problems, each counted as unknown input
    input_messages: Any
    shared_span: bool  # another vendor's span of the same API call carries the GenAI attributes
    server_address: str | None  # the GenAI server called (server.address / server.port)
    server_port: int | None
    chunk_gaps: Sequence[float]  # seconds between chunks after the first (time per output chunk)
    inference: bool  # an inference operation (chat, completion, ...): per-chunk timing applies

    @property
    def usage(self) -> TokenUsage:
        return self.facts.usage

    @property
    def failed(self) -> bool:
        return self.error is not None


def settle(call: LLMCall, duration_s: float, error: BaseException | str | None) -> Outcome:
    facts = call.facts
    spec = call.spec
    provider = call.provider or facts.provider
    request_model = call.request_model or facts.response_model

    # a rate limit has one error.type across providers; the exception event on the span keeps the class
    error_type = None if error is None else classify_error(error)
    stream_outcome = call.outcome
    series = _series(call, provider, request_model, error_type, stream_outcome)

    quote, cost, unpriced = _price(
        call, series.attributes, provider, request_model, failed=error is not None, interrupted=stream_outcome is not None
    )
    return Outcome(
        operation=spec.static_labels[n.GEN_AI_OPERATION_NAME],  # bounded: it names the span
        provider=provider,
        request_model=request_model,
        facts=facts,
        duration_s=duration_s,
        time_to_first_chunk_s=call.time_to_first_chunk_s,
        streaming=call.streaming,
        chunks=call.chunks,
        error=error,
        error_type=error_type,
        stream_outcome=stream_outcome,
        rate_limited=error_type == n.RATE_LIMIT_ERROR_TYPE,
        series=series,
        quote=quote,
        cost_usd=cost,
        unpriced=unpriced,
        problems=tuple(call.problems.reasons),
        input_messages=call.input_messages,
        shared_span=call.shared_span,
        server_address=call.server_address,
        server_port=call.server_port,
        chunk_gaps=call.chunk_gaps,
        inference=spec.operation in n.INFERENCE_OPERATIONS,
    )


def _series(
    call: LLMCall, provider: str | None, request_model: str | None, error_type: str | None, outcome: str | None
) -> Series:
    """The call's bounded metric attributes; a call site reuses them while its labels repeat."""
    recorder: Recorder = call.telemetry.recorder
    response_model = call.facts.response_model
    key = (provider, request_model, response_model, error_type, outcome, call.server_address, call.server_port)
    memo = call.spec.memo.series if call.labels is call.spec.static_labels else None
    if memo is not None:
        found = memo.get(key, recorder)
        if found is not None:
            return found
    labels = dict(call.labels)
    labels[n.GEN_AI_PROVIDER_NAME] = provider or n.UNKNOWN_VALUE
    labels[n.GEN_AI_REQUEST_MODEL] = request_model or n.UNKNOWN_VALUE
    if response_model:
        labels[n.GEN_AI_RESPONSE_MODEL] = response_model
    if call.server_address:
        labels[n.SERVER_ADDRESS] = call.server_address
        if call.server_port:
            labels[n.SERVER_PORT] = str(call.server_port)  # metric labels are strings
    if error_type is not None:
        labels[n.ERROR_TYPE] = error_type
    bounded = recorder.bound_in_place(labels)
    if outcome is not None:
        bounded[n.LLM_STREAM_OUTCOME] = outcome  # two possible values: added past the guard, never folded
    series = recorder.series(bounded)
    # A folded label is not kept: every call past the cap is counted by the guard again.
    # The guard never forgets an admitted value, so a kept series stays exact.
    if memo is not None and n.OVERFLOW_VALUE not in labels.values():
        memo.admit(key, series, recorder)
    return series


def _over_cap(bounded: Mapping[str, str]) -> bool:
    """The call's provider, or every model name it could be priced by, was folded by the cap."""
    if bounded.get(n.GEN_AI_PROVIDER_NAME) == n.OVERFLOW_VALUE:
        return True
    response = bounded.get(n.GEN_AI_RESPONSE_MODEL)
    return bounded.get(n.GEN_AI_REQUEST_MODEL) == n.OVERFLOW_VALUE and (
        response is None or response == n.OVERFLOW_VALUE
    )


def _price(
    call: LLMCall,
    bounded: Mapping[str, str],
    provider: str | None,
    request_model: str | None,
    *,
    failed: bool,
    interrupted: bool,
) -> tuple[Quote | None, float | None, bool]:
    """(quote, cost, unpriced): the pricing policy. An unknown price is not $0, nor is half a call's."""
    facts = call.facts
    usage = facts.usage
    embeddings = call.spec.operation == n.OP_EMBEDDINGS
    complete = usage.input_tokens is not None and (usage.output_tokens is not None or embeddings)
    if complete and _over_cap(bounded):
        # Past the cardinality cap a model name is as good as unbounded input: looking each
        # one up would grow the price cache and cost a database search per call.
        log_once("price:over-cap", "llm-otel: more distinct models than cardinality_limit; calls of models "
                 "past the limit are counted as unpriced (raise cardinality_limit if they are real)")
        return Quote(None, n.UNKNOWN_VALUE, "model_over_cardinality_limit"), call.cost_usd, True
    if complete:
        prices = call.telemetry.prices
        quote = prices.quote(provider, facts.response_model or request_model, usage)
        if quote.cost_usd is None and facts.response_model and request_model != facts.response_model:
            quote = prices.quote(provider, request_model, usage)
        return quote, quote.cost_usd, quote.cost_usd is None
    if usage.known:
        # pricing half a call would understate it; an unknown price is not a partial one.
        # A stream stopped before its usage arrived lacks usage, not a price: LLMUnpricedCalls
        # would ask for a price override.
        return Quote(None, n.UNKNOWN_VALUE, "usage_incomplete"), call.cost_usd, not interrupted
    if failed or interrupted:  # an interrupted call, like a failed one, may never have had usage to report
        return None, call.cost_usd, False
    # embedding APIs often report no usage at all; an adapter may have said why already
    if not embeddings and not call.problems.reasons:
        call.problems.add("usage:missing")
    return None, call.cost_usd, True
