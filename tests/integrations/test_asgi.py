"""The ASGI middleware with real Starlette and FastAPI apps (TestClient and httpx's ASGI transport)."""

from __future__ import annotations

import asyncio
import gc
import json
import random
import secrets
import subprocess
import sys
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import APIRouter, FastAPI
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry import baggage, trace
from opentelemetry.trace import SpanKind, StatusCode
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route, WebSocketRoute
from starlette.testclient import TestClient
from starlette.websockets import WebSocket

import llm_otel
from llm_otel.adapter import error_type as error_type_of
from llm_otel.integrations import _web
from llm_otel.integrations.asgi import LLMOtelMiddleware
from llm_otel.testing import CapturedTelemetry, capture
from tests.hypothesis_profiles import examples

from .conftest import chat_response, span_attributes, stream_chunks, traceparent

INCOMING_TRACE = 0x0AF7651916CD43DD8448EB211C80319C
INCOMING_SPAN = 0xB7AD6B7169203331


class Boom(Exception):
    """What the failing endpoint raises."""


RAISED: list[BaseException] = []


# --- LLM call sites ------------------------------------------------------------
@llm_otel.traced_llm(provider="openai")
def ask(prompt: str, model: str = "gpt-4o-mini", tokens: int = 100) -> dict[str, Any]:
    return chat_response(model=model, prompt_tokens=tokens, completion_tokens=20)


@llm_otel.traced_llm(provider="openai")
async def ask_async(prompt: str, model: str = "gpt-4o-mini", tokens: int = 100) -> dict[str, Any]:
    await asyncio.sleep(0)
    return chat_response(model=model, prompt_tokens=tokens, completion_tokens=20)


@llm_otel.traced_llm(provider="openai", model="gpt-4o-mini")
async def stream_answer(prompt: str) -> AsyncIterator[dict[str, Any]]:
    for chunk in stream_chunks(["a", "b", "c"], prompt_tokens=10, completion_tokens=3):
        await asyncio.sleep(0)
        yield chunk


# --- a Starlette app -------------------------------------------------------------
def current_span_id() -> int:
    return trace.get_current_span().get_span_context().span_id


async def chat(request: Request) -> Response:
    ask("one")
    await ask_async("two", tokens=50)
    return JSONResponse({"ok": True})


def chat_sync(request: Request) -> Response:  # Starlette runs it in a worker thread
    ask("one", tokens=7)
    return JSONResponse({"ok": True})


async def chat_n(request: Request) -> Response:
    n = int(request.path_params["n"])
    await ask_async("first", tokens=n)
    await asyncio.sleep(random.random() / 200)
    await ask_async("second", tokens=n)
    return JSONResponse({"trace_id": f"{trace.get_current_span().get_span_context().trace_id:032x}"})


STREAM_SPAN_IDS: list[int] = []


async def stream(request: Request) -> Response:
    async def body() -> AsyncIterator[str]:
        async for chunk in stream_answer("hi"):
            STREAM_SPAN_IDS.append(current_span_id())
            yield json.dumps(chunk) + "\n"
        await ask_async("after the stream", tokens=5)
        STREAM_SPAN_IDS.append(current_span_id())
        yield "done\n"

    return StreamingResponse(body(), media_type="application/x-ndjson")


async def boom(request: Request) -> Response:
    ask("before failing")
    error = Boom("the endpoint failed")
    RAISED.append(error)
    raise error


async def echo_baggage(request: Request) -> Response:
    return JSONResponse({"baggage": dict(baggage.get_all())})


async def unpriced(request: Request) -> Response:
    ask("x", model="house-model-without-a-price")
    return PlainTextResponse("ok")


async def plain(request: Request) -> Response:
    ask("not traced by the middleware")
    return PlainTextResponse("ok")


async def websocket_echo(websocket: WebSocket) -> None:
    await websocket.accept()
    await websocket.send_text(await websocket.receive_text())
    await websocket.close()


def make_app(**options: Any) -> Starlette:
    routes = [
        Route("/chat/{id}", chat),
        Route("/sync-chat", chat_sync),
        Route("/n/{n:int}", chat_n),
        Route("/stream", stream),
        Route("/boom", boom),
        Route("/baggage", echo_baggage),
        Route("/unpriced", unpriced),
        Route("/health", plain),
        Route("/static/{name}", plain),
        WebSocketRoute("/ws", websocket_echo),
    ]
    return Starlette(routes=routes, middleware=[Middleware(LLMOtelMiddleware, **options)])


