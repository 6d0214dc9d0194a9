"""Multi-model router: a cheap model classifies, an expensive one reasons, a mid one does the rest.

Run it (from the repository root)::

    python -m sample_apps.router                    # 12 requests against the local stand-in API
    python -m sample_apps.router --requests 50

Every request is one trace::

    llm.route            llm.task_type=classify, llm.routed_model=gpt-4o-mini
    └── chat gpt-4o-mini gen_ai.* usage, llm.cost.usd

and ``llm.task_type`` / ``llm.routed_model`` become labels of the token and cost
metrics, so "cost by task type" in Grafana has data
(``sum by (llm_task_type) (rate(llm_cost_usd_sum[5m]))``). The mid and expensive
routes stream their answers, so time to first chunk is recorded too.
"""

from __future__ import annotations

import argparse
import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import openai
from openai.types.chat import ChatCompletionMessageParam

import llm_otel
from sample_apps import common


@dataclass(frozen=True)
class Route:
    model: str
    stream: bool


ROUTES: dict[str, Route] = {
    "classify": Route("gpt-4o-mini", stream=False),  # cheap
    "reason": Route("o3-mini", stream=True),  # expensive (reasoning tokens)
    "default": Route("gpt-4o", stream=True),  # mid
}

_CLASSIFY_WORDS = ("classify", "categorize", "label", "sentiment", "tag")
_REASON_WORDS = ("why", "prove", "plan", "step by step", "compare", "trade-off")

SAMPLE_PROMPTS: tuple[str, ...] = (
    "Classify this ticket: 'my invoice is wrong'",
    "What is a good name for a coffee shop?",
    "Why does the checkout latency double on Mondays? Think step by step.",
    "Label the sentiment of: 'the new release is great'",
    "Summarize our refund policy in two sentences.",
    "Plan a migration from a monolith to three services.",
)


def choose_task(prompt: str) -> str:
    """A keyword rule stands in for whatever decides the task in a real app."""
    lowered = prompt.lower()
    if any(word in lowered for word in _CLASSIFY_WORDS):
        return "classify"
    if any(word in lowered for word in _REASON_WORDS):
        return "reason"
    return "default"


@llm_otel.traced_llm(provider="openai")
def complete(
    client: openai.OpenAI, messages: list[ChatCompletionMessageParam], model: str, stream: bool = False
) -> Any:
    """One chat completion; a stream is traced until it is consumed."""
    if stream:
        return client.chat.completions.create(
            model=model, messages=messages, stream=True, stream_options={"include_usage": True}
        )
    return client.chat.completions.create(model=model, messages=messages)


@dataclass(frozen=True)
class Answer:
    task: str
    model: str
    text: str


class Router:
    """Sends each prompt to the model of its task, inside an ``llm_otel.route`` span."""

    def __init__(self, client: openai.OpenAI) -> None:
        self.client = client

    def handle(self, prompt: str, task: str | None = None) -> Answer:
        task = task if task in ROUTES else choose_task(prompt)
        route = ROUTES[task]
        messages: list[ChatCompletionMessageParam] = [
            {"role": "system", "content": f"You handle {task} requests. Be brief."},
            {"role": "user", "content": prompt},
        ]
        with llm_otel.route(task_type=task, model=route.model):
            response = complete(self.client, messages, model=route.model, stream=route.stream)
            if route.stream:
                text = "".join(
                    chunk.choices[0].delta.content or "" for chunk in response if chunk.choices
                )
            else:
                text = response.choices[0].message.content or ""
        return Answer(task, route.model, text)


def make_client(*, timeout: float = 30.0, max_retries: int = 2) -> openai.OpenAI:
    return openai.OpenAI(
        base_url=common.openai_base_url(), api_key=common.openai_api_key(), timeout=timeout, max_retries=max_retries
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sample_apps.router", description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=12, help="how many prompts to route (default 12)")
    args = parser.parse_args(argv)

    common.setup_telemetry("router-sample")
    router = Router(make_client())
    try:
        for prompt in itertools.islice(itertools.cycle(SAMPLE_PROMPTS), max(0, args.requests)):
            try:
                answer = router.handle(prompt)
            except openai.APIError as exc:
                print(f"{'error':<8} {type(exc).__name__}: {exc}")
                continue
            print(f"{answer.task:<8} {answer.model:<12} {answer.text[:60]}")
    finally:
        llm_otel.shutdown()  # flushes the last spans and metrics
    return 0
