"""Failures as telemetry: low-cardinality error types (rate limits folded, no SDK imports) and
failed spans."""

from __future__ import annotations

import sys
import traceback
from collections.abc import Callable
from typing import Any

from opentelemetry.trace import Span, Status, StatusCode

from llm_otel import _bounds as bounds
from llm_otel import _names as n

# namespace packages shared by many distributions: their second segment names the library
_NAMESPACE_PACKAGES = frozenset(("google", "azure"))


def error_type_of(exc: BaseException) -> str:
    """``module.Class`` with private module segments dropped (``openai.RateLimitError``); in a
    namespace package the library's own segment is kept (``google.genai.ClientError``)."""
    cls = type(exc)
    module = cls.__module__
    if module == "builtins":
        return bounds.label(cls.__qualname__)
    public = [part for part in module.split(".") if not part.startswith("_")]
    if not public:
        public = module.split(".")[:1]
    keep = 2 if public[0] in _NAMESPACE_PACKAGES and len(public) > 1 else 1
    return bounds.label(".".join([*public[:keep], cls.__qualname__]))


def _status_code(exc: BaseException) -> Any:
    status = getattr(exc, "status_code", None)
    if status is None:
        response = getattr(exc, "response", None)
        status = getattr(response, "status_code", None)
        if status is None and isinstance(response, dict):  # botocore's ClientError: a parsed response
            status = (response.get("ResponseMetadata") or {}).get("HTTPStatusCode")
    if status is None:  # google-genai's APIError (whatever its HTTP client), urllib's HTTPError
        code = getattr(exc, "code", None)
        status = code if type(code) is int else None
    return status


def _aws_error_code(exc: BaseException) -> str:
    """The error code of a botocore ``ClientError`` (its parsed ``response["Error"]["Code"]``), else "".

    An error event in the middle of an AWS event stream is raised as ``EventStreamError`` with
    no HTTP status: only its code (``throttlingException``) says it is a rate limit."""
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        error = response.get("Error")
        if isinstance(error, dict):
            code = error.get("Code")
            if isinstance(code, str):
                return code
    return ""


def _names_a_rate_limit(name: str) -> bool:
    name = name.lower()
    return ("ratelimit" in name or "rate_limit" in name or "toomanyrequests" in name
            or "throttling" in name)  # AWS names its rate limits ThrottlingException


def is_rate_limit(exc: BaseException) -> bool:
    try:
        if _status_code(exc) == 429:
            return True
        return _names_a_rate_limit(type(exc).__name__) or _names_a_rate_limit(_aws_error_code(exc))
    except Exception:  # exotic exception objects must not break classification
        return False


def _event_stream_error_type(exc: BaseException) -> str | None:
    """``botocore.ModelStreamErrorException`` for an AWS event stream's error event: botocore raises
    every one as ``EventStreamError``, so the class says nothing and the event's code says what failed.
    The code is written as the service's exception shape (the class botocore raises before a stream)."""
    cls = type(exc)
    if cls.__name__ != "EventStreamError" or not cls.__module__.startswith("botocore"):
        return None
    code = _aws_error_code(exc)
    if not code.isidentifier() or not code.isascii():
        return None
    return bounds.label(f"botocore.{code[0].upper()}{code[1:]}")


def error_type(error: BaseException | str | None) -> str:
    """The ``error.type`` of a failure: one value for rate limits across providers, else the class.

    A string is an ``error.type`` already (callbacks that report no exception); ``None`` is unknown.
    """
    if isinstance(error, BaseException):
        if is_rate_limit(error):
            return n.RATE_LIMIT_ERROR_TYPE
        try:
            named = _event_stream_error_type(error)
        except Exception:  # exotic exception objects must not break classification
            named = None
        return named or error_type_of(error)
    return bounds.label(error) if error else n.UNKNOWN_VALUE


def describe(error: BaseException) -> str | None:
    """``str(error)``, or None when the exception's own ``__str__`` is broken."""
    try:
        return str(error)
    except Exception:
        return None


