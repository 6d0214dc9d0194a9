"""``route()``: records a model-routing decision as the parent span of the calls it leads to."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from types import TracebackType
from typing import Any, TypeVar

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Span, SpanKind
from typing_extensions import ParamSpec

from llm_otel import _bounds as bounds
from llm_otel import _names as n
from llm_otel._context import ambient_labels
from llm_otel._errors import error_type, interruption_of, record_error
from llm_otel._log import internal_error
from llm_otel._runtime import current

P = ParamSpec("P")
R = TypeVar("R")


class route:
    """Context manager and decorator.

    >>> with llm_otel.route(task_type="classify", model="gpt-4o-mini"):
    ...     answer = classify(prompt)   # its LLM spans are children of the llm.route span

    ``llm.task_type`` and ``llm.routed_model`` flow to every LLM call inside as
    span attributes and as (bounded) metric labels.
    """

    def __init__(self, task_type: str | None = None, model: str | None = None, *, reason: str | None = None) -> None:
        self.task_type = task_type
        self.model = model
        self.reason = reason
        self._span: Span = trace.INVALID_SPAN
        self._tokens: tuple[Any, Any] | None = None

    def _labels(self) -> dict[str, str]:
        labels = {}
        if self.task_type is not None:
            labels[n.LLM_TASK_TYPE] = self.task_type
        if self.model is not None:
            labels[n.LLM_ROUTED_MODEL] = self.model
        return bounds.labels(labels)

    def __enter__(self) -> route:
        try:
            labels = self._labels()
        except Exception as exc:  # a value whose __str__ raises: the route still runs, unlabelled
            internal_error("route.labels", exc)
            labels = {}
        try:
            telemetry = current()
            if telemetry.enabled:
                self._span = telemetry.tracer.start_span(n.ROUTE_SPAN_NAME, kind=SpanKind.INTERNAL)
                if self._span.is_recording():
                    attributes: dict[str, str] = dict(labels)
                    if self.reason and isinstance(self.reason, str):
                        attributes[n.LLM_ROUTE_REASON] = bounds.text(
                            self.reason, telemetry.settings.get("attribute_max_length",
                                                                bounds.DEFAULT_ATTRIBUTE_MAX_CHARS))
                    self._span.set_attributes(attributes)
        except Exception as exc:
            internal_error("route.enter", exc)
        self._tokens = (
            otel_context.attach(trace.set_span_in_context(self._span)),
            ambient_labels.set({**ambient_labels.get(), **labels}),
        )
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        tokens, self._tokens = self._tokens, None
        try:
            if exc is not None and self._span.is_recording():
                self._mark(exc)
        except Exception as err:
            internal_error("route.exit", err)
        finally:
            try:
                self._span.end()  # whatever the exception did above
            except Exception as err:
                internal_error("route.end", err)
        if tokens is not None:
            try:
                ambient_labels.reset(tokens[1])
                otel_context.detach(tokens[0])
            except Exception as err:
                internal_error("route.detach", err)

    def _mark(self, exc: BaseException) -> None:
        outcome = interruption_of(exc)
        if outcome is not None:  # cancelled or closed early: not a failed routing decision
            self._span.set_attribute(n.LLM_STREAM_OUTCOME, outcome)
            return
        self._span.set_attribute(n.ERROR_TYPE, error_type(exc))
        # redacted and capped: the message may quote a prompt or a key; one whose __str__ raises
        # is described by its type
        telemetry = current()
        record_error(self._span, exc, telemetry.redactor,
                     telemetry.settings.get("attribute_max_length", bounds.DEFAULT_ATTRIBUTE_MAX_CHARS))

    async def __aenter__(self) -> route:
        return self.__enter__()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.__exit__(exc_type, exc, tb)

    def __call__(self, fn: Callable[P, R]) -> Callable[P, R]:
        task_type, model, reason = self.task_type, self.model, self.reason
        if inspect.iscoroutinefunction(fn):

            @functools.wraps(fn)
            async def async_routed(*args: Any, **kwargs: Any) -> Any:
                with route(task_type, model, reason=reason):
                    return await fn(*args, **kwargs)

            return async_routed  # type: ignore[return-value]

        @functools.wraps(fn)
        def routed(*args: P.args, **kwargs: P.kwargs) -> R:
            with route(task_type, model, reason=reason):
                return fn(*args, **kwargs)

        return routed
