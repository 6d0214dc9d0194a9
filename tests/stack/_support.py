"""Helpers and fixtures for tests that touch the observability stack.

The fixtures are re-exported by tests/conftest.py so that tests/stack and
tests/e2e share them:

* ``collector_bin`` / ``prometheus_bin`` / ``promtool_bin`` (session): paths to the
  tools. Missing tools skip the test locally and FAIL it when ``CI=true``.
* ``native_stack`` (module): the Collector + Prometheus from the shipped configs on
  free localhost ports, scraping and evaluating rules every second, in a temporary
  run directory; stopped after the module. Yields ``llm_otel.tools._stack.StackInfo``.
* ``dashboard_queries`` (session): every PromQL target of every dashboard.
* ``alert_rules`` (session): every alerting rule of the rule files prometheus.yml loads.
* ``render_promql`` (session): :func:`render_grafana_expr`.

Grafana variable substitution (how a dashboard expression becomes plain PromQL):
``$__rate_interval`` -> ``rate_interval`` (default "1m"), ``$__interval`` -> "30s",
``$__range`` -> ``range_`` (default "1h"), ``$__range_s`` / ``$__range_ms`` -> that
range in seconds / milliseconds, and every template variable (``$model``, ``${model}``,
``${model:regex}``, ``[[model]]``) -> ``.*``. The dashboards only use template
variables inside ``=~"..."`` matchers, where ``.*`` is Grafana's "All".
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import pytest
import yaml

from llm_otel import _names
from llm_otel.tools._stack import StackInfo, StackPorts, collector_cache_path, stack_down, stack_up

REPO = Path(__file__).resolve().parents[2]
OBSERVABILITY = REPO / "observability"
COLLECTOR_DIR = OBSERVABILITY / "collector"
PROMETHEUS_DIR = OBSERVABILITY / "prometheus"
GRAFANA_DIR = OBSERVABILITY / "grafana"
DASHBOARDS = sorted((GRAFANA_DIR / "dashboards").glob("*.json"))
ALERTS = PROMETHEUS_DIR / "alerts.yml"
SLO_RULES = PROMETHEUS_DIR / "slo.yml"


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in {"true", "1", "yes"}


def missing_tool(reason: str) -> NoReturn:
    """Skip locally; in CI (CI=true) a missing tool is a failure, never a skip."""
    if in_ci():
        pytest.fail(f"{reason} (CI=true: the stack tests may not skip)", pytrace=False)
    pytest.skip(reason)


# --------------------------------------------------------------------------- PromQL helpers

_DURATION_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}


def _seconds(duration: str) -> float:
    total = 0.0
    for number, unit in re.findall(r"(\d+)(ms|s|m|h|d|w|y)", duration):
        total += int(number) * _DURATION_SECONDS[unit]
    return total


def render_grafana_expr(
    expr: str, *, rate_interval: str = "1m", interval: str = "30s", range_: str = "1h"
) -> str:
    """Substitute Grafana's variables so the expression is plain PromQL (see module docstring)."""
    builtins = {
        "__rate_interval": rate_interval,
        "__interval": interval,
        "__range": range_,
        "__range_s": str(int(_seconds(range_))),
        "__range_ms": str(int(_seconds(range_) * 1000)),
    }

    def substitute(match: re.Match[str]) -> str:
        name = match.group("braced") or match.group("plain") or match.group("old")
        if name.startswith("__"):
            if name not in builtins:
                raise ValueError(f"unsupported Grafana built-in variable ${name} in {expr!r}")
            return builtins[name]
        return ".*"

    pattern = r"\$\{(?P<braced>\w+)(?::[\w-]+)?\}|\$(?P<plain>\w+)|\[\[(?P<old>\w+)(?::[\w-]+)?\]\]"
    return re.sub(pattern, substitute, expr)


_KEYWORDS = {
    "and", "or", "unless", "by", "without", "on", "ignoring", "group_left", "group_right",
    "offset", "bool", "inf", "nan", "atan2",
}