def server_span(telemetry: CapturedTelemetry) -> Any:
    found = [s for s in telemetry.spans() if s.kind is SpanKind.SERVER]
    assert len(found) == 1, [s.name for s in telemetry.spans()]
    return found[0]


def llm_spans(telemetry: CapturedTelemetry) -> list[Any]:
    return [s for s in telemetry.spans() if s.kind is SpanKind.CLIENT]


# --- one request = one trace -----------------------------------------------------
def test_request_is_one_trace_with_server_span_over_llm_spans(telemetry: CapturedTelemetry) -> None:
    with TestClient(make_app()) as client:
        assert client.get("/chat/42").json() == {"ok": True}

    telemetry.assert_single_trace({"GET /chat/{id}": {"chat gpt-4o-mini": {}}})
    server = server_span(telemetry)
    calls = llm_spans(telemetry)
    assert len(calls) == 2
    assert all(c.parent is not None and c.parent.span_id == server.context.span_id for c in calls)
    assert server.parent is None
    attrs = span_attributes(server)
    assert attrs["http.request.method"] == "GET"
    assert attrs["url.path"] == "/chat/42"
    assert attrs["http.route"] == "/chat/{id}"
    assert attrs["http.response.status_code"] == 200
    assert attrs["url.scheme"] == "http"
    assert server.status.status_code is StatusCode.UNSET
    assert server.end_time >= max(c.end_time for c in calls)


def test_rollup_on_server_span_is_the_sum_of_the_calls(telemetry: CapturedTelemetry) -> None:
    with TestClient(make_app()) as client:
        client.get("/chat/1")

    attrs = span_attributes(server_span(telemetry))
    calls = [span_attributes(s) for s in llm_spans(telemetry)]
    assert attrs["llm.calls"] == 2
    assert attrs["llm.usage.input_tokens"] == sum(c["gen_ai.usage.input_tokens"] for c in calls) == 150
    assert attrs["llm.usage.output_tokens"] == sum(c["gen_ai.usage.output_tokens"] for c in calls) == 40
    assert attrs["llm.cost.usd_total"] == pytest.approx(sum(c["llm.cost.usd"] for c in calls), rel=1e-9)
    assert attrs["llm.cost.usd_total"] > 0
    assert (attrs["llm.calls.errors"], attrs["llm.calls.unpriced"]) == (0, 0)
    assert telemetry.counter("llm.tokens.input") == 150


def test_sync_endpoint_in_worker_thread_still_nests_and_rolls_up(telemetry: CapturedTelemetry) -> None:
    with TestClient(make_app()) as client:
        client.get("/sync-chat")

    telemetry.assert_single_trace({"GET /sync-chat": {"chat gpt-4o-mini": {}}})
    assert span_attributes(server_span(telemetry))["llm.usage.input_tokens"] == 7


def test_request_without_llm_calls_says_so(telemetry: CapturedTelemetry) -> None:
    with TestClient(make_app()) as client:
        client.get("/baggage")

    attrs = span_attributes(server_span(telemetry))
    assert attrs["llm.calls"] == 0
    assert "llm.cost.usd_total" not in attrs


def test_unpriced_call_leaves_the_cost_total_out(telemetry: CapturedTelemetry) -> None:
    with TestClient(make_app()) as client:
        client.get("/unpriced")

    attrs = span_attributes(server_span(telemetry))
    assert attrs["llm.calls"] == 1
    assert attrs["llm.usage.input_tokens"] == 100
    assert attrs["llm.calls.unpriced"] == 1
    assert "llm.cost.usd_total" not in attrs


def test_unmatched_route_names_the_span_by_method_only(telemetry: CapturedTelemetry) -> None:
    with TestClient(make_app()) as client:
        assert client.get("/no/such/page/123").status_code == 404

    server = server_span(telemetry)
    assert server.name == "GET"
    assert "http.route" not in span_attributes(server)
    assert span_attributes(server)["http.response.status_code"] == 404
    assert server.status.status_code is StatusCode.UNSET


def test_unknown_method_is_reported_as_other(telemetry: CapturedTelemetry) -> None:
    with TestClient(make_app()) as client:
        client.request("BREW", "/chat/1")

    server = server_span(telemetry)
    assert server.name.startswith("HTTP")
    attrs = span_attributes(server)
    assert attrs["http.request.method"] == "_OTHER"
    assert attrs["http.request.method_original"] == "BREW"


