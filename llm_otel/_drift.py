"""Drift per task type: recent sampled calls against a baseline window.

Each task type keeps running sums only (an embedding sum, a length sum, a refusal
count), never the texts: the first full window becomes the baseline, every later
full window is compared with it and the distances go to the ``llm.drift.score``
gauge, one series per signal. Embedding signals need the ``eval`` extra; answer
length and refusal rate do not.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from llm_otel import _embedding
from llm_otel import _names as n

_DRIFT_SCOPE = "drift"
_MAX_TASK_TYPES = 32
_REFUSAL = re.compile(
    r"\b(?:I(?:'m| am) sorry,? but|I (?:can(?:no|')t|am unable to|'m unable to|won't) (?:help|assist|answer|"
    r"provide|do that|comply)|as an AI(?: language model)?|I (?:do not|don't) have (?:enough |that )?information)",
    re.IGNORECASE,
)
_TEXT_MAX = 4000


def is_refusal(answer: str) -> bool:
    return _REFUSAL.search(answer[:_TEXT_MAX]) is not None


def prompt_text(messages: Any) -> str:
    """The user-visible text of OpenAI/Anthropic-style messages or a prompt string (bounded)."""
    if isinstance(messages, str):
        return messages[:_TEXT_MAX]
    if not isinstance(messages, Sequence):
        return ""
    parts: list[str] = []
    for message in messages:
        content = message.get("content") if isinstance(message, dict) else getattr(message, "content", None)
        if isinstance(content, str):
            parts.append(content)
        elif isinstance(content, Sequence):
            for block in content:
                text = block.get("text") if isinstance(block, dict) else getattr(block, "text", None)
                if isinstance(text, str):
                    parts.append(text)
    return "\n".join(parts)[:_TEXT_MAX]


@dataclass
class _Window:
    count: int = 0
    length_sum: float = 0.0
    refusals: int = 0
    prompt_sum: Any = None
    answer_sum: Any = None

    def add(self, answer: str, prompt_vector: Any, answer_vector: Any) -> None:
        self.count += 1
        self.length_sum += len(answer)
        self.refusals += is_refusal(answer)
        if prompt_vector is not None:
            self.prompt_sum = prompt_vector if self.prompt_sum is None else self.prompt_sum + prompt_vector
        if answer_vector is not None:
            self.answer_sum = answer_vector if self.answer_sum is None else self.answer_sum + answer_vector


def _centroid_distance(a: Any, b: Any) -> float | None:
    if a is None or b is None:
        return None
    import numpy

    norm = float(numpy.linalg.norm(a) * numpy.linalg.norm(b))
    if norm == 0.0:
        return None
    return min(1.0, max(0.0, 1.0 - float(a @ b) / norm))


def distances(baseline: _Window, recent: _Window) -> dict[str, float]:
    found: dict[str, float] = {}
    base_length = baseline.length_sum / baseline.count
    recent_length = recent.length_sum / recent.count
    found[n.DRIFT_ANSWER_LENGTH] = min(1.0, abs(recent_length - base_length) / max(base_length, 1.0))
    found[n.DRIFT_REFUSAL_RATE] = abs(recent.refusals / recent.count - baseline.refusals / baseline.count)
    for signal, a, b in ((n.DRIFT_PROMPT_EMBEDDING, baseline.prompt_sum, recent.prompt_sum),
                         (n.DRIFT_ANSWER_EMBEDDING, baseline.answer_sum, recent.answer_sum)):
        distance = _centroid_distance(a, b)
        if distance is not None:
            found[signal] = distance
    return found


class DriftTracker:
    """Runs in the evaluator thread; ``every_call`` asks the kit to keep text of every sampled call."""

    def __init__(self, *, window: int, every_call: bool = False, embeddings: bool | None = None) -> None:
        self.window = window
        self.every_call = every_call
        self.embeddings = _embedding.available() if embeddings is None else embeddings
        self._baseline: dict[str, _Window] = {}
        self._recent: dict[str, _Window] = {}
        self._lock = threading.Lock()

    def observe(self, sample: Any) -> None:
        answer = sample.output_text
        if not answer:
            return
        call = sample.call
        task = call.labels.get(n.LLM_TASK_TYPE) or n.UNKNOWN_VALUE
        recorder = call.telemetry.recorder
        task = recorder.bound({n.LLM_TASK_TYPE: task}, _DRIFT_SCOPE)[n.LLM_TASK_TYPE]
        prompt_vector = answer_vector = None
        if self.embeddings:
            prompt = prompt_text(sample.input_messages)
            vectors = _embedding.embed([prompt or " ", answer[:_TEXT_MAX]])
            if vectors is not None:
                prompt_vector = vectors[0] if prompt else None
                answer_vector = vectors[1]
        with self._lock:
            if task not in self._recent and len(self._recent) >= _MAX_TASK_TYPES:
                return
            recent = self._recent.setdefault(task, _Window())
            recent.add(answer, prompt_vector, answer_vector)
            if recent.count < self.window:
                return
            self._recent[task] = _Window()
            baseline = self._baseline.get(task)
            if baseline is None:
                self._baseline[task] = recent
                found = {signal: 0.0 for signal in distances(recent, recent)}
            else:
                found = distances(baseline, recent)
        for signal, distance in found.items():
            recorder.record_drift(distance, task, signal)
