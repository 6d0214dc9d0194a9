"""Built-in groundedness scoring: context reaches the background evaluator, scores reach metrics and events."""

from __future__ import annotations

import logging
import threading
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import llm_otel
from llm_otel import _embedding
from llm_otel._grounding import claims_of, score_lexical
from llm_otel._scorers import GroundednessScorer
from llm_otel.testing import CapturedTelemetry, capture
from tests.stack._support import in_ci

CONTEXT = [
    "Acme Corp opened its Berlin office on March 3, 2021. The office employs 240 people.",
    "The Berlin office is led by Maria Keller. Revenue grew 12% to $4.5 million in 2023.",
]
SUPPORTED = "The Berlin office opened on March 3, 2021 and employs 240 people."
INVENTED = "The Berlin office employs 310 people and is led by John Smith."
OFF_TOPIC = "Bananas are rich in potassium and grow best in tropical climates."


def _answer(text: str, response_id: str = "chatcmpl-g1") -> dict[str, Any]:
    return {
        "id": response_id, "object": "chat.completion", "model": "gpt-4o-mini",
        "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": text}}],
        "usage": {"prompt_tokens": 50, "completion_tokens": 12},
    }


def _ask(answer: str, *, prompt_version: str = "v1", **call_options: Any) -> None:
    with llm_otel.llm_call(provider="openai", model="gpt-4o-mini", prompt_version=prompt_version,
                           task_type="rag", **call_options) as call:
        call.set_response(_answer(answer))


@pytest.fixture
def scored() -> Any:
    with capture(evaluation_sample_rate=1.0, groundedness="lexical") as captured:
        yield captured


def _events(telemetry: CapturedTelemetry) -> list[Any]:
    return [e for s in telemetry.spans() for e in s.events if e.name == "gen_ai.evaluation.result"]


def test_lexical_check_names_invented_numbers_and_people() -> None:
    result = score_lexical(INVENTED, CONTEXT)
    assert result is not None and result.score >= 0.5
    assert set(result.unsupported) == {"310", "John Smith"}
    supported = score_lexical(SUPPORTED, CONTEXT)
    assert supported is not None and supported.score < 0.2 and supported.unsupported == ()
    assert ("date", "March 3") in claims_of(SUPPORTED)


def test_supported_and_invented_answers_reach_gauge_histogram_and_event(scored: CapturedTelemetry) -> None:
    _ask(SUPPORTED, retrieved=CONTEXT)
    scored.telemetry.evaluator.join()
    assert scored.gauge("llm.hallucination.score", llm__prompt__version="v1") < 0.2  # type: ignore[operator]
    _ask(INVENTED, prompt_version="v2", retrieved=CONTEXT)
    scored.telemetry.evaluator.join()
    assert scored.gauge("llm.hallucination.score", llm__prompt__version="v2") >= 0.5  # type: ignore[operator]
    assert scored.histogram_count("llm.evaluation.score", gen_ai__evaluation__name="hallucination",
                                  llm__prompt__version="v2", llm__task_type="rag") == 1
    events = _events(scored)
    assert [e.attributes["gen_ai.evaluation.score.label"] for e in events] == ["supported", "unsupported"]
    assert all(e.attributes["gen_ai.response.id"] == "chatcmpl-g1" for e in events)
    # content capture is off: the explanation counts claims but quotes none of the answer
    explanation = events[1].attributes["gen_ai.evaluation.explanation"]
    assert "2 of 3 checkable claims" in explanation and "John Smith" not in explanation


def test_explanation_quotes_claims_only_with_content_capture_and_is_redacted() -> None:
    with capture(evaluation_sample_rate=1.0, groundedness="lexical", capture_content=True) as telemetry:
        _ask("Write to Maria at maria.keller@example.com; the office has 999 desks.", retrieved=CONTEXT)
        telemetry.telemetry.evaluator.join()
        explanation = _events(telemetry)[0].attributes["gen_ai.evaluation.explanation"]
    assert "'999'" in explanation
    assert "maria.keller@example.com" not in explanation


def test_decorator_reads_passages_from_the_named_argument(scored: CapturedTelemetry) -> None:
    @llm_otel.traced_llm(provider="openai", model="gpt-4o-mini", retrieved_param="documents")
    def answer(question: str, documents: list[str]) -> dict[str, Any]:
        return _answer(OFF_TOPIC)

    answer("where is the office?", CONTEXT)
    scored.telemetry.evaluator.join()
    assert scored.gauge("llm.hallucination.score") >= 0.5  # type: ignore[operator]


def test_retrieval_step_in_the_same_trace_supplies_the_context(scored: CapturedTelemetry) -> None:
    tracer = scored.telemetry.tracer
    with tracer.start_as_current_span("rag request"):
        with tracer.start_as_current_span("retrieve"):
            assert llm_otel.add_retrieved_context([{"page_content": c} for c in CONTEXT]) == 2
        _ask(INVENTED)
    with tracer.start_as_current_span("other request"):
        _ask(INVENTED)  # another trace: no context, nothing to score
    scored.telemetry.evaluator.join()
    assert scored.histogram_count("llm.evaluation.score") == 1


