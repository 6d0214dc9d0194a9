"""Built-in scorers the background evaluator runs on calls that carry retrieved context.

``GroundednessScorer`` reports the hallucination risk of an answer (0 = grounded,
1 = unsupported) from the lexical check, combined with embedding similarity
between each answer sentence and its closest context sentence when the ``eval``
extra is installed. Scores go out under the evaluation name ``hallucination``
(so the hallucination gauge moves), with the method in the label.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from llm_otel import _embedding
from llm_otel._grounding import score_lexical

GROUNDEDNESS_MODES = ("auto", "lexical", "embedding", "off")
_SENTENCE = re.compile(r"(?<=[.!?])\s+|\n+")
_MAX_SENTENCES = 64  # per side; a long answer or context is scored on its first sentences
# Cosine similarity of an answer sentence to its closest context sentence: at or above
# _SIM_GROUNDED the sentence counts as supported, at or below _SIM_UNRELATED as unrelated.
_SIM_GROUNDED = 0.75
_SIM_UNRELATED = 0.25
_EMBEDDING_WEIGHT = 0.5


def sentences(text: str) -> list[str]:
    return [s.strip() for s in _SENTENCE.split(text) if len(s.strip()) > 2][:_MAX_SENTENCES]


def embedding_risk(answer: str, passages: Sequence[str]) -> tuple[float, float] | None:
    """(risk, weakest similarity): how far the least supported answer sentence is from any context sentence."""
    answer_sentences = sentences(answer)
    context_sentences = [s for p in passages for s in sentences(p)][:_MAX_SENTENCES * 4]
    if not answer_sentences or not context_sentences:
        return None
    vectors = _embedding.embed(answer_sentences + context_sentences)
    if vectors is None:
        return None
    answers, contexts = vectors[: len(answer_sentences)], vectors[len(answer_sentences):]
    weakest = float((answers @ contexts.T).max(axis=1).min())
    risk = (_SIM_GROUNDED - weakest) / (_SIM_GROUNDED - _SIM_UNRELATED)
    return min(1.0, max(0.0, risk)), weakest


class GroundednessScorer:
    """Scores an answer against the passages retrieved for it; never raises on odd input."""

    def __init__(self, mode: str = "auto") -> None:
        if mode not in GROUNDEDNESS_MODES:
            raise ValueError(f"groundedness must be one of {', '.join(GROUNDEDNESS_MODES)}, got {mode!r}")
        self.mode = mode
        self.uses_embeddings = mode == "embedding" or (mode == "auto" and _embedding.available())

    def score(self, answer: str, passages: Sequence[str]) -> Mapping[str, Any] | None:
        if self.mode == "off" or not answer or not passages:
            return None
        lexical = score_lexical(answer, passages)
        if lexical is None:
            return None
        score, method = lexical.score, "lexical"
        explanation, summary = lexical.explanation(), lexical.summary()
        if self.uses_embeddings:
            found = embedding_risk(answer, passages)
            if found is not None:
                risk, weakest = found
                score = (1 - _EMBEDDING_WEIGHT) * lexical.score + _EMBEDDING_WEIGHT * risk
                if lexical.unsupported:  # an invented number or name stays decisive
                    score = max(score, lexical.score)
                method = "lexical+embedding"
                explanation += f"; weakest sentence similarity {weakest:.2f}"
                summary += f"; weakest sentence similarity {weakest:.2f}"
        label = "unsupported" if score >= 0.5 else "supported"
        return {"score": score, "label": label, "method": method,
                "explanation": f"{method}: {explanation}", "summary": f"{method}: {summary}"}
