"""Precision, recall and AUROC of the groundedness scorer on the generated labelled set.

    python benchmarks/groundedness_eval.py            # both modes: lexical, and lexical+embedding
    python benchmarks/groundedness_eval.py --json     # machine-readable

The positive class is "unsupported" (what the hallucination gauge should flag); an
answer counts as flagged when its score is >= 0.5 (the scorer's label threshold).
Per-category rows show which kinds of unsupported answers are caught and which are
not. Timing is per (context, answer) pair, measured in a worker thread as the
background evaluator runs it; memory is the resident-set growth from loading the
embedding model.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import threading
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from groundedness_set import triples

from llm_otel import _embedding
from llm_otel._scorers import GroundednessScorer

THRESHOLD = 0.5


def auroc(scores: list[float], positives: list[bool]) -> float:
    """Probability that a random unsupported answer scores above a random supported one (ties half)."""
    pos = [s for s, p in zip(scores, positives, strict=True) if p]
    neg = [s for s, p in zip(scores, positives, strict=True) if not p]
    wins = sum((a > b) + 0.5 * (a == b) for a in pos for b in neg)
    return wins / (len(pos) * len(neg))


def _rss_mb() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * 4096 / 2**20


def evaluate(mode: str) -> dict[str, Any]:
    items = triples()
    scorer = GroundednessScorer(mode)
    results: list[tuple[float, float]] = []

    def run() -> None:
        for item in items:
            started = time.perf_counter()
            result = scorer.score(item.answer, item.context)
            elapsed = time.perf_counter() - started
            results.append((result["score"] if result else 0.0, elapsed))

    worker = threading.Thread(target=run, name="llm-otel-evaluator")
    worker.start()
    worker.join()
    scores = [s for s, _ in results]
    times = sorted(t for _, t in results)
    unsupported = [not item.supported for item in items]
    flagged = [s >= THRESHOLD for s in scores]
    true_pos = sum(f and u for f, u in zip(flagged, unsupported, strict=True))
    by_category: dict[str, list[bool]] = defaultdict(list)
    for item, flag in zip(items, flagged, strict=True):
        by_category[item.category].append(flag)
    return {
        "mode": scorer.mode if mode != "auto" else ("lexical+embedding" if scorer.uses_embeddings else "lexical"),
        "pairs": len(items),
        "unsupported": sum(unsupported),
        "precision": true_pos / max(1, sum(flagged)),
        "recall": true_pos / max(1, sum(unsupported)),
        "auroc": auroc(scores, unsupported),
        "flagged_by_category": {c: sum(v) / len(v) for c, v in by_category.items()},
        "p50_ms": 1000 * statistics.median(times),
        "p99_ms": 1000 * times[min(len(times) - 1, int(0.99 * len(times)))],
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    reports = [evaluate("lexical")]
    model_mb = None
    if _embedding.available():
        before = _rss_mb()
        _embedding.model()
        model_mb = _rss_mb() - before
        reports.append(evaluate("embedding"))
    if args.json:
        print(json.dumps({"reports": reports, "model_rss_mb": model_mb}, indent=2))
        return
    for report in reports:
        print(f"{report['mode']}: {report['pairs']} pairs ({report['unsupported']} unsupported)  "
              f"precision {report['precision']:.3f}  recall {report['recall']:.3f}  AUROC {report['auroc']:.3f}  "
              f"per pair p50 {report['p50_ms']:.2f} ms  p99 {report['p99_ms']:.2f} ms")
        for category, rate in sorted(report["flagged_by_category"].items()):
            print(f"    flagged {rate:6.1%}  {category}")
    if model_mb is not None:
        print(f"embedding model: +{model_mb:.1f} MB resident after loading (wordllama l2_supercat, 256 dims)")


if __name__ == "__main__":
    main()
