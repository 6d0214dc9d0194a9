"""Sampled-out calls: metrics stay exact while a metrics pipeline exists; without one the call is left alone."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.metrics import NoOpMeterProvider
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ALWAYS_ON, ParentBased, Sampler, TraceIdRatioBased
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

import llm_otel
from llm_otel._context import current_call

from .conftest import chat_response


@pytest.fixture
def sampled_out() -> Iterator[TracerProvider]:
    provider = TracerProvider(sampler=ALWAYS_OFF)
    yield provider
    llm_otel.shutdown()
    provider.shutdown()


def _ask() -> dict[str, object]:
    return chat_response()


def test_metrics_stay_exact_when_spans_are_sampled_out(sampled_out: TracerProvider) -> None:
    reader = InMemoryMetricReader()
    llm_otel.configure(tracer_provider=sampled_out,
                       meter_provider=MeterProvider(metric_readers=[reader]), set_global=False)
    ask = llm_otel.traced_llm(provider="openai", model="gpt-4o")(_ask)
    for _ in range(3):
        ask()
    data = reader.get_metrics_data()
    assert data is not None
    totals = {
        metric.name: sum(point.value for point in metric.data.data_points)  # type: ignore[union-attr]
        for resource in data.resource_metrics for scope in resource.scope_metrics for metric in scope.metrics
        if metric.name == "llm.tokens.input"
    }
    assert totals == {"llm.tokens.input": 3 * 100}


def test_sampled_out_without_metrics_leaves_the_call_alone(sampled_out: TracerProvider) -> None:
    telemetry = llm_otel.configure(tracer_provider=sampled_out, metrics_exporter="none",
                                   set_global=False)
    assert isinstance(telemetry.meter_provider, NoOpMeterProvider)
    seen = []

    @llm_otel.traced_llm(provider="openai", model="gpt-4o")
    def ask() -> dict[str, object]:
        seen.append(current_call.get())
        return chat_response()

    assert ask()["id"] == "chatcmpl-1"
    assert seen == [None]  # no call object was made for it


def test_sampled_out_call_inside_a_request_still_rolls_up(sampled_out: TracerProvider) -> None:
    llm_otel.configure(tracer_provider=sampled_out, metrics_exporter="none",
                       set_global=False)
    ask = llm_otel.traced_llm(provider="openai", model="gpt-4o")(_ask)
    rollup = llm_otel.RequestRollup()
    token = llm_otel.request_rollup.set(rollup)
    try:
        ask()
    finally:
        llm_otel.request_rollup.reset(token)
    assert rollup.calls == 1


def test_no_metric_reader_means_no_global_meter_provider_is_claimed() -> None:
    script = (
        "import llm_otel\n"
        "from opentelemetry import metrics\n"
        "from opentelemetry.metrics import NoOpMeterProvider\n"
        "from opentelemetry.metrics._internal import _ProxyMeterProvider\n"
        "t = llm_otel.configure(traces_exporter='none', metrics_exporter='none')\n"
        "assert isinstance(t.meter_provider, NoOpMeterProvider)\n"
        "assert isinstance(metrics.get_meter_provider(), _ProxyMeterProvider)\n"
        "llm_otel.shutdown()\n"
        "print('ok')\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert result.stdout.strip() == "ok", result.stderr


class CountingTracer:
    """Passes every start_span on to the real tracer and counts it."""

    def __init__(self, tracer: Any) -> None:
        self.tracer = tracer
        self.started = 0

    def start_span(self, *args: Any, **kwargs: Any) -> Any:
        self.started += 1
        return self.tracer.start_span(*args, **kwargs)


def _parent(sampled: bool, remote: bool = False) -> SpanContext:
    return SpanContext(trace_id=0x1234, span_id=0x5678, is_remote=remote,
                       trace_flags=TraceFlags(TraceFlags.SAMPLED if sampled else TraceFlags.DEFAULT))


@pytest.mark.parametrize(
    ("sampler", "parent", "started", "traced"),
    [
        (ALWAYS_OFF, None, 0, False),  # forecast: never asks the SDK
        (ParentBased(ALWAYS_ON), _parent(sampled=False), 0, False),  # the SDK default under an unsampled parent
        (ParentBased(ALWAYS_ON), _parent(sampled=False, remote=True), 0, False),
        (ParentBased(ALWAYS_ON), _parent(sampled=True), 1, True),
        (ParentBased(ALWAYS_ON), None, 1, True),
        (TraceIdRatioBased(0.0), None, 1, False),  # no forecast: the SDK decides, the call is still skipped
        (ParentBased(ALWAYS_ON, local_parent_not_sampled=ALWAYS_ON), _parent(sampled=False), 1, True),
    ],
)
def test_forecast_matches_the_sampler(
    sampler: Sampler, parent: SpanContext | None, started: int, traced: bool
) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider(sampler=sampler)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    telemetry = llm_otel.configure(tracer_provider=provider, metrics_exporter="none", set_global=False)
    counting = CountingTracer(telemetry.tracer)
    telemetry.tracer = counting  # type: ignore[assignment]
    ask = llm_otel.traced_llm(provider="openai", model="gpt-4o")(_ask)
    try:
        if parent is None:
            ask()
        else:
            with trace.use_span(NonRecordingSpan(parent)):
                ask()
    finally:
        llm_otel.shutdown()
        provider.shutdown()
    assert counting.started == started
    assert [span.name for span in exporter.get_finished_spans()] == (["chat gpt-4o"] if traced else [])


def test_an_evaluator_still_sees_sampled_out_calls_without_metrics(sampled_out: TracerProvider) -> None:
    scored = []
    telemetry = llm_otel.configure(tracer_provider=sampled_out, metrics_exporter="none", set_global=False,
                                   evaluator=lambda sample: scored.append(sample) or 0.0,
                                   evaluation_sample_rate=1.0)
    ask = llm_otel.traced_llm(provider="openai", model="gpt-4o")(_ask)
    ask()
    telemetry.evaluator.join()
    assert len(scored) == 1