async def test_fastapi_through_httpx_asgi_transport(telemetry: CapturedTelemetry) -> None:
    router = APIRouter(prefix="/v1")

    @router.get("/items/{item_id}")
    async def item(item_id: int) -> dict[str, int]:
        await ask_async("describe", tokens=item_id)
        return {"item_id": item_id}

    app = FastAPI()
    app.include_router(router)
    app.add_middleware(LLMOtelMiddleware)

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api") as client:
        response = await client.get("/v1/items/33")
    assert response.json() == {"item_id": 33}

    telemetry.assert_single_trace({"GET /v1/items/{item_id}": {"chat gpt-4o-mini": {}}})
    attrs = span_attributes(server_span(telemetry))
    assert attrs["http.route"] == "/v1/items/{item_id}"
    assert attrs["llm.usage.input_tokens"] == 33


# --- incoming context --------------------------------------------------------------
def test_incoming_traceparent_is_honoured(telemetry: CapturedTelemetry) -> None:
    headers = {"traceparent": traceparent(INCOMING_TRACE, INCOMING_SPAN), "tracestate": "vendor=abc,other=1"}
    with TestClient(make_app()) as client:
        client.get("/chat/1", headers=headers)

    telemetry.assert_single_trace({"GET /chat/{id}": {"chat gpt-4o-mini": {}}})
    server = server_span(telemetry)
    assert server.context.trace_id == INCOMING_TRACE
    assert server.parent is not None and server.parent.span_id == INCOMING_SPAN and server.parent.is_remote
    assert server.context.trace_state.to_header() == "vendor=abc,other=1"
    assert all(s.context.trace_id == INCOMING_TRACE for s in telemetry.spans())


def test_unsampled_incoming_context_is_respected(telemetry: CapturedTelemetry) -> None:
    with TestClient(make_app()) as client:
        client.get("/chat/1", headers={"traceparent": traceparent(INCOMING_TRACE, INCOMING_SPAN, sampled=False)})

    assert telemetry.spans() == []  # the caller decided not to sample this trace
    assert telemetry.counter("llm.tokens.input") == 150  # metrics are not sampled


def test_untrusted_incoming_context_starts_a_new_trace_with_a_link(telemetry: CapturedTelemetry) -> None:
    headers = {"traceparent": traceparent(INCOMING_TRACE, INCOMING_SPAN), "baggage": "tenant=acme,secret=1"}
    app = make_app(trust_incoming_context=False, baggage_labels=["tenant"])
    with TestClient(app) as client:
        client.get("/chat/1", headers=headers)
        echoed = client.get("/baggage", headers=headers).json()

    assert echoed == {"baggage": {}}  # untrusted baggage is not propagated further
    spans = [s for s in telemetry.spans() if s.name.startswith("GET /chat")] + llm_spans(telemetry)
    telemetry.assert_single_trace({"GET /chat/{id}": {"chat gpt-4o-mini": {}}}, spans=spans)
    server = spans[0]
    assert server.parent is None
    assert server.context.trace_id != INCOMING_TRACE
    assert len(server.links) == 1
    assert server.links[0].context.trace_id == INCOMING_TRACE
    assert server.links[0].context.span_id == INCOMING_SPAN
    # the allow-listed label still applies: it is validated and bounded, not trusted for tracing
    assert telemetry.counter("llm.tokens.input", tenant="acme") == 150


def test_trusted_baggage_reaches_the_application(telemetry: CapturedTelemetry) -> None:
    with TestClient(make_app()) as client:
        echoed = client.get("/baggage", headers={"baggage": "feature=search, tenant=acme%20corp;prop=1"}).json()
    assert echoed == {"baggage": {"feature": "search", "tenant": "acme corp"}}


def test_already_current_span_becomes_the_parent(telemetry: CapturedTelemetry) -> None:
    async def run() -> None:
        transport = httpx.ASGITransport(app=make_app())
        async with httpx.AsyncClient(transport=transport, base_url="http://app") as client:
            with telemetry.telemetry.tracer.start_as_current_span("outer"):
                await client.get("/chat/1", headers={"traceparent": traceparent(INCOMING_TRACE, INCOMING_SPAN)})

    asyncio.run(run())
    telemetry.assert_single_trace({"outer": {"GET /chat/{id}": {"chat gpt-4o-mini": {}}}})
    inner = telemetry.span("GET /chat/{id}")
    assert inner.kind is SpanKind.INTERNAL
    assert inner.context.trace_id != INCOMING_TRACE


