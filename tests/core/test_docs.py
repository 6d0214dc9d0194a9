"""The reference docs are checked against the code that defines what they describe."""

from __future__ import annotations

from pathlib import Path

from llm_otel import _names as n
from llm_otel._config import SETTINGS

DOCS = Path(__file__).resolve().parents[2] / "docs"


def test_metrics_reference_lists_every_instrument_series_unit_and_label() -> None:
    text = (DOCS / "metrics.md").read_text()
    for spec in (*n.INSTRUMENTS, *n.LATEST_INSTRUMENTS):
        row = next((line for line in text.splitlines() if line.startswith(f"| `{spec.name}` |")), None)
        assert row is not None, spec.name
        assert f"`{spec.prometheus}" in row and f"`{spec.unit}`" in row and spec.kind in row
        for key in spec.labels:
            assert f"`{n.prometheus_label(key)}`" in row, (spec.name, key)


def test_configuration_reference_lists_every_setting_and_variable() -> None:
    text = (DOCS / "configuration.md").read_text()
    for setting in SETTINGS:
        assert f"| `{setting.name}` |" in text, setting.name
        for var in setting.env:
            assert f"`{var}`" in text, var
