"""The Django middleware with Django's own test clients (sync views over WSGI, async views over ASGI)."""

from __future__ import annotations

import asyncio
import io
import random
from typing import Any

import pytest
from asgiref.sync import iscoroutinefunction
from django.core.exceptions import ImproperlyConfigured
from django.http import FileResponse, HttpRequest, HttpResponse
from django.test import AsyncClient, Client, RequestFactory, override_settings
from opentelemetry.trace import SpanKind, StatusCode

from llm_otel.adapter import error_type as error_type_of
from llm_otel.integrations.django import LLMOtelMiddleware
from llm_otel.testing import CapturedTelemetry

from . import django_urls as views
from .conftest import span_attributes, traceparent

INCOMING_TRACE = 0x4BF92F3577B34DA6A3CE929D0E0E4736
INCOMING_SPAN = 0x00F067AA0BA902B7


def server_span(telemetry: CapturedTelemetry) -> Any:
    found = [s for s in telemetry.spans() if s.kind is SpanKind.SERVER]
    assert len(found) == 1, [s.name for s in telemetry.spans()]
    return found[0]


def llm_spans(telemetry: CapturedTelemetry) -> list[Any]:
    return [s for s in telemetry.spans() if s.kind is SpanKind.CLIENT]


def assert_children_of_server(telemetry: CapturedTelemetry, calls: int) -> Any:
    server = server_span(telemetry)
    found = llm_spans(telemetry)
    assert len(found) == calls
    assert all(c.parent is not None and c.parent.span_id == server.context.span_id for c in found)
    assert server.end_time >= max(c.end_time for c in found)
    return server


# --- one request = one trace -----------------------------------------------------
def test_sync_view_is_one_trace_with_server_span_over_llm_spans(telemetry: CapturedTelemetry) -> None:
    response = Client().get("/chat/7/")
    assert response.status_code == 200

    telemetry.assert_single_trace({"GET /chat/<int:pk>/": {"chat gpt-4o-mini": {}}})
    server = assert_children_of_server(telemetry, calls=2)
    assert server.parent is None
    attrs = span_attributes(server)
    assert attrs["http.request.method"] == "GET"
    assert attrs["url.path"] == "/chat/7/"
    assert attrs["http.route"] == "/chat/<int:pk>/"
    assert attrs["http.response.status_code"] == 200
    assert attrs["url.scheme"] == "http"
    assert server.status.status_code is StatusCode.UNSET
    calls = [span_attributes(s) for s in llm_spans(telemetry)]
    assert attrs["llm.calls"] == 2
    assert attrs["llm.usage.input_tokens"] == sum(c["gen_ai.usage.input_tokens"] for c in calls) == 14
    assert attrs["llm.usage.output_tokens"] == sum(c["gen_ai.usage.output_tokens"] for c in calls) == 40
    assert attrs["llm.cost.usd_total"] == pytest.approx(sum(c["llm.cost.usd"] for c in calls), rel=1e-9)
    assert response.json() == {"trace_id": f"{server.context.trace_id:032x}"}


async def test_async_view_is_one_trace_with_server_span_over_llm_spans(telemetry: CapturedTelemetry) -> None:
    response = await AsyncClient().get("/achat/9/")
    assert response.status_code == 200

    telemetry.assert_single_trace({"GET /achat/<int:pk>/": {"chat gpt-4o-mini": {}}})
    server = assert_children_of_server(telemetry, calls=2)
    attrs = span_attributes(server)
    assert attrs["http.route"] == "/achat/<int:pk>/"
    assert attrs["llm.usage.input_tokens"] == 18
    assert attrs["llm.calls"] == 2


async def test_sync_view_under_asgi_runs_in_a_thread_and_still_nests(telemetry: CapturedTelemetry) -> None:
    response = await AsyncClient().get("/chat/3/")
    assert response.status_code == 200
    telemetry.assert_single_trace({"GET /chat/<int:pk>/": {"chat gpt-4o-mini": {}}})
    assert span_attributes(assert_children_of_server(telemetry, calls=2))["llm.usage.input_tokens"] == 6


def test_unmatched_url_names_the_span_by_method_only(telemetry: CapturedTelemetry) -> None:
    assert Client().get("/no/such/page/").status_code == 404
    server = server_span(telemetry)
    assert server.name == "GET"
    assert span_attributes(server)["http.response.status_code"] == 404
    assert span_attributes(server)["llm.calls"] == 0


