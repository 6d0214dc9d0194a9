"""The lexical scorer keeps its measured quality on the generated labelled set (docs/quality.md)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

from groundedness_eval import auroc, evaluate
from groundedness_set import COUNTS, triples


def test_the_set_is_reproducible_and_large_enough() -> None:
    first, second = triples(), triples()
    assert first == second and len(first) == sum(COUNTS.values()) >= 300


def test_auroc_is_a_rank_statistic() -> None:
    assert auroc([0.9, 0.8, 0.1, 0.2], [True, True, False, False]) == 1.0
    assert auroc([0.1, 0.2, 0.9, 0.8], [True, True, False, False]) == 0.0
    assert auroc([0.5, 0.5], [True, False]) == 0.5


def test_lexical_scorer_catches_invented_facts_and_off_topic_answers() -> None:
    report = evaluate("lexical")
    assert report["auroc"] >= 0.85 and report["precision"] >= 0.95 and report["recall"] >= 0.75
    caught = report["flagged_by_category"]
    assert min(caught["invented_entity"], caught["invented_date"], caught["off_topic"]) >= 0.95
    assert caught["invented_number"] >= 0.85
    assert max(caught["copy"], caught["paraphrase"], caught["combined"]) <= 0.05
