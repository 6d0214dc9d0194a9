"""The multi-model router sample against the stand-in API, with in-memory telemetry."""

from __future__ import annotations

import openai
import pytest
from opentelemetry.trace import SpanKind

from llm_otel import _names as n
from llm_otel.testing import CapturedTelemetry
from llm_otel.tools.devserver import StandInServer
from sample_apps.router import ROUTES, Router, choose_task, make_client
from sample_apps.router import main as router_main

from .conftest import assert_tokens_match, ground_truth


@pytest.fixture
def router(stand_in: StandInServer) -> Router:
    return Router(make_client(max_retries=0))


@pytest.mark.parametrize(
    ("prompt", "task"),
    [
        ("Classify this ticket: 'refund please'", "classify"),
        ("Why is p99 latency high? Think step by step.", "reason"),
        ("Write a haiku about dashboards.", "default"),
    ],
)
def test_each_task_is_one_trace_routed_to_its_model(
    router: Router, stand_in: StandInServer, telemetry: CapturedTelemetry, prompt: str, task: str
) -> None:
    assert choose_task(prompt) == task
    model = ROUTES[task].model

    answer = router.handle(prompt)

    assert (answer.task, answer.model) == (task, model)
    assert answer.text
    telemetry.assert_single_trace({n.ROUTE_SPAN_NAME: {f"chat {model}": {}}})
    route_span = telemetry.span(n.ROUTE_SPAN_NAME)
    assert dict(route_span.attributes or {})[n.LLM_TASK_TYPE] == task
    call = telemetry.span(f"chat {model}")
    assert call.kind is SpanKind.CLIENT
    attributes = dict(call.attributes or {})
    assert attributes[n.GEN_AI_PROVIDER_NAME] == "openai"
    assert attributes[n.LLM_ROUTED_MODEL] == model
    assert attributes.get(n.GEN_AI_REQUEST_STREAM, False) == ROUTES[task].stream

    assert_tokens_match(telemetry, ground_truth(stand_in.requests))
    labels = {"llm.task_type": task, "gen_ai.request.model": model}
    assert telemetry.histogram_sum("llm.cost.usd", labels) > 0
    if ROUTES[task].stream:
        assert telemetry.histogram_count("gen_ai.client.operation.time_to_first_chunk", labels) == 1


def test_cost_by_task_type_has_a_series_per_route(
    router: Router, stand_in: StandInServer, telemetry: CapturedTelemetry
) -> None:
    for task in ROUTES:
        router.handle("Tell me something.", task=task)

    assert_tokens_match(telemetry, ground_truth(stand_in.requests))
    costs = {task: telemetry.histogram_sum("llm.cost.usd", {"llm.task_type": task}) for task in ROUTES}
    assert all(cost > 0 for cost in costs.values()), costs
    # The expensive route costs more per call than the cheap one.
    assert costs["reason"] > costs["classify"]


def test_provider_errors_reach_the_caller_and_are_counted(
    router: Router, stand_in: StandInServer, telemetry: CapturedTelemetry
) -> None:
    with pytest.raises(openai.RateLimitError):
        router.handle("Classify this [[standin:fault=429]]")

    assert telemetry.counter("llm.rate_limited", {"llm.task_type": "classify"}) == 1
    assert telemetry.counter("llm.errors", {"llm.task_type": "classify"}) == 1
    assert all(n.ERROR_TYPE in dict(p.attributes or {}) for p in telemetry.points("llm.errors"))
    telemetry.assert_single_trace({n.ROUTE_SPAN_NAME: {"chat gpt-4o-mini": {}}})


def test_main_runs_end_to_end(
    stand_in: StandInServer, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # The command itself, with exporters off (no collector in this test).
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "none")
    monkeypatch.setenv("OTEL_METRICS_EXPORTER", "none")

    assert router_main(["--requests", "3"]) == 0

    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 3
    assert stand_in.request_count == 3
