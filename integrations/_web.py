"""What the ASGI and Django middleware share: trace headers, the server span, the request roll-up.

Nothing here imports a web framework. Incoming W3C headers (``traceparent``,
``tracestate``, ``baggage``) come from the client and may be hostile, so they
are size-capped while they are read, parsed with anchored patterns and never
allowed to raise; every oddity is counted in ``llm_otel_input_unknown_total``
with ``source="http_headers"`` and a reason from the fixed set below, and
explained in one log line per reason. The OTel propagators are not used for
this because they log every bad header (the full value, for an oversized
baggage header) on every request.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from contextlib import AbstractContextManager
from contextvars import Token
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

from opentelemetry import baggage as otel_baggage
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.semconv.attributes import (
    client_attributes,
    http_attributes,
    network_attributes,
    server_attributes,
    url_attributes,
    user_agent_attributes,
)
from opentelemetry.trace import Link, NonRecordingSpan, SpanContext, SpanKind, Status, StatusCode, TraceFlags
from opentelemetry.trace.span import TraceState

import llm_otel
from llm_otel import adapter
from llm_otel.adapter import Telemetry, internal_error, log_once, never_raises, rollup_attributes
from llm_otel.adapter import names as n

# --- limits (W3C Trace Context / Baggage) ----------------------------------
TRACEPARENT_MAX_CHARS = 512
TRACESTATE_MAX_CHARS = 8192
TRACESTATE_MAX_MEMBERS = 32
BAGGAGE_MAX_BYTES = 8192
BAGGAGE_MAX_MEMBERS = 64
USER_AGENT_MAX_CHARS = 512
LABEL_VALUE_MAX_CHARS = 64
METHOD_ORIGINAL_MAX_CHARS = 32

# --- reasons counted under source="http_headers" (a closed set: it is a metric label) ---
HEADER_SOURCE = "http_headers"
TRACEPARENT_OVERSIZED = "traceparent_oversized"
TRACEPARENT_INVALID = "traceparent_invalid"
TRACESTATE_OVERSIZED = "tracestate_oversized"
TRACESTATE_INVALID = "tracestate_invalid"
BAGGAGE_OVERSIZED = "baggage_oversized"
BAGGAGE_INVALID_MEMBER = "baggage_invalid_member"
BAGGAGE_TOO_MANY_MEMBERS = "baggage_too_many_members"
BAGGAGE_LABEL_INVALID = "baggage_label_invalid"

_OVERSIZED_REASON = {
    "traceparent": TRACEPARENT_OVERSIZED,
    "tracestate": TRACESTATE_OVERSIZED,
    "baggage": BAGGAGE_OVERSIZED,
}
_HEADER_LIMITS = {
    "traceparent": TRACEPARENT_MAX_CHARS,
    "tracestate": TRACESTATE_MAX_CHARS,
    "baggage": BAGGAGE_MAX_BYTES,
    "user-agent": USER_AGENT_MAX_CHARS,
}
_ASGI_HEADER_NAMES = {name.encode("ascii"): name for name in _HEADER_LIMITS}
_META_HEADER_NAMES = {name: "HTTP_" + name.upper().replace("-", "_") for name in _HEADER_LIMITS}

_TRACEPARENT = re.compile(r"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?", re.DOTALL)
_TRACESTATE_KEY = re.compile(r"[a-z][_0-9a-z\-*/]{0,255}|[a-z0-9][_0-9a-z\-*/]{0,240}@[a-z][_0-9a-z\-*/]{0,13}")
_TRACESTATE_VALUE = re.compile(r"[\x20-\x2b\x2d-\x3c\x3e-\x7e]{0,255}[\x21-\x2b\x2d-\x3c\x3e-\x7e]")
_BAGGAGE_KEY = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_BAGGAGE_VALUE = re.compile(r"[\x21\x23-\x2b\x2d-\x3a\x3c-\x5b\x5d-\x7e]*")
_OWS = " \t"

_KNOWN_METHODS = frozenset({"CONNECT", "DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT", "QUERY", "TRACE"})
# Baggage keys that would overwrite attributes the core sets itself.
_RESERVED_LABEL_PREFIXES = ("gen_ai.", "llm.", "llm_otel.", "error.", "http.", "url.", "server.", "client.")


# --- options ---------------------------------------------------------------
@dataclass(frozen=True)
class WebOptions:
    """Middleware options, validated once when the middleware is built."""

    excluded_exact: frozenset[str] = frozenset()
    excluded_prefixes: tuple[str, ...] = ()
    trust_incoming_context: bool = True
    baggage_labels: tuple[str, ...] = ()

    @classmethod
    def build(
        cls,
        *,
        excluded_paths: Iterable[str] = (),
        trust_incoming_context: bool = True,
        baggage_labels: Iterable[str] = (),
    ) -> WebOptions:
        paths = _strings("excluded_paths", excluded_paths)
        for path in paths:
            if not path.startswith("/"):
                raise ValueError(f"excluded_paths entries must start with '/', got {path!r}")
        if not isinstance(trust_incoming_context, bool):
            raise TypeError(f"trust_incoming_context must be True or False, got {trust_incoming_context!r}")
        labels = _strings("baggage_labels", baggage_labels)
        for key in labels:
            if not _BAGGAGE_KEY.fullmatch(key):
                raise ValueError(f"baggage_labels entry {key!r} is not a valid baggage key")
            if key.startswith(_RESERVED_LABEL_PREFIXES) or key == n.ERROR_TYPE:
                raise ValueError(f"baggage_labels entry {key!r} would overwrite an attribute llm-otel sets itself")
        return cls(
            excluded_exact=frozenset(p for p in paths if not p.endswith("*")),
            excluded_prefixes=tuple(p[:-1] for p in paths if p.endswith("*")),
            trust_incoming_context=trust_incoming_context,
            baggage_labels=tuple(dict.fromkeys(labels)),
        )

    def excludes(self, path: str) -> bool:
        return path in self.excluded_exact or (bool(self.excluded_prefixes) and path.startswith(self.excluded_prefixes))


def _strings(option: str, values: Iterable[str]) -> list[str]:
    if isinstance(values, (str, bytes)):
        raise TypeError(f"{option} takes a list of strings, not a single string: [{values!r}]")
    found = list(values)
    for value in found:
        if not isinstance(value, str) or not value:
            raise TypeError(f"{option} entries must be non-empty strings, got {value!r}")
    return found


# --- reading headers -------------------------------------------------------
class IncomingHeaders:
    """The few request headers the middleware reads, capped in size while they are collected."""

    __slots__ = ("_parts", "_sizes", "problems")

    def __init__(self) -> None:
        self._parts: dict[str, list[str]] = {}
        self._sizes: dict[str, int] = {}
        self.problems: list[str] = []

    @classmethod
    def from_asgi(cls, headers: Iterable[tuple[bytes, bytes]]) -> IncomingHeaders:
        found = cls()
        for raw_name, raw_value in headers:
            if not isinstance(raw_name, bytes) or not isinstance(raw_value, bytes):
                continue  # not ASGI-conformant; nothing we could trust in it
            name = _ASGI_HEADER_NAMES.get(raw_name.lower())
            if name is not None:
                found.add(name, raw_value)
        return found

    @classmethod
    def from_wsgi_environ(cls, meta: Mapping[str, Any]) -> IncomingHeaders:
        """Django's ``request.META`` (repeated headers already joined with commas)."""
        found = cls()
        for name, meta_key in _META_HEADER_NAMES.items():
            value = meta.get(meta_key)
            if isinstance(value, (str, bytes)):
                found.add(name, value)
        return found

    def add(self, name: str, value: bytes | str) -> None:
        """One header line; repeated lines join with ``,`` (RFC 9110) within the header's cap."""
        if self._sizes.get(name) == -1:  # already dropped as oversized
            return
        parts = self._parts.get(name)
        size = self._sizes.get(name, 0) + len(value) + (1 if parts else 0)
        if size > _HEADER_LIMITS[name]:
            self._parts.pop(name, None)
            self._sizes[name] = -1
            reason = _OVERSIZED_REASON.get(name)
            if reason is not None:
                self.problems.append(reason)
            return
        self._sizes[name] = size
        text = value.decode("latin-1") if isinstance(value, bytes) else value
        self._parts.setdefault(name, []).append(text)

    def get(self, name: str) -> str | None:
        parts = self._parts.get(name)
        return ",".join(parts) if parts else None