# --- incoming context --------------------------------------------------------------
def test_incoming_traceparent_is_honoured(telemetry: CapturedTelemetry) -> None:
    headers = {"traceparent": traceparent(INCOMING_TRACE, INCOMING_SPAN), "tracestate": "vendor=abc"}
    Client().get("/chat/1/", headers=headers)

    telemetry.assert_single_trace({"GET /chat/<int:pk>/": {"chat gpt-4o-mini": {}}})
    server = server_span(telemetry)
    assert server.context.trace_id == INCOMING_TRACE
    assert server.parent is not None and server.parent.span_id == INCOMING_SPAN and server.parent.is_remote
    assert server.context.trace_state.to_header() == "vendor=abc"


def test_untrusted_incoming_context_starts_a_new_trace_with_a_link(telemetry: CapturedTelemetry) -> None:
    headers = {"traceparent": traceparent(INCOMING_TRACE, INCOMING_SPAN), "baggage": "tenant=acme"}
    with override_settings(LLM_OTEL={"TRUST_INCOMING_CONTEXT": False, "BAGGAGE_LABELS": ["tenant"]}):
        client = Client()
        client.get("/chat/1/", headers=headers)
        assert client.get("/baggage/", headers=headers).json() == {"baggage": {}}

    chat = telemetry.span("GET /chat/<int:pk>/")
    assert chat.parent is None
    assert chat.context.trace_id != INCOMING_TRACE
    assert [(link.context.trace_id, link.context.span_id) for link in chat.links] == [(INCOMING_TRACE, INCOMING_SPAN)]
    assert telemetry.counter("llm.tokens.input", tenant="acme") == 2


def test_trusted_baggage_reaches_the_view(telemetry: CapturedTelemetry) -> None:
    response = Client().get("/baggage/", headers={"baggage": "feature=search,tenant=acme%20corp"})
    assert response.json() == {"baggage": {"feature": "search", "tenant": "acme corp"}}


def test_allow_listed_baggage_becomes_a_bounded_label(telemetry: CapturedTelemetry) -> None:
    with override_settings(LLM_OTEL={"BAGGAGE_LABELS": ["tenant"]}):
        client = Client()
        client.get("/chat/10/", headers={"baggage": "tenant=acme,user_id=u-1"})
        client.get("/chat/10/", headers={"baggage": "tenant=" + "y" * 100})

    assert telemetry.counter("llm.tokens.input", tenant="acme") == 20
    assert telemetry.counter("llm.tokens.input") == 40
    assert all("user_id" not in p.attributes for p in telemetry.points("llm.tokens.input"))
    assert telemetry.counter("llm_otel.input.unknown", source="http_headers", reason="baggage_label_invalid") == 1


@pytest.mark.parametrize(
    ("headers", "reason"),
    [
        ({"traceparent": "00-" + "f" * 5000}, "traceparent_oversized"),
        ({"traceparent": "00-xyz-01"}, "traceparent_invalid"),
        ({"baggage": ",".join(f"k{i}=v" for i in range(4000))}, "baggage_oversized"),
        ({"baggage": ",".join(f"k{i}=v" for i in range(500))}, "baggage_too_many_members"),
    ],
)
def test_hostile_headers_are_ignored_and_counted(
    telemetry: CapturedTelemetry, headers: dict[str, str], reason: str
) -> None:
    assert Client().get("/chat/1/", headers=headers).status_code == 200
    assert server_span(telemetry).parent is None
    assert telemetry.counter("llm_otel.input.unknown", source="http_headers", reason=reason) == 1


# --- excluded paths, streaming -----------------------------------------------------
def test_excluded_paths_produce_no_server_span(telemetry: CapturedTelemetry) -> None:
    with override_settings(LLM_OTEL={"EXCLUDED_PATHS": ["/health/", "/static/*"]}):
        client = Client()
        assert client.get("/health/").content == b"ok"
        assert client.get("/static/app.css").content == b"ok"
        client.get("/chat/1/")

    assert [s.name for s in telemetry.spans() if s.kind is SpanKind.SERVER] == ["GET /chat/<int:pk>/"]


def test_sync_streaming_response_keeps_context_until_the_body_is_done(telemetry: CapturedTelemetry) -> None:
    views.STREAM_SPAN_IDS.clear()
    response = Client().get("/stream/")
    assert b"".join(response.streaming_content).endswith(b"done\n")

    telemetry.assert_single_trace({"GET /stream/": {"chat gpt-4o-mini": {}}})
    server = assert_children_of_server(telemetry, calls=2)
    assert set(views.STREAM_SPAN_IDS) == {server.context.span_id}
    attrs = span_attributes(server)
    assert attrs["llm.calls"] == 2
    assert attrs["llm.usage.input_tokens"] == 15
    assert attrs["llm.usage.output_tokens"] == 22


