"""One LLM call: the record every adapter fills and the core turns into a span and metrics.

Two lifecycle shapes share this class: ``start()`` / ``end()`` / ``fail()`` for
framework callbacks, and the ``llm_call()`` context manager (on which the
decorator is built) for call sites.
"""

from __future__ import annotations

import functools
import time
import traceback
from array import array
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any
from urllib.parse import urlsplit

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry._logs import SeverityNumber
from opentelemetry.trace import Span, SpanKind

from llm_otel import _bounds as bounds
from llm_otel import _names as n
from llm_otel._content import ContentBudget, input_messages_json, output_messages_json
from llm_otel._context import ambient_labels, current_call, request_rollup
from llm_otel._errors import bounded_redacted, describe, interruption_of, record_error
from llm_otel._errors import error_type as classify_error
from llm_otel._extract import ResponseFacts, facts_from, uneventful_chunk, usage_from_mapping
from llm_otel._log import internal_error, log_once
from llm_otel._metrics import Recorder, Series
from llm_otel._ownership import defer_enclosing_call, foreign_genai_span
from llm_otel._pricing import Quote
from llm_otel._retrieved import passages_of, recall
from llm_otel._runtime import Telemetry, current
from llm_otel._usage import TokenUsage, UsageProblems
from llm_otel._usage import bounded as bounded_usage

UsageReader = Callable[[Any], Any]
_START_ATTRIBUTE_SETS_MAX = 64
_SERIES_MAX = 64  # per call site; model names and error types may be unbounded
_SCHEME_PORTS = {"https": 443, "http": 80, "wss": 443, "ws": 80}
_EXCEPTION_MESSAGE_MAX = 1000
_STACKTRACE_MAX = 8000


def _over_cap(bounded: Mapping[str, str], provider_key: str, response_key: str, request_key: str) -> bool:
    """The call's provider, or every model name it could be priced by, was folded by the cap."""
    if bounded.get(provider_key) == n.OVERFLOW_VALUE:
        return True
    response = bounded.get(response_key)
    return bounded.get(request_key) == n.OVERFLOW_VALUE and (response is None or response == n.OVERFLOW_VALUE)


def server_of(address: Any, port: Any = None) -> tuple[str | None, int | None]:
    """``(host, port)`` from a host and port or a base URL; ``(None, None)`` when unusable (never raises)."""
    try:
        if isinstance(address, str) and "://" in address:
            parsed = urlsplit(address)
            address = parsed.hostname
            if port is None:
                port = parsed.port or _SCHEME_PORTS.get(parsed.scheme)
        if not isinstance(address, str) or not address:
            return None, None
        if isinstance(port, int) and not isinstance(port, bool) and 0 < port < 65536:
            return address, port
        return address, None
    except Exception as exc:  # a malformed URL (bad port) costs the attribute, never the call
        log_once("server:bad-url", "llm-otel: server address %r not understood (%s); not recorded",
                 address, type(exc).__name__)
        return None, None


@dataclass(frozen=True)
class CallSpec:
    """What is known before the call: fixed at decoration time, reused for every call."""

    operation: str = n.OP_CHAT
    provider: str | None = None
    model: str | None = None
    task_type: str | None = None
    prompt_name: str | None = None
    prompt_version: str | None = None
    usage: UsageReader | None = None
    labels: Mapping[str, str] = field(default_factory=dict)
    server_address: str | None = None  # already parsed (server_of)
    server_port: int | None = None

    @functools.cached_property
    def static_labels(self) -> dict[str, str]:
        static = {n.GEN_AI_OPERATION_NAME: bounds.label(str(self.operation))}
        for key, value in (
            (n.LLM_TASK_TYPE, self.task_type),
            (n.LLM_PROMPT_NAME, self.prompt_name),
            (n.LLM_PROMPT_VERSION, self.prompt_version),
        ):
            if value is not None:
                static[key] = bounds.label(str(value))
        static.update(bounds.labels(self.labels))
        return static

    @functools.cached_property
    def start_attribute_sets(self) -> dict[tuple[Any, ...], dict[str, Any]]:
        """Span start attributes by (provider, request model, server), filled by the calls of this site."""
        return {}

    @functools.cached_property
    def series_sets(self) -> dict[tuple[Any, ...], Series]:
        """Metric series by (provider, request model, response model, error type, outcome, server), for calls
        without ambient labels; bounded like ``start_attribute_sets``."""
        return {}