# --- baggage labels -----------------------------------------------------------------
def test_allow_listed_baggage_becomes_a_bounded_label(telemetry: CapturedTelemetry) -> None:
    app = make_app(baggage_labels=["tenant", "feature"])
    with TestClient(app) as client:
        client.get("/chat/1", headers={"baggage": "tenant=acme,feature=search,user_id=u-991"})
        client.get("/chat/2", headers={"baggage": "tenant=" + "x" * 65})  # too long: ignored
        client.get("/chat/3", headers={"baggage": "tenant=%E2%80%AEevil"})  # bidi control: not printable

    assert telemetry.counter("llm.tokens.input", tenant="acme", feature="search") == 150
    assert telemetry.counter("llm.tokens.input") == 450
    for point in telemetry.points("llm.tokens.input"):
        assert "user_id" not in point.attributes
        assert point.attributes.get("tenant") in (None, "acme")
    assert telemetry.counter("llm_otel.input.unknown", source="http_headers", reason="baggage_label_invalid") == 2
    acme = [s for s in telemetry.spans() if s.name == "GET /chat/{id}" and span_attributes(s).get("tenant")]
    assert len(acme) == 1 and span_attributes(acme[0])["feature"] == "search"
    assert all(span_attributes(s)["tenant"] == "acme" for s in llm_spans(telemetry) if "tenant" in span_attributes(s))


def test_label_values_beyond_the_cardinality_limit_fold_into_other() -> None:
    with capture(cardinality_limit=3) as telemetry, TestClient(make_app(baggage_labels=["tenant"])) as client:
        for tenant in range(10):
            client.get("/sync-chat", headers={"baggage": f"tenant=t{tenant}"})
        values = {p.attributes["tenant"] for p in telemetry.points("llm.tokens.input")}
        assert values == {"t0", "t1", "t2", "_other"}
        assert telemetry.counter("llm.tokens.input") == 70


# --- streaming, excluded paths, other scopes ------------------------------------------
def test_streaming_response_keeps_context_and_rollup_until_the_body_is_done(telemetry: CapturedTelemetry) -> None:
    STREAM_SPAN_IDS.clear()
    with TestClient(make_app()) as client:
        body = client.get("/stream").text
    assert body.endswith("done\n")

    telemetry.assert_single_trace({"GET /stream": {"chat gpt-4o-mini": {}}})
    server = server_span(telemetry)
    assert set(STREAM_SPAN_IDS) == {server.context.span_id}
    calls = llm_spans(telemetry)
    assert len(calls) == 2
    assert all(c.parent is not None and c.parent.span_id == server.context.span_id for c in calls)
    attrs = span_attributes(server)
    assert attrs["llm.calls"] == 2
    assert attrs["llm.usage.input_tokens"] == 15
    assert attrs["llm.usage.output_tokens"] == 23
    assert server.end_time >= max(c.end_time for c in calls)


def test_excluded_paths_produce_no_server_span(telemetry: CapturedTelemetry) -> None:
    app = make_app(excluded_paths=["/health", "/static/*"])
    with TestClient(app) as client:
        assert client.get("/health").text == "ok"
        assert client.get("/static/app.css").text == "ok"
        client.get("/chat/1")

    assert [s.name for s in telemetry.spans() if s.kind is SpanKind.SERVER] == ["GET /chat/{id}"]
    roots = [s for s in llm_spans(telemetry) if s.parent is None]
    assert len(roots) == 2  # the excluded endpoints' LLM calls are still traced, as roots


def test_websocket_and_lifespan_pass_through(telemetry: CapturedTelemetry) -> None:
    started: list[str] = []

    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        started.append("up")
        yield

    from contextlib import asynccontextmanager

    app = Starlette(
        routes=[WebSocketRoute("/ws", websocket_echo)],
        middleware=[Middleware(LLMOtelMiddleware)],
        lifespan=asynccontextmanager(lifespan),
    )
    with TestClient(app) as client, client.websocket_connect("/ws") as ws:
        ws.send_text("ping")
        assert ws.receive_text() == "ping"
    assert started == ["up"]
    assert telemetry.spans() == []


async def test_non_http_scopes_reach_the_app_untouched(telemetry: CapturedTelemetry) -> None:
    seen: list[tuple[Any, Any, Any]] = []

    async def raw_app(scope: Any, receive: Any, send: Any) -> None:
        seen.append((scope, receive, send))

    async def receive() -> dict[str, Any]:
        return {"type": "lifespan.startup"}

    async def send(message: Any) -> None:
        return None

    middleware = LLMOtelMiddleware(raw_app)
    for scope in ({"type": "lifespan", "asgi": {"version": "3.0"}}, {"type": "websocket", "path": "/ws", "headers": []}):
        await middleware(scope, receive, send)
        assert seen[-1][0] is scope and seen[-1][1] is receive and seen[-1][2] is send
    assert telemetry.spans() == []