def parse_traceparent(value: str) -> SpanContext | None:
    """A remote span context, or None when the header is not valid W3C ``traceparent``."""
    match = _TRACEPARENT.fullmatch(value.strip(_OWS))
    if match is None:
        return None
    version, trace_id, span_id, flags, rest = match.groups()
    if version == "ff" or (version == "00" and rest) or trace_id == "0" * 32 or span_id == "0" * 16:
        return None
    trace_flags = int(flags, 16) if version == "00" else int(flags, 16) & TraceFlags.SAMPLED
    return SpanContext(int(trace_id, 16), int(span_id, 16), is_remote=True, trace_flags=TraceFlags(trace_flags))


def parse_tracestate(value: str) -> TraceState | None:
    """The vendor entries, or None when any member is invalid (W3C: then drop all of it)."""
    pairs: dict[str, str] = {}
    for member in value.split(",", TRACESTATE_MAX_MEMBERS):
        member = member.strip(_OWS)
        if not member:
            continue
        key, sep, entry = member.partition("=")
        if not sep or key in pairs or not _TRACESTATE_KEY.fullmatch(key) or not _TRACESTATE_VALUE.fullmatch(entry):
            return None
        pairs[key] = entry
    if len(pairs) > TRACESTATE_MAX_MEMBERS:
        return None
    return TraceState(list(pairs.items()))


