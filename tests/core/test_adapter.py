"""The public adapter surface: curated, documented, and the one place errors are classified."""

from __future__ import annotations

import inspect
from types import ModuleType

import pytest
from opentelemetry.trace import StatusCode

from llm_otel import _names, adapter
from llm_otel.testing import CapturedTelemetry, capture


def _isort_style(name: str) -> tuple[int, str]:
    """The order ruff keeps ``__all__`` in: CONSTANTS, then Classes, then functions and modules."""
    if name.isupper():
        return 0, name
    return (1 if name[:1].isupper() else 2), name


def test_surface_is_curated_sorted_and_documented() -> None:
    assert adapter.__all__ == sorted(adapter.__all__, key=_isort_style)
    assert len(set(adapter.__all__)) == len(adapter.__all__)
    assert adapter.__doc__
    for name in adapter.__all__:
        value = getattr(adapter, name)
        if callable(value) or inspect.isclass(value):
            assert inspect.getdoc(value), f"adapter.{name} has no docstring"
    public = {name for name in vars(adapter) if not name.startswith("_") and name != "annotations"}
    imported_helpers = {"Tracer"}
    assert public - imported_helpers == set(adapter.__all__)


def test_names_are_the_contract_module() -> None:
    assert isinstance(adapter.names, ModuleType)
    assert adapter.names is _names
    assert adapter.CLOSED_EARLY == "closed_early"


class RateLimitError(Exception):
    pass


class Status429(Exception):
    status_code = 429


class Response:
    status_code = 429


class ResponseCarrier(Exception):
    response = Response()


class ParsedErrorResponse(Exception):
    """Shaped like botocore's ClientError: the parsed error response, without an HTTP status
    (an error event in the middle of an AWS event stream)."""

    def __init__(self, code: object) -> None:
        super().__init__(code)
        self.response = {"Error": {"Code": code, "Message": "x"}}


class BrokenStatus(Exception):
    @property
    def status_code(self) -> int:
        raise RuntimeError("no status")


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (RateLimitError("x"), _names.RATE_LIMIT_ERROR_TYPE),
        (Status429("x"), _names.RATE_LIMIT_ERROR_TYPE),
        (ResponseCarrier("x"), _names.RATE_LIMIT_ERROR_TYPE),
        (ParsedErrorResponse("throttlingException"), _names.RATE_LIMIT_ERROR_TYPE),
        (ParsedErrorResponse("TooManyRequestsException"), _names.RATE_LIMIT_ERROR_TYPE),
        (ParsedErrorResponse("modelStreamErrorException"), "tests.ParsedErrorResponse"),
        (ParsedErrorResponse(None), "tests.ParsedErrorResponse"),
        (ValueError("x"), "ValueError"),
        (BrokenStatus("x"), "tests.BrokenStatus"),
        ("abandoned", "abandoned"),
        (_names.RATE_LIMIT_ERROR_TYPE, _names.RATE_LIMIT_ERROR_TYPE),
        (None, _names.UNKNOWN_VALUE),
        ("", _names.UNKNOWN_VALUE),
    ],
)
def test_error_type_folds_rate_limits_in_one_place(error: BaseException | str | None, expected: str) -> None:
    assert adapter.error_type(error) == expected


class Unprintable(Exception):
    def __str__(self) -> str:
        raise RuntimeError("broken __str__")


def _span_named(captured: CapturedTelemetry, name: str, error: BaseException | str | None) -> dict[str, object]:
    span = adapter.tracer().start_span(name)
    adapter.fail_span(span, error)
    span.end()
    finished = captured.span(name)
    assert finished.status.status_code is StatusCode.ERROR
    return {"attributes": dict(finished.attributes or {}), "events": [e.name for e in finished.events],
            "description": finished.status.description}


def test_fail_span_marks_a_non_llm_span_like_the_core_marks_a_call() -> None:
    with capture() as captured:
        limited = _span_named(captured, "chain limited", RateLimitError("slow down"))
        assert limited["attributes"] == {_names.ERROR_TYPE: _names.RATE_LIMIT_ERROR_TYPE}
        assert limited["events"] == ["exception"]
        assert limited["description"] == "slow down"

        reported = _span_named(captured, "chain reported", "abandoned")
        assert reported["attributes"] == {_names.ERROR_TYPE: "abandoned"}
        assert reported["events"] == []

        unknown = _span_named(captured, "chain unknown", None)
        assert unknown["attributes"] == {_names.ERROR_TYPE: _names.UNKNOWN_VALUE}

        broken = _span_named(captured, "chain broken", Unprintable())
        assert broken["attributes"] == {_names.ERROR_TYPE: "tests.Unprintable"}
        # the kit writes the exception event itself (the SDK's would call the broken __str__)
        assert broken["events"] == ["exception"]
        assert broken["description"] == "tests.Unprintable"