# --- errors -----------------------------------------------------------------------------
def test_app_exception_propagates_unchanged_and_the_span_records_it(telemetry: CapturedTelemetry) -> None:
    RAISED.clear()
    with TestClient(make_app()) as client, pytest.raises(Boom) as caught:
        client.get("/boom")

    assert caught.value is RAISED[0]
    telemetry.assert_single_trace({"GET /boom": {"chat gpt-4o-mini": {}}})
    server = server_span(telemetry)
    assert server.status.status_code is StatusCode.ERROR
    attrs = span_attributes(server)
    assert attrs["error.type"] == error_type_of(RAISED[0])
    assert attrs["llm.calls"] == 1  # the roll-up is written on the error path too
    assert any(e.name == "exception" for e in server.events)


async def test_app_exception_through_asgi_transport_is_the_same_object(telemetry: CapturedTelemetry) -> None:
    RAISED.clear()
    transport = httpx.ASGITransport(app=make_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://app") as client:
        with pytest.raises(Boom) as caught:
            await client.get("/boom")
    assert caught.value is RAISED[0]
    assert server_span(telemetry).status.status_code is StatusCode.ERROR


def test_outermost_middleware_sees_the_500_and_the_exception(telemetry: CapturedTelemetry) -> None:
    RAISED.clear()
    inner = Starlette(routes=[Route("/boom", boom)])
    with TestClient(LLMOtelMiddleware(inner), raise_server_exceptions=False) as client:
        assert client.get("/boom").status_code == 500

    server = server_span(telemetry)
    attrs = span_attributes(server)
    assert attrs["http.response.status_code"] == 500
    assert attrs["error.type"] == error_type_of(RAISED[0])
    assert server.status.status_code is StatusCode.ERROR


def test_server_error_status_without_exception_is_an_error(telemetry: CapturedTelemetry) -> None:
    async def unavailable(request: Request) -> Response:
        return PlainTextResponse("down", status_code=503)

    app = Starlette(routes=[Route("/down", unavailable)], middleware=[Middleware(LLMOtelMiddleware)])
    with TestClient(app) as client:
        client.get("/down")
    server = server_span(telemetry)
    assert span_attributes(server)["error.type"] == "503"
    assert server.status.status_code is StatusCode.ERROR


# --- concurrency -----------------------------------------------------------------------
async def test_concurrent_requests_never_mix_traces(telemetry: CapturedTelemetry) -> None:
    transport = httpx.ASGITransport(app=make_app())
    trace_ids = {n: random.getrandbits(127) + 1 for n in range(1, 51)}

    async with httpx.AsyncClient(transport=transport, base_url="http://app") as client:
        responses = await asyncio.gather(
            *(
                client.get(f"/n/{n}", headers={"traceparent": traceparent(trace_ids[n], n)})
                for n in trace_ids
            )
        )

    for n, response in zip(trace_ids, responses, strict=True):
        assert response.json() == {"trace_id": f"{trace_ids[n]:032x}"}
    traces = telemetry.traces()
    assert len(traces) == 50
    for n, expected_trace in trace_ids.items():
        spans = traces[expected_trace]
        telemetry.assert_single_trace({"GET /n/{n}": {"chat gpt-4o-mini": {}}}, spans=spans)
        [server] = [s for s in spans if s.kind is SpanKind.SERVER]
        calls = [s for s in spans if s.kind is SpanKind.CLIENT]
        assert len(spans) == 3 and len(calls) == 2
        assert server.parent is not None and server.parent.span_id == n
        assert span_attributes(server)["url.path"] == f"/n/{n}"
        assert all(c.parent is not None and c.parent.span_id == server.context.span_id for c in calls)
        assert all(span_attributes(c)["gen_ai.usage.input_tokens"] == n for c in calls)
        assert span_attributes(server)["llm.usage.input_tokens"] == 2 * n
    assert telemetry.counter("llm.tokens.input") == 2 * sum(trace_ids)


# --- hostile headers --------------------------------------------------------------------
VALID_PARENT = traceparent(INCOMING_TRACE, INCOMING_SPAN)


@pytest.mark.parametrize(
    ("headers", "reason", "continues_trace"),
    [
        ({"traceparent": VALID_PARENT + "0" * 10_000}, "traceparent_oversized", False),
        ({"traceparent": VALID_PARENT.upper()}, "traceparent_invalid", False),
        ({"traceparent": "00-" + "g" * 32 + "-b7ad6b7169203331-01"}, "traceparent_invalid", False),
        ({"traceparent": "00-" + "0" * 32 + "-b7ad6b7169203331-01"}, "traceparent_invalid", False),
        ({"traceparent": "00-0af7651916cd43dd8448eb211c80319c-" + "0" * 16 + "-01"}, "traceparent_invalid", False),
        ({"traceparent": "ff" + VALID_PARENT[2:]}, "traceparent_invalid", False),
        ({"traceparent": VALID_PARENT + "-extra"}, "traceparent_invalid", False),
        ([("traceparent", VALID_PARENT), ("traceparent", VALID_PARENT)], "traceparent_invalid", False),
        ({"traceparent": VALID_PARENT, "tracestate": "Bad Key=1"}, "tracestate_invalid", True),
        ({"traceparent": VALID_PARENT, "tracestate": ",".join(f"k{i}=v" for i in range(33))}, "tracestate_invalid", True),
        ({"traceparent": VALID_PARENT, "tracestate": "k=" + "v" * 9000}, "tracestate_oversized", True),
        ({"baggage": ",".join(f"k{i}=v" for i in range(5000))}, "baggage_oversized", False),
        ({"baggage": ",".join(f"k{i}=v" for i in range(1000))}, "baggage_too_many_members", False),
        ({"baggage": "tenant=" + "x" * 200_000}, "baggage_oversized", False),
        ({"baggage": "novalue,=x,tenant=%ff"}, "baggage_invalid_member", False),
    ],
)
def test_hostile_headers_are_ignored_and_counted(
    telemetry: CapturedTelemetry, headers: Any, reason: str, continues_trace: bool
) -> None:
    with TestClient(make_app(baggage_labels=["tenant"])) as client:
        assert client.get("/chat/1", headers=headers).status_code == 200

    server = server_span(telemetry)
    assert (server.context.trace_id == INCOMING_TRACE) is continues_trace
    assert telemetry.counter("llm_otel.input.unknown", source="http_headers", reason=reason) == 1
    assert {p.attributes.get("tenant") for p in telemetry.points("llm.tokens.input")} == {None}


def test_ignored_header_problems_are_logged_once(
    telemetry: CapturedTelemetry, caplog: pytest.LogCaptureFixture
) -> None:
    with TestClient(make_app()) as client:
        for _ in range(5):
            client.get("/chat/1", headers={"traceparent": "nonsense", "baggage": "k=" + "v" * 10_000})
    lines = [r.getMessage() for r in caplog.records if r.name == "llm_otel"]
    assert len([line for line in lines if "traceparent_invalid" in line]) == 1
    assert len([line for line in lines if "baggage_oversized" in line]) == 1
    assert not any("v" * 100 in line for line in lines)  # header values never reach the log
    assert telemetry.counter("llm_otel.input.unknown", reason="traceparent_invalid") == 5


HEADER_NAMES = [b"traceparent", b"tracestate", b"baggage", b"TraceParent", b"user-agent"]
_HEX = "0123456789abcdefABCDEF-xz "
traceparent_like = st.builds(
    lambda v, t, s, f, rest: f"{v}-{t}-{s}-{f}{rest}",
    st.text(_HEX, max_size=3),
    st.text(_HEX, min_size=30, max_size=34),
    st.text(_HEX, min_size=14, max_size=18),
    st.text(_HEX, max_size=3),
    st.sampled_from(["", "-", "-x", " ", ",00-" + "1" * 32 + "-" + "2" * 16 + "-01"]),
)
baggage_like = st.lists(
    st.tuples(st.sampled_from(["tenant", "feature", "k", "", "tenant "]) | st.text(max_size=8), st.text(max_size=80)),
    max_size=300,
).map(lambda pairs: ",".join(f"{k}={v}" for k, v in pairs))
header_values = st.one_of(
    st.binary(max_size=300),
    traceparent_like.map(lambda s: s.encode("utf-8")),
    baggage_like.map(lambda s: s.encode("utf-8")),
    st.integers(min_value=500, max_value=30_000).map(lambda size: b"tenant=" + b"a" * size),
    st.integers(min_value=10, max_value=3_000).map(lambda count: b",".join(b"tenant=t%d" % i for i in range(count))),
)
header_lists = st.lists(st.tuples(st.sampled_from(HEADER_NAMES), header_values), max_size=6)


async def call_raw(app: Any, headers: list[tuple[bytes, bytes]]) -> int:
    """Drive the app with headers no HTTP client would send."""
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET", "scheme": "http",
        "path": "/sync-chat", "raw_path": b"/sync-chat", "query_string": b"", "root_path": "", "headers": headers,
        "client": ("127.0.0.1", 50000), "server": ("testserver", 80),
    }
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(scope, receive, send)
    return int(sent[0]["status"])


