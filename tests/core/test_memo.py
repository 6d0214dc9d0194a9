"""The one rule of the hot path's memo tables: bounded admission, emptied when their owner changes."""

from __future__ import annotations

import llm_otel
from llm_otel._memo import Memo
from llm_otel._spec import CallSpec
from llm_otel.testing import capture


def test_a_full_table_stops_admitting_but_refreshes_known_keys() -> None:
    memo: Memo[str, int] = Memo(2)
    memo.admit("a", 1)
    memo.admit("b", 2)
    memo.admit("c", 3)
    assert memo.get("c") is None and len(memo) == 2
    memo.admit("a", 10)
    assert memo.get("a") == 10


def test_a_new_owner_empties_the_table_back_to_its_seed() -> None:
    first, second = object(), object()
    memo: Memo[str, int] = Memo(4, {"seed": 0})
    memo.admit("a", 1, first)
    assert memo.get("a", first) == 1 and memo.get("seed", first) == 0
    assert memo.get("a", second) is None  # derived under another configuration
    assert memo.get("seed", second) == 0
    memo.admit("a", 2, second)
    assert memo.get("a", second) == 2


def test_series_of_a_call_site_follow_configure() -> None:
    spec = CallSpec(provider="openai", model="gpt-4o")
    for _ in range(2):  # a second configure() must not reuse the first one's series
        with capture() as telemetry:
            for _ in range(3):
                llm_otel.LLMCall(spec).start().end()
            assert telemetry.histogram_count("gen_ai.client.operation.duration") == 3
            (series,) = spec.memo.series.data.values()
            assert series.recorder is telemetry.telemetry.recorder
