"""The opt-in LLM judge: real OpenAI and Anthropic SDKs against the stand-in server."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import anthropic
import openai
import pytest

import llm_otel
from llm_otel._judge import parse_verdict
from llm_otel.testing import capture
from llm_otel.tools.devserver import StandInServer

CONTEXT = ["The Porto warehouse employs 320 people.", "Refunds are accepted within 30 days."]
# the stand-in replies with the marker's text, as the judge model would
VERDICT = '[[standin:reply={"score": 0.9, "reason": "the head count 1,450 is not in the context"}]]'


@pytest.fixture
def server() -> Iterator[StandInServer]:
    with StandInServer() as stand_in:
        yield stand_in


def _answered(text: str) -> None:
    with llm_otel.llm_call(provider="openai", model="gpt-4o-mini", task_type="rag", retrieved=CONTEXT) as call:
        call.set_response({
            "id": "chatcmpl-app", "object": "chat.completion", "model": "gpt-4o-mini",
            "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": text}}],
            "usage": {"prompt_tokens": 40, "completion_tokens": 12},
        })


def _judge_results(telemetry: Any) -> list[Any]:
    return [e for s in telemetry.spans() for e in s.events if e.name == "gen_ai.evaluation.result"
            and e.attributes["gen_ai.evaluation.name"] == "hallucination_judge"]


@pytest.mark.parametrize("sdk", ["openai", "anthropic"])
def test_judge_scores_with_the_users_client_and_its_spend_is_its_own_task_type(
    server: StandInServer, sdk: str
) -> None:
    client: Any
    if sdk == "openai":
        client = openai.OpenAI(base_url=server.openai_base_url, api_key="test", max_retries=0)
        model = "gpt-4.1-nano"
    else:
        client = anthropic.Anthropic(base_url=server.anthropic_base_url, api_key="test", max_retries=0)
        model = "claude-haiku-4-5"
    judge = llm_otel.LLMJudge(client, model=model, sample_rate=1.0)
    with client, capture(judge=judge, evaluation_sample_rate=1.0) as telemetry:
        _answered(f"The Porto warehouse employs 1,450 people. {VERDICT}")
        telemetry.telemetry.evaluator.join()
        results = _judge_results(telemetry)
        assert [r.attributes["gen_ai.evaluation.score.value"] for r in results] == [0.9]
        assert results[0].attributes["gen_ai.response.id"] == "chatcmpl-app"
        assert "1,450" not in results[0].attributes["gen_ai.evaluation.explanation"]  # no content capture
        # the judge's request is an LLM call of its own, under task type "evaluation", below the judged call
        judge_span = telemetry.span(f"chat {model}")
        app_span = telemetry.span("chat gpt-4o-mini")
        assert judge_span.attributes["llm.task_type"] == "evaluation"  # type: ignore[index]
        assert telemetry.histogram_count("gen_ai.client.operation.duration", llm__task_type="evaluation") == 1
        assert telemetry.histogram_count("gen_ai.client.operation.duration", llm__task_type="rag") == 1
        assert telemetry.counter("llm.tokens.input", llm__task_type="evaluation") > 0
        assert judge_span.parent.span_id == app_span.context.span_id  # type: ignore[union-attr]
        # and it was not judged in turn
        assert telemetry.histogram_count("llm.evaluation.score", gen_ai__evaluation__name="hallucination_judge") == 1


def test_judge_failure_is_recorded_as_a_failed_evaluation_call_and_never_raises() -> None:
    client = openai.OpenAI(base_url="http://127.0.0.1:9/v1", api_key="test", max_retries=0, timeout=2)
    with client, capture(judge=llm_otel.LLMJudge(client, model="gpt-4o-mini", sample_rate=1.0),
                         evaluation_sample_rate=1.0) as telemetry:
        _answered("The Porto warehouse employs 320 people.")
        telemetry.telemetry.evaluator.join()
        assert _judge_results(telemetry) == []
        assert telemetry.counter("llm.errors", llm__task_type="evaluation") == 1


def test_judge_sample_rate_zero_asks_nothing() -> None:
    class Untouchable:
        chat = None

    with capture(judge=llm_otel.LLMJudge(Untouchable(), model="m", sample_rate=0.0),
                 evaluation_sample_rate=1.0) as telemetry:
        _answered("The Porto warehouse employs 320 people.")
        telemetry.telemetry.evaluator.join()
        assert telemetry.histogram_count("gen_ai.client.operation.duration", llm__task_type="evaluation") == 0


@pytest.mark.parametrize(("reply", "expected"), [
    ('{"score": 0.2, "reason": "ok"}', (0.2, "ok")),
    ('Verdict: {"score": 1, "reason": "made up"} done', (1.0, "made up")),
    ("score 0.7", (0.7, "")),
    ('{"score": 7}', None),
    ("no idea", None),
])
def test_verdict_parsing(reply: str, expected: Any) -> None:
    assert parse_verdict(reply) == expected