def test_random_header_bytes_never_raise_and_never_create_unbounded_labels() -> None:
    limit = 5
    loop = asyncio.new_event_loop()
    try:
        with capture(cardinality_limit=limit) as telemetry:
            app = make_app(baggage_labels=["tenant", "feature"])

            requests = 0

            @settings(max_examples=examples(300), deadline=None, database=None, suppress_health_check=list(HealthCheck))
            @given(header_lists)
            def check(headers: list[tuple[bytes, bytes]]) -> None:
                nonlocal requests
                requests += 1
                # Hypothesis seeds the global PRNG per example; the SDK draws span ids from it.
                random.seed(secrets.randbits(64))
                assert loop.run_until_complete(call_raw(app, headers)) == 200

            check()
            for key in ("tenant", "feature"):
                values = {p.attributes[key] for p in telemetry.points("llm.tokens.input") if key in p.attributes}
                assert len(values - {"_other"}) <= limit
                assert all(v == "_other" or _web.is_label_value(v) for v in values)
            assert telemetry.counter("llm.tokens.input") == 7 * requests  # every request's call was recorded
            servers = {s.context.span_id: s for s in telemetry.spans() if s.kind is SpanKind.SERVER}
            calls = llm_spans(telemetry)
            # an incoming unsampled traceparent may drop both spans of a request, never only one of them
            assert len(calls) == len(servers) > 0
            assert all(c.parent is not None and c.parent.span_id in servers for c in calls)
            assert all(span_attributes(s)["llm.calls"] == 1 for s in servers.values())
    finally:
        loop.close()


