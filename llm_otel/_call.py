"""One LLM call's lifecycle: the record every adapter fills while the call runs.

Two lifecycle shapes share ``LLMCall``: ``start()`` / ``end()`` / ``fail()`` for framework
callbacks, and the ``llm_call()`` context manager (on which the decorator is built) for call
sites. Finishing settles the call into one ``Outcome`` (``_outcome``), which the metrics
recorder (``_record``) and the span writer (``_span_writer``) consume.
"""

from __future__ import annotations

import time
from array import array
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from types import MappingProxyType
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Span, SpanKind

from llm_otel import _bounds as bounds
from llm_otel import _names as n
from llm_otel._context import ambient_labels, current_call
from llm_otel._errors import interruption_of
from llm_otel._extract import ResponseFacts, facts_from, uneventful_chunk, usage_from_mapping
from llm_otel._log import internal_error, log_once
from llm_otel._outcome import settle
from llm_otel._ownership import defer_enclosing_call, foreign_genai_span
from llm_otel._ownership import lend as lend_call
from llm_otel._record import record
from llm_otel._retrieved import passages_of, recall
from llm_otel._runtime import Telemetry, current
from llm_otel._span_writer import write_deferred_span, write_shared_span, write_span
from llm_otel._spec import CallSpec, UsageReader, server_of, shared_spec
from llm_otel._usage import TokenUsage, UsageProblems
from llm_otel._usage import bounded as bounded_usage

__all__ = ["CallSpec", "LLMCall", "UsageReader", "llm_call", "server_of", "start_call"]


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
    def start(self, *, activate: bool = False, lend: bool = False) -> LLMCall:
        """Open the span; ``activate`` makes it the current span (and this the current call).

        ``lend``: a call that will not be current while the model's code runs (a framework
        handler's) is lent to this context instead: the next call of the kit started here
        before it has a chunk or a response is its API call (``_ownership.lend``). A call
        that is not lent may take one lent before it.
        """
        if not self.telemetry.enabled:
            self.ended = True  # enabled=False: a call that records nothing; end() and fail() do nothing
            return self
        try:
            # one record per API call: the innermost call owns it, and carries the labels the
            # enclosing call was given (task type, prompt name/version) so none is lost; a call
            # lent to this context (a framework handler's) becomes this call's parent too
            given_parent = self._parent
            outer_labels, self._parent = defer_enclosing_call(
                claims=not lend, model=self.request_model, parent=given_parent)
            # the call site's own labels win over ambient ones (route, baggage)
            ambient = ambient_labels.get()
            if outer_labels:
                ambient = {**ambient, **outer_labels}
            spec = self.spec
            # without ambient labels the call site's own (read-only, shared) labels serve as they are
            self.labels = {**ambient, **spec.static_labels} if ambient else spec.static_labels
            operation = spec.static_labels[n.GEN_AI_OPERATION_NAME]
            name = f"{operation} {self.request_model}" if self.request_model else operation
            peer = foreign_genai_span(given_parent) if self.wire else None
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
            elif lend:
                lend_call(self)
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
    def chunk_gaps(self) -> Sequence[float]:
        """Seconds between a stream's chunks after the first."""
        return self._chunk_gaps or ()

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
        memo = self.spec.memo.start_attributes if cacheable and not self._request_attributes else None
        site_key = (self.provider, self.request_model, self.server_address, self.server_port)
        telemetry = self.telemetry  # the attributes follow its settings (semconv keys): a new configure() renews
        if memo is not None:
            found = memo.get(site_key, telemetry)
            if found is not None:
                return found
        attributes: dict[str, Any] = dict(self.labels)
        if telemetry.semconv == n.SEMCONV_LATEST:
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
        if memo is not None:
            memo.admit(site_key, attributes, telemetry)
        return attributes

    def _finish(self, error: BaseException | str | None) -> None:
        if self.ended:
            return
        self.ended = True
        duration = time.perf_counter() - self._start
        try:
            facts = self.facts
            facts.usage = bounded_usage(facts.usage, self.problems)
            _bound_facts(facts)  # before the id is compared with the wire-level records, which are bounded too
            if self.wire:
                self.telemetry.wire_responses.add(facts.response_id)
            elif self.deferred or (facts.response_id is not None
                                   and self.telemetry.wire_responses.recorded_since(facts.response_id, self._start)):
                self.deferred = True  # one record per API call: the call nearer the wire owns it
                self._annotate_deferred(error)
                return
            outcome = settle(self, duration, error)
            self.cost_usd = outcome.cost_usd
            self.labels = outcome.series.attributes
            record(outcome, self.telemetry, self._context or trace.set_span_in_context(self.span))
            if self.span.is_recording():
                if self.shared_span:
                    write_shared_span(self.span, outcome)
                else:
                    write_span(self.span, outcome, self.telemetry, on_span=(self._span_provider, self.request_model),
                               span_server=self._span_server)
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

    def _annotate_deferred(self, error: BaseException | str | None) -> None:
        """The API call is recorded by a call nearer the wire: this span stays as its parent,
        without tokens, cost or metrics of its own (they would count the call twice)."""
        if self.span.is_recording():
            renamed = None if self.request_model else self.facts.response_model
            write_deferred_span(self.span, self.spec.static_labels[n.GEN_AI_OPERATION_NAME], renamed, error,
                                self.telemetry, self.outcome)

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
    telemetry: Telemetry | None = None,
) -> LLMCall:
    """Start a call for callback-style integrations; finish it with ``end()`` or ``fail()``.

    ``activate=True`` also makes its span the current span until it finishes (only
    when start and finish run in the same context, e.g. one thread or task). Without it,
    the call is lent to the context it starts in: the first call of the kit that starts
    there before this one has a chunk or a response (the SDK call the framework's model
    makes, even inside a stream's generator) records the API call, as this call's child.
    ``wire=True`` marks a call made by a provider SDK instrumentor: it owns the record of
    its API call, and enclosing calls of the kit keep only their spans
    (docs/instrumentation.md, "One record per API call").
    ``server_address`` is the GenAI server's host, or the client's base URL (host and
    port are read from it); ``server_port`` its port. ``telemetry`` records the call through
    another setup than ``current()``: an instrumentor given its own providers passes
    ``current().on_providers(...)``.
    """
    spec = shared_spec(operation, provider, model, task_type, prompt_name, prompt_version, labels)
    # a callback's call is never current while the model's code runs: it is lent to the context
    # it starts in, so the SDK call the model makes there records the API call under its span
    return LLMCall(spec, parent=parent, request_attributes=request_attributes, wire=wire,
                   server_address=server_address, server_port=server_port, telemetry=telemetry).start(
                       activate=activate, lend=not activate and not wire)