async def test_async_streaming_response_keeps_context_until_the_body_is_done(telemetry: CapturedTelemetry) -> None:
    views.STREAM_SPAN_IDS.clear()
    response = await AsyncClient().get("/astream/")
    body = b"".join([chunk async for chunk in response.streaming_content])
    assert body.endswith(b"done\n")

    telemetry.assert_single_trace({"GET /astream/": {"chat gpt-4o-mini": {}}})
    server = assert_children_of_server(telemetry, calls=2)
    assert set(views.STREAM_SPAN_IDS) == {server.context.span_id}
    assert span_attributes(server)["llm.usage.input_tokens"] == 15


def test_unread_streaming_body_still_ends_the_span(telemetry: CapturedTelemetry) -> None:
    response = Client().get("/stream/")
    assert telemetry.spans() == []  # the body has not been produced yet
    response.close()
    assert server_span(telemetry).name == "GET /stream/"


def test_file_response_is_left_to_the_server(telemetry: CapturedTelemetry) -> None:
    middleware = LLMOtelMiddleware(lambda request: FileResponse(io.BytesIO(b"file body")))
    response = middleware(RequestFactory().get("/download/"))
    assert response.file_to_stream is not None  # still eligible for wsgi.file_wrapper
    assert span_attributes(server_span(telemetry))["http.response.status_code"] == 200
    assert b"".join(response.streaming_content) == b"file body"
    response.close()


# --- errors ------------------------------------------------------------------------
def test_sync_view_exception_propagates_unchanged_and_the_span_records_it(telemetry: CapturedTelemetry) -> None:
    views.RAISED.clear()
    with pytest.raises(views.ViewFailed) as caught:
        Client(raise_request_exception=True).get("/fail/")
    assert caught.value is views.RAISED[0]
    _assert_failed_request(telemetry, "GET /fail/", views.RAISED[0])


async def test_async_view_exception_propagates_unchanged_and_the_span_records_it(
    telemetry: CapturedTelemetry,
) -> None:
    views.RAISED.clear()
    with pytest.raises(views.ViewFailed) as caught:
        await AsyncClient(raise_request_exception=True).get("/afail/")
    assert caught.value is views.RAISED[0]
    _assert_failed_request(telemetry, "GET /afail/", views.RAISED[0])


def test_view_exception_becomes_a_500_response_with_the_error_recorded(telemetry: CapturedTelemetry) -> None:
    views.RAISED.clear()
    assert Client(raise_request_exception=False).get("/fail/").status_code == 500
    _assert_failed_request(telemetry, "GET /fail/", views.RAISED[0])


def _assert_failed_request(telemetry: CapturedTelemetry, name: str, error: BaseException) -> None:
    telemetry.assert_single_trace({name: {"chat gpt-4o-mini": {}}})
    server = assert_children_of_server(telemetry, calls=1)
    attrs = span_attributes(server)
    assert server.status.status_code is StatusCode.ERROR
    assert attrs["error.type"] == error_type_of(error)
    assert attrs["http.response.status_code"] == 500
    assert attrs["llm.calls"] == 1
    assert [e.name for e in server.events] == ["exception"]


# --- concurrency -------------------------------------------------------------------
async def test_concurrent_async_requests_never_mix_traces(telemetry: CapturedTelemetry) -> None:
    trace_ids = {n: random.getrandbits(127) + 1 for n in range(1, 31)}
    client = AsyncClient()
    responses = await asyncio.gather(
        *(client.get(f"/achat/{n}/", headers={"traceparent": traceparent(trace_ids[n], n)}) for n in trace_ids)
    )
    for n, response in zip(trace_ids, responses, strict=True):
        assert response.json() == {"trace_id": f"{trace_ids[n]:032x}"}

    traces = telemetry.traces()
    assert len(traces) == 30
    for n, trace_id in trace_ids.items():
        spans = traces[trace_id]
        telemetry.assert_single_trace({"GET /achat/<int:pk>/": {"chat gpt-4o-mini": {}}}, spans=spans)
        [server] = [s for s in spans if s.kind is SpanKind.SERVER]
        calls = [s for s in spans if s.kind is SpanKind.CLIENT]
        assert len(calls) == 2 and server.parent is not None and server.parent.span_id == n
        assert all(c.parent is not None and c.parent.span_id == server.context.span_id for c in calls)
        assert span_attributes(server)["llm.usage.input_tokens"] == 2 * n


