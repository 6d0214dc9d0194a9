"""Native agent -> gateway Collector tiers and Prometheus, from the shipped configs.

Gateways run ``gateway.yaml`` + ``file-export.yaml`` (kept traces are written to a
file per gateway); agents run ``agent.yaml`` + ``agent-static.yaml`` with the gateway
list in a file (rewritten + SIGHUP = a membership change); Prometheus runs the shipped
``prometheus.yml`` with its Collector jobs pointed at every gateway and collector.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import yaml

from tests.faults._outage import Component, free_port, otlp_lines
from tests.scaleout._certs import Pki
from tests.stack._support import COLLECTOR_DIR, PROMETHEUS_DIR, REPO

TOKEN = "scaleout-test-token"
SAMPLING_ENV = {
    "LLM_OTEL_SAMPLING_DECISION_WAIT": "2s",
    "LLM_OTEL_SAMPLING_SLOW_MS": "1000",
    "LLM_OTEL_SAMPLING_EXPENSIVE_USD": "0.05",
    "LLM_OTEL_SAMPLING_HALLUCINATION_MIN": "0.5",
    "LLM_OTEL_SAMPLING_PERCENT": "0",  # keep only the traces a policy asks for: what is kept is exact
}


@dataclass
class Collector:
    name: str
    component: Component
    otlp: int
    health: int
    telemetry: int
    metrics: int = 0  # gateways: the prometheus exporter
    traces_file: Path | None = None

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.otlp}"


def _config_flags(*names: str) -> list[str]:
    return [f"--config=file:{COLLECTOR_DIR / name}" for name in names]


def start_gateway(binary: Path, run_dir: Path, name: str, pki: Pki,
                  sampling: Mapping[str, str] | None = None) -> Collector:
    ports = {key: free_port() for key in ("otlp", "health", "telemetry", "metrics")}
    env = {
        **os.environ, **SAMPLING_ENV, **(sampling or {}),
        "LLM_OTEL_OTLP_GRPC_ENDPOINT": f"127.0.0.1:{ports['otlp']}",
        "LLM_OTEL_HEALTH_ENDPOINT": f"127.0.0.1:{ports['health']}",
        "LLM_OTEL_COLLECTOR_TELEMETRY_HOST": "127.0.0.1",
        "LLM_OTEL_COLLECTOR_TELEMETRY_PORT": str(ports["telemetry"]),
        "LLM_OTEL_PROMETHEUS_EXPORTER_ENDPOINT": f"127.0.0.1:{ports['metrics']}",
        "LLM_OTEL_TRACES_FILE": str(run_dir / f"{name}-traces.jsonl"),
        "LLM_OTEL_METRICS_FILE": str(run_dir / f"{name}-metrics.jsonl"),
        "LLM_OTEL_GATEWAY_TLS_CERT_FILE": str(pki.cert),
        "LLM_OTEL_GATEWAY_TLS_KEY_FILE": str(pki.key),
        "LLM_OTEL_GATEWAY_CLIENT_CA_FILE": str(pki.ca),
    }
    component = Component(name, [str(binary), *_config_flags("gateway.yaml", "file-export.yaml")], run_dir, env)
    collector = Collector(name, component, ports["otlp"], ports["health"], ports["telemetry"], ports["metrics"],
                          run_dir / f"{name}-traces.jsonl")
    component.wait_healthy(f"http://127.0.0.1:{ports['health']}/")
    return collector


def write_gateways(path: Path, gateways: Iterable[Collector]) -> None:
    path.write_text(json.dumps([gateway.endpoint for gateway in gateways]) + "\n")


def start_agent(binary: Path, run_dir: Path, name: str, pki: Pki, gateways_file: Path) -> Collector:
    ports = {key: free_port() for key in ("otlp", "http", "health", "telemetry")}
    token_file = run_dir / "otlp-tokens"
    token_file.write_text(TOKEN + "\n")
    env = {
        **os.environ,
        "LLM_OTEL_OTLP_GRPC_ENDPOINT": f"127.0.0.1:{ports['otlp']}",
        "LLM_OTEL_OTLP_HTTP_ENDPOINT": f"127.0.0.1:{ports['http']}",
        "LLM_OTEL_HEALTH_ENDPOINT": f"127.0.0.1:{ports['health']}",
        "LLM_OTEL_COLLECTOR_TELEMETRY_HOST": "127.0.0.1",
        "LLM_OTEL_COLLECTOR_TELEMETRY_PORT": str(ports["telemetry"]),
        "LLM_OTEL_OTLP_TLS_CERT_FILE": str(pki.cert),
        "LLM_OTEL_OTLP_TLS_KEY_FILE": str(pki.key),
        "LLM_OTEL_OTLP_TOKEN_FILE": str(token_file),
        "LLM_OTEL_GATEWAY_CA_FILE": str(pki.ca),
        "LLM_OTEL_GATEWAY_CLIENT_CERT_FILE": str(pki.cert),
        "LLM_OTEL_GATEWAY_CLIENT_KEY_FILE": str(pki.key),
        "LLM_OTEL_GATEWAYS_FILE": str(gateways_file),
    }
    component = Component(name, [str(binary), *_config_flags("agent.yaml", "agent-static.yaml")], run_dir, env)
    collector = Collector(name, component, ports["otlp"], ports["health"], ports["telemetry"])
    component.wait_healthy(f"http://127.0.0.1:{ports['health']}/")
    return collector


def reload(agent: Collector) -> None:
    """SIGHUP: the agent re-reads its config, including the gateway list file."""
    agent.component.process.send_signal(signal.SIGHUP)


def start_prometheus(binary: Path, run_dir: Path, gateways: list[Collector], collectors: list[Collector]) -> tuple[
        Component, str]:
    """The shipped prometheus.yml and rule files, its Collector jobs pointed at the tiers, 1 s intervals."""
    config: dict[str, Any] = yaml.safe_load((PROMETHEUS_DIR / "prometheus.yml").read_text())
    port = free_port()
    targets = {
        "otel-collector": [f"127.0.0.1:{gateway.metrics}" for gateway in gateways],
        "otel-collector-internal": [f"127.0.0.1:{collector.telemetry}" for collector in collectors],
        "prometheus": [f"127.0.0.1:{port}"],
    }
    for job in config["scrape_configs"]:
        job["static_configs"] = [{"targets": targets[job["job_name"]]}]
    config["rule_files"] = [str(PROMETHEUS_DIR / rule) for rule in config["rule_files"]]
    config.pop("alerting", None)
    config["global"].update(scrape_interval="1s", evaluation_interval="1s")
    rendered = run_dir / "prometheus.yml"
    rendered.write_text(yaml.safe_dump(config, sort_keys=False))
    command = [str(binary), f"--config.file={rendered}", f"--storage.tsdb.path={run_dir / 'prometheus-data'}",
               f"--web.listen-address=127.0.0.1:{port}"]
    component = Component("prometheus", command, run_dir, dict(os.environ))
    url = f"http://127.0.0.1:{port}"
    component.wait_healthy(f"{url}/-/ready")
    return component, url


def promql(url: str, expr: str) -> list[dict[str, Any]]:
    with urllib.request.urlopen(f"{url}/api/v1/query?" + urllib.parse.urlencode({"query": expr}), timeout=10) as r:
        body = json.load(r)
    assert body["status"] == "success", (expr, body)
    result: list[dict[str, Any]] = body["data"]["result"]
    return result


def promql_value(url: str, expr: str) -> float | None:
    result = promql(url, expr)
    return float(result[0]["value"][1]) if result else None


# --------------------------------------------------------------------------- what each gateway holds

_SERIES = re.compile(r"^([A-Za-z_:][A-Za-z0-9_:]*)(\{.*\})?\s+\S+")
_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def exposed_series(gateway: Collector) -> set[str]:
    """Every series (name + labels, no value) the gateway's prometheus exporter exposes now."""
    with urllib.request.urlopen(f"http://127.0.0.1:{gateway.metrics}/metrics", timeout=10) as response:
        text = response.read().decode()
    return {f"{m.group(1)}{m.group(2) or ''}" for line in text.splitlines() if (m := _SERIES.match(line))}