class LLMCall:
    """Handle for one call in progress. Setters never raise; bad values are counted as unknown."""

    # Immutable starting values live on the class (an instance attribute is made on first
    # assignment): fewer stores per call on the hot path.
    ended = False
    streaming = False
    wire = False  # made by a provider SDK instrumentor: owns the record of its API call
    deferred = False  # a call nearer the wire records this API call; this one keeps its span only
    shared_span = False  # a wire call inside another vendor's GenAI span for the same API call
    chunks = 0
    time_to_first_chunk_s: float | None = None
    _last_chunk_at = 0.0
    _chunk_gaps: array[float] | None = None  # between chunks after the first (8 bytes each)
    server_address: str | None = None
    server_port: int | None = None
    cost_usd: float | None = None
    outcome: str | None = None  # closed_early / cancelled: the call stopped without failing
    _input_messages: Any = None
    _retrieved: tuple[str, ...] | None = None  # passages given for this call (set_retrieved_context)
    _span_provider: str | None = None  # the provider attribute the span started with
    _span_server: tuple[str | None, int | None] = (None, None)  # the server the span started with
    _start = 0.0
    _context: otel_context.Context | None = None  # the span's context, reused for exemplars
    _token: object | None = None
    _call_token: Any = None
    span: Span = trace.INVALID_SPAN  # until start() opens the real one
    labels: Mapping[str, str] = MappingProxyType({})  # set by start(); never changed in place

    def __init__(
        self,
        spec: CallSpec | None = None,
        *,
        model: str | None = None,
        provider: str | None = None,
        parent: otel_context.Context | None = None,
        request_attributes: Mapping[str, Any] | None = None,
        telemetry: Telemetry | None = None,
        wire: bool = False,
        server_address: str | None = None,
        server_port: int | None = None,
    ) -> None:
        if wire:
            self.wire = True
        self.spec = spec = spec or CallSpec()
        if server_address is not None:
            self.set_server(server_address, server_port)
        elif spec.server_address is not None:
            self.server_address, self.server_port = spec.server_address, spec.server_port
        self.telemetry = telemetry or current()
        model = model or self.spec.model
        provider = provider or self.spec.provider
        # identifiers name the span and label metrics: bounded once here (a clean one costs a check)
        self.request_model = model if model is None or bounds.is_clean_label(model) else _identifier(model)
        self.provider = provider if provider is None or bounds.is_clean_label(provider) else _identifier(provider)
        self.facts = ResponseFacts()
        self.problems = UsageProblems()
        self._parent = parent
        self._request_attributes = request_attributes

    # -- lifecycle -------------------------------------------------------
    def start(self, *, activate: bool = False) -> LLMCall:
        """Open the span; ``activate`` makes it the current span (and this the current call)."""
        if not self.telemetry.enabled:
            self.ended = True  # enabled=False: a call that records nothing; end() and fail() do nothing
            return self
        try:
            # one record per API call: the innermost call owns it, and carries the labels the
            # enclosing call was given (task type, prompt name/version) so none is lost
            outer_labels = defer_enclosing_call()
            # the call site's own labels win over ambient ones (route, baggage)
            ambient = ambient_labels.get()
            if outer_labels:
                ambient = {**ambient, **outer_labels}
            spec = self.spec
            # without ambient labels the call site's own (read-only, shared) labels serve as they are
            self.labels = {**ambient, **spec.static_labels} if ambient else spec.static_labels
            operation = spec.static_labels[n.GEN_AI_OPERATION_NAME]
            name = f"{operation} {self.request_model}" if self.request_model else operation
            peer = foreign_genai_span(self._parent) if self.wire else None
            if peer is not None:
                # another vendor's instrumentation already has this API call's span: enrich it
                self.span = peer
                self.shared_span = True
                if activate:
                    self.activate()
                self._start = time.perf_counter()
                return self
            # attributes given at start are seen by the sampler and set without a second lock round
            self.span = self.telemetry.tracer.start_span(
                name, context=self._parent, kind=SpanKind.CLIENT,
                attributes=self._start_attributes(cacheable=not ambient),
            )
            if activate:
                self.activate()
        except Exception as exc:
            internal_error("call.start", exc)
        self._start = time.perf_counter()
        return self

    def activate(self) -> None:
        """Make the span the current span, and this the current call, until the call finishes."""
        self._context = trace.set_span_in_context(self.span, self._parent)
        self._token = otel_context.attach(self._context)
        self._call_token = current_call.set(self)

    def end(self, *, outcome: str | None = None) -> None:
        """Finish without error; ``outcome="closed_early"`` marks a stream the caller stopped reading,
        ``outcome="cancelled"`` a call whose caller was cancelled (any other value is ignored)."""
        if outcome is not None and not self.ended:
            if outcome in n.STREAM_OUTCOMES:
                self.outcome = outcome
            else:
                self.problems.add("outcome:invalid")
        self._finish(None)

    def fail(self, error: BaseException | str) -> None:
        """Finish as failed; ``error`` is the exception (or an error.type string from a callback).

        Cancellation, ``GeneratorExit`` and ``KeyboardInterrupt`` are not failures: the call
        ends with ``llm.stream.outcome`` set instead of ``error.type``.
        """
        outcome = interruption_of(error)
        if outcome is not None:
            if not self.ended:
                self.outcome = outcome
            self._finish(None)
            return
        self._finish(error)

    # -- what the call returned ------------------------------------------
    def set_response(self, response: Any) -> None:
        try:
            found = facts_from(response, self.problems, want_text=self.wants_text)
            if self.facts.empty:
                self.facts = found
            else:
                self.facts.absorb(found)
            if self.spec.usage is not None:
                self._apply_usage_reader(response)
        except Exception as exc:
            internal_error("call.set_response", exc)

    def add_chunk(self, chunk: Any) -> None:
        """One streamed chunk or event: the first sets time to first chunk, later ones the time per chunk."""
        now = time.perf_counter()
        if self.chunks == 0:
            self.time_to_first_chunk_s = now - self._start
        else:
            gaps = self._chunk_gaps
            if gaps is None:
                gaps = self._chunk_gaps = array("d")
            gaps.append(now - self._last_chunk_at)
        self._last_chunk_at = now
        self.chunks += 1
        self.streaming = True
        try:
            want_text = self.wants_text
            if self.chunks > 1 and not want_text and uneventful_chunk(chunk):
                return  # model and id came with the first chunk; usage and finish come later
            self.facts.absorb(facts_from(chunk, self.problems, want_text=want_text))
        except Exception as exc:
            internal_error("call.add_chunk", exc)

    def set_usage(
        self,
        usage: Any = None,
        *,
        input_tokens: Any = None,
        output_tokens: Any = None,
        cache_read_input_tokens: Any = None,
        cache_creation_input_tokens: Any = None,
        reasoning_output_tokens: Any = None,
    ) -> None:
        """Usage as a provider-shaped object/dict, or as single counts (input includes cached tokens)."""
        try:
            if isinstance(usage, TokenUsage):
                self.facts.usage = self.facts.usage.merged(usage)
                return
            if usage is not None:
                self.facts.usage = self.facts.usage.merged(usage_from_mapping(usage, self.problems))
                return
            self.facts.usage = self.facts.usage.merged(
                usage_from_mapping(
                    {
                        "input_tokens": input_tokens,
                        "output_tokens": output_tokens,
                        "input_token_details": {
                            "cache_read": cache_read_input_tokens,
                            "cache_creation": cache_creation_input_tokens,
                        },
                        "output_token_details": {"reasoning": reasoning_output_tokens},
                    },
                    self.problems,
                )
            )
        except Exception as exc:
            internal_error("call.set_usage", exc)

    def note_usage_unknown(self, reason: str) -> None:
        """Say why usage is unknown (e.g. a stream whose request did not ask for usage): counted
        and put on the span, beside the call being counted as unpriced."""
        if isinstance(reason, str) and reason:
            self.problems.add(reason)

    def set_response_model(self, model: str | None) -> None:
        if isinstance(model, str) and model:
            self.facts.response_model = model  # bounded when recorded, like models read from responses

    def set_response_id(self, response_id: str | None) -> None:
        if isinstance(response_id, str) and response_id:
            self.facts.response_id = response_id

    def set_finish_reasons(self, reasons: Sequence[str] | str | None) -> None:
        if isinstance(reasons, str):
            reasons = [reasons]
        if not isinstance(reasons, Sequence) or isinstance(reasons, bytes):
            return  # None, or not a sequence of reasons: nothing usable
        self.facts.finish_reasons = [r for r in reasons if isinstance(r, str) and r]

    def set_provider(self, provider: str | None) -> None:
        if isinstance(provider, str) and provider:
            self.provider = bounds.label(provider)

    def set_server(self, address: str | None, port: int | None = None) -> None:
        """The GenAI server called: a host name (or IP) and port, or the client's base URL
        (``https://api.openai.com/v1``: host and port are taken from it, the scheme's port
        when it names none). Anything unusable is ignored."""
        host, number = server_of(address, port)
        if host is not None:
            self.server_address, self.server_port = host, number

    def set_request_model(self, model: str | None) -> None:
        if isinstance(model, str) and model and not self.request_model:
            model = self.request_model = bounds.label(model)
            if self.span.is_recording():
                self.span.update_name(f"{self.spec.static_labels[n.GEN_AI_OPERATION_NAME]} {model}")
                self.span.set_attribute(n.GEN_AI_REQUEST_MODEL, model)

    def set_input_messages(self, messages: Any) -> None:
        self._input_messages = messages

    @property
    def input_messages(self) -> Any:
        return self._input_messages

    def set_retrieved_context(self, documents: Any) -> None:
        """Passages retrieved for this call (strings, LangChain Documents, LlamaIndex nodes):
        the groundedness scorer checks the answer against them, in the background."""
        try:
            passages = passages_of(documents)
            if passages:
                self._retrieved = passages
        except Exception as exc:
            internal_error("call.set_retrieved_context", exc)

    @property
    def retrieved_context(self) -> tuple[str, ...] | None:
        """This call's passages, else those a retrieval step of the same trace kept."""
        if self._retrieved is not None:
            return self._retrieved
        return recall(self.span.get_span_context().trace_id)

    def add_output_text(self, text: str) -> None:
        if self.wants_text and isinstance(text, str):
            self.facts.output_text.append(text)

    # -- what adapters read back -----------------------------------------
    @property
    def wants_text(self) -> bool:
        """Whether completion text and input messages are worth gathering: content capture, an
        evaluator, or retrieved context the answer will be scored against."""
        return self._retrieved is not None or self.telemetry.wants_text

    @property
    def usage(self) -> TokenUsage:
        return self.facts.usage

    @property
    def usage_known(self) -> bool:
        """Some token count has been read (from the response, chunks or ``set_usage``)."""
        return self.facts.usage.known

    @property
    def response_model(self) -> str | None:
        return self.facts.response_model

    @property
    def response_id(self) -> str | None:
        return self.facts.response_id

    @property
    def response_provider(self) -> str | None:
        """The provider a response named (e.g. LangChain's ``ls_provider``), if any."""
        return self.facts.provider

    @property
    def has_output_text(self) -> bool:
        return bool(self.facts.output_text)

    def discard_response_id(self) -> None:
        """Forget a response id that identifies nothing (a framework's synthetic one)."""
        self.facts.response_id = None

    # -- internals -------------------------------------------------------
    def _apply_usage_reader(self, response: Any) -> None:
        reader = self.spec.usage
        assert reader is not None
        try:
            found = reader(response)
        except Exception as exc:
            log_once(f"usage-reader:{type(exc).__name__}", "llm-otel: usage= callable raised %r; usage unknown", exc)
            self.problems.add("usage_reader:raised")
            return
        if found is not None:
            self.set_usage(found)

    def _start_attributes(self, *, cacheable: bool = False) -> Mapping[str, Any]:
        """The span's first attributes; the SDK copies them, so a call site's set is built once."""
        self._span_provider = self.provider
        self._span_server = (self.server_address, self.server_port)
        cache = self.spec.start_attribute_sets if cacheable and not self._request_attributes else None
        site_key = (self.provider, self.request_model, self.server_address, self.server_port)
        if cache is not None:
            found = cache.get(site_key)
            if found is not None:
                return found
        attributes: dict[str, Any] = dict(self.labels)
        if self.telemetry.semconv == n.SEMCONV_LATEST:
            for old, new in n.LATEST_SPAN_KEYS.items():
                if old in attributes:
                    attributes[new] = attributes.pop(old)
        if self.provider:
            attributes[n.GEN_AI_PROVIDER_NAME] = self.provider
        if self.request_model:
            attributes[n.GEN_AI_REQUEST_MODEL] = self.request_model
        if self.server_address:
            attributes[n.SERVER_ADDRESS] = self.server_address
            if self.server_port:
                attributes[n.SERVER_PORT] = self.server_port
        if self._request_attributes:
            try:
                cap = self.telemetry.settings.get("attribute_max_length", bounds.DEFAULT_ATTRIBUTE_MAX_CHARS)
                for key, value in bounds.attributes(self._request_attributes, cap).items():
                    if not isinstance(value, list):
                        attributes[key] = value
            except Exception as exc:  # a hostile mapping costs its attributes only
                internal_error("call.request_attributes", exc)
        if cache is not None and len(cache) < _START_ATTRIBUTE_SETS_MAX:  # model names may be unbounded
            cache[site_key] = attributes
        return attributes

    def _finish(self, error: BaseException | str | None) -> None:
        if self.ended:
            return
        self.ended = True
        duration = time.perf_counter() - self._start
        try:
            self._record(duration, error)
        except Exception as exc:
            internal_error("call.finish", exc)
        finally:
            self.deactivate()
            try:
                if not self.shared_span:  # another instrumentation's span is its own to end
                    self.span.end()
                # offered only now, so the scorer never races the call's own span
                if (error is None and self.outcome is None and not self.deferred
                        and self.telemetry.evaluator is not None):
                    self.telemetry.evaluator.offer(self)
            except Exception as exc:
                internal_error("span.end", exc)

    def deactivate(self) -> None:
        """Stop being the current span/call (the call itself stays open, e.g. for a returned stream)."""
        if self._token is not None:
            try:
                otel_context.detach(self._token)  # type: ignore[arg-type]
            except Exception as exc:  # detaching in another context; the span still ends
                internal_error("call.detach", exc)
            self._token = None
        if self._call_token is not None:
            try:
                current_call.reset(self._call_token)
            except ValueError:
                current_call.set(None)
            self._call_token = None

    def _record(self, duration: float, error: BaseException | str | None) -> None:
        facts = self.facts
        usage = facts.usage = bounded_usage(facts.usage, self.problems)
        _bound_facts(facts)  # before the id is compared with the wire-level records, which are bounded too
        if self.wire:
            self.telemetry.wire_responses.add(facts.response_id)
        elif self.deferred or (facts.response_id is not None and facts.response_id in self.telemetry.wire_responses):
            self.deferred = True
            self._annotate_deferred(error)
            return
        telemetry = self.telemetry
        provider = self.provider or facts.provider
        request_model = self.request_model or facts.response_model
        priced_model = facts.response_model or request_model

        # a rate limit has one error.type across providers; the exception event on the span keeps the class
        error_type = None if error is None else classify_error(error)
        rate_limited = error_type == n.RATE_LIMIT_ERROR_TYPE

        outcome = self.outcome
        series = self._series(telemetry.recorder, provider, request_model, error_type, outcome)
        bounded = series.attributes

        quote = None
        unpriced = False
        complete = usage.input_tokens is not None and (
            usage.output_tokens is not None or self.spec.operation == n.OP_EMBEDDINGS
        )
        if complete and _over_cap(bounded, n.GEN_AI_PROVIDER_NAME, n.GEN_AI_RESPONSE_MODEL, n.GEN_AI_REQUEST_MODEL):
            # Past the cardinality cap a model name is as good as unbounded input: looking each
            # one up would grow the price cache and cost a database search per call.
            quote = Quote(None, n.UNKNOWN_VALUE, "model_over_cardinality_limit")
            unpriced = True
            log_once("price:over-cap", "llm-otel: more distinct models than cardinality_limit; calls of models "
                     "past the limit are counted as unpriced (raise cardinality_limit if they are real)")
        elif complete:
            quote = telemetry.prices.quote(provider, priced_model, usage)
            if quote.cost_usd is None and facts.response_model and request_model != facts.response_model:
                quote = telemetry.prices.quote(provider, request_model, usage)
            self.cost_usd = quote.cost_usd
            unpriced = quote.cost_usd is None
        elif usage.known:
            # pricing half a call would understate it; an unknown price is not a partial one
            quote = Quote(None, n.UNKNOWN_VALUE, "usage_incomplete")
            # a stream stopped before its usage arrived lacks usage, not a price: LLMUnpricedCalls
            # would ask for a price override
            unpriced = outcome is None
        elif error is None and outcome is None:
            # an interrupted call, like a failed one, may never have had usage to report
            unpriced = True
            # embedding APIs often report no usage at all; an adapter may have said why already
            if self.spec.operation != n.OP_EMBEDDINGS and not self.problems.reasons:
                self.problems.add("usage:missing")
        for reason in self.problems.reasons:
            telemetry.recorder.count_unknown_input("usage", reason)
            log_once(f"usage-problem:{reason}", "llm-otel: usage payload problem %r; recorded as unknown", reason)

        telemetry.recorder.record_call(
            series,
            duration_s=duration,
            usage=usage,
            cost_usd=self.cost_usd,
            unpriced=unpriced,
            time_to_first_chunk_s=self.time_to_first_chunk_s,
            error_type=error_type,
            rate_limited=rate_limited,
            context_window=quote.context_window if quote is not None else None,
            context=self._context or trace.set_span_in_context(self.span),
            semconv=not self.shared_span,
            chunk_gaps=self._chunk_gaps or (),
            inference=self.spec.operation in n.INFERENCE_OPERATIONS,
        )
        self.labels = bounded
        if error is not None and telemetry.event_logger is not None:
            self._emit_exception_event(error, error_type, provider, request_model)

        rollup = request_rollup.get()
        if rollup is not None:
            rollup.add(
                input_tokens=usage.input_tokens,
                output_tokens=usage.output_tokens,
                cost_usd=self.cost_usd,
                failed=error is not None,
                unpriced=unpriced,
            )

        if self.span.is_recording():
            if self.shared_span:
                self._annotate_shared_span(quote, unpriced)
            else:
                self._annotate_span(provider, request_model, error, error_type, quote, unpriced)

    def _annotate_shared_span(self, quote: Any, unpriced: bool) -> None:
        """Only what the other instrumentation does not know: cost and why it may be unknown."""
        attributes: dict[str, Any] = {}
        if self.cost_usd is not None:
            attributes[n.LLM_COST_USD] = self.cost_usd
        if quote is not None:
            attributes[n.LLM_COST_SOURCE] = quote.source
            if quote.reason:
                attributes[n.LLM_COST_UNPRICED_REASON] = quote.reason
        elif unpriced:
            attributes[n.LLM_COST_SOURCE] = n.UNKNOWN_VALUE
        if self.problems.reasons:
            attributes[n.LLM_USAGE_UNKNOWN] = list(self.problems.reasons)
        self.span.set_attributes(attributes)

    def _annotate_deferred(self, error: BaseException | str | None) -> None:
        """The API call is recorded by a call nearer the wire: this span stays as its parent,
        without tokens, cost or metrics of its own (they would count the call twice)."""
        span = self.span
        if not span.is_recording():
            return
        attributes: dict[str, Any] = {n.LLM_RECORD_DEFERRED: True}
        if not self.request_model and self.facts.response_model:
            span.update_name(f"{self.spec.operation} {self.facts.response_model}")
        if error is not None:
            error_type = classify_error(error)
            attributes[n.ERROR_TYPE] = error_type
            telemetry = self.telemetry
            record_error(span, error if isinstance(error, BaseException) else error_type, telemetry.redactor,
                         telemetry.settings.get("attribute_max_length", bounds.DEFAULT_ATTRIBUTE_MAX_CHARS))
        span.set_attributes(attributes)

    def _series(self, recorder: Recorder, provider: str | None, request_model: str | None,
                error_type: str | None, outcome: str | None = None) -> Series:
        """The call's bounded metric attributes; a call site reuses them while its labels repeat."""
        response_model = self.facts.response_model
        key = (provider, request_model, response_model, error_type, outcome, self.server_address, self.server_port)
        cache = self.spec.series_sets if self.labels is self.spec.static_labels else None
        if cache is not None:
            found = cache.get(key)
            if found is not None and found.recorder is recorder:
                return found
        labels = dict(self.labels)
        labels[n.GEN_AI_PROVIDER_NAME] = provider or n.UNKNOWN_VALUE
        labels[n.GEN_AI_REQUEST_MODEL] = request_model or n.UNKNOWN_VALUE
        if response_model:
            labels[n.GEN_AI_RESPONSE_MODEL] = response_model
        if self.server_address:
            labels[n.SERVER_ADDRESS] = self.server_address
            if self.server_port:
                labels[n.SERVER_PORT] = str(self.server_port)  # metric labels are strings
        if error_type is not None:
            labels[n.ERROR_TYPE] = error_type
        bounded = recorder.bound_in_place(labels)
        if outcome is not None:
            bounded[n.LLM_STREAM_OUTCOME] = outcome  # two possible values: added past the guard, never folded
        series = recorder.series(bounded)
        # A folded label is not kept: every call past the cap is counted by the guard again.
        # The guard never forgets an admitted value, so a kept series stays exact.
        # (an entry left by an earlier configure() is replaced even when the cache is full)
        if (cache is not None and (key in cache or len(cache) < _SERIES_MAX)
                and n.OVERFLOW_VALUE not in labels.values()):
            cache[key] = series
        return series

    def _annotate_span(
        self,
        provider: str | None,
        request_model: str | None,
        error: BaseException | str | None,
        error_type: str | None,
        quote: Any,
        unpriced: bool,
    ) -> None:
        span = self.span
        facts = self.facts
        usage = facts.usage
        attributes: dict[str, Any] = {}
        if provider != self._span_provider or not provider:  # already on the span unless it changed since start
            attributes[n.GEN_AI_PROVIDER_NAME] = provider or n.UNKNOWN_VALUE
        if request_model and not self.request_model:
            span.update_name(f"{self.spec.static_labels[n.GEN_AI_OPERATION_NAME]} {request_model}")
            attributes[n.GEN_AI_REQUEST_MODEL] = request_model
        if self.server_address and (self.server_address, self.server_port) != self._span_server:  # set late
            attributes[n.SERVER_ADDRESS] = self.server_address
            if self.server_port:
                attributes[n.SERVER_PORT] = self.server_port
        for key, value in (
            (n.GEN_AI_RESPONSE_MODEL, facts.response_model),
            (n.GEN_AI_RESPONSE_ID, facts.response_id),
            (n.GEN_AI_USAGE_INPUT_TOKENS, usage.input_tokens),
            (n.GEN_AI_USAGE_OUTPUT_TOKENS, usage.output_tokens),
            (n.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS, usage.cache_read_input_tokens),
            (n.GEN_AI_USAGE_CACHE_WRITE_INPUT_TOKENS if self.telemetry.semconv == n.SEMCONV_LATEST
             else n.GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS, usage.cache_creation_input_tokens),
            (n.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS, usage.reasoning_output_tokens),
            (n.LLM_COST_USD, self.cost_usd),
            (n.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK, self.time_to_first_chunk_s),
        ):
            if value is not None:
                attributes[key] = value
        if facts.finish_reasons:
            attributes[n.GEN_AI_RESPONSE_FINISH_REASONS] = list(facts.finish_reasons)
        if quote is not None:
            attributes[n.LLM_COST_SOURCE] = quote.source
            if quote.reason:
                attributes[n.LLM_COST_UNPRICED_REASON] = quote.reason
        elif unpriced:
            attributes[n.LLM_COST_SOURCE] = n.UNKNOWN_VALUE
            # an adapter's own reason (note_usage_unknown), e.g. usage:stream_not_requested
            said = [r for r in self.problems.reasons if r.startswith("usage:") and r != "usage:missing"]
            attributes[n.LLM_COST_UNPRICED_REASON] = said[0].partition(":")[2] if said else "usage_unknown"
        if self.problems.reasons:
            attributes[n.LLM_USAGE_UNKNOWN] = list(self.problems.reasons)
        if self.outcome is not None:
            attributes[n.LLM_STREAM_OUTCOME] = self.outcome
        if self.streaming:
            attributes[n.GEN_AI_REQUEST_STREAM] = True
            attributes[n.LLM_STREAM_CHUNKS] = self.chunks
        elif error is None and not facts.empty:  # a whole response came back: not a stream
            attributes[n.GEN_AI_REQUEST_STREAM] = False
        telemetry = self.telemetry
        if telemetry.capture_content:
            settings = telemetry.settings
            budget = ContentBudget(
                telemetry.redactor,
                settings.get("content_max_message_chars", _CONTENT_MESSAGE_DEFAULT),
                settings.get("content_max_call_chars", _CONTENT_CALL_DEFAULT),
            )
            if self._input_messages is not None:
                rendered = input_messages_json(self._input_messages, budget)
                if rendered is not None:
                    attributes[n.GEN_AI_INPUT_MESSAGES] = rendered
            if facts.output_text:
                attributes[n.GEN_AI_OUTPUT_MESSAGES] = output_messages_json(
                    facts.output_text, facts.finish_reasons, budget
                )
            if budget.truncated:
                attributes[n.LLM_CONTENT_TRUNCATED] = True
        if error_type is not None:
            attributes[n.ERROR_TYPE] = error_type
        span.set_attributes(attributes)
        if error_type is not None:
            record_error(span, error if isinstance(error, BaseException) else error_type, telemetry.redactor,
                         telemetry.settings.get("attribute_max_length", bounds.DEFAULT_ATTRIBUTE_MAX_CHARS))

    def _emit_exception_event(self, error: BaseException | str, error_type: str | None,
                              provider: str | None, request_model: str | None) -> None:
        """The conventions' ``gen_ai.client.operation.exception`` event: a log record at WARN,
        in the call span's context, so a log backend links it to the trace."""
        logger = self.telemetry.event_logger
        assert logger is not None
        enabled = getattr(logger, "enabled", None)  # API >= 1.40: skip the stack trace nobody receives
        if enabled is not None and not enabled(severity_number=SeverityNumber.WARN,
                                               event_name=n.GEN_AI_CLIENT_OPERATION_EXCEPTION):
            return
        attributes: dict[str, Any] = {
            n.GEN_AI_OPERATION_NAME: self.spec.operation,
            n.GEN_AI_PROVIDER_NAME: provider or n.UNKNOWN_VALUE,
        }
        if request_model:
            attributes[n.GEN_AI_REQUEST_MODEL] = request_model
        if error_type is not None:
            attributes[n.ERROR_TYPE] = error_type
        if isinstance(error, BaseException):
            cls = type(error)
            module = cls.__module__
            attributes[n.EXCEPTION_TYPE] = cls.__qualname__ if module == "builtins" else f"{module}.{cls.__qualname__}"
            # redacted and capped like the span's exception event: messages may quote prompts or keys
            redact = self.telemetry.redactor
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
                context=self._context or trace.set_span_in_context(self.span),
                attributes=attributes,
            )
        except Exception as exc:
            internal_error("call.exception_event", exc)


