"""Quality scores from evaluators: a gauge for hallucination and a GenAI evaluation event.

Scores are attached to the call in progress, or to a given (possibly finished)
call; a finished call's span can no longer take events, so the event goes on a
short child span of it instead. The background evaluator runs user scorers on
a sample of calls in a worker thread with a bounded queue — never on the
request path.
"""

from __future__ import annotations

import math
import queue
import random
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from opentelemetry import trace
from opentelemetry.trace import Span, SpanKind

from llm_otel import _names as n
from llm_otel._context import current_call
from llm_otel._log import internal_error, log_once
from llm_otel._metrics import QUALITY_SCOPE
from llm_otel._runtime import current

_QUALITY_LABELS = frozenset(n.QUALITY_ATTRIBUTE_KEYS)
_NAME_MAX = 64
_EXPLANATION_MAX = 1000


def _valid_score(score: Any) -> float | None:
    if isinstance(score, bool) or not isinstance(score, (int, float)):
        return None
    value = float(score)
    return value if math.isfinite(value) and 0.0 <= value <= 1.0 else None


def _labels_of(call: Any) -> dict[str, str]:
    if call is None:
        return {}
    labels = {k: v for k, v in call.labels.items() if k in _QUALITY_LABELS}
    provider = call.provider or call.facts.provider
    model = call.request_model or call.facts.response_model
    if provider and n.GEN_AI_PROVIDER_NAME not in labels:
        labels[n.GEN_AI_PROVIDER_NAME] = provider
    if model and n.GEN_AI_REQUEST_MODEL not in labels:
        labels[n.GEN_AI_REQUEST_MODEL] = model
    return labels


def record_quality(
    score: float | Any,
    *,
    name: str = "hallucination",
    call: Any = None,
    label: str | None = None,
    explanation: str | None = None,
) -> bool:
    """Attach an evaluator's score (0..1) to the current call, or to ``call``.

    Every score goes into the ``llm.evaluation.score`` histogram by evaluation name;
    ``hallucination`` scores also set the hallucination gauge. Returns False (and
    counts the score as unknown) when the score is not a number within 0..1; never raises.
    """
    try:
        telemetry = current()
        if not telemetry.enabled:
            return False
        value = _valid_score(score)
        if value is None:
            telemetry.recorder.count_unknown_input("quality", "score_out_of_range")
            log_once(f"quality:{name}", "llm-otel: ignored %s score %r: expected a number within 0..1", name, score)
            return False
        target = call if call is not None else current_call.get()
        labels = _labels_of(target)
        labels[n.GEN_AI_EVALUATION_NAME] = str(name)[:_NAME_MAX]
        bounded = telemetry.recorder.bound(labels, QUALITY_SCOPE)
        telemetry.recorder.record_evaluation(value, bounded, is_hallucination=name == "hallucination")
        attributes: dict[str, Any] = {n.GEN_AI_EVALUATION_NAME: name, n.GEN_AI_EVALUATION_SCORE_VALUE: value}
        if label is not None:
            attributes[n.GEN_AI_EVALUATION_SCORE_LABEL] = str(label)[:_NAME_MAX]
        if explanation is not None:
            attributes[n.GEN_AI_EVALUATION_EXPLANATION] = telemetry.redactor(str(explanation)[:_EXPLANATION_MAX])
        response_id = target.facts.response_id if target is not None else None
        if response_id:
            attributes[n.GEN_AI_RESPONSE_ID] = response_id
        _emit_event(telemetry, target, name, attributes)
        return True
    except Exception as exc:
        internal_error("record_quality", exc)
        return False


def _emit_event(telemetry: Any, target: Any, name: str, attributes: Mapping[str, Any]) -> None:
    span: Span = target.span if target is not None else trace.get_current_span()
    if span.is_recording():
        span.add_event(n.GEN_AI_EVALUATION_RESULT_EVENT, attributes)
        return
    if target is None or not span.get_span_context().is_valid:
        return
    child = telemetry.tracer.start_span(
        f"evaluate {name}", context=trace.set_span_in_context(span), kind=SpanKind.INTERNAL
    )
    child.add_event(n.GEN_AI_EVALUATION_RESULT_EVENT, attributes)
    child.end()


@dataclass(frozen=True)
class EvaluationSample:
    """What a scorer sees: the finished call's facts (text only when the call captured it).

    ``context`` holds the passages retrieved for the call (its own, or its trace's), if any.
    """

    call: Any
    input_messages: Any
    output_text: str
    response_model: str | None
    request_model: str | None
    context: tuple[str, ...] | None = None


