"""``llm-otel doctor``: checks the configuration and every hop to the stack, and says what to fix.

One line per check::

    OK   configuration     service_name=chatbot, endpoint=http://localhost:4317 (default), protocol=grpc, ...
    FAIL otlp-endpoint     cannot connect to localhost:4317 (connection refused). Fix: start the stack ...

Exit code 1 when a required check fails (configuration, OTLP endpoint, Prometheus),
0 otherwise; optional parts (collector health endpoint, Grafana) only warn when absent.
Only the standard library is used; every probe has a timeout and bypasses proxies.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, TextIO

from llm_otel import _config
from llm_otel._names import TELEMETRY_DROPPED, TOKENS_INPUT
from llm_otel._version import VERSION

Status = Literal["OK", "WARN", "FAIL", "SKIP"]

PROMETHEUS_URL_ENV = "LLM_OTEL_PROMETHEUS_URL"
GRAFANA_URL_ENV = "LLM_OTEL_GRAFANA_URL"
COLLECTOR_HEALTH_URL_ENV = "LLM_OTEL_COLLECTOR_HEALTH_URL"
DEFAULT_PROMETHEUS_URL = "http://127.0.0.1:9090"
DEFAULT_GRAFANA_URL = "http://127.0.0.1:3000"
COLLECTOR_HEALTH_PORT = 13133
COLLECTOR_SCRAPE_JOB = "otel-collector"  # job name in observability/prometheus/prometheus.yml
DASHBOARD_PATH = "/d/llm-otel-overview"
GRPC_PORT, HTTP_PORT = 4317, 4318
CHECK_NAMES = ("configuration", "otlp-endpoint", "collector-health", "prometheus", "llm-series", "telemetry-drops",
               "grafana", "export")

_STACK_UP = "start the bundled stack: `llm-otel stack up` (or `docker compose -f observability/docker-compose.yml up -d`)"
_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


@dataclass(frozen=True)
class Check:
    name: str
    status: Status
    detail: str
    fix: str = ""

    def line(self) -> str:
        text = f"{self.status:<4} {self.name:<17} {self.detail}"
        return f"{text}. Fix: {self.fix}" if self.fix else text


# --------------------------------------------------------------------------- probes (also used by the demo)


@dataclass(frozen=True)
class Endpoint:
    """Where the OTLP exporters send, as resolved from the settings."""

    url: str
    host: str
    port: int
    protocol: str
    from_env: bool

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"


def otlp_endpoint(settings: Mapping[str, Any]) -> Endpoint:
    """The OTLP endpoint and its TCP address (raises ValueError for an unusable URL)."""
    protocol = str(settings.get("protocol") or "grpc")
    default_port = GRPC_PORT if protocol == "grpc" else HTTP_PORT
    raw = settings.get("endpoint")
    url = str(raw) if raw else f"http://localhost:{default_port}"
    parts = urllib.parse.urlsplit(url if "://" in url else f"http://{url}")
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"OTEL_EXPORTER_OTLP_ENDPOINT={url!r} is not an http(s)://host:port URL")
    port = parts.port or (443 if parts.scheme == "https" and raw else default_port)
    return Endpoint(url, parts.hostname, port, protocol, bool(raw))


def tcp_problem(host: str, port: int, timeout: float = 2.0) -> str | None:
    """None when something accepts a TCP connection at host:port, else why not."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return None
    except ConnectionRefusedError:
        return "connection refused: nothing listens there"
    except TimeoutError:
        return f"no answer within {timeout:g} s (a firewall, or the wrong host)"
    except socket.gaierror as exc:
        return f"cannot resolve host {host!r} ({exc.strerror})"
    except OSError as exc:
        return exc.strerror or str(exc)


@dataclass(frozen=True)
class HttpAnswer:
    status: int | None  # None: no HTTP answer at all
    body: bytes = b""
    error: str = ""

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300

    def describe(self) -> str:
        return f"HTTP {self.status}" if self.status is not None else self.error

    def json(self) -> Any:
        try:
            return json.loads(self.body)
        except ValueError:
            return None


def http_get(url: str, timeout: float = 2.0) -> HttpAnswer:
    try:
        with _NO_PROXY.open(url, timeout=timeout) as response:
            return HttpAnswer(int(response.status), response.read(1_000_000))
    except urllib.error.HTTPError as exc:
        return HttpAnswer(exc.code, exc.read(10_000) if exc.fp is not None else b"")
    except urllib.error.URLError as exc:
        reason = exc.reason
        if isinstance(reason, ConnectionRefusedError):
            return HttpAnswer(None, error="connection refused: nothing listens there")
        return HttpAnswer(None, error=str(getattr(reason, "strerror", None) or reason))
    except TimeoutError:
        return HttpAnswer(None, error=f"no answer within {timeout:g} s")
    except (OSError, ValueError) as exc:
        return HttpAnswer(None, error=str(exc))


