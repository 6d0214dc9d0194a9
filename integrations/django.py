"""Django middleware: one trace per request, with the request's LLM roll-up on the server span.

Add it first in ``MIDDLEWARE`` so the span covers the whole request::

    MIDDLEWARE = ["llm_otel.integrations.django.LLMOtelMiddleware", ...]
    LLM_OTEL = {"EXCLUDED_PATHS": ["/health"], "TRUST_INCOMING_CONTEXT": True, "BAGGAGE_LABELS": ["tenant"]}

It is sync and async capable, so it never forces Django to switch modes. The
server span (recorded with the tracer provider ``llm_otel.configure()`` holds)
is current while the view runs and while a streaming body is produced, so
every LLM span of the request is its child.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

try:
    from asgiref.sync import iscoroutinefunction, markcoroutinefunction
    from django.conf import settings
    from django.core.exceptions import ImproperlyConfigured
    from django.http import HttpRequest, HttpResponseBase
except ImportError as exc:  # pragma: no cover - exercised only without Django installed
    raise ImportError(
        "llm_otel.integrations.django needs Django; install it with: pip install 'llm-otel[django]'"
    ) from exc

import llm_otel
from llm_otel import adapter
from llm_otel.adapter import CLOSED_EARLY, internal_error, log_once

from ._web import IncomingHeaders, RequestInfo, ServerRequest, WebOptions, begin_request

__all__ = ["LLMOtelMiddleware"]

SETTING_NAME = "LLM_OTEL"
_OPTION_KEYS = {
    "EXCLUDED_PATHS": "excluded_paths",
    "TRUST_INCOMING_CONTEXT": "trust_incoming_context",
    "BAGGAGE_LABELS": "baggage_labels",
}
_REQUEST_ATTRIBUTE = "_llm_otel_request"

GetResponse = Callable[[HttpRequest], Any]


class LLMOtelMiddleware:
    """Trace each request and roll up the LLM calls made while serving it (options: ``settings.LLM_OTEL``)."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: GetResponse) -> None:
        self.get_response = get_response
        self.options = options_from_settings()
        self._async = iscoroutinefunction(get_response)
        if self._async:
            markcoroutinefunction(self)

    def __call__(self, request: HttpRequest) -> Any:
        if self._async:
            return self.__acall__(request)
        traced = self._begin(request)
        if traced is None:
            return self.get_response(request)
        tokens = traced.enter()
        try:
            response = self.get_response(request)
        except BaseException as exc:
            if not traced.interrupted(exc):
                traced.record_exception(exc)
            traced.end()
            raise
        finally:
            traced.exit(tokens)
        return _complete(request, response, traced)

    async def __acall__(self, request: HttpRequest) -> Any:
        traced = self._begin(request)
        get_response: Callable[[HttpRequest], Awaitable[Any]] = self.get_response
        if traced is None:
            return await get_response(request)
        tokens = traced.enter()
        try:
            response = await get_response(request)
        except BaseException as exc:  # Django cancels the view when the client disconnects
            if not traced.interrupted(exc):
                traced.record_exception(exc)
            traced.end()
            raise
        finally:
            traced.exit(tokens)
        return _complete(request, response, traced)

    def process_exception(self, request: HttpRequest, exception: Exception) -> None:
        """The view raised: Django turns it into a 500 response, the span records the exception itself."""
        traced = getattr(request, _REQUEST_ATTRIBUTE, None)
        if isinstance(traced, ServerRequest):
            traced.record_exception(exception)

    def _begin(self, request: HttpRequest) -> ServerRequest | None:
        try:
            path = request.path
            if self.options.excludes(path):
                return None
            telemetry = llm_otel.current()
            if not telemetry.enabled:
                return None
            headers = IncomingHeaders.from_wsgi_environ(request.META)
            traced = begin_request(telemetry, self.options, request_info(request), headers)
            setattr(request, _REQUEST_ATTRIBUTE, traced)
            return traced
        except Exception as exc:
            internal_error("django.begin", exc)
            return None


