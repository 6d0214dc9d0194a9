"""LangChain callback handler: chains, chat models, tools and retrievers as one OpenTelemetry trace.

>>> from llm_otel.integrations.langchain import LLMOtelCallbackHandler
>>> handler = LLMOtelCallbackHandler()          # create once, share between requests
>>> chain.invoke({"question": q}, config={"callbacks": [handler]})

Spans (see docs/integrations/langchain.md):

- top-level chain: ``invoke_workflow {name}`` (``gen_ai.workflow.name``), INTERNAL
- chain named in ``agent_names``: ``invoke_agent {name}`` (``gen_ai.agent.name``), INTERNAL
- nested chain: ``chain {name}``, INTERNAL (``chain_spans=False`` leaves these out)
- chat model / LLM: the core's GenAI span ``chat {model}`` / ``text_completion {model}``, CLIENT,
  with the call's tokens, cost and latency metrics
- tool: ``execute_tool {tool name}`` (``gen_ai.tool.name``), INTERNAL
- retriever: ``retrieval {retriever name}`` (``gen_ai.operation.name = retrieval``), INTERNAL

Parents come from ``parent_run_id``; a run without a known parent starts in the
OpenTelemetry context that is current when it starts (the HTTP server span of
the request), so one request is one trace. Contexts are passed explicitly and
never attached across callbacks, which keeps concurrent runs apart.
"""

from __future__ import annotations

import time
from collections.abc import Hashable, Iterable, Mapping
from typing import Any
from uuid import UUID

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import Span, SpanKind

try:
    from langchain_core.callbacks import BaseCallbackHandler
except ImportError as exc:  # pragma: no cover - exercised only without the extra installed
    raise ImportError(
        "llm_otel.integrations.langchain needs langchain-core; install it with: pip install 'llm-otel[langchain]'"
    ) from exc

from llm_otel import adapter
from llm_otel.adapter import Telemetry, current, internal_error, log_once, never_raises, start_call
from llm_otel.adapter import names as n
from llm_otel.integrations._langchain_payload import (
    GEN_AI_AGENT_NAME,
    GEN_AI_RETRIEVAL_QUERY_TEXT,
    GEN_AI_TOOL_CALL_ARGUMENTS,
    GEN_AI_TOOL_CALL_ID,
    GEN_AI_TOOL_CALL_RESULT,
    GEN_AI_TOOL_DESCRIPTION,
    GEN_AI_TOOL_NAME,
    GEN_AI_TOOL_TYPE,
    GEN_AI_WORKFLOW_NAME,
    LLM_RETRIEVAL_DOCUMENT_COUNT,
    OP_CHAT,
    OP_EXECUTE_TOOL,
    OP_INVOKE_AGENT,
    OP_INVOKE_WORKFLOW,
    OP_RETRIEVAL,
    OP_TEXT_COMPLETION,
    apply_llm_result,
    chat_messages,
    document_count,
    first_prompt,
    get,
    is_hidden,
    is_mapping,
    model_request,
    output_text,
    run_name,
    text,
)
from llm_otel.integrations._langchain_runs import ABANDONED_ERROR_TYPE, Run, RunRegistry, close_run

__all__ = ["ABANDONED_ERROR_TYPE", "LLMOtelCallbackHandler"]

SOURCE = "langchain"


def _key(run_id: Any) -> Hashable | None:
    if isinstance(run_id, UUID) or (isinstance(run_id, (str, int)) and not isinstance(run_id, bool)):
        return run_id
    return None