def prometheus_url(environ: Mapping[str, str] | None = None) -> str:
    env = os.environ if environ is None else environ
    return (env.get(PROMETHEUS_URL_ENV) or DEFAULT_PROMETHEUS_URL).rstrip("/")


def grafana_url(environ: Mapping[str, str] | None = None) -> str:
    env = os.environ if environ is None else environ
    return (env.get(GRAFANA_URL_ENV) or DEFAULT_GRAFANA_URL).rstrip("/")


def collector_health_url(endpoint: Endpoint, environ: Mapping[str, str] | None = None) -> str:
    env = os.environ if environ is None else environ
    return env.get(COLLECTOR_HEALTH_URL_ENV) or f"http://{endpoint.host}:{COLLECTOR_HEALTH_PORT}/"


def prometheus_query(base_url: str, query: str, timeout: float = 2.0) -> list[Any] | None:
    """The instant-query result vector, or None when Prometheus did not answer with one."""
    answer = http_get(f"{base_url}/api/v1/query?{urllib.parse.urlencode({'query': query})}", timeout)
    data = answer.json() if answer.ok else None
    if not isinstance(data, dict) or data.get("status") != "success":
        return None
    result = data.get("data", {}).get("result")
    return result if isinstance(result, list) else None


# --------------------------------------------------------------------------- checks


def check_configuration(environ: Mapping[str, str]) -> tuple[Check, dict[str, Any]]:
    """Every variable the kit reads, parsed one by one so that all bad values are reported at once."""
    problems: list[str] = []
    bad: set[str] = set()
    for setting in _config.SETTINGS:
        for var in setting.env:
            raw = environ.get(var)
            if raw is None or not raw.strip():
                continue
            try:
                setting.parse(raw)
            except ValueError as exc:
                problems.append(f"{var}={raw!r} is invalid ({exc}; it sets: {setting.doc.rstrip('.')})")
                bad.add(var)
    settings = _config.resolve({}, {k: v for k, v in environ.items() if k not in bad})
    prices_problem = _prices_file_problem(settings.get("prices_file"))
    if prices_problem is not None:
        problems.append(prices_problem)
    if problems:
        return (
            Check("configuration", "FAIL", "; ".join(problems),
                  "correct or unset these variables (every setting: docs/configuration.md); "
                  "llm_otel.configure() raises ValueError on them"),
            settings,
        )
    try:
        endpoint = otlp_endpoint(settings)
    except ValueError as exc:
        return Check("configuration", "FAIL", str(exc), "use a URL like http://localhost:4317"), settings

    summary = (
        f"service_name={settings['service_name']}, endpoint={endpoint.url}"
        f"{'' if endpoint.from_env else ' (default)'}, protocol={settings['protocol']}, "
        f"traces={settings['traces_exporter']}, metrics={settings['metrics_exporter']}"
    )
    warnings: list[tuple[str, str]] = []
    if not settings["enabled"]:
        warnings.append(("the kit is switched off (LLM_OTEL_ENABLED=false or OTEL_SDK_DISABLED=true): "
                         "nothing is recorded", "unset LLM_OTEL_ENABLED / OTEL_SDK_DISABLED"))
    if settings["traces_exporter"] == "none" and settings["metrics_exporter"] == "none":
        warnings.append(("both exporters are off: no telemetry leaves the process",
                         "unset OTEL_TRACES_EXPORTER and OTEL_METRICS_EXPORTER (default otlp)"))
    if endpoint.protocol == "grpc" and endpoint.port == HTTP_PORT:
        warnings.append((f"the endpoint uses port {HTTP_PORT} (OTLP/HTTP) but the protocol is grpc",
                         f"use port {GRPC_PORT}, or set OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf"))
    if endpoint.protocol != "grpc" and endpoint.port == GRPC_PORT:
        warnings.append((f"the endpoint uses port {GRPC_PORT} (OTLP/gRPC) but the protocol is http/protobuf",
                         f"use port {HTTP_PORT}, or set OTEL_EXPORTER_OTLP_PROTOCOL=grpc"))
    if endpoint.protocol != "grpc" and "/v1/" in urllib.parse.urlsplit(endpoint.url).path:
        warnings.append(("the endpoint includes a /v1/... path; the kit appends /v1/traces and /v1/metrics itself",
                         "set OTEL_EXPORTER_OTLP_ENDPOINT to the base URL, e.g. http://localhost:4318"))
    if warnings:
        return (
            Check("configuration", "WARN", summary + "; " + "; ".join(w for w, _ in warnings),
                  "; ".join(f for _, f in warnings)),
            settings,
        )
    return Check("configuration", "OK", summary), settings