def parse_baggage(value: str, problems: list[str]) -> dict[str, str]:
    """Baggage entries (metadata properties dropped); invalid members are skipped and counted."""
    entries: dict[str, str] = {}
    invalid = False
    members = value.split(",", BAGGAGE_MAX_MEMBERS)
    if len(members) > BAGGAGE_MAX_MEMBERS:
        problems.append(BAGGAGE_TOO_MANY_MEMBERS)
        members = members[:BAGGAGE_MAX_MEMBERS]
    for member in members:
        pair = member.split(";", 1)[0].strip(_OWS)
        if not pair:
            continue
        key, sep, raw = pair.partition("=")
        key, raw = key.strip(_OWS), raw.strip(_OWS)
        if not sep or not _BAGGAGE_KEY.fullmatch(key) or not _BAGGAGE_VALUE.fullmatch(raw):
            invalid = True
            continue
        try:
            entries[key] = unquote(raw, errors="strict")
        except UnicodeDecodeError:
            invalid = True
    if invalid:
        problems.append(BAGGAGE_INVALID_MEMBER)
    return entries


def is_label_value(value: str) -> bool:
    return 0 < len(value) <= LABEL_VALUE_MAX_CHARS and value.isprintable() and value.strip() == value


def labels_from_baggage(entries: Mapping[str, str], allowed: Iterable[str], problems: list[str]) -> dict[str, str]:
    labels: dict[str, str] = {}
    for key in allowed:
        value = entries.get(key)
        if value is None:
            continue
        if is_label_value(value):
            labels[key] = value
        else:
            problems.append(BAGGAGE_LABEL_INVALID)
    return labels


def report_problems(telemetry: Telemetry, problems: Iterable[str]) -> None:
    for reason in dict.fromkeys(problems):
        adapter.count_unknown_input(HEADER_SOURCE, reason)
        log_once(
            f"http-headers:{reason}",
            "llm-otel: ignored part of an incoming trace header (%s); the request is traced without it. "
            "Further occurrences are only counted in llm_otel_input_unknown_total{source=\"http_headers\"}.",
            reason,
        )


