"""The native stack: `llm-otel stack up|status|down` on free ports with the shipped configs."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest

from llm_otel.tools._stack import (
    StackError,
    StackInfo,
    StackPorts,
    collector_binary,
    stack_down,
    stack_status,
    stack_up,
)
from tests.stack._support import REPO, AlertRule, DashboardQuery, slo_expressions

pytestmark = pytest.mark.stack
T = TypeVar("T")


def get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.loads(response.read())


def eventually(probe: Callable[[], T | None], what: str, attempts: int = 300) -> T:
    """Poll until probe() returns a value; generous, since the machine may be busy."""
    for _ in range(attempts):
        value = probe()
        if value is not None:
            return value
        time.sleep(0.2)
    pytest.fail(f"gave up waiting for {what}")


def test_up_status_down(tmp_path: Path, collector_bin: Path, prometheus_bin: Path) -> None:
    run_dir = tmp_path / "run"
    ports = StackPorts.free()
    info = stack_up(run_dir, mode="native", ports=ports, collector=collector_bin, prometheus=prometheus_bin, timeout=120)
    try:
        assert info.mode == "native" and info.ports == ports
        assert info.otlp_grpc_endpoint == f"http://127.0.0.1:{ports.otlp_grpc}"
        assert info.prometheus_url == f"http://127.0.0.1:{ports.prometheus}"
        status = stack_status(run_dir)
        assert [(row.component, row.up) for row in status] == [
            ("collector", True),
            ("collector metrics", True),
            ("prometheus", True),
        ]
        assert {row.url for row in status} >= {info.collector_health_url, info.prometheus_url}
        for name in ("collector.log", "prometheus.log", "collector.pid", "prometheus.pid", "prometheus.yml"):
            assert (run_dir / name).is_file(), name
        # A second `up` finds the running stack instead of starting another one.
        assert stack_up(run_dir, mode="native", ports=ports).pids == info.pids
    finally:
        stopped = stack_down(run_dir)
    assert sorted(stopped) == ["collector", "prometheus"]
    assert not any(row.up for row in stack_status(run_dir))
    assert not (run_dir / "collector.pid").exists()
    assert stack_down(run_dir) == []


def test_stack_outlives_the_starting_process(tmp_path: Path, collector_bin: Path, prometheus_bin: Path) -> None:
    # `llm-otel stack up` returns while the stack keeps running; `down` comes from another process.
    run_dir = tmp_path / "run"
    script = (
        "import sys; from pathlib import Path; from llm_otel.tools._stack import StackPorts, stack_up; "
        "stack_up(Path(sys.argv[1]), mode='native', ports=StackPorts.free(), "
        "collector=Path(sys.argv[2]), prometheus=Path(sys.argv[3]), timeout=120)"
    )
    started = subprocess.run(
        [sys.executable, "-c", script, str(run_dir), str(collector_bin), str(prometheus_bin)],
        capture_output=True, text=True, cwd=REPO, check=False,
    )
    assert started.returncode == 0, started.stderr
    try:
        assert all(row.up for row in stack_status(run_dir))
    finally:
        stopped = stack_down(run_dir)
    assert sorted(stopped) == ["collector", "prometheus"]
    assert not any(row.up for row in stack_status(run_dir))


def test_native_stack_scrapes_the_collector_and_loads_the_rules(
    native_stack: StackInfo, alert_rules: list[AlertRule]
) -> None:
    def collector_target_up() -> bool | None:
        targets = get_json(f"{native_stack.prometheus_url}/api/v1/targets")["data"]["activeTargets"]
        health = {t["labels"]["job"]: t["health"] for t in targets}
        return True if health.get("otel-collector") == "up" and health.get("otel-collector-internal") == "up" else None

    eventually(collector_target_up, "Prometheus to scrape the collector")
    groups = get_json(f"{native_stack.prometheus_url}/api/v1/rules")["data"]["groups"]
    loaded = {rule["name"] for group in groups for rule in group["rules"]}
    assert loaded == {rule.alert for rule in alert_rules} | {name for name, _ in slo_expressions()}
    assert native_stack.traces_file is not None and native_stack.traces_file.parent == native_stack.run_dir


def test_every_dashboard_and_alert_expression_parses_in_prometheus(
    native_stack: StackInfo, dashboard_queries: list[DashboardQuery], alert_rules: list[AlertRule]
) -> None:
    expressions = [q.promql() for q in dashboard_queries] + [rule.expr for rule in alert_rules]
    expressions += [expr for _, expr in slo_expressions()]
    for expr in expressions:
        url = f"{native_stack.prometheus_url}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
        assert get_json(url)["status"] == "success", expr


def test_missing_collector_names_the_build_command(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LLM_OTEL_COLLECTOR_BIN", raising=False)
    monkeypatch.setenv("LLM_OTEL_CACHE", str(tmp_path))
    with pytest.raises(StackError, match=r"`llm-otel stack build` \(or `bash scripts/build-collector\.sh`"):
        collector_binary()


def test_busy_port_is_reported_before_starting(tmp_path: Path, collector_bin: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        ports = StackPorts(**{**StackPorts.free().named(), "otlp_grpc": busy.getsockname()[1]})
        with pytest.raises(StackError, match="otlp_grpc"):
            stack_up(tmp_path, mode="native", ports=ports, collector=collector_bin, with_prometheus=False)
    assert not (tmp_path / "collector.pid").exists()
    assert os.listdir(tmp_path) == []