def _prices_file_problem(path: Any) -> str | None:
    """Why the LLM_OTEL_PRICES_FILE cannot be used (missing, unreadable, malformed), or None.

    A traced call without configure() would ignore such a file (and count it); configure() refuses it.
    """
    if not path:
        return None
    from llm_otel import Price

    try:
        with open(path, encoding="utf-8") as file:
            text = file.read()
        if str(path).endswith((".yaml", ".yml")):
            import yaml

            data = yaml.safe_load(text)
        else:
            data = json.loads(text)
        if not isinstance(data, Mapping):
            raise ValueError("expected a mapping of model name to prices")
        for model, raw in data.items():
            Price.from_mapping(str(model), raw)
    except Exception as exc:
        return f"LLM_OTEL_PRICES_FILE={path!r} cannot be used ({type(exc).__name__}: {exc})"
    return None


def check_otlp(settings: Mapping[str, Any], timeout: float) -> tuple[Check, Endpoint | None]:
    try:
        endpoint = otlp_endpoint(settings)
    except ValueError as exc:
        return Check("otlp-endpoint", "FAIL", str(exc), "use a URL like http://localhost:4317"), None
    if settings["traces_exporter"] != "otlp" and settings["metrics_exporter"] != "otlp":
        return Check("otlp-endpoint", "SKIP", "no OTLP exporter is configured"), endpoint
    problem = tcp_problem(endpoint.host, endpoint.port, timeout)
    if problem is None:
        return Check("otlp-endpoint", "OK", f"{endpoint.address} accepts connections ({endpoint.protocol})"), endpoint
    where = f"OTEL_EXPORTER_OTLP_ENDPOINT={endpoint.url}" if endpoint.from_env else "the default endpoint"
    return (
        Check("otlp-endpoint", "FAIL", f"cannot connect to {endpoint.address} ({where}): {problem}",
              f"{_STACK_UP}, or point OTEL_EXPORTER_OTLP_ENDPOINT at your collector"),
        endpoint,
    )


def check_collector_health(url: str, timeout: float) -> Check:
    answer = http_get(url, timeout)
    if answer.ok:
        return Check("collector-health", "OK", f"{url} reports the collector healthy")
    if answer.status is None:
        return Check("collector-health", "WARN", f"no health endpoint at {url} ({answer.error})",
                     f"the bundled collector serves one on :{COLLECTOR_HEALTH_PORT}; for a collector elsewhere "
                     f"set {COLLECTOR_HEALTH_URL_ENV}")
    return Check("collector-health", "FAIL", f"{url} answers {answer.describe()}: the collector is not ready",
                 "read the collector's log (`llm-otel stack status`; native stack: .run/stack/collector.log)")


def check_prometheus(url: str, timeout: float) -> Check:
    answer = http_get(f"{url}/-/ready", timeout)
    if answer.ok:
        return Check("prometheus", "OK", f"{url} is ready")
    if answer.status is None:
        return Check("prometheus", "FAIL", f"cannot reach Prometheus at {url} ({answer.error})",
                     f"{_STACK_UP}, or set {PROMETHEUS_URL_ENV} to your Prometheus")
    return Check("prometheus", "FAIL", f"{url}/-/ready answers {answer.describe()} (still starting, or broken)",
                 "wait a few seconds; if it persists read Prometheus's log")


