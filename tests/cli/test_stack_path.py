"""The whole path with a real Collector + Prometheus: the demo exports, Prometheus has the demo's
numbers, and the doctor reports every hop healthy."""

from __future__ import annotations

import io
import json
import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml

from llm_otel.tools._demo import SERVICE_NAME, DemoOptions, run_demo
from llm_otel.tools._doctor import prometheus_query, run_checks
from llm_otel.tools._stack import StackInfo, StackPorts, observability_dir, render_prometheus_config

from .conftest import parse_table

pytestmark = pytest.mark.stack


class _Grafana(BaseHTTPRequestHandler):
    """Grafana's health endpoint only (the native stack has no Grafana)."""

    def do_GET(self) -> None:
        body = json.dumps({"database": "ok", "version": "test"}).encode()
        self.send_response(200 if self.path == "/api/health" else 404)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        return None


@pytest.fixture
def stack_env(native_stack: StackInfo, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Grafana)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    assert native_stack.prometheus_url is not None
    env = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": native_stack.otlp_grpc_endpoint,
        "LLM_OTEL_COLLECTOR_HEALTH_URL": native_stack.collector_health_url,
        "LLM_OTEL_PROMETHEUS_URL": native_stack.prometheus_url,
        "LLM_OTEL_GRAFANA_URL": f"http://127.0.0.1:{server.server_address[1]}",
    }
    for name in ("OTEL_EXPORTER_OTLP_PROTOCOL", "OTEL_TRACES_EXPORTER", "OTEL_METRICS_EXPORTER"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    try:
        yield env
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def _prometheus_total(url: str, query: str) -> float | None:
    result = prometheus_query(url, query)
    return float(result[0]["value"][1]) if result else None


def test_demo_exports_to_the_stack_and_the_doctor_sees_every_hop(
    native_stack: StackInfo, stack_env: dict[str, str]
) -> None:
    before = {c.name: c.status for c in run_checks(stack_env, timeout=2.0)}
    assert before["otlp-endpoint"] == "OK"
    assert before["collector-health"] == "OK"
    assert before["prometheus"] == "OK"
    assert before["grafana"] == "OK"
    assert before["llm-series"] in ("OK", "WARN")  # WARN: no LLM call yet, or not scraped yet

    out = io.StringIO()
    result = run_demo(DemoOptions(duration_s=2, rate=10, stack=True, live=False), out)

    text = out.getvalue()
    assert result.exit_code == 0 and result.exported
    assert f"exported over OTLP to {native_stack.otlp_grpc_endpoint}" in text
    assert f"Prometheus: {native_stack.prometheus_url}/graph?g0.expr=" in text
    assert f"Grafana:    {stack_env['LLM_OTEL_GRAFANA_URL']}/d/llm-otel-overview" in text
    table = parse_table(text)

    # The numbers in Prometheus (after the Collector's translation) are the numbers the demo printed.
    prometheus = stack_env["LLM_OTEL_PROMETHEUS_URL"]
    expectations = {
        f'sum(llm_tokens_input_total{{job="{SERVICE_NAME}"}})': table["total"]["tokens in"],
        f'sum(llm_tokens_output_total{{job="{SERVICE_NAME}"}})': table["total"]["tokens out"],
        f'sum(gen_ai_client_operation_duration_seconds_count{{job="{SERVICE_NAME}"}})': table["total"]["requests"],
    }
    deadline = time.monotonic() + 60
    seen: dict[str, float | None] = {}
    while time.monotonic() < deadline:
        seen = {query: _prometheus_total(prometheus, query) for query in expectations}
        if all(seen[q] == expected for q, expected in expectations.items()):
            break
        time.sleep(1)
    assert seen == {q: float(v) for q, v in expectations.items()}
    cost = _prometheus_total(prometheus, f'sum(llm_cost_usd_sum{{job="{SERVICE_NAME}"}})')
    assert cost == pytest.approx(table["total"]["cost $"], abs=1e-6)
    by_task = prometheus_query(prometheus, f'sum by (llm_task_type) (llm_cost_usd_sum{{job="{SERVICE_NAME}"}})')
    assert {r["metric"]["llm_task_type"] for r in by_task or []} == {"classify", "default", "reason"}

    after = {c.name: (c.status, c.line()) for c in run_checks(stack_env, timeout=2.0)}
    assert after["llm-series"][0] == "OK", after["llm-series"][1]
    assert all(status == "OK" for status, _ in after.values()), after


# The names docs/migrating.md says the tutorial's instruments get from the same Collector.
TUTORIAL_SERIES = {
    # (instrument, kind, unit): series the Collector's prometheus exporter produces (no namespace)
    ("llm.tokens.input", "counter", "1"): "llm_tokens_input_total",
    ("llm.cost.usd", "histogram", "USD"): "llm_cost_usd_USD_sum",
    ("llm.latency.ms", "histogram", "ms"): "llm_latency_ms_milliseconds_bucket",
    ("llm.hallucination.score", "gauge", "1"): "llm_hallucination_score_ratio",
}


def test_tutorial_instruments_get_the_names_the_migration_guide_lists(native_stack: StackInfo) -> None:
    from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
    from opentelemetry.sdk.resources import Resource

    reader = PeriodicExportingMetricReader(OTLPMetricExporter(endpoint=native_stack.otlp_grpc_endpoint, insecure=True),
                                           export_interval_millis=60_000)
    provider = MeterProvider(metric_readers=[reader], resource=Resource.create({"service.name": "tutorial-names"}))
    meter = provider.get_meter("tutorial")
    for (name, kind, unit) in TUTORIAL_SERIES:
        if kind == "counter":
            meter.create_counter(name, unit=unit).add(5, {"model": "gpt-4o"})
        elif kind == "histogram":
            meter.create_histogram(name, unit=unit).record(1.5, {"model": "gpt-4o"})
        else:
            meter.create_gauge(name, unit=unit).set(0.2, {"model": "gpt-4o"})
    assert provider.force_flush(10_000)
    provider.shutdown()

    assert native_stack.prometheus_url is not None
    wanted = set(TUTORIAL_SERIES.values())
    deadline = time.monotonic() + 60
    found: set[str] = set()
    while time.monotonic() < deadline and found != wanted:
        result = prometheus_query(native_stack.prometheus_url, '{job="tutorial-names"}') or []
        found = {r["metric"]["__name__"] for r in result} & wanted
        time.sleep(0.5)
    assert found == wanted


@pytest.mark.parametrize("collector_job", [True, False])
def test_doctor_explains_why_prometheus_has_no_llm_series(
    prometheus_bin: Path, tmp_path: Path, collector_job: bool
) -> None:
    """A real Prometheus whose otel-collector job points at a closed port, or that has no such job."""
    ports = StackPorts.free()  # nothing listens on these any more
    rendered = render_prometheus_config(observability_dir() / "prometheus" / "prometheus.yml", ports,
                                        scrape_interval="1s")
    if not collector_job:
        config_data = yaml.safe_load(rendered)
        config_data["scrape_configs"] = [j for j in config_data["scrape_configs"] if j["job_name"] == "prometheus"]
        rendered = yaml.safe_dump(config_data)
    config = tmp_path / "prometheus.yml"
    config.write_text(rendered)
    process = subprocess.Popen(
        [str(prometheus_bin), f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'data'}",
         f"--web.listen-address=127.0.0.1:{ports.prometheus}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        env = {"LLM_OTEL_PROMETHEUS_URL": f"http://127.0.0.1:{ports.prometheus}",
               "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{ports.otlp_grpc}"}
        deadline = time.monotonic() + 60
        line = ""
        while time.monotonic() < deadline:
            check = {c.name: c for c in run_checks(env, timeout=2.0, skip=["grafana"])}["llm-series"]
            line = check.line()
            if check.status == "FAIL":
                break
            time.sleep(0.5)
        assert line.startswith("FAIL llm-series")
        if collector_job:
            target = f"http://127.0.0.1:{ports.collector_metrics}/metrics"
            assert f"Prometheus cannot scrape the collector at {target}" in line
            assert "connection refused" in line
        else:
            assert "no scrape job 'otel-collector'" in line and "scrape_configs" in line
    finally:
        process.terminate()
        process.wait(20)