_CONTENT_MESSAGE_DEFAULT = 16384
_CONTENT_CALL_DEFAULT = 65536


def _identifier(value: Any) -> str | None:
    return bounds.label(value) if isinstance(value, str) and value else None


def _bound_facts(facts: ResponseFacts) -> None:
    """Strings read from a response become labels and attributes: bounded before recording."""
    model = facts.response_model
    if model is not None and not bounds.is_clean_label(model):
        facts.response_model = bounds.label(model)
    response_id = facts.response_id
    if response_id is not None and not bounds.is_clean_label(response_id):
        facts.response_id = bounds.label(response_id)
    provider = facts.provider
    if provider is not None and not bounds.is_clean_label(provider):
        facts.provider = bounds.label(provider)
    reasons = facts.finish_reasons
    if reasons and not all(bounds.is_clean_label(reason) for reason in reasons):
        facts.finish_reasons = [bounds.label(reason) for reason in reasons[: bounds.LABELS_MAX]]


@contextmanager
def llm_call(
    *,
    provider: str | None = None,
    model: str | None = None,
    operation: str = n.OP_CHAT,
    task_type: str | None = None,
    prompt_name: str | None = None,
    prompt_version: str | None = None,
    usage: UsageReader | None = None,
    request_attributes: Mapping[str, Any] | None = None,
    retrieved: Any = None,
    server_address: str | None = None,
    server_port: int | None = None,
) -> Iterator[LLMCall]:
    """Instrument a call site that cannot be decorated.

    ``retrieved`` takes the passages the answer should be grounded in (strings,
    LangChain Documents, LlamaIndex nodes); the built-in groundedness scorer
    checks the answer against them in the background.

    >>> with llm_call(provider="openai", model="gpt-4o") as call:
    ...     response = client.chat.completions.create(model="gpt-4o", messages=messages)
    ...     call.set_response(response)
    """
    spec = CallSpec(operation, provider, model, task_type, prompt_name, prompt_version, usage)
    call = LLMCall(spec, request_attributes=request_attributes, server_address=server_address,
                   server_port=server_port).start(activate=True)
    if retrieved is not None:
        call.set_retrieved_context(retrieved)
    try:
        yield call
    except BaseException as exc:
        call.fail(exc)
        raise
    else:
        call.end()