def metric_names(promql: str) -> set[str]:
    """Metric names a PromQL expression selects (functions, labels and keywords removed)."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', promql)  # string literals
    names = {alternative for selector in re.findall(r'__name__\s*=~?\s*"([^"]*)"', promql)
             for alternative in selector.split("|")}
    text = re.sub(r"\{[^}]*\}", "", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", "", text)  # range / subquery selectors
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    for token in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", text):
        word = token.group(0)
        rest = text[token.end():].lstrip()
        if rest.startswith("(") or word.lower() in _KEYWORDS:
            continue
        before = text[: token.start()].rstrip()
        if before.endswith("offset") or re.fullmatch(r"\d+[a-z]+", word):
            continue
        if re.search(r"\d$", before) and re.fullmatch(r"(ms|s|m|h|d|w|y|e\d*)", word):
            continue  # unit of a duration or exponent of a number
        names.add(word)
    return names


def label_names(promql: str) -> set[str]:
    """Label names used in matchers and in by/without/on/ignoring/group_* clauses."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', promql)
    labels: set[str] = set()
    for block in re.findall(r"\{([^}]*)\}", text):
        labels.update(re.findall(r"([A-Za-z_][A-Za-z0-9_]*)\s*(?:=~|!~|!=|=)", block))
    for block in re.findall(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)", text):
        labels.update(part.strip() for part in block.split(",") if part.strip())
    return labels


def known_series() -> set[str]:
    """Series names the Collector produces from llm_otel/_names.py instruments."""
    names: set[str] = set()
    for instrument in (*_names.INSTRUMENTS, *_names.LATEST_INSTRUMENTS):
        if instrument.kind == "histogram":
            names.update(instrument.prometheus + suffix for suffix in ("_bucket", "_sum", "_count"))
        else:
            names.add(instrument.prometheus)
    return names


def known_labels() -> set[str]:
    """Labels a query may use: instrument attributes (both conventions modes), histogram le,
    job/instance, the SLO rules' slo, and __name__ (selectors that name both modes' series)."""
    labels = {_names.prometheus_label(key) for instrument in (*_names.INSTRUMENTS, *_names.LATEST_INSTRUMENTS)
              for key in instrument.labels}
    labels.add(_names.prometheus_label(_names.GEN_AI_TOKEN_TYPE))  # set by label_replace on the latest token histograms
    return labels | {"le", "job", "instance", "slo", "__name__"}


def recorded_series() -> set[str]:
    """Series the SLO recording rules (observability/prometheus/slo.yml) produce."""
    return {rule["record"] for group in yaml.safe_load(SLO_RULES.read_text())["groups"]
            for rule in group["rules"] if "record" in rule}


def is_known_series(name: str) -> bool:
    return name in known_series() or name in recorded_series() or name == "up" or name.startswith("otelcol_")


# --------------------------------------------------------------------------- file readers


@dataclass(frozen=True)
class DashboardQuery:
    dashboard: str
    panel: str
    ref_id: str
    expr: str  # as written in the JSON, with Grafana variables
    legend: str
    unit: str
    instant: bool

    def promql(self, **kwargs: str) -> str:
        """The expression with Grafana variables substituted (see render_grafana_expr)."""
        return render_grafana_expr(self.expr, **kwargs)


@dataclass(frozen=True)
class AlertRule:
    group: str
    alert: str
    expr: str
    annotations: dict[str, str]