# --- configuration --------------------------------------------------------------------
def test_a_later_configure_takes_effect_without_rebuilding_the_app() -> None:
    app = make_app()
    with TestClient(app) as client:
        with capture() as first:
            client.get("/chat/1")
        with capture() as second:
            client.get("/chat/2")
            assert [s.name for s in second.spans() if s.kind is SpanKind.SERVER] == ["GET /chat/{id}"]
            assert span_attributes(server_span(second))["url.path"] == "/chat/2"
        assert span_attributes(server_span(first))["url.path"] == "/chat/1"


def test_disabled_telemetry_serves_requests_untraced() -> None:
    with capture(enabled=False) as telemetry, TestClient(make_app()) as client:
        assert client.get("/chat/1").json() == {"ok": True}
        assert telemetry.spans() == []


@pytest.mark.parametrize(
    ("options", "error"),
    [
        ({"excluded_paths": "/health"}, TypeError),
        ({"excluded_paths": ["health"]}, ValueError),
        ({"baggage_labels": "tenant"}, TypeError),
        ({"baggage_labels": ["gen_ai.request.model"]}, ValueError),
        ({"baggage_labels": ["bad key"]}, ValueError),
        ({"trust_incoming_context": "no"}, TypeError),
    ],
)
def test_invalid_options_fail_at_startup(options: dict[str, Any], error: type[Exception]) -> None:
    with pytest.raises(error):
        LLMOtelMiddleware(make_app(), **options)


