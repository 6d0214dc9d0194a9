"""Helpers for the CLI tests: closed local ports and parsing of the demo's table."""

from __future__ import annotations

import socket
from typing import Any

import pytest

from llm_otel.tools._demo import TABLE_HEADER


def closed_port() -> int:
    """A localhost port nothing listens on (bound, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def no_stack(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Point every endpoint the demo and the doctor probe at closed localhost ports."""
    env = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{closed_port()}",
        "LLM_OTEL_COLLECTOR_HEALTH_URL": f"http://127.0.0.1:{closed_port()}/",
        "LLM_OTEL_PROMETHEUS_URL": f"http://127.0.0.1:{closed_port()}",
        "LLM_OTEL_GRAFANA_URL": f"http://127.0.0.1:{closed_port()}",
    }
    for name in ("OTEL_EXPORTER_OTLP_PROTOCOL", "OTEL_TRACES_EXPORTER", "OTEL_METRICS_EXPORTER",
                 "OTEL_SDK_DISABLED", "LLM_OTEL_ENABLED"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return env


def parse_table(output: str) -> dict[str, dict[str, Any]]:
    """The demo's final table: model -> {column: int | float | None}."""
    lines = output.splitlines()
    header = max(i for i, line in enumerate(lines) if line.split()[:2] == ["model", "requests"])
    rows: dict[str, dict[str, Any]] = {}
    for line in lines[header + 2:]:
        cells = line.split()
        if not cells:
            break
        model, numbers = cells[0], cells[1:]
        if model == "total":
            numbers = [*numbers[:4], "-", "-", "-", *numbers[4:]]
        assert len(numbers) == len(TABLE_HEADER) - 1, line
        rows[model] = {
            name: None if value == "-" else (float(value) if "." in value else int(value))
            for name, value in zip(TABLE_HEADER[1:], numbers, strict=True)
        }
        if model == "total":
            break
    return rows