def _complete(request: HttpRequest, response: HttpResponseBase, traced: ServerRequest) -> HttpResponseBase:
    """Annotate the span; end it now, or when a streaming body is done."""
    try:
        traced.set_status(response.status_code)
        traced.set_route(route_of(request))
        # A FileResponse streams a file, not generated content: leave it alone so the server's
        # file-serving shortcut (wsgi.file_wrapper) still applies, and end the span now.
        if getattr(response, "streaming", False) and getattr(response, "file_to_stream", None) is None:
            streaming: Any = response  # a StreamingHttpResponse
            if streaming.is_async:
                streaming.streaming_content = _TracedAsyncStream(streaming.streaming_content, _RequestBody(traced))
            else:
                streaming.streaming_content = adapter.WatchedStream(streaming.streaming_content, _RequestBody(traced))
            return response
    except Exception as exc:
        internal_error("django.response", exc)
    traced.end()
    return response


class _RequestBody(adapter.StreamWatch):
    """A streaming body read in the request's context; the server span ends when it is done or closed."""

    def __init__(self, traced: ServerRequest) -> None:
        self._traced = traced

    def enter(self) -> Any:
        return self._traced.enter()

    def exit(self, token: Any) -> None:
        self._traced.exit(token)

    def end(self) -> None:
        self._traced.end()

    def fail(self, error: BaseException) -> None:
        # under ASGI, Django cancels the body when the client disconnects: an outcome, not an error
        if not self._traced.interrupted(error):
            self._traced.record_exception(error)
        self._traced.end()

    def close(self) -> None:
        """Django's ``response.close()``, also when the body was never read."""
        self._traced.set_outcome(CLOSED_EARLY)
        self._traced.end()


class _TracedAsyncStream(adapter.AsyncWatchedStream):
    def close(self) -> None:  # type: ignore[override]
        """Django closes responses synchronously; end the span even if the body was never read."""
        self._llm_otel_finish(self._llm_otel_watch.close)


def options_from_settings() -> WebOptions:
    config = getattr(settings, SETTING_NAME, None) or {}
    if not isinstance(config, Mapping):
        raise ImproperlyConfigured(f"settings.{SETTING_NAME} must be a dict, got {type(config).__name__}")
    unknown = sorted(str(key) for key in config if key not in _OPTION_KEYS)
    if unknown:
        log_once(
            "django:unknown-settings",
            "llm-otel: settings.%s has keys the middleware does not read: %s (it reads %s)",
            SETTING_NAME,
            ", ".join(unknown),
            ", ".join(_OPTION_KEYS),
        )
    try:
        return WebOptions.build(**{_OPTION_KEYS[key]: value for key, value in config.items() if key in _OPTION_KEYS})
    except (TypeError, ValueError) as exc:
        raise ImproperlyConfigured(f"settings.{SETTING_NAME}: {exc}") from exc


def request_info(request: HttpRequest) -> RequestInfo:
    meta = request.META
    info = RequestInfo(method=request.method or "", path=request.path)
    try:
        info.scheme = request.scheme
    except Exception:  # a misconfigured SECURE_PROXY_SSL_HEADER must not cost the request its span
        info.scheme = None
    server_name = meta.get("SERVER_NAME")
    info.server_address = server_name if isinstance(server_name, str) else None
    port = str(meta.get("SERVER_PORT", ""))
    info.server_port = int(port) if port.isdigit() else None
    client = meta.get("REMOTE_ADDR")
    info.client_address = client if isinstance(client, str) else None
    protocol = meta.get("SERVER_PROTOCOL")
    if isinstance(protocol, str) and protocol.startswith("HTTP/"):
        info.protocol_version = protocol[len("HTTP/"):]
    return info


def route_of(request: HttpRequest) -> str | None:
    """The matched URL pattern (``/items/<int:pk>/``), once Django has resolved the request."""
    route = getattr(getattr(request, "resolver_match", None), "route", None)
    if not isinstance(route, str):
        return None
    if route.startswith(("/", "^")):  # already absolute, or a re_path() regex
        return route
    return "/" + route
