"""Known LLM traffic and the ground truth it must produce in Prometheus."""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from genai_prices import Usage, calc_price

import llm_otel


class ProviderRateLimit(Exception):
    """Shaped like the SDKs' 429 errors (they carry ``status_code``)."""

    status_code = 429


class ProviderDown(Exception):
    pass


@dataclass
class Truth:
    input_tokens: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    output_tokens: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    cost_by_model: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    cost_by_task: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    calls_by_model: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    priced_calls: int = 0
    errors: int = 0
    rate_limited: int = 0
    unpriced: int = 0
    streams: int = 0
    hallucination: dict[str, float] = field(default_factory=dict)
    bad_input: int = 0
    rag_scored: dict[str, int] = field(default_factory=lambda: defaultdict(int))  # by prompt version


def _chat(model: str, usage: tuple[int, int, int]) -> dict[str, Any]:
    prompt, completion, cached = usage
    return {
        "id": "chatcmpl-e2e", "object": "chat.completion", "model": model,
        "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": "ok"}}],
        "usage": {"prompt_tokens": prompt, "completion_tokens": completion,
                  "prompt_tokens_details": {"cached_tokens": cached}},
    }


def _anthropic(model: str, base_input: int, output: int, cache_read: int) -> dict[str, Any]:
    return {
        "id": "msg_e2e", "type": "message", "role": "assistant", "model": model,
        "content": [{"type": "text", "text": "ok"}], "stop_reason": "end_turn",
        "usage": {"input_tokens": base_input, "output_tokens": output, "cache_read_input_tokens": cache_read,
                  "cache_creation_input_tokens": 0},
    }


def _cost(provider: str, model: str, total_input: int, output: int, cache_read: int) -> float:
    usage = Usage(input_tokens=total_input, output_tokens=output, cache_read_tokens=cache_read)
    return float(calc_price(usage, model, provider_id=provider).total_price)


@llm_otel.traced_llm(provider="openai", server_address="https://api.openai.com/v1")
def openai_chat(model: str, usage: tuple[int, int, int], score: float | None = None) -> dict[str, Any]:
    if score is not None:
        llm_otel.record_quality(score)
    return _chat(model, usage)


@llm_otel.traced_llm(provider="openai")
def openai_stream(model: str, usage: tuple[int, int, int]) -> Iterator[dict[str, Any]]:
    for word in ("a", "b"):
        yield {"id": "c", "object": "chat.completion.chunk", "model": model,
               "choices": [{"index": 0, "delta": {"content": word}, "finish_reason": None}]}
    yield {"id": "c", "object": "chat.completion.chunk", "model": model, "choices": [],
           "usage": {"prompt_tokens": usage[0], "completion_tokens": usage[1],
                     "prompt_tokens_details": {"cached_tokens": usage[2]}}}


@llm_otel.traced_llm(provider="anthropic")
def anthropic_message(model: str, base_input: int, output: int, cache_read: int) -> dict[str, Any]:
    return _anthropic(model, base_input, output, cache_read)


@llm_otel.traced_llm(provider="openai")
def failing(model: str, error: Exception) -> None:
    raise error


def drive(round_index: int, truth: Truth) -> None:
    """One round of every kind of call; rounds differ in token counts."""
    r = round_index
    with llm_otel.route(task_type="classify", model="gpt-4o-mini"):
        for i in range(3):
            usage = (120 + 10 * i + r, 5 + i, 0)
            openai_chat("gpt-4o-mini", usage, score=0.1 * (i + 1))
            _account(truth, "openai", "gpt-4o-mini", "classify", *usage)
        truth.hallucination["gpt-4o-mini"] = 0.1 * 3
        try:
            failing("gpt-4o-mini", ProviderRateLimit("429 Too Many Requests"))
        except ProviderRateLimit:
            truth.rate_limited += 1
            truth.errors += 1
            truth.calls_by_model["gpt-4o-mini"] += 1
    with llm_otel.route(task_type="reason", model="o3-mini"):
        usage = (2048 + r, 900, 1024)
        openai_chat("o3-mini", usage)
        _account(truth, "openai", "o3-mini", "reason", *usage)
    with llm_otel.route(task_type="default", model="gpt-4o"):
        usage = (300 + r, 40, 0)
        list(openai_stream("gpt-4o", usage))
        truth.streams += 1
        _account(truth, "openai", "gpt-4o", "default", *usage)
        try:
            failing("gpt-4o", ProviderDown("upstream 500"))
        except ProviderDown:
            truth.errors += 1
            truth.calls_by_model["gpt-4o"] += 1
    anthropic_message("claude-haiku-4-5", 200 + r, 60, 1000)
    _account(truth, "anthropic", "claude-haiku-4-5", None, 1200 + r, 60, 1000)
    openai_chat("in-house-7b", (50, 5, 0))
    truth.input_tokens["in-house-7b"] += 50
    truth.output_tokens["in-house-7b"] += 5
    truth.calls_by_model["in-house-7b"] += 1
    truth.unpriced += 1
    openai_chat("gpt-4o-mini", (-3, 7, 0))  # broken usage payload: counted as unknown, unpriced
    truth.output_tokens["gpt-4o-mini"] += 7
    truth.calls_by_model["gpt-4o-mini"] += 1
    truth.unpriced += 1
    truth.bad_input += 1


