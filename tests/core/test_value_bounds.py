"""One bad value costs one field of one call: never a batch, never the pipeline.

Each case goes through the kit's own export wrappers into exporters that encode with the
real OTLP encoders (tests/core/_otlp.py) and refuse what the Collector refuses (requests
over 4 MiB); after it, a good call must still be exported.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest

import llm_otel
from llm_otel._bounds import INT64_MAX, LABEL_MAX_CHARS
from tests.core._otlp import LIMIT, Pipeline, kit_pipeline
from tests.core.conftest import chat_response


@pytest.fixture
def pipeline() -> Iterator[Pipeline]:
    with kit_pipeline() as found:
        yield found


def _ask(response: Any, model: str = "gpt-4o-mini") -> Any:
    @llm_otel.traced_llm(provider="openai", model=model)
    def ask() -> Any:
        return response

    return ask()


def _good_call_exported(pipeline: Pipeline) -> None:
    """A clean call after the bad one reaches both exporters."""
    pipeline.spans.requests.clear()
    pipeline.metrics.requests.clear()
    _ask(chat_response(model="gpt-4o-mini", prompt_tokens=7, completion_tokens=3), model="after-the-bad-one")
    pipeline.flush()
    assert "chat after-the-bad-one" in pipeline.spans.span_names()
    tokens = pipeline.metrics.points("llm.tokens.input")
    assert any(attrs.get("gen_ai.request.model") == "after-the-bad-one" and value == 7 for attrs, value in tokens)


@pytest.mark.parametrize("huge", [2**63, 2**64 + 5, 1e19, "9" * 20, 2**53])
def test_an_out_of_range_token_count_costs_that_field_only(pipeline: Pipeline, huge: Any) -> None:
    _ask(chat_response(prompt_tokens=huge, completion_tokens=20, response_id="resp-1"))
    pipeline.flush()
    assert pipeline.metrics.failures == 0 and pipeline.spans.failures == 0
    (span,) = pipeline.spans.spans()
    attributes = {a.key: a.value for a in span.attributes}
    assert "gen_ai.usage.input_tokens" not in attributes
    assert attributes["gen_ai.usage.output_tokens"].int_value == 20
    assert attributes["gen_ai.response.id"].string_value == "resp-1"
    assert "input_tokens:out_of_range" in [v.string_value for v in attributes["llm.usage.unknown_reason"].array_value.values]
    unknown = pipeline.metrics.points("llm.input.unknown") or pipeline.metrics.points("llm_otel.input.unknown")
    assert any(attrs.get("reason") == "input_tokens:out_of_range" for attrs, _ in unknown) or unknown == []
    _good_call_exported(pipeline)


def test_token_totals_never_exceed_int64(pipeline: Pipeline) -> None:
    for _ in range(1100):  # 1100 * (2**53 - 1) > 2**63
        _ask(chat_response(prompt_tokens=2**53 - 1, completion_tokens=1))
    pipeline.flush()
    assert pipeline.metrics.failures == 0
    totals = [value for _, value in pipeline.metrics.points("llm.tokens.input")]
    assert totals and max(totals) <= INT64_MAX
    _good_call_exported(pipeline)


def test_a_superscript_digit_keeps_the_rest_of_the_response(pipeline: Pipeline) -> None:
    _ask(chat_response(prompt_tokens="²", completion_tokens=20, model="gpt-4o-2024-08-06", response_id="r-2"))
    pipeline.flush()
    (span,) = pipeline.spans.spans()
    attributes = {a.key: a.value for a in span.attributes}
    assert attributes["gen_ai.usage.output_tokens"].int_value == 20
    assert attributes["gen_ai.response.id"].string_value == "r-2"
    assert attributes["gen_ai.response.model"].string_value == "gpt-4o-2024-08-06"
    reasons = [v.string_value for v in attributes["llm.usage.unknown_reason"].array_value.values]
    assert reasons == ["input_tokens:not_a_number"]  # not usage:missing


def test_a_lone_surrogate_costs_no_innocent_span(pipeline: Pipeline) -> None:
    for i in range(50):
        _ask(chat_response(), model="gpt-\ud800" if i == 25 else f"innocent-{i}")
    pipeline.flush()
    names = pipeline.spans.span_names()
    assert len(names) == 50 and pipeline.spans.failures == 0
    assert "chat gpt-\ufffd" in names
    assert pipeline.metrics.failures == 0
    _good_call_exported(pipeline)


def test_a_one_megabyte_model_name_is_capped_everywhere(pipeline: Pipeline) -> None:
    model = "m" * 1_000_000
    for _ in range(5):
        _ask(chat_response(model=model), model=model)
    pipeline.flush()
    assert pipeline.metrics.failures == 0 and pipeline.spans.failures == 0
    assert all(len(payload) < LIMIT for payload in pipeline.metrics.requests + pipeline.spans.requests)
    assert sum(map(len, pipeline.metrics.requests)) < 200_000
    (name,) = set(pipeline.spans.span_names())
    assert len(name) <= 2 * LABEL_MAX_CHARS + 32
    _good_call_exported(pipeline)


def test_a_hundred_distinct_long_model_names_stay_distinct_and_small(pipeline: Pipeline) -> None:
    models = [f"{i:03d}" + "x" * 10_000 for i in range(99)]  # under the cardinality cap of 100
    for model in models:
        _ask(chat_response(model="same"), model=model)
    pipeline.flush()
    assert pipeline.metrics.failures == 0
    assert sum(map(len, pipeline.metrics.requests)) < LIMIT
    labels = {attrs["gen_ai.request.model"] for attrs, _ in pipeline.metrics.points("llm.tokens.input")}
    assert len(labels) == 99 and all(len(label) <= LABEL_MAX_CHARS for label in labels)
    _good_call_exported(pipeline)


def test_control_characters_and_long_labels_are_cleaned(pipeline: Pipeline) -> None:
    with llm_otel.labels({"tenant": "a\nb\x00c", "k" * 500: "v"}), llm_otel.route(task_type="t\x1b[31m"):
        _ask(chat_response())
    pipeline.flush()
    (attrs, _), *_ = pipeline.metrics.points("llm.tokens.input")
    assert attrs["tenant"] == "a\ufffdb\ufffdc"
    assert attrs["llm.task_type"] == "t\ufffd[31m"
    assert all(len(key) <= LABEL_MAX_CHARS for key in attrs)


def test_an_unencodable_span_from_another_instrumentation_costs_only_itself(pipeline: Pipeline) -> None:
    tracer = pipeline.telemetry.tracer_provider.get_tracer("someone-else")
    for i in range(20):
        with tracer.start_as_current_span("other \ud800" if i == 7 else f"other {i}") as span:
            span.set_attribute("n", i)
    pipeline.flush()
    assert len(pipeline.spans.span_names()) == 19
    assert pipeline.dropped("spans", "encode_failed") == 1
    assert pipeline.dropped("spans", "export_failed") == 0


def test_an_unencodable_metric_point_costs_only_itself(pipeline: Pipeline, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="llm_otel")
    meter = pipeline.telemetry.meter_provider.get_meter("someone-else")
    counter = meter.create_counter("foreign.total")
    counter.add(2**63, {"k": "v"})  # the SDK takes it; the OTLP encoder refuses it
    _ask(chat_response(prompt_tokens=5, completion_tokens=1), model="kept")
    pipeline.flush()
    assert pipeline.metrics.failures == 0
    assert any(attrs.get("gen_ai.request.model") == "kept" for attrs, _ in pipeline.metrics.points("llm.tokens.input"))
    assert pipeline.dropped("metrics", "encode_failed") == 1
    assert "metrics could not be delivered (encode_failed)" in caplog.text
    # the drop is counted, and the counter itself gets through on the next export
    pipeline.metrics.requests.clear()
    pipeline.flush()
    dropped = pipeline.metrics.points("llm_otel.telemetry.dropped")
    assert any(attrs == {"signal": "metrics", "reason": "encode_failed"} and value >= 1 for attrs, value in dropped)


def test_large_spans_are_sent_in_requests_under_the_limit(pipeline: Pipeline) -> None:
    tracer = pipeline.telemetry.tracer_provider.get_tracer("someone-else")
    for i in range(60):
        with tracer.start_as_current_span(f"big {i}") as span:
            span.set_attribute("blob", "x" * 200_000)  # 60 * 200 KB = 12 MB in one batch
    with tracer.start_as_current_span("huge") as span:
        span.set_attribute("blob", "y" * 5_000_000)  # alone over the limit: dropped and counted
    pipeline.flush()
    assert pipeline.spans.failures == 0
    assert len(pipeline.spans.requests) >= 3 and all(len(r) < LIMIT for r in pipeline.spans.requests)
    assert len(pipeline.spans.span_names()) == 60
    assert pipeline.dropped("spans", "too_large") == 1


def test_doctor_in_process_reports_metric_export_failures(pipeline: Pipeline) -> None:
    from llm_otel.tools._doctor import check_export

    assert check_export().status in ("OK", "SKIP")
    meter = pipeline.telemetry.meter_provider.get_meter("someone-else")
    meter.create_counter("foreign.total").add(2**63)
    pipeline.flush()
    check = check_export()
    assert check.status == "WARN" and "metrics" in check.detail and "encode_failed" in check.detail