# --- the request -----------------------------------------------------------
@dataclass
class RequestInfo:
    """Framework-neutral facts about the request, for HTTP semantic-convention attributes."""

    method: str
    path: str
    scheme: str | None = None
    server_address: str | None = None
    server_port: int | None = None
    client_address: str | None = None
    protocol_version: str | None = None

    def attributes(self, user_agent: str | None) -> tuple[str, dict[str, Any]]:
        """(span name before the route is known, start attributes)."""
        method = self.method if self.method in _KNOWN_METHODS else "_OTHER"
        attributes: dict[str, Any] = {http_attributes.HTTP_REQUEST_METHOD: method, url_attributes.URL_PATH: self.path}
        if method == "_OTHER":
            attributes[http_attributes.HTTP_REQUEST_METHOD_ORIGINAL] = self.method[:METHOD_ORIGINAL_MAX_CHARS]
        for key, value in (
            (url_attributes.URL_SCHEME, self.scheme),
            (server_attributes.SERVER_ADDRESS, self.server_address),
            (server_attributes.SERVER_PORT, self.server_port),
            (client_attributes.CLIENT_ADDRESS, self.client_address),
            (network_attributes.NETWORK_PROTOCOL_VERSION, self.protocol_version),
            (user_agent_attributes.USER_AGENT_ORIGINAL, user_agent),
        ):
            if value is not None and value != "":
                attributes[key] = value
        return ("HTTP" if method == "_OTHER" else method), attributes


def begin_request(
    telemetry: Telemetry, options: WebOptions, info: RequestInfo, headers: IncomingHeaders
) -> ServerRequest:
    """Start the server span for one request, parented (or linked) per the trust option."""
    problems = list(headers.problems)
    base = otel_context.get_current()
    kind = SpanKind.SERVER
    links: list[Link] | None = None
    entries: dict[str, str] = {}
    trusted = options.trust_incoming_context

    if trace.get_current_span(base).get_span_context().is_valid:
        # Another instrumentation already turned the headers into the current span: nest under it.
        kind = SpanKind.INTERNAL
        trusted = False
    else:
        parent = _incoming_parent(headers, problems)
        if parent is not None:
            if trusted:
                base = trace.set_span_in_context(NonRecordingSpan(parent), base)
            else:
                links = [Link(parent)]

    raw_baggage = headers.get("baggage")
    if raw_baggage is not None and (trusted or options.baggage_labels):
        entries = parse_baggage(raw_baggage, problems)
    if trusted:
        for key, value in entries.items():
            base = otel_baggage.set_baggage(key, value, base)
    labels = labels_from_baggage(entries, options.baggage_labels, problems)
    if problems:
        report_problems(telemetry, problems)

    name, attributes = info.attributes(headers.get("user-agent"))
    # path and user agent come from the client: cleaned and capped like every attribute
    attributes = adapter.span_attributes(attributes)
    attributes.update(labels)
    span = telemetry.tracer.start_span(name, context=base, kind=kind, attributes=attributes, links=links)
    return ServerRequest(span, trace.set_span_in_context(span, base), labels, name)


def _incoming_parent(headers: IncomingHeaders, problems: list[str]) -> SpanContext | None:
    traceparent = headers.get("traceparent")
    if traceparent is None:
        return None
    parent = parse_traceparent(traceparent)
    if parent is None:
        problems.append(TRACEPARENT_INVALID)
        return None
    tracestate = headers.get("tracestate")
    if tracestate is not None:
        state = parse_tracestate(tracestate)
        if state is None:
            problems.append(TRACESTATE_INVALID)
        else:
            parent = SpanContext(
                parent.trace_id, parent.span_id, is_remote=True, trace_flags=parent.trace_flags, trace_state=state
            )
    return parent


_Tokens = tuple[object, "Token[llm_otel.RequestRollup | None]", "AbstractContextManager[None] | None"]


