"""``instrument(tracer_provider=..., meter_provider=...)``: an instrumentor given providers records
its calls there, as every OpenTelemetry instrumentor does (docs/instrumentation.md, "Providers")."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import openai
import pytest
from langchain_openai import ChatOpenAI
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import llm_otel
from llm_otel._log import forget_logged_causes
from llm_otel.integrations.langchain import LLMOtelCallbackHandler
from llm_otel.integrations.openai import OpenAIInstrumentor
from llm_otel.testing import CapturedTelemetry, capture
from llm_otel.tools.devserver import StandInServer

MESSAGES = [{"role": "user", "content": "Say hello"}]


class Providers:
    """An application's own SDK providers, with in-memory exporters."""

    def __init__(self) -> None:
        self.exporter = InMemorySpanExporter()
        self.tracer_provider = TracerProvider()
        self.tracer_provider.add_span_processor(SimpleSpanProcessor(self.exporter))
        self.reader = InMemoryMetricReader()
        self.meter_provider = MeterProvider(metric_readers=[self.reader])

    def spans(self) -> list[Any]:
        return list(self.exporter.get_finished_spans())

    def sum_of(self, name: str) -> float:
        data = self.reader.get_metrics_data()
        total = 0.0
        for resource in data.resource_metrics if data is not None else ():
            for scope in resource.scope_metrics:
                for metric in scope.metrics:
                    if metric.name == name:
                        total += sum(getattr(p, "value", None) or getattr(p, "count", 0) for p in metric.data.data_points)
        return total

    def shutdown(self) -> None:
        self.tracer_provider.shutdown()
        self.meter_provider.shutdown()


@pytest.fixture
def own() -> Iterator[Providers]:
    providers = Providers()
    yield providers
    providers.shutdown()


@pytest.fixture
def client(server: StandInServer) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=server.openai_base_url, api_key="test", max_retries=0) as c:
        yield c


def ask(client: openai.OpenAI) -> Any:
    return client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)


def assert_recorded_in(own: Providers, usage: Any, calls: int = 1) -> None:
    spans = [s for s in own.spans() if s.attributes and "gen_ai.usage.input_tokens" in s.attributes]
    assert len(spans) == calls
    assert spans[0].instrumentation_scope.name == "llm_otel"
    assert own.sum_of("llm.tokens.input") == usage.prompt_tokens * calls
    assert own.sum_of("llm.tokens.output") == usage.completion_tokens * calls
    assert own.sum_of("gen_ai.client.operation.duration") == calls  # the histogram's count


def assert_nothing_in(telemetry: CapturedTelemetry) -> None:
    assert telemetry.spans() == []
    assert telemetry.counter("llm.tokens.input") == 0
    assert telemetry.histogram_count("gen_ai.client.operation.duration") == 0


