"""Workers forked after configure() start from zero, never hang, and export their own calls.

A parent application (``tests/faults/_fork_probe.py``, its own interpreter) records
from three threads while it forks workers, with ``os.fork`` (a pre-fork server such as
gunicorn --preload) and with multiprocessing's fork start method. Everything goes over
OTLP/gRPC to a receiver in this test, which keeps every request. Each worker must:

* finish (a lock held by a recording thread at the instant of the fork would hang it);
* export under its own ``service.instance.id`` its own calls only: its token total is
  exactly its own tokens, never the parent's pre-fork sums again, and its spans are its
  own calls' spans (new export threads, a new connection);
* leave the parent's totals alone: the parent's instance exports exactly what it recorded.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.faults._fork_probe import CHILD_TOKENS
from tests.faults._outage import RecordingGrpcReceiver, eventually

ROOT = Path(__file__).resolve().parents[2]
CHILDREN = 6
CHILD_CALLS = 10

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("how", ["os.fork", "multiprocessing"])
def test_forked_workers_start_from_zero_and_export_their_own_calls(how: str) -> None:
    with RecordingGrpcReceiver() as receiver:
        plan = {"endpoint": receiver.endpoint, "children": CHILDREN, "how": how, "child_calls": CHILD_CALLS}
        env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "LLM_OTEL_"))}
        env["PYTHONPATH"] = str(ROOT)
        result = subprocess.run([sys.executable, "-m", "tests.faults._fork_probe", json.dumps(plan)], cwd=ROOT,
                                env=env, capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, result.stderr
        report = json.loads(result.stdout.strip().splitlines()[-1])
        assert report["codes"] == [0] * CHILDREN, f"workers hung (-999) or failed: {report['codes']}"

        def by_instance() -> dict[str, int]:
            sums = receiver.latest_sums("llm.tokens.input")
            return sums if len(sums) == CHILDREN + 1 else {}

        sums = eventually(by_instance, "one token total per worker and one for the parent", timeout=20)
        spans = receiver.span_names()
    parent = [instance for instance, total in sums.items() if total == report["parent_tokens"]]
    assert len(parent) == 1, (sums, report)
    workers = {instance: total for instance, total in sums.items() if instance != parent[0]}
    assert workers == {instance: CHILD_TOKENS * CHILD_CALLS for instance in workers}, (
        f"a worker re-exported its parent's pre-fork sums: {workers}")
    for instance in workers:
        assert spans.get(instance) == ["chat child-model"] * CHILD_CALLS, (instance, spans.get(instance, [])[:5])
    assert set(spans[parent[0]]) == {"chat parent-model"}