class LLMOtelCallbackHandler(BaseCallbackHandler):
    """Turns LangChain callbacks into GenAI spans and llm-otel metrics (sync and async runs).

    One instance serves any number of concurrent runs; pass it in ``config={"callbacks": [handler]}``
    or bind it with ``runnable.with_config(callbacks=[handler])``.

    Args:
        agent_names: chain names recorded as ``invoke_agent {name}`` spans.
        chain_spans: record nested chains (prompts, parsers, sequences) as ``chain {name}`` spans;
            with ``False`` only the top-level chain, agents, models, tools and retrievers get spans.
        max_open_runs: bound on runs tracked at once; beyond it the oldest are ended as abandoned.
        orphan_timeout_s: how long a run may stay open after its top-level run ended before it is
            ended as abandoned (streams closed late report their end a little after their parent).
        run_timeout_s: end any run open longer than this as abandoned (off by default).
    """

    # The callbacks are short and never block, so they run inline: no thread hop per event, and in
    # async runs they see the caller's context (the request's server span) directly.
    run_inline = True
    raise_error = False

    def __init__(
        self,
        *,
        agent_names: Iterable[str] = ("AgentExecutor",),
        chain_spans: bool = True,
        max_open_runs: int = 10_000,
        orphan_timeout_s: float = 60.0,
        run_timeout_s: float | None = None,
    ) -> None:
        super().__init__()
        self._agent_names = frozenset(agent_names)
        self._chain_spans = chain_spans
        self._runs = RunRegistry(
            max_open_runs=max_open_runs, orphan_timeout_s=orphan_timeout_s, run_timeout_s=run_timeout_s
        )

    # LangChain copies configs (and sometimes their handlers); every copy must share the open runs.
    def __copy__(self) -> LLMOtelCallbackHandler:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> LLMOtelCallbackHandler:
        return self

    # -- public helpers ---------------------------------------------------------
    @property
    def open_runs(self) -> int:
        """Runs started and not yet ended (diagnostics and tests)."""
        return len(self._runs)

    def end_open_runs(self, older_than_s: float | None = None) -> int:
        """End runs that never reported their end (all of them, or those open longer than ``older_than_s``).

        Their spans get ``error.type = "abandoned"``. Call it at shutdown, or periodically in a
        process that runs LangChain streams it may never finish reading.
        """
        victims = self._runs.drain(older_than_s)
        self._abandon(victims)
        return len(victims)

    # -- chains -------------------------------------------------------------------
    @never_raises("langchain.on_chain_start")
    def on_chain_start(
        self,
        serialized: dict[str, Any],
        inputs: dict[str, Any],
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        begun = self._begin(run_id, parent_run_id)
        if begun is None:
            return
        key, parent, root, telemetry = begun
        name = run_name(serialized, kwargs, "chain")
        is_agent = name in self._agent_names
        if is_hidden(tags) or (root is not None and not is_agent and not self._chain_spans):
            self._add(Run(key, root, parent))  # no span: its children nest under the nearest recorded run
            return
        if is_agent:
            span_name, attributes = f"{OP_INVOKE_AGENT} {name}", {
                n.GEN_AI_OPERATION_NAME: OP_INVOKE_AGENT, GEN_AI_AGENT_NAME: name}
        elif root is None:
            span_name, attributes = f"{OP_INVOKE_WORKFLOW} {name}", {
                n.GEN_AI_OPERATION_NAME: OP_INVOKE_WORKFLOW, GEN_AI_WORKFLOW_NAME: name}
        else:
            span_name, attributes = f"chain {name}", {}
        self._start_span(telemetry, key, root, parent, span_name, attributes)

    @never_raises("langchain.on_chain_end")
    def on_chain_end(
        self, outputs: dict[str, Any], *, run_id: UUID, parent_run_id: UUID | None = None, **kwargs: Any
    ) -> None:
        run = self._pop(run_id)
        if run is not None:
            close_run(run, None)

    @never_raises("langchain.on_chain_error")
    def on_chain_error(
        self, error: BaseException, *, run_id: UUID, parent_run_id: UUID | None = None, **kwargs: Any
    ) -> None:
        run = self._pop(run_id)
        if run is not None:
            self._close_failed(run, self._error(error))

    # -- chat models and LLMs -------------------------------------------------------
    @never_raises("langchain.on_chat_model_start")
    def on_chat_model_start(
        self,
        serialized: dict[str, Any],
        messages: list[list[Any]],
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        self._start_model(OP_CHAT, serialized, messages, run_id, parent_run_id, metadata, kwargs)

    @never_raises("langchain.on_llm_start")
    def on_llm_start(
        self,
        serialized: dict[str, Any],
        prompts: list[str],
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        self._start_model(OP_TEXT_COMPLETION, serialized, prompts, run_id, parent_run_id, metadata, kwargs)

    @never_raises("langchain.on_llm_new_token")
    def on_llm_new_token(
        self,
        token: Any,
        *,
        chunk: Any = None,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        **kwargs: Any,
    ) -> None:
        call = self._runs.call_of(_key(run_id))
        if call is not None:
            call.add_chunk(None)  # timing only: usage arrives with the aggregated message in on_llm_end

    @never_raises("langchain.on_stream_event")
    def on_stream_event(
        self, event: Any, *, run_id: UUID, parent_run_id: UUID | None = None, tags: list[str] | None = None,
        **kwargs: Any,
    ) -> None:
        # stream_events(version="v3") reports protocol events instead of on_llm_new_token.
        if get(event, "event") == "content-block-delta":
            call = self._runs.call_of(_key(run_id))
            if call is not None:
                call.add_chunk(None)

    @never_raises("langchain.on_llm_end")
    def on_llm_end(
        self, response: Any, *, run_id: UUID, parent_run_id: UUID | None = None, tags: list[str] | None = None,
        **kwargs: Any,
    ) -> None:
        run = self._pop(run_id)
        if run is None:
            return
        if run.call is not None:
            for reason in apply_llm_result(run.call, response):
                self._unknown(reason)
        close_run(run, None)

    @never_raises("langchain.on_llm_error")
    def on_llm_error(
        self, error: BaseException, *, run_id: UUID, parent_run_id: UUID | None = None,
        tags: list[str] | None = None, **kwargs: Any,
    ) -> None:
        run = self._pop(run_id)
        if run is None:
            return
        partial = kwargs.get("response")
        if run.call is not None and partial is not None:
            apply_llm_result(run.call, partial)  # tokens streamed before the failure are still billed
        self._close_failed(run, self._error(error))

    # -- tools ----------------------------------------------------------------------
    @never_raises("langchain.on_tool_start")
    def on_tool_start(
        self,
        serialized: dict[str, Any],
        input_str: str,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        inputs: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        begun = self._begin(run_id, parent_run_id)
        if begun is None:
            return
        key, parent, root, telemetry = begun
        name = text(get(serialized, "name")) or run_name(serialized, kwargs, "tool")
        attributes: dict[str, Any] = {
            n.GEN_AI_OPERATION_NAME: OP_EXECUTE_TOOL, GEN_AI_TOOL_NAME: name, GEN_AI_TOOL_TYPE: "function"}
        description = text(get(serialized, "description"), 1024)
        if description:
            attributes[GEN_AI_TOOL_DESCRIPTION] = description
        call_id = text(kwargs.get("tool_call_id"), 256)
        if call_id:
            attributes[GEN_AI_TOOL_CALL_ID] = call_id
        span = self._start_span(telemetry, key, root, parent, f"{OP_EXECUTE_TOOL} {name}", attributes)
        if telemetry.capture_content and span.is_recording():
            arguments = input_str if isinstance(input_str, str) else output_text(inputs)
            if arguments:
                span.set_attribute(GEN_AI_TOOL_CALL_ARGUMENTS,
                                   adapter.capture_text(arguments))

    @never_raises("langchain.on_tool_end")
    def on_tool_end(self, output: Any, *, run_id: UUID, parent_run_id: UUID | None = None, **kwargs: Any) -> None:
        run = self._pop(run_id)
        if run is None:
            return
        extra: dict[str, Any] = {}
        telemetry = current()
        if telemetry.capture_content and run.span is not None and run.span.is_recording():
            result = output_text(output)
            if result is not None:
                extra[GEN_AI_TOOL_CALL_RESULT] = adapter.capture_text(result)
        close_run(run, None, extra)

    @never_raises("langchain.on_tool_error")
    def on_tool_error(
        self, error: BaseException, *, run_id: UUID, parent_run_id: UUID | None = None, **kwargs: Any
    ) -> None:
        run = self._pop(run_id)
        if run is not None:
            self._close_failed(run, self._error(error))

    # -- retrievers -------------------------------------------------------------------
    @never_raises("langchain.on_retriever_start")
    def on_retriever_start(
        self,
        serialized: dict[str, Any],
        query: str,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        begun = self._begin(run_id, parent_run_id)
        if begun is None:
            return
        key, parent, root, telemetry = begun
        name = run_name(serialized, kwargs, "retriever")
        attributes = {n.GEN_AI_OPERATION_NAME: OP_RETRIEVAL}
        span = self._start_span(telemetry, key, root, parent, f"{OP_RETRIEVAL} {name}", attributes)
        if telemetry.capture_content and isinstance(query, str) and span.is_recording():
            span.set_attribute(GEN_AI_RETRIEVAL_QUERY_TEXT, adapter.capture_text(query))

    @never_raises("langchain.on_retriever_end")
    def on_retriever_end(
        self, documents: Any, *, run_id: UUID, parent_run_id: UUID | None = None, **kwargs: Any
    ) -> None:
        run = self._pop(run_id)
        if run is None:
            return
        count = document_count(documents)
        if run.span is not None:  # kept for the groundedness scorer of this trace's answer
            adapter.add_retrieved_context(documents, span=run.span)
        close_run(run, None, {LLM_RETRIEVAL_DOCUMENT_COUNT: count} if count is not None else None)

    @never_raises("langchain.on_retriever_error")
    def on_retriever_error(
        self, error: BaseException, *, run_id: UUID, parent_run_id: UUID | None = None, **kwargs: Any
    ) -> None:
        run = self._pop(run_id)
        if run is not None:
            self._close_failed(run, self._error(error))

    # -- internals ----------------------------------------------------------------------
    def _begin(self, run_id: Any, parent_run_id: Any) -> tuple[Hashable, Context, Hashable | None, Telemetry] | None:
        """Key, parent context, root and telemetry for a starting run (None: do not record it)."""
        telemetry = current()
        if not telemetry.enabled:
            return None
        key = _key(run_id)
        if key is None:
            self._unknown("run_id_missing")
            return None
        now = time.monotonic()
        if self._runs.due_for_sweep(now):
            self._abandon(self._runs.sweep(now))
        found = self._runs.parent_of(_key(parent_run_id))
        if found is None:
            # A top-level run (or one whose parent this handler never saw): nest it under whatever span
            # is current where the run starts, e.g. the HTTP server span of the request.
            return key, otel_context.get_current(), None, telemetry
        return key, found[0], found[1], telemetry

    def _start_span(
        self,
        telemetry: Telemetry,
        key: Hashable,
        root: Hashable | None,
        parent: Context,
        name: str,
        attributes: Mapping[str, Any],
    ) -> Span:
        span = telemetry.tracer.start_span(
            adapter.span_name(name), context=parent, kind=SpanKind.INTERNAL,
            attributes=adapter.span_attributes(attributes),
        )
        self._add(Run(key, root, trace.set_span_in_context(span, parent), span=span))
        return span

    def _start_model(
        self,
        operation: str,
        serialized: Any,
        messages_or_prompts: Any,
        run_id: Any,
        parent_run_id: Any,
        metadata: Any,
        kwargs: Mapping[str, Any],
    ) -> None:
        begun = self._begin(run_id, parent_run_id)
        if begun is None:
            return
        key, parent, root, telemetry = begun
        if not is_mapping(serialized):
            self._unknown("serialized_missing")
        params = kwargs.get("invocation_params")
        if not is_mapping(params):
            self._unknown("invocation_params_missing")
        request = model_request(serialized, params, metadata)
        if request.model is None:
            self._unknown("model_missing")
        call = start_call(
            provider=request.provider,
            model=request.model,
            operation=operation,
            parent=parent,
            task_type=request.task_type,
            prompt_name=request.prompt_name,
            prompt_version=request.prompt_version,
            request_attributes=request.attributes,
        )
        if telemetry.wants_text:
            if operation == OP_CHAT:
                call.set_input_messages(chat_messages(messages_or_prompts))
            else:
                call.set_input_messages(first_prompt(messages_or_prompts))
        self._add(Run(key, root, trace.set_span_in_context(call.span, parent), span=call.span, call=call))

    def _add(self, run: Run) -> None:
        evicted = self._runs.add(run)
        if evicted:
            self._abandon(evicted)

    def _pop(self, run_id: Any) -> Run | None:
        key = _key(run_id)
        run, ended_recently = self._runs.pop(key)
        if run is None and not ended_recently:
            self._unknown("run_id_missing" if key is None else "run_unknown")
        return run

    def _close_failed(self, run: Run, error: BaseException | str) -> None:
        close_run(run, error)
        if run.root is None and adapter.interruption_of(error) == adapter.CANCELLED:
            # A cancelled async run never reports the end of the model calls it was awaiting
            # (asyncio.gather is cancelled before LangChain's error callbacks run): end them now,
            # as cancelled, instead of as abandoned errors a minute later.
            for orphan in self._runs.pop_descendants(run.key):
                close_run(orphan, error)

    def _error(self, error: Any) -> BaseException | str:
        if isinstance(error, BaseException):
            return error
        self._unknown("error_missing")
        return n.UNKNOWN_VALUE

    def _abandon(self, runs: list[Run]) -> None:
        if not runs:
            return
        log_once(
            "langchain:abandoned",
            "llm-otel: LangChain runs never reported their end; their spans were ended with error.type=%r",
            ABANDONED_ERROR_TYPE,
        )
        for run in runs:
            try:
                close_run(run, ABANDONED_ERROR_TYPE)
            except Exception as exc:  # one broken span must not keep the others open
                internal_error("langchain.abandon", exc)

    @staticmethod
    def _unknown(reason: str) -> None:
        if not adapter.count_unknown_input(SOURCE, reason):
            return
        log_once(
            f"langchain:{reason}",
            "llm-otel: LangChain callback payload problem %r; recorded as unknown "
            "(counted in llm_otel_input_unknown_total{source='langchain'})",
            reason,
        )

