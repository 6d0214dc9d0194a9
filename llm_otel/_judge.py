"""Opt-in LLM-as-judge: asks a model the user already pays for whether an answer is supported.

Runs in the background evaluator's thread on a further sample of the calls that
carry retrieved context, with the client the user passes (OpenAI-compatible
``chat.completions.create`` or Anthropic ``messages.create``). Each judge request
is itself recorded as an LLM call under task type ``evaluation``, a child of the
judged call's span, so evaluation spend shows apart from the app's own spend.
Unlike the built-in scorers this sends the answer and its context to the
provider behind ``client``: it is off unless ``configure(judge=LLMJudge(...))``.
"""

from __future__ import annotations

import json
import random
import re
from typing import Any

from opentelemetry import trace

from llm_otel._call import start_call
from llm_otel._log import log_once

JUDGE_TASK_TYPE = "evaluation"
_CONTEXT_MAX_CHARS = 6000
_ANSWER_MAX_CHARS = 2000
_JSON = re.compile(r"\{.*?\}", re.DOTALL)
_NUMBER = re.compile(r"(?<![\w.])(?:0(?:\.\d+)?|1(?:\.0+)?)(?![\w.])")

_INSTRUCTIONS = (
    "You check whether an answer is supported by the retrieved context. Reply with JSON only: "
    '{"score": <number from 0 to 1>, "reason": "<one sentence>"} where 0 means every claim in the '
    "answer is supported by the context and 1 means the answer is unsupported or contradicts it."
)


def parse_verdict(text: str) -> tuple[float, str] | None:
    """(score, reason) from the judge's reply: a JSON object, else the first number within 0..1."""
    match = _JSON.search(text)
    if match:
        try:
            verdict = json.loads(match.group(0))
            score = float(verdict["score"])
            if 0.0 <= score <= 1.0:
                return score, str(verdict.get("reason", ""))
        except (ValueError, KeyError, TypeError):
            pass
    number = _NUMBER.search(text)
    return (float(number.group(0)), "") if number else None


class LLMJudge:
    """``configure(judge=LLMJudge(client, model="gpt-4o-mini", sample_rate=0.05))``."""

    def __init__(self, client: Any, *, model: str, sample_rate: float = 0.1, name: str = "hallucination_judge",
                 provider: str | None = None, max_tokens: int = 200) -> None:
        if not 0.0 <= sample_rate <= 1.0:
            raise ValueError(f"sample_rate must be within 0..1, got {sample_rate!r}")
        self.client = client
        self.model = model
        self.sample_rate = sample_rate
        self.name = name
        self.max_tokens = max_tokens
        self._anthropic = not hasattr(client, "chat") and hasattr(client, "messages")
        self.provider = provider or ("anthropic" if self._anthropic else "openai")
        self._random = random.Random()

    def _messages(self, answer: str, passages: tuple[str, ...]) -> list[dict[str, str]]:
        context = "\n\n".join(passages)[:_CONTEXT_MAX_CHARS]
        return [{"role": "user", "content": f"{_INSTRUCTIONS}\n\nContext:\n{context}\n\nAnswer:\n"
                                            f"{answer[:_ANSWER_MAX_CHARS]}"}]

    def _ask(self, messages: list[dict[str, str]]) -> tuple[Any, str]:
        if self._anthropic:
            response = self.client.messages.create(model=self.model, max_tokens=self.max_tokens, messages=messages)
            text = "".join(getattr(block, "text", "") for block in response.content)
        else:
            response = self.client.chat.completions.create(
                model=self.model, messages=messages, max_tokens=self.max_tokens, temperature=0
            )
            text = response.choices[0].message.content or ""
        return response, text

    def __call__(self, sample: Any) -> dict[str, Any] | None:
        if sample.context is None or not sample.output_text:
            return None
        if self.sample_rate < 1.0 and self._random.random() >= self.sample_rate:
            return None
        call = start_call(
            provider=self.provider, model=self.model, task_type=JUDGE_TASK_TYPE,
            parent=trace.set_span_in_context(sample.call.span),
        )
        try:
            response, text = self._ask(self._messages(sample.output_text, sample.context))
        except Exception as exc:
            call.fail(exc)
            log_once(f"judge:{type(exc).__name__}", "llm-otel: judge request failed (%r); sample not judged", exc)
            return None
        call.set_response(response)
        call.end()
        verdict = parse_verdict(text)
        if verdict is None:
            log_once("judge:unparsed", "llm-otel: judge reply had no score within 0..1; sample not judged")
            return None
        score, reason = verdict
        detailed = sample.call.telemetry.capture_content  # the reason may quote the answer
        return {
            "name": self.name, "score": score, "label": "unsupported" if score >= 0.5 else "supported",
            "explanation": f"{self.model}: {reason}" if detailed and reason else f"judged by {self.model}",
        }