def _account(truth: Truth, provider: str, model: str, task: str | None, total_input: int, output: int,
             cache_read: int) -> None:
    cost = _cost(provider, model, total_input, output, cache_read)
    truth.input_tokens[model] += total_input
    truth.output_tokens[model] += output
    truth.cost_by_model[model] += cost
    truth.cost_by_task[task or ""] += cost
    truth.calls_by_model[model] += 1
    truth.priced_calls += 1


RAG_MODEL = "gpt-4.1-mini"
RAG_PER_VERSION = 8
RAG_DOCUMENTS = [
    "Northgate Logistics opened its Porto warehouse on May 14, 2019. The warehouse employs 320 people.",
    "Refunds are accepted within 30 days of delivery. Support is open from 8 am to 6 pm on weekdays.",
]
# v1 answers from the documents; v2 invents a number and a person
RAG_ANSWERS = {
    "v1": "The Porto warehouse opened on May 14, 2019 and employs 320 people.",
    "v2": "The Porto warehouse employs 1,450 people and is run by Daniel Brooks.",
}


def _rag_answer(version: str, usage: tuple[int, int]) -> dict[str, Any]:
    return {
        "id": f"chatcmpl-rag-{version}", "object": "chat.completion", "model": RAG_MODEL,
        "choices": [{"index": 0, "finish_reason": "stop",
                     "message": {"role": "assistant", "content": RAG_ANSWERS[version]}}],
        "usage": {"prompt_tokens": usage[0], "completion_tokens": usage[1]},
    }


@llm_otel.traced_llm(provider="openai", model=RAG_MODEL, task_type="rag", prompt_name="answer", prompt_version="v1",
                     retrieved_param="documents")
def rag_v1(question: str, documents: list[str], usage: tuple[int, int]) -> dict[str, Any]:
    return _rag_answer("v1", usage)


@llm_otel.traced_llm(provider="openai", model=RAG_MODEL, task_type="rag", prompt_name="answer", prompt_version="v2",
                     retrieved_param="documents")
def rag_v2(question: str, documents: list[str], usage: tuple[int, int] | None = None) -> dict[str, Any]:
    if usage is None:
        raise ProviderDown("upstream 500")
    return _rag_answer("v2", usage)


def drive_rag(round_index: int, truth: Truth, settle: Callable[[], None]) -> None:
    """RAG answers with retrieved context: v1 grounded in it, v2 not; one v2 call fails.

    ``settle`` waits for the evaluator after each call (its queue holds one sample in this test).
    """
    for i in range(RAG_PER_VERSION):
        usage = (400 + i + round_index, 30)
        rag_v1("How many people work in Porto?", RAG_DOCUMENTS, usage)
        settle()
        _account(truth, "openai", RAG_MODEL, "rag", usage[0], usage[1], 0)
        rag_v2("How many people work in Porto?", RAG_DOCUMENTS, usage)
        settle()
        _account(truth, "openai", RAG_MODEL, "rag", usage[0], usage[1], 0)
    truth.rag_scored["v1"] += RAG_PER_VERSION
    truth.rag_scored["v2"] += RAG_PER_VERSION
    try:
        rag_v2("How many people work in Porto?", RAG_DOCUMENTS)
    except ProviderDown:
        truth.errors += 1
        truth.calls_by_model[RAG_MODEL] += 1


class BlockingScorer:
    """An evaluator that holds its worker so the bounded queue overflows (drops are counted)."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.dropped = 0

    def __call__(self, sample: llm_otel.EvaluationSample) -> None:
        self.release.wait(30)
