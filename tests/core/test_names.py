"""The documented Prometheus series follow from each instrument's name, kind and unit.

This mirrors the Collector prometheus exporter's default translation so a
rename or unit change that would move a series is caught here; the
end-to-end stack test proves the same names against the real Collector.
"""

from __future__ import annotations

import re

from llm_otel import _names as n

_UNIT_WORDS = {"s": "seconds", "ms": "milliseconds", "By": "bytes", "1": ""}


def expected_series(spec: n.Instrument) -> str:
    name = re.sub(r"[^a-zA-Z0-9_:]", "_", spec.name)
    unit = "" if spec.unit.startswith("{") else _UNIT_WORDS.get(spec.unit, spec.unit)
    if unit and not name.endswith(unit):
        name = f"{name}_{unit}"
    if spec.kind == "gauge" and spec.unit == "1":
        name += "_ratio"
    if spec.kind == "counter":
        name += "_total"
    return name


def test_every_documented_series_matches_the_translation() -> None:
    for spec in n.INSTRUMENTS:
        assert spec.prometheus == expected_series(spec), spec.name


def test_names_are_unique_and_histograms_have_buckets() -> None:
    assert len({s.name for s in n.INSTRUMENTS}) == len(n.INSTRUMENTS)
    for spec in n.INSTRUMENTS:
        assert (spec.kind == "histogram") == (spec.buckets is not None), spec.name
        if spec.buckets:
            assert list(spec.buckets) == sorted(spec.buckets)


def test_no_deprecated_genai_names() -> None:
    values = {v for k, v in vars(n).items() if isinstance(v, str) and k.isupper()}
    assert "gen_ai.system" not in values
    assert not any("prompt_tokens" in v or "completion_tokens" in v for v in values)
