"""The FastAPI RAG sample (ASGI middleware + LangChain handler) against the stand-in API."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI
from opentelemetry.trace import SpanKind

from llm_otel import _names as n
from llm_otel.testing import CapturedTelemetry
from llm_otel.tools.devserver import StandInServer
from sample_apps.fastapi_rag.app import create_app

from .conftest import assert_tokens_match, ground_truth

SHAPE = {
    "POST /ask": {
        "invoke_workflow rag": {
            "retrieval KeywordRetriever": {},
            "chat gpt-4o-mini": {},
            "execute_tool order_status": {},
        }
    }
}


@pytest.fixture
async def app(stand_in: StandInServer) -> AsyncIterator[FastAPI]:
    application = create_app(max_retries=0)
    yield application
    await application.state.chat_model.aclose()


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver") as http:
        yield http


async def test_ask_is_one_trace_with_retrieval_tool_call_and_two_model_calls(
    client: httpx.AsyncClient, stand_in: StandInServer, telemetry: CapturedTelemetry
) -> None:
    response = await client.post("/ask", json={"question": "Where is my order A-1042?"})

    assert response.status_code == 200
    body = response.json()
    assert body["answer"]
    assert "order-tracking" in body["sources"]

    telemetry.assert_single_trace(SHAPE)
    chats = [s for s in telemetry.spans() if s.name == "chat gpt-4o-mini"]
    assert len(chats) == 2 and all(s.kind is SpanKind.CLIENT for s in chats)
    finish = [tuple(dict(s.attributes or {})[n.GEN_AI_RESPONSE_FINISH_REASONS]) for s in chats]
    assert sorted(finish) == [("stop",), ("tool_calls",)]
    tool = dict(telemetry.span("execute_tool order_status").attributes or {})
    assert tool["gen_ai.tool.name"] == "order_status"

    truth = ground_truth(stand_in.requests)
    assert truth.calls == 2
    assert_tokens_match(telemetry, truth)
    assert telemetry.histogram_sum("llm.cost.usd", gen_ai__request__model="gpt-4o-mini") > 0

    server = dict(telemetry.span("POST /ask").attributes or {})
    assert server[n.LLM_ROLLUP_CALLS] == 2
    assert server[n.LLM_ROLLUP_INPUT_TOKENS] == truth.input_tokens
    assert server[n.LLM_ROLLUP_OUTPUT_TOKENS] == truth.output_tokens
    assert server[n.LLM_ROLLUP_COST_USD] > 0


async def test_concurrent_requests_stay_separate_traces(
    client: httpx.AsyncClient, stand_in: StandInServer, telemetry: CapturedTelemetry
) -> None:
    import asyncio

    questions = ["How long does shipping take?", "What is the refund policy?", "Where is order A-2001?"]
    responses = await asyncio.gather(*(client.post("/ask", json={"question": q}) for q in questions))

    assert [r.status_code for r in responses] == [200, 200, 200]
    traces = telemetry.traces()
    assert len(traces) == 3
    for spans in traces.values():
        telemetry.assert_single_trace(SHAPE, spans=spans)
    assert_tokens_match(telemetry, ground_truth(stand_in.requests))


async def test_health_is_not_traced(client: httpx.AsyncClient, telemetry: CapturedTelemetry) -> None:
    response = await client.get("/health")

    assert response.status_code == 200
    assert telemetry.spans() == []