def check_series(url: str, timeout: float) -> Check:
    series = TOKENS_INPUT.prometheus
    found = prometheus_query(url, f"count({series})", timeout)
    if found is None:
        return Check("llm-series", "FAIL", f"Prometheus at {url} did not answer the query count({series})",
                     "check that the URL is Prometheus's own (not Grafana's)")
    if found:
        count = int(float(found[0]["value"][1]))
        return Check("llm-series", "OK", f"{count} {series} series")
    if prometheus_query(url, 'count({__name__=~"llm_llm_.+"})', timeout):
        return Check("llm-series", "FAIL", "the series are named llm_llm_*: the collector's prometheus exporter "
                     "sets `namespace: llm`", "remove `namespace` from the collector's prometheus exporter so the "
                     "names match the dashboards and alerts (docs/migrating.md)")
    target = _collector_target(url, timeout)
    if target is None:
        config = http_get(f"{url}/api/v1/status/config", timeout).json()
        loaded = config.get("data", {}).get("yaml", "") if isinstance(config, dict) else ""
        if f"job_name: {COLLECTOR_SCRAPE_JOB}" in str(loaded):  # configured, targets not discovered yet
            return Check("llm-series", "WARN", f"Prometheus has not started scraping job {COLLECTOR_SCRAPE_JOB!r} yet",
                         "wait one scrape interval (15 s by default) and run `llm-otel doctor` again")
        return Check("llm-series", "FAIL", f"no {series} series and no scrape job {COLLECTOR_SCRAPE_JOB!r}",
                     "add the collector's metrics endpoint (:8889) to scrape_configs, as in "
                     "observability/prometheus/prometheus.yml")
    where = target.get("scrapeUrl", "?")
    health = target.get("health")
    if health == "down":
        return Check("llm-series", "FAIL", f"Prometheus cannot scrape the collector at {where} "
                     f"({target.get('lastError') or 'target down'})",
                     "is the collector running with its prometheus exporter on :8889? (`llm-otel stack status`)")
    if health != "up":
        return Check("llm-series", "WARN", f"Prometheus has not scraped the collector at {where} yet",
                     "wait one scrape interval (15 s by default) and run `llm-otel doctor` again")
    return Check("llm-series", "WARN", f"the collector is scraped but there is no {series} yet",
                 "make an LLM call with llm-otel configured (or run `llm-otel demo`) and wait one scrape interval")


def _collector_target(url: str, timeout: float) -> dict[str, Any] | None:
    """The collector's entry in Prometheus's active targets (health up/down/unknown, lastError)."""
    data = http_get(f"{url}/api/v1/targets?state=active", timeout).json()
    targets = data.get("data", {}).get("activeTargets") if isinstance(data, dict) else None
    for target in targets if isinstance(targets, list) else ():
        if isinstance(target, dict) and COLLECTOR_SCRAPE_JOB in (
            target.get("scrapePool"), (target.get("labels") or {}).get("job")
        ):
            return target
    return None


def check_drops(url: str, timeout: float) -> Check:
    """What Prometheus can see of a failing pipeline: drops the kit counted (they arrive once the
    offending items are gone) and services whose llm series vanished within the hour (a metric
    export that fails whole sends nothing, so its series expire from the collector after ~5 min).
    A service that simply stopped looks the same as one whose export fails: the app's log says which."""
    dropped = TELEMETRY_DROPPED.prometheus
    found = prometheus_query(url, f"sum by (job, signal, reason) (increase({dropped}[1h])) > 0", timeout)
    series = TOKENS_INPUT.prometheus
    gone = prometheus_query(url, f"count by (job) (last_over_time({series}[1h])) unless count by (job) ({series})",
                            timeout)
    if found is None or gone is None:
        return Check("telemetry-drops", "WARN", f"Prometheus at {url} did not answer the drop queries")
    problems = [
        f"{(r.get('metric') or {}).get('job', '?')}: {float(r['value'][1]):.0f} {(r.get('metric') or {}).get('signal')} "
        f"lost ({(r.get('metric') or {}).get('reason')})" for r in found if isinstance(r, dict)
    ]
    problems += [f"{(r.get('metric') or {}).get('job', '?')}: llm series stopped arriving within the last hour"
                 for r in gone if isinstance(r, dict)]
    if problems:
        return Check("telemetry-drops", "WARN", "; ".join(problems[:10]),
                     "read the app's log for 'llm-otel: ... could not be delivered' (logged once per cause); "
                     "docs/metrics.md lists the reasons")
    return Check("telemetry-drops", "OK", "no telemetry dropped in the last hour")