# --- the middleware itself ---------------------------------------------------------
def test_middleware_adapts_to_sync_and_async_chains() -> None:
    def sync_get_response(request: HttpRequest) -> HttpResponse:
        return HttpResponse("ok")

    async def async_get_response(request: HttpRequest) -> HttpResponse:
        return HttpResponse("ok")

    assert LLMOtelMiddleware.sync_capable and LLMOtelMiddleware.async_capable
    assert not iscoroutinefunction(LLMOtelMiddleware(sync_get_response))
    assert iscoroutinefunction(LLMOtelMiddleware(async_get_response))


@pytest.mark.parametrize(
    "config",
    [
        ["/health/"],
        {"EXCLUDED_PATHS": "/health/"},
        {"BAGGAGE_LABELS": ["llm.task_type"]},
        {"TRUST_INCOMING_CONTEXT": "yes"},
    ],
)
def test_invalid_settings_fail_at_startup(config: Any) -> None:
    with override_settings(LLM_OTEL=config), pytest.raises(ImproperlyConfigured):
        LLMOtelMiddleware(lambda request: HttpResponse("ok"))


# --- client disconnects: outcomes, not errors ------------------------------------------
async def serve_and_hang_up(path: str, hang_up: asyncio.Event) -> list[dict[str, Any]]:
    """Serve one request with Django's own ASGI handler; the client disconnects once ``hang_up`` is set."""
    from django.core.handlers.asgi import ASGIHandler

    sent: list[dict[str, Any]] = []
    requested = False

    async def receive() -> dict[str, Any]:
        nonlocal requested
        if not requested:
            requested = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await hang_up.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http", "asgi": {"version": "3.0", "spec_version": "2.3"}, "http_version": "1.1",
        "method": "GET", "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": b"",
        "root_path": "", "headers": [(b"host", b"testserver")], "client": ("127.0.0.1", 50000),
        "server": ("testserver", 80),
    }
    await asyncio.wait_for(ASGIHandler()(scope, receive, send), 20)
    return sent


def assert_cancelled_not_failed(telemetry: CapturedTelemetry, server_outcome: str) -> None:
    server = server_span(telemetry)
    attrs = span_attributes(server)
    assert attrs["llm.stream.outcome"] == server_outcome
    assert "error.type" not in attrs and server.status.status_code is StatusCode.UNSET
    (call,) = llm_spans(telemetry)
    call_attrs = span_attributes(call)
    assert call_attrs["llm.stream.outcome"] == "cancelled"
    assert "error.type" not in call_attrs and call.status.status_code is StatusCode.UNSET
    assert telemetry.counter("llm.errors") == 0


async def test_client_disconnect_while_the_view_waits_is_cancelled(telemetry: CapturedTelemetry) -> None:
    views.WAITING["view"] = asyncio.Event()

    sent = await serve_and_hang_up("/await-provider/", views.WAITING["view"])

    assert sent == []  # no response: the view was cancelled
    assert_cancelled_not_failed(telemetry, "cancelled")


async def test_client_disconnect_mid_stream_is_cancelled(telemetry: CapturedTelemetry) -> None:
    views.WAITING["stream"] = asyncio.Event()

    sent = await serve_and_hang_up("/stream-stalled/", views.WAITING["stream"])

    assert [m["type"] for m in sent][:2] == ["http.response.start", "http.response.body"]
    assert server_span(telemetry).end_time is not None
    assert_cancelled_not_failed(telemetry, "cancelled")


def test_streaming_body_closed_before_its_end_is_closed_early(telemetry: CapturedTelemetry) -> None:
    """What a WSGI server does when the client goes away: close the body it was writing."""
    response = Client().get("/stream/")
    next(iter(response.streaming_content))
    response.close()

    server = server_span(telemetry)
    assert span_attributes(server)["llm.stream.outcome"] == "closed_early"
    assert server.status.status_code is StatusCode.UNSET
    (call,) = llm_spans(telemetry)
    assert span_attributes(call)["llm.stream.outcome"] == "closed_early"
    assert telemetry.counter("llm.errors") == 0


def test_fully_read_streaming_body_has_no_outcome(telemetry: CapturedTelemetry) -> None:
    response = Client().get("/stream/")
    b"".join(response.streaming_content)
    response.close()

    assert "llm.stream.outcome" not in span_attributes(server_span(telemetry))
