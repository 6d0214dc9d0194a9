"""`llm-otel doctor` without a stack: every failure says what is wrong and how to fix it."""

from __future__ import annotations

import io
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from llm_otel.tools import cli
from llm_otel.tools._doctor import run_checks, run_doctor

from .conftest import closed_port


def by_name(env: dict[str, str]) -> dict[str, tuple[str, str]]:
    return {c.name: (c.status, c.line()) for c in run_checks(env, timeout=1.0)}


def test_nothing_running_fails_the_required_checks_with_fixes(no_stack: dict[str, str]) -> None:
    out = io.StringIO()

    code = run_doctor(no_stack, out=out, timeout=1.0)

    text = out.getvalue()
    lines = {line.split()[1]: line for line in text.splitlines()[1:-1]}
    assert code == 1
    assert lines["configuration"].startswith("OK")
    otlp = lines["otlp-endpoint"]
    port = no_stack["OTEL_EXPORTER_OTLP_ENDPOINT"].rsplit(":", 1)[1]
    assert otlp.startswith("FAIL") and f"127.0.0.1:{port}" in otlp and "connection refused" in otlp
    assert "OTEL_EXPORTER_OTLP_ENDPOINT" in otlp and "llm-otel stack up" in otlp
    assert lines["collector-health"].startswith("WARN")
    assert lines["prometheus"].startswith("FAIL") and "LLM_OTEL_PROMETHEUS_URL" in lines["prometheus"]
    assert lines["llm-series"].startswith("SKIP")
    assert lines["grafana"].startswith("WARN") and "--mode docker" in lines["grafana"]
    assert text.splitlines()[-1] == "2 check(s) failed: otlp-endpoint, prometheus"


def test_every_bad_environment_value_is_named(no_stack: dict[str, str]) -> None:
    env = {**no_stack, "OTEL_METRIC_EXPORT_INTERVAL": "soon", "OTEL_EXPORTER_OTLP_PROTOCOL": "carrier-pigeon",
           "LLM_OTEL_EVAL_SAMPLE_RATE": "2"}

    status, line = by_name(env)["configuration"]

    assert status == "FAIL"
    for fragment in ("OTEL_METRIC_EXPORT_INTERVAL='soon'", "OTEL_EXPORTER_OTLP_PROTOCOL='carrier-pigeon'",
                     "LLM_OTEL_EVAL_SAMPLE_RATE='2'", "grpc or http/protobuf", "within 0..1",
                     "docs/configuration.md"):
        assert fragment in line
    # The other checks still run, with the good settings.
    assert by_name(env)["otlp-endpoint"][0] == "FAIL"


@pytest.mark.parametrize(
    ("extra", "fragment"),
    [
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}, "port 4318 (OTLP/HTTP) but the protocol is grpc"),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4317", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf"},
         "port 4317 (OTLP/gRPC) but the protocol is http/protobuf"),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318/v1/traces", "OTEL_EXPORTER_OTLP_PROTOCOL": "http"},
         "appends /v1/traces and /v1/metrics itself"),
        ({"OTEL_TRACES_EXPORTER": "none", "OTEL_METRICS_EXPORTER": "none"}, "both exporters are off"),
        ({"OTEL_SDK_DISABLED": "true"}, "the kit is switched off"),
    ],
)
def test_suspicious_settings_warn(no_stack: dict[str, str], extra: dict[str, str], fragment: str) -> None:
    status, line = by_name({**no_stack, **extra})["configuration"]

    assert status == "WARN"
    assert fragment in line


def test_unusable_endpoint_url_fails(no_stack: dict[str, str]) -> None:
    status, line = by_name({**no_stack, "OTEL_EXPORTER_OTLP_ENDPOINT": "ftp://collector:21"})["configuration"]

    assert status == "FAIL" and "is not an http(s)://host:port URL" in line


class _FakeGrafana(BaseHTTPRequestHandler):
    status = 200
    body: dict[str, str] = {"database": "ok", "version": "11.3.0"}

    def do_GET(self) -> None:
        payload = json.dumps(self.body).encode() if self.path == "/api/health" else b"{}"
        self.send_response(self.status if self.path == "/api/health" else 404)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: object) -> None:
        return None


@pytest.fixture
def grafana() -> Iterator[tuple[str, type[_FakeGrafana]]]:
    handler = type("Handler", (_FakeGrafana,), {})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", handler
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def test_grafana_healthy(no_stack: dict[str, str], grafana: tuple[str, type[_FakeGrafana]]) -> None:
    url, _ = grafana
    status, line = by_name({**no_stack, "LLM_OTEL_GRAFANA_URL": url})["grafana"]

    assert status == "OK"
    assert "11.3.0" in line and f"{url}/d/llm-otel-overview" in line


def test_grafana_unhealthy_database_fails(no_stack: dict[str, str], grafana: tuple[str, type[_FakeGrafana]]) -> None:
    url, handler = grafana
    handler.status, handler.body = 503, {"database": "failing"}

    status, line = by_name({**no_stack, "LLM_OTEL_GRAFANA_URL": url + "/"})["grafana"]

    assert status == "FAIL" and "database 'failing'" in line


def test_a_prometheus_url_that_is_not_prometheus_fails(
    no_stack: dict[str, str], grafana: tuple[str, type[_FakeGrafana]]
) -> None:
    url, _ = grafana  # answers 404 on /-/ready
    status, line = by_name({**no_stack, "LLM_OTEL_PROMETHEUS_URL": url})["prometheus"]

    assert status == "FAIL" and "HTTP 404" in line


def test_cli_doctor_exit_codes(no_stack: dict[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["doctor", "--timeout", "1"]) == 1
    assert "FAIL otlp-endpoint" in capsys.readouterr().out

    # With the unreachable parts skipped nothing required fails.
    assert cli.main(["doctor", "--timeout", "1", "--skip", "otlp-endpoint", "--skip", "prometheus"]) == 0
    out = capsys.readouterr().out
    assert "SKIP otlp-endpoint" in out and out.strip().endswith("no required check failed")


def test_one_check_per_line_in_a_fixed_order(no_stack: dict[str, str]) -> None:
    env = {**no_stack, "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{closed_port()}"}
    checks = run_checks(env, timeout=0.5)
    assert [c.name for c in checks] == [
        "configuration", "otlp-endpoint", "collector-health", "prometheus", "llm-series", "telemetry-drops",
        "grafana", "export",
    ]