def load_dashboard(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def iter_panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for panel in panels:
        yield panel
        yield from iter_panels(panel.get("panels", []))


def read_dashboard_queries() -> list[DashboardQuery]:
    queries = []
    for path in DASHBOARDS:
        for panel in iter_panels(load_dashboard(path).get("panels", [])):
            unit = panel.get("fieldConfig", {}).get("defaults", {}).get("unit", "")
            for target in panel.get("targets", []):
                if target.get("expr"):
                    queries.append(
                        DashboardQuery(
                            dashboard=path.name,
                            panel=str(panel.get("title", "")),
                            ref_id=str(target.get("refId", "")),
                            expr=str(target["expr"]),
                            legend=str(target.get("legendFormat", "")),
                            unit=str(unit),
                            instant=bool(target.get("instant", False)),
                        )
                    )
    return queries


def rule_files() -> list[Path]:
    """The rule files prometheus.yml loads (alerts.yml and its neighbours)."""
    config = yaml.safe_load((PROMETHEUS_DIR / "prometheus.yml").read_text())
    return [PROMETHEUS_DIR / name for name in config["rule_files"]]


def read_alert_rules() -> list[AlertRule]:
    rules = []
    groups = [group for path in rule_files() for group in yaml.safe_load(path.read_text())["groups"]]
    for group in groups:
        for rule in group["rules"]:
            if "alert" in rule:
                rules.append(AlertRule(group["name"], rule["alert"], rule["expr"], dict(rule.get("annotations", {}))))
    return rules


def read_slo_alerts() -> list[AlertRule]:
    return [AlertRule(group["name"], rule["alert"], rule["expr"], dict(rule.get("annotations", {})))
            for group in yaml.safe_load(SLO_RULES.read_text())["groups"] for rule in group["rules"] if "alert" in rule]


def slo_expressions() -> list[tuple[str, str]]:
    """(record or alert name, PromQL) of every rule in slo.yml."""
    return [(str(rule.get("record") or rule.get("alert")), str(rule["expr"]))
            for group in yaml.safe_load(SLO_RULES.read_text())["groups"] for rule in group["rules"]]


# --------------------------------------------------------------------------- fixtures


def _tool(name: str, env: str) -> Path:
    found = os.environ.get(env) or shutil.which(name)
    if not found or not os.access(found, os.X_OK):
        missing_tool(f"`{name}` not found (PATH or ${env}); install it with `bash scripts/setup.sh`")
    return Path(found)


@pytest.fixture(scope="session")
def collector_bin() -> Path:
    env = os.environ.get("LLM_OTEL_COLLECTOR_BIN")
    path = Path(env) if env else collector_cache_path(COLLECTOR_DIR / "builder-config.yaml")
    if not (path.is_file() and os.access(path, os.X_OK)):
        missing_tool(
            f"the llm-otel collector binary is missing ({path}); build it with "
            "`bash scripts/build-collector.sh` or set LLM_OTEL_COLLECTOR_BIN"
        )
    return path


@pytest.fixture(scope="session")
def prometheus_bin() -> Path:
    return _tool("prometheus", "LLM_OTEL_PROMETHEUS_BIN")


@pytest.fixture(scope="session")
def promtool_bin() -> Path:
    return _tool("promtool", "LLM_OTEL_PROMTOOL_BIN")


@pytest.fixture(scope="module")
def native_stack(
    tmp_path_factory: pytest.TempPathFactory, collector_bin: Path, prometheus_bin: Path
) -> Iterator[StackInfo]:
    """Collector + Prometheus from the shipped configs on free ports (scrape/evaluate every 1s)."""
    run_dir = tmp_path_factory.mktemp("native-stack")
    info = stack_up(
        run_dir,
        mode="native",
        ports=StackPorts.free(),
        scrape_interval="1s",
        collector=collector_bin,
        prometheus=prometheus_bin,
        timeout=120,
    )
    try:
        yield info
    finally:
        stack_down(run_dir)


@pytest.fixture(scope="session")
def dashboard_queries() -> list[DashboardQuery]:
    return read_dashboard_queries()


@pytest.fixture(scope="session")
def alert_rules() -> list[AlertRule]:
    return read_alert_rules()


@pytest.fixture(scope="session")
def render_promql() -> Callable[..., str]:
    return render_grafana_expr