def check_export(now: float | None = None) -> Check:
    """The exporters' state in THIS process (only meaningful when the doctor runs inside the app,
    e.g. ``llm_otel._doctor.run_doctor()`` from a debug endpoint): the one view of a metric export
    that fails whole, since such a failure cannot report itself through metrics."""
    import sys
    import time

    delivery = sys.modules.get("llm_otel._delivery")
    sink = delivery.pipeline_status() if delivery is not None else None
    if sink is None:
        return Check("export", "SKIP", "the kit's exporters are not running in this process "
                     "(the CLI runs apart from the app; telemetry-drops is what Prometheus sees)")
    now = time.time() if now is None else now
    failing = [signal for signal, down in sink.failing.items() if down]
    lost = ", ".join(f"{count} {signal} ({reason})" for (signal, reason), count in sorted(sink.totals.items()))
    if failing:
        latest = "; ".join(f"{signal}: last export failed {now - sink.last_failure[signal][0]:.0f} s ago "
                           f"({sink.last_failure[signal][1]})" for signal in sorted(failing))
        return Check("export", "FAIL" if "metrics" in failing else "WARN", f"{latest}; lost so far: {lost}",
                     "see the log line 'llm-otel: ... could not be delivered' for the cause")
    if lost:
        return Check("export", "WARN", f"exports succeed now; lost so far: {lost}")
    if not sink.last_success:
        return Check("export", "OK", "nothing exported yet")
    return Check("export", "OK", "; ".join(f"{signal} exported {now - when:.0f} s ago"
                                           for signal, when in sorted(sink.last_success.items())))


def check_grafana(url: str, timeout: float) -> Check:
    answer = http_get(f"{url}/api/health", timeout)
    health = answer.json() if answer.status is not None else None
    if answer.ok and isinstance(health, dict) and health.get("database", "ok") == "ok":
        version = f" {health['version']}" if health.get("version") else ""
        return Check("grafana", "OK", f"Grafana{version} at {url}; dashboard {url}{DASHBOARD_PATH}")
    if answer.status is None:
        return Check("grafana", "WARN", f"no Grafana at {url} ({answer.error})",
                     "the docker stack includes it (`llm-otel stack up --mode docker`, needs "
                     f"GF_SECURITY_ADMIN_PASSWORD); for your own Grafana set {GRAFANA_URL_ENV}")
    database = health.get("database") if isinstance(health, dict) else None
    reason = f"database {database!r}" if database else answer.describe()
    return Check("grafana", "FAIL", f"Grafana at {url} is unhealthy ({reason})",
                 "read Grafana's log (`docker compose -f observability/docker-compose.yml logs grafana`)")


def run_checks(
    environ: Mapping[str, str] | None = None, *, timeout: float = 2.0, skip: Iterable[str] = ()
) -> list[Check]:
    env = dict(os.environ if environ is None else environ)
    skipped = set(skip)
    checks: list[Check] = []
    config, settings = check_configuration(env)
    checks.append(config)
    if "otlp-endpoint" in skipped:
        checks.append(Check("otlp-endpoint", "SKIP", "skipped (--skip)"))
        endpoint = None
    else:
        otlp, endpoint = check_otlp(settings, timeout)
        checks.append(otlp)
    if "collector-health" in skipped or endpoint is None:
        checks.append(Check("collector-health", "SKIP", "skipped"))
    else:
        checks.append(check_collector_health(collector_health_url(endpoint, env), timeout))
    prometheus = prometheus_url(env)
    if "prometheus" in skipped:
        checks.append(Check("prometheus", "SKIP", "skipped (--skip)"))
        prometheus_ok = False
    else:
        checks.append(check_prometheus(prometheus, timeout))
        prometheus_ok = checks[-1].status == "OK"
    if "llm-series" in skipped or not prometheus_ok:
        checks.append(Check("llm-series", "SKIP", "skipped" if "llm-series" in skipped else "needs Prometheus"))
    else:
        checks.append(check_series(prometheus, timeout))
    if "telemetry-drops" in skipped or not prometheus_ok:
        checks.append(Check("telemetry-drops", "SKIP",
                            "skipped" if "telemetry-drops" in skipped else "needs Prometheus"))
    else:
        checks.append(check_drops(prometheus, timeout))
    if "grafana" in skipped:
        checks.append(Check("grafana", "SKIP", "skipped (--skip)"))
    else:
        checks.append(check_grafana(grafana_url(env), timeout))
    checks.append(Check("export", "SKIP", "skipped (--skip)") if "export" in skipped else check_export())
    return checks


def run_doctor(
    environ: Mapping[str, str] | None = None,
    *,
    out: TextIO | None = None,
    timeout: float = 2.0,
    skip: Iterable[str] = (),
) -> int:
    """Print one line per check; 1 when a required check failed, else 0."""
    stream = out or sys.stdout
    checks = run_checks(environ, timeout=timeout, skip=skip)
    print(f"llm-otel doctor (llm-otel {VERSION})", file=stream)
    for check in checks:
        print(check.line(), file=stream)
    failed = [check.name for check in checks if check.status == "FAIL"]
    if failed:
        print(f"{len(failed)} check(s) failed: {', '.join(failed)}", file=stream)
        return 1
    print("no required check failed", file=stream)
    return 0
