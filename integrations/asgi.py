"""Pure ASGI middleware: one trace per HTTP request, with the request's LLM roll-up on the server span.

Works with Starlette, FastAPI and any other ASGI 3 application::

    from llm_otel.integrations.asgi import LLMOtelMiddleware

    app.add_middleware(LLMOtelMiddleware)                 # Starlette / FastAPI
    app = LLMOtelMiddleware(app, excluded_paths=["/health"])  # any ASGI app

The server span is recorded with the tracer provider that ``llm_otel.configure()``
holds (read per request), and it is the current span while the application runs,
so every LLM span of the request is its child. Streaming bodies keep the context
until the last chunk is sent. WebSocket and lifespan scopes pass through untouched.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from typing import Any

import llm_otel
from llm_otel.adapter import CLOSED_EARLY, internal_error

from ._web import IncomingHeaders, RequestInfo, ServerRequest, WebOptions, begin_request

__all__ = ["LLMOtelMiddleware"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

# Messages that complete a response when they carry no further body.
_BODY_MESSAGES = frozenset({"http.response.body", "http.response.zerocopysend"})


class LLMOtelMiddleware:
    """Trace each HTTP request and roll up the LLM calls made while serving it.

    Args:
        app: the ASGI application to wrap.
        excluded_paths: paths served without a span (``"/health"``); an entry ending in
            ``*`` excludes a prefix (``"/static/*"``).
        trust_incoming_context: continue the caller's trace from ``traceparent`` (default,
            as W3C intends). ``False`` starts a new trace that links to the caller's span
            and ignores incoming baggage for propagation: use it on a public edge.
        baggage_labels: baggage keys (e.g. ``"tenant"``) whose values become metric labels
            and span attributes of the request's LLM calls; values are validated and
            bounded by the cardinality limit.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        excluded_paths: Iterable[str] = (),
        trust_incoming_context: bool = True,
        baggage_labels: Iterable[str] = (),
    ) -> None:
        self.app = app
        self.options = WebOptions.build(
            excluded_paths=excluded_paths,
            trust_incoming_context=trust_incoming_context,
            baggage_labels=baggage_labels,
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = self._begin(scope)
        if request is None:
            await self.app(scope, receive, send)
            return

        expecting_trailers = False
        started = finished = False

        async def send_and_observe(message: Message) -> None:
            nonlocal expecting_trailers, started, finished
            complete = False
            try:
                kind = message["type"]
                if kind == "http.response.start":
                    started = True
                    request.set_status(message.get("status"))
                    expecting_trailers = bool(message.get("trailers", False))
                elif kind in _BODY_MESSAGES:
                    complete = not expecting_trailers and not message.get("more_body", False)
                elif kind == "http.response.trailers":
                    complete = not message.get("more_trailers", False)
                elif kind == "http.response.pathsend":
                    complete = not expecting_trailers
                finished = finished or complete
                if complete and request.server_error:
                    # An error middleware inside us sends the 500 before it re-raises: stay open
                    # until the app returns so the span records the exception that caused it.
                    complete = False
                if complete:
                    request.set_route(route_of(scope))
                    request.finalize()
            except Exception as exc:
                internal_error("asgi.send", exc)
            try:
                await send(message)
            except OSError:  # ASGI 2.4: the client went away (servers raise an OSError subclass)
                request.client_gone = True
                raise
            if complete:
                request.end()

        tokens = request.enter()
        try:
            await self.app(scope, receive, send_and_observe)
        except BaseException as exc:
            if not request.interrupted(exc):
                request.record_exception(exc)
            raise
        finally:
            request.exit(tokens)
            request.set_route(route_of(scope))
            if started and not finished:  # e.g. Starlette stopped streaming when the client hung up
                request.set_outcome(CLOSED_EARLY)
            request.end()

    def _begin(self, scope: Scope) -> ServerRequest | None:
        """The traced request, or None to serve it untraced (excluded, disabled, or our own failure)."""
        try:
            path = scope.get("path")
            path = path if isinstance(path, str) else ""
            if self.options.excludes(path):
                return None
            telemetry = llm_otel.current()
            if not telemetry.enabled:
                return None
            headers = IncomingHeaders.from_asgi(scope.get("headers") or ())
            return begin_request(telemetry, self.options, request_info(scope, path), headers)
        except Exception as exc:
            internal_error("asgi.begin", exc)
            return None


def request_info(scope: Scope, path: str) -> RequestInfo:
    method = scope.get("method")
    info = RequestInfo(method=method if isinstance(method, str) else "", path=path)
    scheme = scope.get("scheme")
    info.scheme = scheme if isinstance(scheme, str) else "http"
    version = scope.get("http_version")
    info.protocol_version = version if isinstance(version, str) else None
    server = scope.get("server")
    if isinstance(server, (tuple, list)) and len(server) == 2:
        host, port = server
        info.server_address = host if isinstance(host, str) else None
        info.server_port = port if isinstance(port, int) else None
    client = scope.get("client")
    if isinstance(client, (tuple, list)) and len(client) == 2 and isinstance(client[0], str):
        info.client_address = client[0]
    return info


def route_of(scope: Scope) -> str | None:
    """The matched route template (Starlette and FastAPI put the route in the scope)."""
    route = scope.get("route")
    if route is None:
        return None
    template = getattr(route, "path_format", None) or getattr(route, "path", None)
    if not isinstance(template, str) or not template:
        return None
    # Inside a Mount, root_path grew by the mount's path; the server's own root_path is not part of the route.
    root_path = scope.get("root_path") or ""
    app_root_path = scope.get("app_root_path", root_path) or ""
    if isinstance(root_path, str) and isinstance(app_root_path, str) and root_path.startswith(app_root_path):
        return root_path[len(app_root_path):] + template
    return template