def test_calls_without_context_keep_no_text_and_are_not_scored() -> None:
    with capture(evaluation_sample_rate=1.0, groundedness="lexical") as telemetry:
        assert telemetry.telemetry.wants_text is False
        with llm_otel.llm_call(provider="openai", model="gpt-4o-mini") as call:
            call.set_response(_answer(INVENTED))
        assert call.facts.output_text == []
        assert call.wants_text is False
        telemetry.telemetry.evaluator.join()
        assert telemetry.histogram_count("llm.evaluation.score") == 0


def test_groundedness_off_with_no_other_scorer_builds_no_evaluator() -> None:
    with capture(groundedness="off", drift="off") as telemetry:
        assert telemetry.telemetry.evaluator is None


def test_user_evaluator_sees_the_context_and_runs_beside_the_built_in_one() -> None:
    seen: list[Any] = []

    def mine(sample: llm_otel.EvaluationSample) -> dict[str, Any]:
        seen.append(sample.context)
        return {"name": "relevance", "score": 0.9}

    with capture(evaluator=mine, evaluation_sample_rate=1.0, groundedness="lexical") as telemetry:
        _ask(SUPPORTED, retrieved=CONTEXT)
        telemetry.telemetry.evaluator.join()
        assert seen == [tuple(CONTEXT)]
        assert telemetry.histogram_count("llm.evaluation.score", gen_ai__evaluation__name="relevance") == 1
        assert telemetry.histogram_count("llm.evaluation.score", gen_ai__evaluation__name="hallucination") == 1


def test_a_failing_scorer_is_logged_once_and_never_reaches_the_app(caplog: pytest.LogCaptureFixture) -> None:
    class Broken(GroundednessScorer):
        def score(self, answer: str, passages: Any) -> Any:
            raise RuntimeError("scorer bug")

    with capture(evaluation_sample_rate=1.0, groundedness="lexical") as telemetry:
        telemetry.telemetry.evaluator.grounding = Broken("lexical")
        _ask(SUPPORTED, retrieved=CONTEXT)
        _ask(SUPPORTED, retrieved=CONTEXT)
        telemetry.telemetry.evaluator.join()
    assert sum("groundedness" in r.getMessage() for r in caplog.records) == 1


def test_bad_settings_are_rejected_with_the_variable_name(monkeypatch: pytest.MonkeyPatch) -> None:
    from llm_otel import _config

    with pytest.raises(ValueError, match="LLM_OTEL_GROUNDEDNESS"):
        _config.resolve({}, {"LLM_OTEL_GROUNDEDNESS": "magic"})


# the test install has the eval extra: in CI its absence is a failure, elsewhere a skip
@pytest.mark.skipif(not _embedding.available() and not in_ci(),
                    reason="needs the eval extra (wordllama)")
def test_embedding_model_loads_offline_from_the_wheel_without_touching_root_logging() -> None:
    root = logging.getLogger()
    before = list(root.handlers)
    scorer = GroundednessScorer("embedding")
    result = scorer.score(OFF_TOPIC, CONTEXT)
    assert result is not None and result["method"] == "lexical+embedding" and result["score"] >= 0.5
    supported = scorer.score("Maria Keller leads the office in Berlin.", CONTEXT)
    assert supported is not None and supported["score"] < 0.5
    assert root.handlers == before
    assert threading.current_thread().name == "MainThread"


@settings(max_examples=200, deadline=None)
@given(answer=st.text(max_size=300), passages=st.lists(st.text(max_size=300), max_size=4))
def test_lexical_scorer_takes_any_text(answer: str, passages: list[str]) -> None:
    result = GroundednessScorer("lexical").score(answer, passages)
    assert result is None or 0.0 <= result["score"] <= 1.0


@settings(max_examples=100, deadline=None)
@given(documents=st.one_of(st.none(), st.integers(), st.text(), st.lists(st.one_of(
    st.text(), st.integers(), st.none(), st.dictionaries(st.sampled_from(["text", "page_content", "x"]), st.text())))))
def test_odd_documents_are_skipped_never_raised(documents: Any) -> None:
    from llm_otel._retrieved import MAX_PASSAGES, passages_of

    passages = passages_of(documents)
    assert len(passages) <= MAX_PASSAGES and all(isinstance(p, str) and p.strip() for p in passages)


def test_a_generator_of_documents_is_left_for_the_app_to_consume(scored: CapturedTelemetry) -> None:
    @llm_otel.traced_llm(provider="openai", model="gpt-4o-mini", retrieved_param="documents")
    def answer(documents: Any) -> dict[str, Any]:
        assert list(documents) == CONTEXT  # the app still reads every document
        return _answer(SUPPORTED)

    answer(iter(CONTEXT))
    answer(tuple(CONTEXT))
    scored.telemetry.evaluator.join()
    assert scored.histogram_count("llm.evaluation.score") == 1  # only the tuple could be read
