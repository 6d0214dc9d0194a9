"""The GenAI semantic conventions on spans, metrics and events, in both modes.

Default: semantic-conventions v1.41.0. ``OTEL_SEMCONV_STABILITY_OPT_IN=gen_ai_latest_experimental``:
the newer names of the semantic-conventions-genai repository, as the official instrumentations switch.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry._logs import SeverityNumber
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor

import llm_otel
from llm_otel import _names as n
from llm_otel._call import start_call
from llm_otel._config import parse_semconv_opt_in
from llm_otel.testing import CapturedTelemetry, capture

from .conftest import chat_response


def _stream(chunks: int, pause: float = 0.0) -> Iterator[dict[str, Any]]:
    for index in range(chunks - 1):
        if pause:
            time.sleep(pause)
        yield {"id": "c", "object": "chat.completion.chunk", "model": "gpt-4o-mini",
               "choices": [{"index": 0, "delta": {"content": str(index)}, "finish_reason": None}]}
    yield {"id": "c", "object": "chat.completion.chunk", "model": "gpt-4o-mini", "choices": [],
           "usage": {"prompt_tokens": 10, "completion_tokens": 3}}


@pytest.fixture
def latest(monkeypatch: pytest.MonkeyPatch) -> Iterator[CapturedTelemetry]:
    monkeypatch.setenv("OTEL_SEMCONV_STABILITY_OPT_IN", "http, gen_ai_latest_experimental")
    with capture() as captured:
        yield captured


@pytest.mark.parametrize(("raw", "mode"), [
    ("", "default"), ("http", "default"), ("gen_ai_latest_experimental", "gen_ai_latest_experimental"),
    (" database/dup , gen_ai_latest_experimental ", "gen_ai_latest_experimental"), ("gen_ai", "default"),
    ("default", "default"),
])
def test_opt_in_is_read_as_a_list_like_the_official_instrumentations(raw: str, mode: str) -> None:
    assert parse_semconv_opt_in(raw) == mode


def test_streamed_call_uses_the_v1_41_stream_attributes_and_chunk_histograms(telemetry: CapturedTelemetry) -> None:
    @llm_otel.traced_llm(provider="openai", model="gpt-4o", prompt_name="p", prompt_version="2")
    def chat() -> Iterator[dict[str, Any]]:
        yield from _stream(4, pause=0.02)

    assert len(list(chat())) == 4
    span = telemetry.span("chat gpt-4o")
    attributes = dict(span.attributes or {})
    assert attributes[n.GEN_AI_REQUEST_STREAM] is True
    assert 0 <= attributes[n.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK] < 5
    assert "llm.streaming" not in attributes and "llm.time_to_first_chunk_s" not in attributes
    assert attributes[n.LLM_PROMPT_NAME] == "p" and n.GEN_AI_PROMPT_NAME not in attributes
    # one time-per-chunk observation for every chunk after the first (two of them after a pause)
    assert telemetry.histogram_count(n.TIME_PER_OUTPUT_CHUNK.name) == 3
    assert 2 * 0.02 <= telemetry.histogram_sum(n.TIME_PER_OUTPUT_CHUNK.name) < 3
    assert telemetry.histogram_count(n.TIME_TO_FIRST_CHUNK.name) == 1
    assert telemetry.histogram_count(n.OPERATION_DURATION.name) == 1
    for newer in n.LATEST_INSTRUMENTS:
        assert telemetry.metric(newer.name) is None, newer.name


def test_a_whole_response_is_not_a_stream(telemetry: CapturedTelemetry) -> None:
    @llm_otel.traced_llm(provider="openai")
    def chat() -> dict[str, Any]:
        return chat_response()

    chat()
    attributes = dict(telemetry.span("chat gpt-4o-mini").attributes or {})
    assert attributes[n.GEN_AI_REQUEST_STREAM] is False
    assert n.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK not in attributes
    assert telemetry.histogram_count(n.TIME_PER_OUTPUT_CHUNK.name) == 0


@pytest.mark.parametrize(("given", "address", "port"), [
    (("https://api.openai.com/v1", None), "api.openai.com", 443),
    (("http://127.0.0.1:8123/v1/", None), "127.0.0.1", 8123),
    (("llm.internal", 9000), "llm.internal", 9000),
    (("http://[::1]:99999/", None), None, None),  # a bad port: nothing recorded, nothing raised
    ((None, 443), None, None),
])
def test_server_address_and_port_reach_span_and_metrics(
    telemetry: CapturedTelemetry, given: tuple[Any, Any], address: str | None, port: int | None
) -> None:
    call = start_call(provider="openai", model="gpt-4o-mini", server_address=given[0], server_port=given[1])
    call.set_response(chat_response())
    call.end()
    attributes = dict(telemetry.span("chat gpt-4o-mini").attributes or {})
    assert attributes.get(n.SERVER_ADDRESS) == address
    assert attributes.get(n.SERVER_PORT) == port
    (point,) = telemetry.points(n.OPERATION_DURATION.name)
    assert point.attributes.get(n.SERVER_ADDRESS) == address
    assert point.attributes.get(n.SERVER_PORT) == (str(port) if port else None)


def test_set_server_after_start_reaches_the_metrics(telemetry: CapturedTelemetry) -> None:
    call = start_call(provider="anthropic", model="claude-haiku-4-5")
    call.set_server("https://api.anthropic.com")
    call.fail(TimeoutError("slow"))
    (point,) = telemetry.points(n.OPERATION_DURATION.name)
    assert point.attributes[n.SERVER_ADDRESS] == "api.anthropic.com"
    assert point.attributes[n.SERVER_PORT] == "443"


def test_failed_call_emits_the_exception_event_in_the_span_context() -> None:
    exporter = InMemoryLogRecordExporter()
    provider = LoggerProvider()
    provider.add_log_record_processor(SimpleLogRecordProcessor(exporter))
    with capture(logger_provider=provider) as telemetry:
        @llm_otel.traced_llm(provider="openai", model="gpt-4o-mini")
        def chat() -> None:
            raise ConnectionError("refused")

        with pytest.raises(ConnectionError):
            chat()
        (record,) = [r.log_record for r in exporter.get_finished_logs()]
        assert record.event_name == n.GEN_AI_CLIENT_OPERATION_EXCEPTION
        assert record.severity_number == SeverityNumber.WARN
        attributes = dict(record.attributes or {})
        assert attributes[n.EXCEPTION_TYPE] == "ConnectionError"
        assert attributes[n.EXCEPTION_MESSAGE] == "refused"
        assert "ConnectionError: refused" in attributes[n.EXCEPTION_STACKTRACE]
        assert attributes[n.ERROR_TYPE] == "ConnectionError"
        assert attributes[n.GEN_AI_PROVIDER_NAME] == "openai"
        span = telemetry.span("chat gpt-4o-mini")
        assert record.trace_id == span.context.trace_id and record.span_id == span.context.span_id

        # a callback's error string is an exception type; a success emits nothing
        call = start_call(provider="openai", model="gpt-4o-mini")
        call.fail("rate_limited")
        ok = start_call(provider="openai", model="gpt-4o-mini")
        ok.set_response(chat_response())
        ok.end()
        records = [r.log_record for r in exporter.get_finished_logs()]
        assert len(records) == 2
        assert dict(records[1].attributes or {})[n.EXCEPTION_TYPE] == "rate_limited"
    provider.shutdown()


def test_latest_mode_emits_the_newer_metric_and_span_names(latest: CapturedTelemetry) -> None:
    @llm_otel.traced_llm(provider="openai", model="gpt-4o", prompt_name="p", prompt_version="2")
    def chat() -> Iterator[dict[str, Any]]:
        yield from _stream(3)

    @llm_otel.traced_llm(provider="anthropic", model="claude-haiku-4-5")
    def cached() -> dict[str, Any]:
        return {"id": "msg", "type": "message", "role": "assistant", "model": "claude-haiku-4-5",
                "content": [{"type": "text", "text": "ok"}], "stop_reason": "end_turn",
                "usage": {"input_tokens": 5, "output_tokens": 7, "cache_read_input_tokens": 20,
                          "cache_creation_input_tokens": 30}}

    @llm_otel.traced_llm(provider="openai", model="text-embedding-3-small", operation="embeddings")
    def embed() -> dict[str, Any]:
        return {"object": "list", "model": "text-embedding-3-small", "data": [],
                "usage": {"prompt_tokens": 8, "total_tokens": 8}}

    @llm_otel.traced_llm(provider="openai", model="gpt-4o-mini")
    def broken() -> None:
        raise ValueError("bad")

    list(chat())
    cached()
    embed()
    with pytest.raises(ValueError):
        broken()

    streamed = dict(latest.span("chat gpt-4o").attributes or {})
    assert streamed[n.GEN_AI_PROMPT_NAME] == "p" and streamed[n.GEN_AI_PROMPT_VERSION] == "2"
    assert n.LLM_PROMPT_NAME not in streamed and n.LLM_PROMPT_VERSION not in streamed
    assert streamed[n.GEN_AI_REQUEST_STREAM] is True and n.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK in streamed
    anthropic = dict(latest.span("chat claude-haiku-4-5").attributes or {})
    assert anthropic[n.GEN_AI_USAGE_CACHE_WRITE_INPUT_TOKENS] == 30
    assert n.GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS not in anthropic

    # inference operations time under the inference name, others keep the operation one
    assert latest.histogram_count(n.INFERENCE_DURATION.name) == 3
    assert latest.histogram_count(n.OPERATION_DURATION.name) == 1
    assert latest.histogram_count(n.INFERENCE_TIME_TO_FIRST_CHUNK.name) == 1
    assert latest.histogram_count(n.INFERENCE_TIME_PER_OUTPUT_CHUNK.name) == 2
    for replaced in n.REPLACED_IN_LATEST:
        assert latest.metric(replaced.name) is None, replaced.name
    assert latest.histogram_sum(n.INFERENCE_OPERATION_INPUT_TOKENS.name) == 10 + 55 + 8
    assert latest.histogram_sum(n.INFERENCE_OPERATION_OUTPUT_TOKENS.name) == 3 + 7
    unknown = {n.GEN_AI_TOKEN_MODALITY: n.TOKEN_MODALITY_UNKNOWN}
    assert latest.counter(n.USAGE_INPUT_TOKENS.name, unknown) == 10 + 55 + 8
    assert latest.counter(n.USAGE_OUTPUT_TOKENS.name, unknown) == 3 + 7
    assert latest.counter(n.USAGE_CACHE_READ_INPUT_TOKENS.name, unknown) == 20
    assert latest.counter(n.USAGE_CACHE_WRITE_INPUT_TOKENS.name, unknown) == 30
    # the failed inference counts as 0 tokens, so its series exists; error.type is not a usage label
    (failed,) = [p for p in latest.points(n.USAGE_INPUT_TOKENS.name) if p.attributes.get(
        n.GEN_AI_REQUEST_MODEL) == "gpt-4o-mini" and p.attributes.get(n.GEN_AI_PROVIDER_NAME) == "openai"
        ]
    assert failed.value == 0 and n.ERROR_TYPE not in failed.attributes
    # the kit's own instruments are the same in both modes
    assert latest.counter(n.TOKENS_INPUT.name) == 10 + 55 + 8


def test_server_set_after_start_reaches_the_span(telemetry: CapturedTelemetry) -> None:
    call = start_call(provider="openai", model="gpt-4o-mini")
    call.set_server("http://10.0.0.5:8000/v1")
    call.set_response(chat_response())
    call.end()
    attributes = dict(telemetry.span("chat gpt-4o-mini").attributes or {})
    assert (attributes[n.SERVER_ADDRESS], attributes[n.SERVER_PORT]) == ("10.0.0.5", 8000)


def test_sdk_stream_names_its_server(telemetry: CapturedTelemetry) -> None:
    import openai

    from llm_otel.tools.devserver import StandInServer

    with StandInServer() as server, openai.OpenAI(base_url=server.openai_base_url, api_key="test",
                                                  max_retries=0) as client:
        @llm_otel.traced_llm(provider="openai", model="gpt-4o-mini")
        def chat() -> Any:
            return client.chat.completions.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}], stream=True,
                stream_options={"include_usage": True})

        with chat() as stream:
            chunks = list(stream)
        port = int(server.openai_base_url.split(":")[2].split("/")[0])
    assert len(chunks) > 2
    attributes = dict(telemetry.span("chat gpt-4o-mini").attributes or {})
    assert (attributes[n.SERVER_ADDRESS], attributes[n.SERVER_PORT]) == ("127.0.0.1", port)
    assert attributes[n.GEN_AI_REQUEST_STREAM] is True
    assert telemetry.histogram_count(n.TIME_PER_OUTPUT_CHUNK.name, {n.SERVER_PORT: str(port)}) == len(chunks) - 1


def test_without_a_logger_provider_no_event_is_built(telemetry: CapturedTelemetry,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    from llm_otel import _record

    built: list[object] = []
    monkeypatch.setattr(_record, "bounded_redacted", lambda *args, **kwargs: built.append(args) or "")
    call = start_call(provider="openai", model="gpt-4o-mini")
    call.fail(RuntimeError("down"))
    # the global provider is the API's no-op: nothing receives the event, so neither its message
    # nor its stack trace is formatted (the span's own exception event is written elsewhere)
    assert built == []
    assert telemetry.span("chat gpt-4o-mini").status.status_code.name == "ERROR"


def test_decorator_takes_the_clients_base_url(telemetry: CapturedTelemetry) -> None:
    @llm_otel.traced_llm(provider="openai", model="gpt-4o-mini", server_address="https://llm.example:8443/v1")
    def chat() -> dict[str, Any]:
        return chat_response()

    chat()
    chat()
    spans = [s for s in telemetry.spans() if s.name == "chat gpt-4o-mini"]
    assert len(spans) == 2
    attributes = dict(spans[1].attributes or {})
    assert (attributes[n.SERVER_ADDRESS], attributes[n.SERVER_PORT]) == ("llm.example", 8443)
    assert telemetry.histogram_count(n.OPERATION_DURATION.name, {n.SERVER_ADDRESS: "llm.example",
                                                                 n.SERVER_PORT: "8443"}) == 2


def test_latest_usage_counters_keep_counting_after_a_second_configure_on_the_same_provider() -> None:
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace import TracerProvider

    reader = InMemoryMetricReader()
    meter_provider, tracer_provider = MeterProvider(metric_readers=[reader]), TracerProvider()

    @llm_otel.traced_llm(provider="openai", model="gpt-4o-mini")
    def chat() -> dict[str, Any]:
        return chat_response(prompt_tokens=10, completion_tokens=2)

    try:
        for _ in range(2):  # the SDK keeps the first callback of a counter name: both setups must feed it
            llm_otel.configure(meter_provider=meter_provider, tracer_provider=tracer_provider, set_global=False,
                               semconv_stability_opt_in=n.SEMCONV_LATEST)
            chat()
        data = reader.get_metrics_data()
        assert data is not None
        totals = [point.value for resource in data.resource_metrics for scope in resource.scope_metrics
                  for metric in scope.metrics if metric.name == n.USAGE_INPUT_TOKENS.name
                  for point in metric.data.data_points]
        assert sum(totals) == 20
    finally:
        llm_otel.shutdown()
        meter_provider.shutdown()
        tracer_provider.shutdown()


def test_a_call_site_switches_keys_when_configure_switches_the_mode() -> None:
    @llm_otel.traced_llm(provider="openai", model="gpt-4o-mini", prompt_name="answer")
    def ask() -> dict[str, Any]:
        return chat_response()

    with capture() as default:
        ask()
        ask()  # the second call reads the site's memo of start attributes
        assert all(n.LLM_PROMPT_NAME in (span.attributes or {}) for span in default.spans())
    with capture(semconv_stability_opt_in="gen_ai_latest_experimental") as newer:
        ask()
        attributes = newer.span("chat gpt-4o-mini").attributes
        assert attributes is not None
        assert attributes[n.GEN_AI_PROMPT_NAME] == "answer" and n.LLM_PROMPT_NAME not in attributes