@pytest.mark.parametrize("how", ["instrumentor", "llm_otel.instrument"])
def test_calls_land_in_the_providers_given_not_in_the_kits(
    client: openai.OpenAI, telemetry: CapturedTelemetry, own: Providers, how: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    given = {"tracer_provider": own.tracer_provider, "meter_provider": own.meter_provider}
    if how == "instrumentor":
        OpenAIInstrumentor().instrument(**given)
    else:
        llm_otel.instrument("openai", **given)
    try:
        with caplog.at_level(logging.INFO, logger="llm_otel"):
            response = ask(client)
            ask(client)
    finally:
        llm_otel.uninstrument()
    assert_recorded_in(own, response.usage, calls=2)
    assert_nothing_in(telemetry)
    # the kit was configured on other providers: said once, naming both
    said = [r for r in caplog.records if "records its calls through the providers given" in r.getMessage()]
    assert len(said) == 1 and said[0].levelno == logging.WARNING
    assert f"{id(own.tracer_provider):#x}" in said[0].getMessage()
    assert f"{id(telemetry.telemetry.tracer_provider):#x}" in said[0].getMessage()


def test_without_providers_calls_go_to_the_kits(client: openai.OpenAI, telemetry: CapturedTelemetry,
                                                own: Providers) -> None:
    llm_otel.instrument("openai")
    try:
        response = ask(client)
    finally:
        llm_otel.uninstrument()
    assert telemetry.counter("llm.tokens.input") == response.usage.prompt_tokens
    assert own.spans() == []


def test_a_tracer_provider_alone_leaves_metrics_with_the_kit(
    client: openai.OpenAI, telemetry: CapturedTelemetry, own: Providers
) -> None:
    OpenAIInstrumentor().instrument(tracer_provider=own.tracer_provider)
    try:
        response = ask(client)
    finally:
        OpenAIInstrumentor().uninstrument()
    assert len(own.spans()) == 1 and telemetry.spans() == []
    assert telemetry.counter("llm.tokens.input") == response.usage.prompt_tokens
    assert own.sum_of("llm.tokens.input") == 0


def test_the_providers_given_outlast_a_later_configure(client: openai.OpenAI, own: Providers) -> None:
    forget_logged_causes()
    with capture():
        OpenAIInstrumentor().instrument(tracer_provider=own.tracer_provider, meter_provider=own.meter_provider)
        try:
            ask(client)
            with capture(capture_content=True) as second:  # configure() again, with new settings
                response = ask(client)
                assert_nothing_in(second)
        finally:
            OpenAIInstrumentor().uninstrument()
    assert_recorded_in(own, response.usage, calls=2)
    # the later setup's settings apply to the instrumentor's calls too
    assert "gen_ai.input.messages" in own.spans()[-1].attributes


def test_providers_given_before_configure(client: openai.OpenAI, own: Providers,
                                          caplog: pytest.LogCaptureFixture) -> None:
    """No configure() yet: the rest of the kit uses the global providers; said once, as information."""
    forget_logged_causes()
    llm_otel.shutdown()  # nothing configured: the kit binds to the globals on first use
    OpenAIInstrumentor().instrument(tracer_provider=own.tracer_provider, meter_provider=own.meter_provider)
    try:
        with caplog.at_level(logging.INFO, logger="llm_otel"):
            response = ask(client)
    finally:
        OpenAIInstrumentor().uninstrument()
        llm_otel.shutdown()
    assert_recorded_in(own, response.usage)
    said = [r for r in caplog.records if "records its calls through the providers given" in r.getMessage()]
    assert len(said) == 1 and said[0].levelno == logging.INFO


def test_a_framework_handler_parents_the_call_across_providers(
    server: StandInServer, telemetry: CapturedTelemetry, own: Providers
) -> None:
    """One record per API call still holds: the handler's span (the kit's providers) defers to the
    wire call recorded in the instrumentor's providers, which is its child in the same trace."""
    llm_otel.instrument("openai", tracer_provider=own.tracer_provider, meter_provider=own.meter_provider)
    try:
        model = ChatOpenAI(model="gpt-4o-mini", base_url=server.openai_base_url, api_key="test", max_retries=0,
                           stream_usage=True)
        chunks = list(model.stream("Say hello", config={"callbacks": [LLMOtelCallbackHandler()]}))
    finally:
        llm_otel.uninstrument()
    usage = sum(chunks[1:], chunks[0]).usage_metadata
    assert usage is not None
    outer, = telemetry.spans()
    assert outer.attributes.get("llm.record.deferred") is True
    assert telemetry.counter("llm.tokens.input") == 0
    inner, = own.spans()
    assert inner.parent is not None and inner.parent.span_id == outer.context.span_id
    assert inner.attributes["gen_ai.usage.input_tokens"] == usage["input_tokens"]
    assert own.sum_of("llm.tokens.output") == usage["output_tokens"]


def test_other_providers_for_an_instrumented_sdk_are_not_silently_dropped(
    telemetry: CapturedTelemetry, own: Providers, caplog: pytest.LogCaptureFixture
) -> None:
    llm_otel.instrument("openai")
    try:
        with caplog.at_level(logging.WARNING, logger="llm_otel"):
            llm_otel.instrument("openai", tracer_provider=own.tracer_provider)
    finally:
        llm_otel.uninstrument()
    assert any("already instrumented" in r.getMessage() and "uninstrument('openai')" in r.getMessage()
               for r in caplog.records)


def test_a_provider_of_the_wrong_kind_is_refused() -> None:
    with pytest.raises(TypeError, match="tracer_provider"):
        OpenAIInstrumentor().instrument(tracer_provider="http://collector:4317")
    assert not OpenAIInstrumentor().is_instrumented_by_opentelemetry
