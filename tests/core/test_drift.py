"""Drift per task type: a baseline window, then each later window's distance from it."""

from __future__ import annotations

from typing import Any

import llm_otel
from llm_otel import _embedding
from llm_otel._drift import is_refusal, prompt_text
from llm_otel.testing import capture


def _call(answer: str, task_type: str = "support") -> None:
    with llm_otel.route(task_type=task_type), llm_otel.llm_call(provider="openai", model="gpt-4o-mini") as call:
        call.set_input_messages([{"role": "user", "content": "How do I reset my password?"}])
        call.set_response({
            "id": "c1", "object": "chat.completion", "model": "gpt-4o-mini",
            "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": answer}}],
            "usage": {"prompt_tokens": 10, "completion_tokens": 5},
        })


def test_answer_length_and_refusal_jumps_move_the_drift_gauge() -> None:
    with capture(evaluation_sample_rate=1.0, drift="all", drift_window=4, groundedness="off") as telemetry:
        for _ in range(4):
            _call("Open settings, choose Security and press Reset password.")
        telemetry.telemetry.evaluator.join()
        baseline = telemetry.gauge("llm.drift.score", llm__task_type="support", llm__drift__signal="answer_length")
        assert baseline == 0.0
        for _ in range(4):
            _call("I'm sorry, but I can't help with that.")
        telemetry.telemetry.evaluator.join()
        length = telemetry.gauge("llm.drift.score", llm__task_type="support", llm__drift__signal="answer_length")
        refusals = telemetry.gauge("llm.drift.score", llm__task_type="support", llm__drift__signal="refusal_rate")
        assert length is not None and length > 0.3
        assert refusals == 1.0
        if _embedding.available():  # the eval extra: the answers' centroid moved, the prompts' did not
            answers = telemetry.gauge("llm.drift.score", llm__drift__signal="answer_embedding")
            prompts = telemetry.gauge("llm.drift.score", llm__drift__signal="prompt_embedding")
            assert answers is not None and prompts is not None and answers > 0.1 > prompts


def test_drift_sampled_mode_keeps_no_text_for_calls_without_context() -> None:
    with capture(evaluation_sample_rate=1.0, drift="sampled", groundedness="off") as telemetry:
        assert telemetry.telemetry.evaluator is None or not telemetry.telemetry.wants_text


def test_refusal_and_prompt_text_helpers_accept_odd_shapes() -> None:
    assert is_refusal("As an AI language model, I cannot do that.")
    assert not is_refusal("The office is in Berlin.")
    messages: Any = [{"role": "user", "content": [{"type": "text", "text": "hi"}]}, {"role": "user"}, 3]
    assert prompt_text(messages) == "hi"
    assert prompt_text(None) == ""
