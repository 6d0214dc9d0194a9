"""Cardinality attack: unbounded values pushed into every label path stay under the cap.

A million distinct values go straight into the guard for every metric attribute
key (and a baggage label key) at once; then a few thousand go through the real
entry points — ``prompt_name``, ``task_type`` via ``route``, model names from
arguments and responses, error types, and baggage labels through the ASGI
middleware — and the exported metric points are checked: no instrument has more
than ``limit`` distinct values (plus ``_other``) for any attribute, calls are
still all counted, and memory does not grow with the number of distinct values.
"""

from __future__ import annotations

import asyncio
import gc
import time
import tracemalloc
from collections import defaultdict
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

import llm_otel
from llm_otel import _names as n
from llm_otel._cardinality import CardinalityGuard

LIMIT = 40
PER_PATH = 1_500


@pytest.mark.slow
def test_a_million_values_on_every_key_stay_under_the_cap() -> None:
    guard = CardinalityGuard(100)
    keys = [*n.METRIC_ATTRIBUTE_KEYS, "tenant"]
    started = time.perf_counter()
    for i in range(1_000_000):
        value = str(i)
        bounded = guard.bound_in_place("call", dict.fromkeys(keys, value))
    elapsed = time.perf_counter() - started
    assert set(bounded.values()) == {n.OVERFLOW_VALUE}
    for key in keys:
        assert guard.admitted("call", key) == 100
        assert guard.overflowed[("call", key)] == 1_000_000 - 100
    assert elapsed < 120  # generous: a guard that slowed down per value would take far longer


@pytest.fixture
def reader() -> Iterator[InMemoryMetricReader]:
    metrics = InMemoryMetricReader()
    llm_otel.configure(
        service_name="faults-cardinality", set_global=False, traces_exporter="none", metrics_exporter="none",
        metric_readers=[metrics], cardinality_limit=LIMIT,
    )
    try:
        yield metrics
    finally:
        llm_otel.shutdown()


def _response(model: str) -> dict[str, Any]:
    return {"object": "chat.completion", "id": "c", "model": model,
            "choices": [{"index": 0, "finish_reason": "stop", "message": {"content": "ok"}}],
            "usage": {"prompt_tokens": 3, "completion_tokens": 2}}


def _prompt_names(start: int, count: int) -> None:
    for i in range(start, start + count):
        traced = llm_otel.traced_llm(provider="openai", model="gpt-4o-mini", prompt_name=f"prompt-{i}")
        traced(lambda: _response("gpt-4o-mini"))()


def _task_types(start: int, count: int) -> None:
    ask = llm_otel.traced_llm(provider="openai")(lambda model: _response(model))
    for i in range(start, start + count):
        with llm_otel.route(task_type=f"task-{i}", model="gpt-4o-mini"):
            ask("gpt-4o-mini")


def _models(start: int, count: int) -> None:
    ask = llm_otel.traced_llm(provider="openai")(lambda model: _response(f"{model}-2024"))
    for i in range(start, start + count):
        ask(f"attacker-model-{i}")


def _error_types(start: int, count: int) -> None:
    @llm_otel.traced_llm(provider="openai", model="gpt-4o-mini")
    def fail(error: Exception) -> None:
        raise error

    for i in range(start, start + count):
        error = type(f"Error{i}", (Exception,), {})()
        with pytest.raises(Exception) as raised:
            fail(error)
        assert raised.value is error


def _baggage(start: int, count: int) -> None:
    from llm_otel.integrations.asgi import LLMOtelMiddleware

    ask = llm_otel.traced_llm(provider="openai", model="gpt-4o-mini")(lambda: _response("gpt-4o-mini"))

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        ask()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    wrapped = LLMOtelMiddleware(app, baggage_labels=["tenant"])

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        return None

    async def drive() -> None:
        for i in range(start, start + count):
            scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
                     "scheme": "http", "path": "/chat", "raw_path": b"/chat", "query_string": b"", "root_path": "",
                     "headers": [(b"host", b"app"), (b"baggage", f"tenant=tenant-{i}".encode())],
                     "client": ("127.0.0.1", 5000), "server": ("app", 80)}
            await wrapped(scope, receive, send)

    asyncio.run(drive())


PATHS = {
    n.LLM_PROMPT_NAME: _prompt_names,
    n.LLM_TASK_TYPE: _task_types,
    n.GEN_AI_REQUEST_MODEL: _models,
    n.ERROR_TYPE: _error_types,
    "tenant": _baggage,
}


def _distinct_values(reader: InMemoryMetricReader) -> tuple[dict[tuple[str, str], set[str]], dict[str, int]]:
    values: dict[tuple[str, str], set[str]] = defaultdict(set)
    points: dict[str, int] = defaultdict(int)
    data = reader.get_metrics_data()
    assert data is not None
    for resource_metrics in data.resource_metrics:
        for scope_metrics in resource_metrics.scope_metrics:
            for metric in scope_metrics.metrics:
                for point in metric.data.data_points:  # type: ignore[union-attr]
                    points[metric.name] += 1
                    for key, value in (point.attributes or {}).items():
                        values[(metric.name, key)].add(str(value))
    return values, points


@pytest.mark.slow
def test_unbounded_values_through_every_entry_point_stay_under_the_cap(reader: InMemoryMetricReader) -> None:
    half = PER_PATH // 2
    for drive in PATHS.values():
        drive(0, half)
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for drive in PATHS.values():
            drive(half, PER_PATH - half)
        gc.collect()
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    values, points = _distinct_values(reader)
    for (instrument, key), seen in values.items():
        assert len(seen - {n.OVERFLOW_VALUE}) <= LIMIT, (instrument, key, len(seen))
    for key in PATHS:
        assert any(n.OVERFLOW_VALUE in seen for (_, k), seen in values.items() if k == key), f"{key} never folded"
    # every call is still counted, under _other where its label was folded
    calls = sum(p.value for p in _points(reader, n.TOKENS_INPUT.name))  # type: ignore[attr-defined]
    assert calls == 3 * PER_PATH * 4  # error calls report no usage; 3 input tokens per other call
    # the second half added as many distinct values again, but no memory per value
    assert grown < 512 * 1024, f"{grown} bytes retained by {PER_PATH // 2 * len(PATHS)} more distinct values"
    assert max(points.values()) <= 6 * (LIMIT + 1) * 2, points


def _points(reader: InMemoryMetricReader, name: str) -> list[Any]:
    data = reader.get_metrics_data()
    assert data is not None
    return [p for rm in data.resource_metrics for sm in rm.scope_metrics for m in sm.metrics if m.name == name
            for p in m.data.data_points]  # type: ignore[union-attr]