def test_mark_closed_early_and_end_outcome_agree() -> None:
    with capture() as captured:
        span = adapter.tracer().start_span("chain stream")
        adapter.mark_closed_early(span)
        span.end()
        call = adapter.start_call(provider="openai", model="gpt-4o")
        call.end(outcome=adapter.CLOSED_EARLY)
        for name in ("chain stream", "chat gpt-4o"):
            attributes = captured.span(name).attributes or {}
            assert attributes[_names.LLM_STREAM_OUTCOME] == adapter.CLOSED_EARLY
            assert captured.span(name).status.status_code is StatusCode.UNSET


def test_count_unknown_input_counts_only_while_enabled() -> None:
    with capture() as captured:
        assert adapter.count_unknown_input("my_framework", "run_id_missing") is True
        assert captured.counter(_names.INPUT_ANOMALIES.name, source="my_framework", reason="run_id_missing") == 1
    with capture(enabled=False) as disabled:
        assert adapter.count_unknown_input("my_framework", "run_id_missing") is False
        assert disabled.points(_names.INPUT_ANOMALIES.name) == []


def test_call_accessors_read_what_the_setters_wrote() -> None:
    with capture(capture_content=True):
        call = adapter.start_call(provider="openai", model="gpt-4o")
        assert call.wants_text
        assert not call.usage_known and not call.has_output_text
        call.set_usage(input_tokens=3, output_tokens=2)
        call.set_response_model("gpt-4o-2024")
        call.set_response_id("lc_run-1")
        call.add_output_text("hi")
        assert call.usage_known and call.usage.input_tokens == 3
        assert (call.response_model, call.response_id, call.has_output_text) == ("gpt-4o-2024", "lc_run-1", True)
        call.discard_response_id()
        assert call.response_id is None
        call.end()
    with capture():
        assert not adapter.start_call().wants_text


def test_rollup_attributes_leave_out_a_partial_cost() -> None:
    rollup = adapter.RequestRollup()
    assert adapter.rollup_attributes(rollup) == {_names.LLM_ROLLUP_CALLS: 0}
    rollup.add(input_tokens=5, output_tokens=1, cost_usd=0.5, failed=False, unpriced=False)
    assert adapter.rollup_attributes(rollup)[_names.LLM_ROLLUP_COST_USD] == 0.5
    rollup.add(input_tokens=5, output_tokens=None, cost_usd=None, failed=True, unpriced=True)
    attributes = adapter.rollup_attributes(rollup)
    assert _names.LLM_ROLLUP_COST_USD not in attributes
    assert attributes[_names.LLM_ROLLUP_UNPRICED] == 1 and attributes[_names.LLM_ROLLUP_ERRORS] == 1


def test_interruptions_are_outcomes_on_spans_that_are_not_calls() -> None:
    import asyncio

    from llm_otel.testing import capture

    with capture() as telemetry:
        for name, error in (("cancelled", asyncio.CancelledError()), ("closed", GeneratorExit()),
                            ("interrupted", KeyboardInterrupt()), ("failed", ValueError("x"))):
            span = adapter.tracer().start_span(name)
            adapter.fail_span(span, error)
            span.end()
        by_name = {s.name: s for s in telemetry.spans()}
    assert adapter.interruption_of(asyncio.CancelledError()) == adapter.CANCELLED == "cancelled"
    assert adapter.interruption_of(GeneratorExit()) == adapter.CLOSED_EARLY
    assert adapter.interruption_of(ValueError("x")) is None
    assert adapter.interruption_of("asyncio.CancelledError") is None  # a string is an error.type already
    for name, outcome in (("cancelled", "cancelled"), ("closed", "closed_early"), ("interrupted", "cancelled")):
        attributes = dict(by_name[name].attributes or {})
        assert attributes[_names.LLM_STREAM_OUTCOME] == outcome
        assert _names.ERROR_TYPE not in attributes
        assert by_name[name].status.status_code.name == "UNSET"
    assert dict(by_name["failed"].attributes or {})[_names.ERROR_TYPE] == "ValueError"