def resources_of(series: Iterable[str]) -> set[tuple[str, str]]:
    """(job, instance) of every application resource among ``series``."""
    found = set()
    for entry in series:
        labels = dict(_LABEL.findall(entry))
        if "job" in labels and "instance" in labels:
            found.add((labels["job"], labels["instance"]))
    return found


def dropped_items(collector: Collector, signal_name: str) -> int:
    """Items of one signal the Collector logged as dropped after its export retries gave up."""
    total = 0
    for line in collector.component.log_path.read_text(errors="replace").splitlines():
        if "Dropping data" in line and f'"otelcol.signal": "{signal_name}"' in line:
            match = re.search(r'"dropped_items": (\d+)', line)
            total += int(match.group(1)) if match else 0
    return total


def spans_by_trace(gateways: Iterable[Collector]) -> dict[str, dict[str, list[str]]]:
    """trace id -> gateway name -> span ids written by that gateway (duplicates kept)."""
    found: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    for gateway in gateways:
        for line in otlp_lines(gateway.traces_file):
            for resource_spans in line.get("resourceSpans", []):
                for scope in resource_spans.get("scopeSpans", []):
                    for span in scope.get("spans", []):
                        found[span["traceId"]][gateway.name].append(span["spanId"])
    return found


# --------------------------------------------------------------------------- application processes


@dataclass
class App:
    service: str
    instance: str
    process: subprocess.Popen[str]
    answers: list[dict[str, Any]] = field(default_factory=list)

    def send(self, command: Mapping[str, Any]) -> None:
        stdin: IO[str] | None = self.process.stdin
        assert stdin is not None
        stdin.write(json.dumps(command) + "\n")
        stdin.flush()

    def answer(self, timeout: float = 120.0) -> dict[str, Any]:
        stdout = self.process.stdout
        assert stdout is not None
        deadline = time.monotonic() + timeout
        line = stdout.readline()  # the app always answers; a dead app gives "" at once
        if not line or time.monotonic() > deadline:
            raise AssertionError(f"app {self.instance} gave no answer (exit code {self.process.poll()})")
        result: dict[str, Any] = json.loads(line)
        self.answers.append(result)
        return result


def start_app(service: str, instance: str, agent: Collector, pki: Pki, run_dir: Path) -> App:
    env = {**os.environ, "PYTHONPATH": str(REPO), "OTEL_EXPORTER_OTLP_CERTIFICATE": str(pki.ca)}
    log = (run_dir / f"app-{instance}.log").open("ab")
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.scaleout._app", service, instance, f"https://127.0.0.1:{agent.otlp}",
         str(run_dir / "otlp-tokens")],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, text=True, cwd=REPO, env=env,
    )
    log.close()
    return App(service, instance, process)