def fail_span(span: Span, error: BaseException | str | None) -> None:
    """Mark a span that is not an LLM call (chain, tool, retriever, query) as failed.

    Sets ``error.type`` as ``error_type`` names it (so a rate limit reads the same on the model
    span and on the chain around it), an ERROR status, and the exception event when it can be
    printed. The caller ends the span. Cancellation, GeneratorExit and KeyboardInterrupt are
    not failures: the span gets ``llm.stream.outcome`` (``cancelled``/``closed_early``) instead.
    """
    if not span.is_recording():
        return
    outcome = interruption_of(error)
    if outcome is not None:
        span.set_attribute(n.LLM_STREAM_OUTCOME, outcome)
        return
    kind = error_type(error)
    span.set_attribute(n.ERROR_TYPE, kind)
    from llm_otel._runtime import current  # the redactor and cap of the live configuration

    telemetry = current()
    record_error(span, error if isinstance(error, BaseException) else kind, telemetry.redactor,
                 telemetry.settings.get("attribute_max_length", bounds.DEFAULT_ATTRIBUTE_MAX_CHARS))


def mark_closed_early(span: Span) -> None:
    """The consumer stopped reading a stream: an outcome, not a failure."""
    if span.is_recording():
        span.set_attribute(n.LLM_STREAM_OUTCOME, n.STREAM_CLOSED_EARLY)


def interruption_of(exc: BaseException | str | None) -> str | None:
    """The outcome (``closed_early``/``cancelled``) when ``exc`` stopped a call that did not fail.

    A consumer that stops reading (``GeneratorExit``), a cancelled task
    (``asyncio.CancelledError``: what a client hang-up under uvicorn raises in the
    handler) and Ctrl-C (``KeyboardInterrupt``) say nothing about the provider, so
    they must not count as LLM errors. Cancellation classes are looked up only in
    modules already imported: the kit imports no event loop.
    """
    if not isinstance(exc, BaseException) or isinstance(exc, Exception):
        return None  # fast path: an ordinary exception is an error
    if isinstance(exc, GeneratorExit):
        return n.STREAM_CLOSED_EARLY
    if isinstance(exc, KeyboardInterrupt):
        return n.STREAM_CANCELLED
    asyncio = sys.modules.get("asyncio")
    if asyncio is not None and isinstance(exc, asyncio.CancelledError):
        return n.STREAM_CANCELLED
    trio = sys.modules.get("trio")
    if trio is not None and isinstance(exc, getattr(trio, "Cancelled", ())):
        return n.STREAM_CANCELLED
    return None


_STACK_CAP_FACTOR = 4  # a stack trace may be this many times longer than other free text
_REDACT_MARGIN = 256  # a secret that starts before the cut is still redacted whole


def bounded_redacted(text: str, redact: Callable[[str], str], cap: int, *, keep_tail: bool = False) -> str:
    """Cut first (so redaction time is bounded), redact, then clean and cap for export."""
    if len(text) > cap + _REDACT_MARGIN:
        text = text[-(cap + _REDACT_MARGIN):] if keep_tail else text[: cap + _REDACT_MARGIN]
    try:
        text = redact(text)
    except Exception:
        text = "[redaction failed]"
    if keep_tail and len(text) > cap:
        text = bounds.TRUNCATION_MARK + text[-(cap - 1):]
    return bounds.text(text, cap)


def record_error(span: Any, error: BaseException | str, redact: Callable[[str], str], cap: int) -> None:
    """The span's error status and exception event, with the message (which may quote a prompt or
    a key: pydantic errors do) redacted and capped in every capture mode."""
    if isinstance(error, str):
        span.set_status(Status(StatusCode.ERROR, bounded_redacted(error, redact, cap)))
        return
    described = describe(error)
    message = bounded_redacted(error_type_of(error) if described is None else described, redact, cap)
    span.set_status(Status(StatusCode.ERROR, message))
    try:
        stack = "".join(traceback.format_exception(type(error), error, error.__traceback__))
    except Exception:
        stack = ""
    cls = type(error)
    module = cls.__module__
    kind = f"{module}.{cls.__qualname__}" if module and module != "builtins" else cls.__qualname__
    # the event the SDK's record_exception writes, built here because that one exports str(error)
    # and the stack trace verbatim (and raises when the exception's __str__ does)
    span.add_event("exception", attributes={
        "exception.type": bounds.label(kind),
        "exception.message": message,
        "exception.stacktrace": bounded_redacted(stack, redact, cap * _STACK_CAP_FACTOR, keep_tail=True),
        "exception.escaped": "True",
    })