def start_call(
    *,
    provider: str | None = None,
    model: str | None = None,
    operation: str = n.OP_CHAT,
    parent: otel_context.Context | None = None,
    task_type: str | None = None,
    prompt_name: str | None = None,
    prompt_version: str | None = None,
    labels: Mapping[str, str] | None = None,
    request_attributes: Mapping[str, Any] | None = None,
    activate: bool = False,
    wire: bool = False,
    server_address: str | None = None,
    server_port: int | None = None,
) -> LLMCall:
    """Start a call for callback-style integrations; finish it with ``end()`` or ``fail()``.

    ``activate=True`` also makes its span the current span until it finishes (only
    when start and finish run in the same context, e.g. one thread or task).
    ``wire=True`` marks a call made by a provider SDK instrumentor: it owns the record of
    its API call, and enclosing calls of the kit keep only their spans
    (docs/instrumentation.md, "One record per API call").
    ``server_address`` is the GenAI server's host, or the client's base URL (host and
    port are read from it); ``server_port`` its port.
    """
    spec = _shared_spec(operation, provider, model, task_type, prompt_name, prompt_version, labels)
    return LLMCall(spec, parent=parent, request_attributes=request_attributes, wire=wire,
                   server_address=server_address, server_port=server_port).start(activate=activate)


_SHARED_SPECS: dict[tuple[Any, ...], CallSpec] = {}
_SHARED_SPECS_MAX = 256  # model names and labels may be unbounded; past this, every call gets its own


def _shared_spec(
    operation: str,
    provider: str | None,
    model: str | None,
    task_type: str | None,
    prompt_name: str | None,
    prompt_version: str | None,
    labels: Mapping[str, str] | None,
) -> CallSpec:
    """Callback integrations start each call afresh; calls that look alike share one spec, and
    with it the per-site caches (span start attributes, metric series) a decorated site has."""
    key: tuple[Any, ...] | None
    try:
        key = (operation, provider, model, task_type, prompt_name, prompt_version,
               tuple(sorted(labels.items())) if labels else ())
        spec = _SHARED_SPECS.get(key)
    except TypeError:  # an unhashable or unorderable label: nothing to share
        key, spec = None, None
    if spec is None:
        spec = CallSpec(operation, provider, model, task_type, prompt_name, prompt_version, None, dict(labels or {}))
        if key is not None and len(_SHARED_SPECS) < _SHARED_SPECS_MAX:
            _SHARED_SPECS[key] = spec
    return spec