def test_importing_the_kit_or_the_asgi_middleware_imports_no_web_framework() -> None:
    code = (
        "import sys, llm_otel, llm_otel.integrations.asgi\n"
        "loaded = [m for m in ('starlette', 'fastapi', 'django') if m in sys.modules]\n"
        "assert not loaded, loaded\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


# --- client hang-ups and cancellation: outcomes, not errors -------------------------------
@llm_otel.traced_llm(provider="openai", model="gpt-4o-mini")
async def stream_then_stall(first_sent: asyncio.Event) -> AsyncIterator[dict[str, Any]]:
    yield stream_chunks(["a"], prompt_tokens=10, completion_tokens=3)[0]
    first_sent.set()
    await asyncio.sleep(3600)  # the provider stalls after the first chunk
    yield stream_chunks(["b"], prompt_tokens=10, completion_tokens=3)[0]


def stalled_stream_app(first_sent: asyncio.Event) -> Any:
    async def endpoint(request: Request) -> Response:
        async def body() -> AsyncIterator[str]:
            async for chunk in stream_then_stall(first_sent):
                yield json.dumps(chunk) + "\n"

        return StreamingResponse(body(), media_type="application/x-ndjson")

    return Starlette(routes=[Route("/stream", endpoint)], middleware=[Middleware(LLMOtelMiddleware)])


async def serve_once(app: Any, receive: Any, send: Any, spec_version: str) -> None:
    scope = {
        "type": "http", "asgi": {"version": "3.0", "spec_version": spec_version}, "http_version": "1.1",
        "method": "GET", "scheme": "http", "path": "/stream", "raw_path": b"/stream", "query_string": b"",
        "root_path": "", "headers": [(b"host", b"testserver")], "client": ("127.0.0.1", 50000),
        "server": ("testserver", 80),
    }
    await asyncio.wait_for(app(scope, receive, send), 20)


def assert_hang_up_is_no_error(telemetry: CapturedTelemetry, call_outcome: str) -> None:
    server = server_span(telemetry)
    attrs = span_attributes(server)
    assert attrs["llm.stream.outcome"] == "closed_early"
    assert "error.type" not in attrs and server.status.status_code is StatusCode.UNSET
    assert [e.name for e in server.events] == []
    (call,) = llm_spans(telemetry)
    call_attrs = span_attributes(call)
    assert call_attrs["llm.stream.outcome"] == call_outcome
    assert "error.type" not in call_attrs and call.status.status_code is StatusCode.UNSET
    assert telemetry.counter("llm.errors") == 0
    assert telemetry.histogram_count("gen_ai.client.operation.duration", llm__stream__outcome=call_outcome) == 1


async def test_client_disconnect_cancels_the_stream_without_an_error(telemetry: CapturedTelemetry) -> None:
    """ASGI < 2.4 (uvicorn): Starlette watches for http.disconnect and cancels the streaming task."""
    first_sent = asyncio.Event()
    requested = False

    async def receive() -> dict[str, Any]:
        nonlocal requested
        if not requested:
            requested = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await first_sent.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        pass

    await serve_once(stalled_stream_app(first_sent), receive, send, "2.3")

    assert_hang_up_is_no_error(telemetry, "cancelled")


async def test_write_to_a_gone_client_ends_the_request_without_an_error(telemetry: CapturedTelemetry) -> None:
    """ASGI 2.4: the server's send raises an OSError, which Starlette turns into ClientDisconnect."""
    from starlette.requests import ClientDisconnect

    bodies = 0

    async def receive() -> dict[str, Any]:
        await asyncio.sleep(3600)
        raise AssertionError("unreachable")

    async def send(message: dict[str, Any]) -> None:
        nonlocal bodies
        if message["type"] == "http.response.body":
            bodies += 1
            if bodies > 1:
                raise OSError("connection reset by peer")

    # The second body write fails, so the stream must reach its second chunk: do not stall.
    @llm_otel.traced_llm(provider="openai", model="gpt-4o-mini")
    async def two_chunks() -> AsyncIterator[dict[str, Any]]:
        for chunk in stream_chunks(["a", "b", "c"], prompt_tokens=10, completion_tokens=3):
            yield chunk

    async def endpoint(request: Request) -> Response:
        async def body() -> AsyncIterator[str]:
            async for chunk in two_chunks():
                yield json.dumps(chunk) + "\n"

        return StreamingResponse(body(), media_type="application/x-ndjson")

    app = Starlette(routes=[Route("/stream", endpoint)], middleware=[Middleware(LLMOtelMiddleware)])
    with pytest.raises(ClientDisconnect):
        await serve_once(app, receive, send, "2.4")
    gc.collect()  # Starlette leaves the body iterator suspended; collecting it closes the call
    await asyncio.sleep(0)  # the event loop's async-generator finalizer runs aclose()
    await asyncio.sleep(0)

    assert_hang_up_is_no_error(telemetry, "closed_early")


async def test_cancelled_request_ends_the_server_span_as_cancelled(telemetry: CapturedTelemetry) -> None:
    entered = asyncio.Event()

    async def endpoint(request: Request) -> Response:
        entered.set()
        await asyncio.sleep(3600)
        return PlainTextResponse("never")

    app = Starlette(routes=[Route("/stream", endpoint)], middleware=[Middleware(LLMOtelMiddleware)])

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        pass

    task = asyncio.create_task(serve_once(app, receive, send, "2.3"))
    await entered.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    server = server_span(telemetry)
    assert span_attributes(server)["llm.stream.outcome"] == "cancelled"
    assert server.status.status_code is StatusCode.UNSET and "error.type" not in span_attributes(server)