Scorer = Callable[[EvaluationSample], Any]


class BackgroundEvaluator:
    """Scores a sample of finished calls in one worker thread with a bounded queue.

    ``scorer`` (the user's) sees every sampled call; ``grounding`` only calls that
    carry retrieved context; ``judge`` (LLM-as-judge) a further sample of those;
    ``drift`` watches every sample it is shown. A sample's text is dropped once scored.
    """

    def __init__(
        self,
        scorer: Scorer | None,
        *,
        sample_rate: float,
        queue_size: int,
        name: str = "hallucination",
        grounding: Any = None,
        judge: Any = None,
        drift: Any = None,
    ) -> None:
        self.scorer = scorer
        self.sample_rate = sample_rate
        self.name = name
        self.grounding = grounding
        self.judge = judge
        self.drift = drift
        self.dropped = 0
        self._queue: queue.Queue[EvaluationSample | None] = queue.Queue(maxsize=queue_size)
        self._random = random.Random()
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()

    @property
    def scores_every_call(self) -> bool:
        """Whether calls without retrieved context are scored too (then every call keeps its text)."""
        return self.scorer is not None or (self.drift is not None and self.drift.every_call)

    @property
    def scores_context(self) -> bool:
        return self.grounding is not None or self.judge is not None

    def offer(self, call: Any) -> None:
        if threading.current_thread() is self._thread:
            return  # a call the evaluator made itself (an LLM judge's request) is never judged in turn
        if self.sample_rate <= 0.0 or (self.sample_rate < 1.0 and self._random.random() >= self.sample_rate):
            return
        context = call.retrieved_context if self.scores_context else None
        if context is None and not self.scores_every_call:
            return
        sample = EvaluationSample(
            call, call.input_messages, "".join(call.facts.output_text), call.facts.response_model,
            call.request_model, context,
        )
        try:
            self._queue.put_nowait(sample)
        except queue.Full:
            self.dropped += 1
            call.telemetry.recorder.count_dropped("evaluations", "queue_full")
            return
        if self._thread is None:
            self._start()

    def _start(self) -> None:
        with self._start_lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="llm-otel-evaluator", daemon=True)
                self._thread.start()

    def _run(self) -> None:
        while True:
            sample = self._queue.get()
            try:
                if sample is None:
                    return
                self._score(sample)
            finally:
                del sample  # the text goes with it
                self._queue.task_done()

    def _score(self, sample: EvaluationSample) -> None:
        if self.drift is not None:  # first: cheap, and never held up by a slow scorer
            try:
                self.drift.observe(sample)
            except Exception as exc:
                internal_error("drift.observe", exc)
        if self.scorer is not None:
            self._run_scorer(self.scorer, sample, self.name)
        if sample.context is not None and sample.output_text:
            if self.grounding is not None:
                self._run_grounding(sample)
            if self.judge is not None:
                self._run_scorer(self.judge, sample, self.judge.name)

    def _run_grounding(self, sample: EvaluationSample) -> None:
        try:
            result = self.grounding.score(sample.output_text, sample.context)
        except Exception as exc:
            internal_error("groundedness", exc)
            return
        if result is None:
            return
        # the detailed explanation quotes the answer: it leaves the process only with content capture on
        detailed = sample.call.telemetry.capture_content
        record_quality(
            result["score"], name="hallucination", call=sample.call, label=result["label"],
            explanation=result["explanation"] if detailed else result["summary"],
        )

    def _run_scorer(self, scorer: Scorer, sample: EvaluationSample, name: str) -> None:
        try:
            result = scorer(sample)
        except Exception as exc:
            log_once(f"scorer:{type(exc).__name__}", "llm-otel: evaluator raised %r; sample skipped", exc)
            return
        if result is None:
            return
        if isinstance(result, Mapping):
            record_quality(
                result.get("score"), name=str(result.get("name", name)), call=sample.call,
                label=result.get("label"), explanation=result.get("explanation"),
            )
        else:
            record_quality(result, name=name, call=sample.call)

    def join(self) -> None:
        """Wait until every queued sample has been scored (tests and shutdown)."""
        self._queue.join()

    def close(self, timeout_s: float = 5.0) -> None:
        thread = self._thread
        if thread is None:
            return
        try:
            self._queue.put(None, timeout=timeout_s)
        except queue.Full:
            return
        thread.join(timeout_s)