class ServerRequest:
    """One traced request: the server span, the context LLM calls see, the roll-up and the labels."""

    def __init__(self, span: trace.Span, context: otel_context.Context, labels: dict[str, str], name: str) -> None:
        self.span = span
        self.context = context
        self.labels = labels
        self.rollup = llm_otel.RequestRollup()
        self._name = name
        self._route: str | None = None
        self._status_code: int | None = None
        self._exception: BaseException | None = None
        self._finalized = False
        self._ended = False
        self.client_gone = False  # writing to the client failed: what the app raises next is a consequence

    def enter(self) -> _Tokens | None:
        """Make the request's context current (span, baggage, roll-up, labels); pair with ``exit``."""
        try:
            otel_token = otel_context.attach(self.context)
            rollup_token = llm_otel.request_rollup.set(self.rollup)
            labels_scope: AbstractContextManager[None] | None = None
            if self.labels:
                labels_scope = llm_otel.labels(self.labels)
                labels_scope.__enter__()
            return otel_token, rollup_token, labels_scope
        except Exception as exc:
            internal_error("web.enter", exc)
            return None

    def exit(self, tokens: _Tokens | None) -> None:
        if tokens is None:
            return
        otel_token, rollup_token, labels_scope = tokens
        try:
            if labels_scope is not None:
                labels_scope.__exit__(None, None, None)
            llm_otel.request_rollup.reset(rollup_token)
        except Exception as exc:  # reset from another context; the request is still recorded
            internal_error("web.exit", exc)
        otel_context.detach(otel_token)  # type: ignore[arg-type]

    @property
    def server_error(self) -> bool:
        """The response status is 5xx."""
        return self._status_code is not None and self._status_code >= 500

    @never_raises("web.status")
    def set_status(self, status: Any) -> None:
        if isinstance(status, int) and not isinstance(status, bool):
            self._status_code = status
            if self.span.is_recording():
                self.span.set_attribute(http_attributes.HTTP_RESPONSE_STATUS_CODE, status)

    @never_raises("web.route")
    def set_route(self, route: str | None) -> None:
        if route and not self._finalized:
            self._route = route

    @never_raises("web.exception")
    def record_exception(self, exc: BaseException) -> None:
        """The app raised: the span records it (once) and becomes an error."""
        if not isinstance(exc, Exception) or exc is self._exception or self._ended:
            return
        self._exception = exc
        if self.span.is_recording():
            adapter.record_error(self.span, exc)

    @never_raises("web.outcome")
    def set_outcome(self, outcome: str) -> None:
        """The response was cut short without an application error (``closed_early``/``cancelled``)."""
        if self._ended or self._exception is not None or outcome not in n.STREAM_OUTCOMES:
            return
        if self.span.is_recording():
            self.span.set_attribute(n.LLM_STREAM_OUTCOME, outcome)

    def interrupted(self, exc: BaseException) -> bool:
        """Whether ``exc`` (escaping the app) is an interruption, recorded as such, rather than an error.

        Cancellation (a client hang-up under uvicorn cancels the handler), GeneratorExit, and
        whatever follows a failed write to a client that went away are outcomes, not errors.
        """
        outcome = adapter.interruption_of(exc)
        if outcome is None and self.client_gone:
            outcome = n.STREAM_CLOSED_EARLY
        if outcome is None:
            return False
        self.set_outcome(outcome)
        return True

    @never_raises("web.finalize")
    def finalize(self) -> None:
        """The response is complete: name the span by route, set the error state, write the roll-up."""
        if self._finalized:
            return
        self._finalized = True
        span = self.span
        if not span.is_recording():
            return
        if self._route:
            route = adapter.span_name(self._route)
            span.update_name(f"{self._name} {route}")
            span.set_attribute(http_attributes.HTTP_ROUTE, route)
        if self._exception is not None:
            span.set_attribute(n.ERROR_TYPE, adapter.error_type(self._exception))
        elif self.server_error:
            span.set_attribute(n.ERROR_TYPE, str(self._status_code))
            span.set_status(Status(StatusCode.ERROR))
        span.set_attributes(rollup_attributes(self.rollup))

    @never_raises("web.end")
    def end(self) -> None:
        if self._ended:
            return
        self.finalize()
        self._ended = True
        self.span.end()

