"""Start, stop and inspect the bundled observability stack (`llm-otel stack up|down|status`).

Two modes:

* native: the locally built Collector (``otelcol-llm``) and ``prometheus`` from PATH,
  run as background processes on localhost. They use the same files as the
  docker compose stack: the Collector reads ``observability/collector/config.yaml``
  (plus the ``file-export.yaml`` overlay, since there is no Tempo) with its
  endpoints set through ``LLM_OTEL_*`` environment variables; Prometheus gets a
  copy of ``observability/prometheus/prometheus.yml`` rendered for localhost.
  Logs, pid files, the rendered config and the exported traces live in the run
  directory (``$LLM_OTEL_RUN_DIR`` or ``./.run/stack``).
* docker: ``docker compose -f observability/docker-compose.yml up -d`` when a
  Docker engine answers; ports are the compose defaults.

Only the standard library is imported at module level; PyYAML (a core
dependency) is imported when a config is rendered.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Literal, NamedTuple

__all__ = [
    "COLLECTOR_BINARY_NAME",
    "ComponentStatus",
    "StackError",
    "StackInfo",
    "StackPorts",
    "build_collector",
    "collector_binary",
    "collector_cache_path",
    "collector_environment",
    "default_run_dir",
    "observability_dir",
    "render_prometheus_config",
    "stack_down",
    "stack_status",
    "stack_up",
]

COLLECTOR_BINARY_NAME = "otelcol-llm"
BUILD_COMMAND = "llm-otel stack build"
LOCALHOST = "127.0.0.1"
StackMode = Literal["native", "docker"]

PORTS_ENV = "LLM_OTEL_STACK_PORTS"
_DOCKER_ONLY_PORTS = frozenset({"grafana", "tempo", "alertmanager"})  # same syntax as `llm-otel stack up --ports`
_STATE_FILE = "stack.json"
_COLLECTOR_CONFIGS = ("config.yaml", "file-export.yaml")
# Scrape jobs of the shipped prometheus.yml and the native port each one points at.
_JOB_PORTS = {
    "otel-collector": "collector_metrics",
    "otel-collector-internal": "collector_telemetry",
    "prometheus": "prometheus",
}
# Processes started by this interpreter, kept so they can be reaped (no zombies,
# no "still running" warnings) when stack_down runs in the same process.
_CHILDREN: dict[int, subprocess.Popen[bytes]] = {}


class StackError(RuntimeError):
    """The stack could not be started, found or stopped; the message says what to do."""


@dataclass(frozen=True)
class StackPorts:
    """Local ports of the native stack. The defaults match docker-compose.yml."""

    otlp_grpc: int = 4317
    otlp_http: int = 4318
    collector_metrics: int = 8889  # prometheus exporter: the LLM metrics
    collector_health: int = 13133  # health_check extension
    collector_telemetry: int = 8888  # the Collector's own otelcol_* metrics
    prometheus: int = 9090
    # published by docker compose only
    grafana: int = 3000
    tempo: int = 3200
    alertmanager: int = 9093

    @classmethod
    def parse(cls, spec: str, base: StackPorts | None = None) -> StackPorts:
        """Ports from ``--ports`` / ``$LLM_OTEL_STACK_PORTS``: ``free`` (ports the OS reports free),
        ``+N`` (every port of ``base`` moved by N), or ``name=port`` pairs separated by commas
        (``otlp_grpc=14317,prometheus=19090``; ``-`` and ``_`` alike); unnamed ports keep ``base``."""
        base = base or cls()
        text = spec.strip()
        if text == "free":
            return cls.free()
        if text.startswith("+") and text[1:].isdigit():
            offset = int(text[1:])
            moved = {name: port + offset for name, port in base.named().items()}
            if max(moved.values()) > 65535:
                raise StackError(f"--ports {spec}: moves a port past 65535")
            return cls(**moved)
        named = base.named()
        for pair in filter(None, (part.strip() for part in text.split(","))):
            name, sep, value = pair.partition("=")
            key = name.strip().replace("-", "_")
            if not sep or key not in named or not value.strip().isdigit() or not 0 < int(value) < 65536:
                raise StackError(
                    f"--ports {spec}: {pair!r} is not name=port with a name of {', '.join(named)} "
                    "(or use 'free' or '+OFFSET')"
                )
            named[key] = int(value)
        return cls(**named)

    @classmethod
    def free(cls, host: str = LOCALHOST) -> StackPorts:
        """Ports the OS reports free right now (for tests and parallel stacks)."""
        with contextlib.ExitStack() as stack:
            numbers = []
            for _ in fields(cls):
                sock = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
                sock.bind((host, 0))
                numbers.append(int(sock.getsockname()[1]))
        return cls(*numbers)

    def named(self) -> dict[str, int]:
        return asdict(self)


@dataclass(frozen=True)
class StackInfo:
    """Where the running stack listens and writes."""

    mode: StackMode
    run_dir: Path
    ports: StackPorts
    host: str = LOCALHOST
    with_prometheus: bool = True
    traces_file: Path | None = None
    metrics_file: Path | None = None
    pids: Mapping[str, int] = field(default_factory=dict)

    @property
    def otlp_grpc_endpoint(self) -> str:
        """For OTEL_EXPORTER_OTLP_ENDPOINT with the gRPC exporter."""
        return f"http://{self.host}:{self.ports.otlp_grpc}"

    @property
    def otlp_http_endpoint(self) -> str:
        """For OTEL_EXPORTER_OTLP_ENDPOINT with the HTTP/protobuf exporter."""
        return f"http://{self.host}:{self.ports.otlp_http}"

    @property
    def collector_metrics_url(self) -> str:
        """The LLM metrics as the Collector's prometheus exporter exposes them."""
        return f"http://{self.host}:{self.ports.collector_metrics}/metrics"

    @property
    def collector_telemetry_url(self) -> str:
        """The Collector's own metrics (otelcol_*)."""
        return f"http://{self.host}:{self.ports.collector_telemetry}/metrics"

    @property
    def collector_health_url(self) -> str:
        return f"http://{self.host}:{self.ports.collector_health}/"

    @property
    def prometheus_url(self) -> str | None:
        return f"http://{self.host}:{self.ports.prometheus}" if self.with_prometheus else None

    def describe(self) -> str:
        """Human-readable summary for the CLI."""
        lines = [
            f"llm-otel stack ({self.mode}), run directory {self.run_dir}",
            f"  OTLP gRPC        {self.otlp_grpc_endpoint}",
            f"  OTLP HTTP        {self.otlp_http_endpoint}",
            f"  LLM metrics      {self.collector_metrics_url}",
            f"  Collector health {self.collector_health_url}",
        ]
        if self.prometheus_url:
            lines.append(f"  Prometheus       {self.prometheus_url}")
        if self.mode == "docker":
            lines.append(f"  Grafana          http://{self.host}:{self.ports.grafana}")
            lines.append(f"  Tempo            http://{self.host}:{self.ports.tempo}")
            lines.append(f"  Alertmanager     http://{self.host}:{self.ports.alertmanager}")
        if self.traces_file:
            lines.append(f"  Traces file      {self.traces_file}")
        if self.mode == "native":
            lines.append(f"  Logs             {self.run_dir}/*.log")
        lines.append(f"Point applications at it: OTEL_EXPORTER_OTLP_ENDPOINT={self.otlp_grpc_endpoint}")
        return "\n".join(lines)

    def _to_json(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "run_dir": str(self.run_dir),
            "ports": self.ports.named(),
            "host": self.host,
            "with_prometheus": self.with_prometheus,
            "traces_file": str(self.traces_file) if self.traces_file else None,
            "metrics_file": str(self.metrics_file) if self.metrics_file else None,
            "pids": dict(self.pids),
        }

    @classmethod
    def _from_json(cls, data: Mapping[str, Any]) -> StackInfo:
        return cls(
            mode="docker" if data["mode"] == "docker" else "native",
            run_dir=Path(data["run_dir"]),
            ports=StackPorts(**data["ports"]),
            host=str(data.get("host", LOCALHOST)),
            with_prometheus=bool(data.get("with_prometheus", True)),
            traces_file=Path(data["traces_file"]) if data.get("traces_file") else None,
            metrics_file=Path(data["metrics_file"]) if data.get("metrics_file") else None,
            pids={str(k): int(v) for k, v in dict(data.get("pids", {})).items()},
        )


class ComponentStatus(NamedTuple):
    component: str
    up: bool
    url: str


# --------------------------------------------------------------------------- locating files


def observability_dir() -> Path:
    """The observability/ folder: $LLM_OTEL_OBSERVABILITY_DIR, the one the package carries (a
    wheel's copy, or in a checkout ``llm_otel/observability``, a link to the top-level folder),
    the source checkout's, or the cwd's."""
    candidates: list[Path] = []
    env = os.environ.get("LLM_OTEL_OBSERVABILITY_DIR")
    if env:
        candidates.append(Path(env))
    package = Path(__file__).resolve().parents[1]  # llm_otel/ (this module is llm_otel/tools/_stack.py)
    candidates.append(package / "observability")
    candidates.append(package.parent / "observability")
    cwd = Path.cwd().resolve()
    candidates.extend(parent / "observability" for parent in (cwd, *cwd.parents))
    for candidate in candidates:
        if (candidate / "collector" / "config.yaml").is_file():
            return candidate
    raise StackError(
        "cannot find the observability/ folder (collector and Prometheus configs); run from a "
        "checkout of llm-otel or set LLM_OTEL_OBSERVABILITY_DIR to its observability/ folder"
    )


def default_run_dir() -> Path:
    return Path(os.environ.get("LLM_OTEL_RUN_DIR") or Path.cwd() / ".run" / "stack")


def collector_cache_path(manifest: Path | None = None) -> Path:
    """Where scripts/build-collector.sh puts the Collector built from ``manifest``.

    ``${LLM_OTEL_CACHE:-~/.cache/llm-otel}/otelcol-<version>-<sha256(manifest)[:12]>/otelcol-llm``
    """
    import yaml

    manifest = manifest or observability_dir() / "collector" / "builder-config.yaml"
    raw = manifest.read_bytes()
    version = str(yaml.safe_load(raw)["dist"]["version"])
    digest = hashlib.sha256(raw).hexdigest()[:12]
    cache = Path(os.environ.get("LLM_OTEL_CACHE") or Path.home() / ".cache" / "llm-otel")
    return cache / f"otelcol-{version}-{digest}" / COLLECTOR_BINARY_NAME


def collector_binary() -> Path:
    """$LLM_OTEL_COLLECTOR_BIN, else the cached build of the shipped manifest."""
    env = os.environ.get("LLM_OTEL_COLLECTOR_BIN")
    if env:
        path = Path(env)
        if not _is_executable(path):
            raise StackError(f"LLM_OTEL_COLLECTOR_BIN={env} is not an executable file")
        return path
    path = collector_cache_path()
    if not _is_executable(path):
        raise StackError(
            f"the llm-otel Collector is not built yet (expected {path}); build it once with "
            f"`{BUILD_COMMAND}` (or `bash scripts/build-collector.sh` in a checkout; needs Go and the Go "
            "module proxy, a few minutes), or set LLM_OTEL_COLLECTOR_BIN"
        )
    return path


def _prometheus_binary() -> Path:
    env = os.environ.get("LLM_OTEL_PROMETHEUS_BIN")
    found = env or shutil.which("prometheus")
    if not found or not _is_executable(Path(found)):
        raise StackError(
            "`prometheus` is not on PATH; install it (Debian/Ubuntu: apt-get install prometheus, "
            "or a release from https://prometheus.io/download/), set LLM_OTEL_PROMETHEUS_BIN, "
            "or start with with_prometheus=False"
        )
    return Path(found)


def _is_executable(path: Path) -> bool:
    return path.is_file() and os.access(path, os.X_OK)


def build_collector(*, print_path: bool = False) -> int:
    """Run the build script the package carries (``scripts/build-collector.sh``, reached through
    ``llm_otel/build-collector.sh``) on the manifest of :func:`observability_dir`; a cached build
    returns at once. Output goes to the terminal; returns the script's exit code."""
    script = Path(__file__).resolve().parents[1] / "build-collector.sh"  # llm_otel/build-collector.sh
    if not script.is_file():
        raise StackError(f"the collector build script is missing ({script}); reinstall llm-otel")
    bash = shutil.which("bash")
    if bash is None:
        raise StackError("building the collector needs bash (and Go); or set LLM_OTEL_COLLECTOR_BIN to a built one")
    env = {**os.environ, "LLM_OTEL_COLLECTOR_MANIFEST": str(observability_dir() / "collector" / "builder-config.yaml")}
    command = [bash, str(script), *(["--print-path"] if print_path else [])]
    return subprocess.run(command, env=env, check=False).returncode


# --------------------------------------------------------------------------- rendering


def collector_environment(ports: StackPorts, run_dir: Path, host: str = LOCALHOST) -> dict[str, str]:
    """The LLM_OTEL_* variables that point the shipped Collector config at local ports."""
    return {
        "LLM_OTEL_OTLP_GRPC_ENDPOINT": f"{host}:{ports.otlp_grpc}",
        "LLM_OTEL_OTLP_HTTP_ENDPOINT": f"{host}:{ports.otlp_http}",
        "LLM_OTEL_PROMETHEUS_EXPORTER_ENDPOINT": f"{host}:{ports.collector_metrics}",
        "LLM_OTEL_HEALTH_ENDPOINT": f"{host}:{ports.collector_health}",
        "LLM_OTEL_COLLECTOR_TELEMETRY_HOST": host,
        "LLM_OTEL_COLLECTOR_TELEMETRY_PORT": str(ports.collector_telemetry),
        "LLM_OTEL_TRACES_FILE": str(run_dir / "traces.jsonl"),
        "LLM_OTEL_METRICS_FILE": str(run_dir / "metrics.jsonl"),
    }


def render_prometheus_config(
    source: Path,
    ports: StackPorts,
    *,
    host: str = LOCALHOST,
    scrape_interval: str | None = None,
    alertmanager: str | None = None,
) -> str:
    """The shipped prometheus.yml with localhost targets and absolute rule file paths.

    Jobs of the shipped file point at ``host:<port>``; other jobs are kept as they are.
    Without ``alertmanager`` ("host:port") the alerting section is dropped (rules still
    evaluate and show on /alerts). ``scrape_interval`` also sets the evaluation interval.
    """
    import yaml

    config: dict[str, Any] = yaml.safe_load(source.read_text())
    named = ports.named()
    for job in config.get("scrape_configs", []):
        port_name = _JOB_PORTS.get(str(job.get("job_name")))
        if port_name is not None:
            job["static_configs"] = [{"targets": [f"{host}:{named[port_name]}"]}]
    config["rule_files"] = [
        str(Path(rule) if Path(rule).is_absolute() else (source.parent / rule).resolve())
        for rule in config.get("rule_files", [])
    ]
    if alertmanager:
        config["alerting"] = {"alertmanagers": [{"static_configs": [{"targets": [alertmanager]}]}]}
    else:
        config.pop("alerting", None)
    if scrape_interval:
        config.setdefault("global", {})
        config["global"]["scrape_interval"] = scrape_interval
        config["global"]["evaluation_interval"] = scrape_interval
    header = f"# Rendered by `llm-otel stack up` from {source}; edit that file, not this copy.\n"
    return header + yaml.safe_dump(config, sort_keys=False)


# --------------------------------------------------------------------------- up / down / status


def stack_up(
    run_dir: Path | None = None,
    *,
    with_prometheus: bool = True,
    ports: StackPorts | None = None,
    mode: Literal["auto", "native", "docker"] = "auto",
    host: str = LOCALHOST,
    scrape_interval: str | None = None,
    alertmanager: str | None = None,
    collector: Path | None = None,
    prometheus: Path | None = None,
    timeout: float = 60.0,
) -> StackInfo:
    """Start the stack and wait until it is healthy; returns where everything listens.

    ``mode="auto"`` uses docker compose when ``docker info`` succeeds, else native.
    Native mode runs ``collector`` (default: :func:`collector_binary`) and
    ``prometheus`` (default: from PATH) on ``host`` with ``ports``; ``scrape_interval``
    (e.g. "1s" in tests) overrides the shipped 15s scrape and rule evaluation interval,
    ``alertmanager`` ("host:port") enables alert delivery. If the native stack in
    ``run_dir`` is already running, returns its info unchanged.
    """
    run_dir = (run_dir or default_run_dir()).resolve()
    existing = _load_state(run_dir)
    if mode == "auto":
        mode = existing.mode if existing else ("docker" if _docker_available() else "native")
    if existing is not None and existing.mode != mode:
        raise StackError(
            f"a {existing.mode} stack is recorded in {run_dir}; stop it first (`llm-otel stack down`)"
        )
    if ports is None and os.environ.get(PORTS_ENV, "").strip():
        ports = StackPorts.parse(os.environ[PORTS_ENV])
    if mode == "docker":
        return _docker_up(run_dir, host, ports or StackPorts())

    if existing is not None:
        if all(_running(pid, run_dir) for pid in existing.pids.values()):
            return existing
        stack_down(run_dir)  # leftovers of a stack that partly died

    ports = ports or StackPorts()
    collector = collector or collector_binary()
    prometheus = (prometheus or _prometheus_binary()) if with_prometheus else None
    _check_ports_free(ports, host, with_prometheus)
    obs = observability_dir()
    run_dir.mkdir(parents=True, exist_ok=True)
    info = StackInfo(
        mode="native",
        run_dir=run_dir,
        ports=ports,
        host=host,
        with_prometheus=with_prometheus,
        traces_file=run_dir / "traces.jsonl",
        metrics_file=run_dir / "metrics.jsonl",
    )
    pids: dict[str, int] = {}
    try:
        env = collector_environment(ports, run_dir, host)
        (run_dir / "collector.env").write_text("".join(f"{k}={v}\n" for k, v in env.items()))
        command = [str(collector)]
        for name in _COLLECTOR_CONFIGS:
            command.append(f"--config=file:{obs / 'collector' / name}")
        pids["collector"] = _spawn("collector", command, run_dir, {**os.environ, **env})
        _save_state(_with_pids(info, pids))
        _wait_healthy("collector", info.collector_health_url, pids["collector"], run_dir, timeout)

        if prometheus is not None:
            rendered = run_dir / "prometheus.yml"
            rendered.write_text(
                render_prometheus_config(
                    obs / "prometheus" / "prometheus.yml",
                    ports,
                    host=host,
                    scrape_interval=scrape_interval,
                    alertmanager=alertmanager,
                )
            )
            command = [
                str(prometheus),
                f"--config.file={rendered}",
                f"--storage.tsdb.path={run_dir / 'prometheus-data'}",
                f"--web.listen-address={host}:{ports.prometheus}",
                "--enable-feature=exemplar-storage",
                "--web.enable-lifecycle",
            ]
            pids["prometheus"] = _spawn("prometheus", command, run_dir, dict(os.environ))
            _save_state(_with_pids(info, pids))
            _wait_healthy("prometheus", f"{info.prometheus_url}/-/ready", pids["prometheus"], run_dir, timeout)
    except BaseException:
        for pid in pids.values():
            _terminate(pid, run_dir)
        (run_dir / _STATE_FILE).unlink(missing_ok=True)
        raise
    return _with_pids(info, pids)


def stack_down(run_dir: Path | None = None, *, timeout: float = 20.0) -> list[str]:
    """Stop the stack started from ``run_dir``; returns the components that were stopped."""
    run_dir = (run_dir or default_run_dir()).resolve()
    info = _load_state(run_dir)
    if info is None:
        return []
    stopped: list[str] = []
    if info.mode == "docker":
        _compose("down", env=compose_environment(info.ports))
        stopped.append("docker compose")
    else:
        # Prometheus first, so it does not record the Collector going away as an outage.
        for component in sorted(info.pids, key=lambda name: name != "prometheus"):
            if _terminate(info.pids[component], run_dir, timeout):
                stopped.append(component)
            (run_dir / f"{component}.pid").unlink(missing_ok=True)
    (run_dir / _STATE_FILE).unlink(missing_ok=True)
    return stopped


def stack_status(run_dir: Path | None = None) -> list[ComponentStatus]:
    """Each component of the stack, whether it answers, and its URL."""
    run_dir = (run_dir or default_run_dir()).resolve()
    info = _load_state(run_dir) or StackInfo(mode="native", run_dir=run_dir, ports=StackPorts())
    rows = [
        ComponentStatus(
            "collector",
            _component_up(info, "collector", info.collector_health_url),
            info.collector_health_url,
        ),
        ComponentStatus(
            "collector metrics",
            _component_up(info, "collector", info.collector_metrics_url),
            info.collector_metrics_url,
        ),
    ]
    if info.prometheus_url:
        rows.append(
            ComponentStatus(
                "prometheus",
                _component_up(info, "prometheus", f"{info.prometheus_url}/-/ready"),
                info.prometheus_url,
            )
        )
    if info.mode == "docker":
        for component, base, probe in (
            ("grafana", f"http://{info.host}:3000", "/api/health"),
            ("tempo", f"http://{info.host}:3200", "/ready"),
            ("alertmanager", f"http://{info.host}:9093", "/-/ready"),
        ):
            rows.append(ComponentStatus(component, _http_ok(base + probe), base))
    return rows


# --------------------------------------------------------------------------- process helpers


def _spawn(component: str, command: list[str], run_dir: Path, env: Mapping[str, str]) -> int:
    log_path = run_dir / f"{component}.log"
    with log_path.open("ab") as log:
        log.write(f"\n--- {time.strftime('%Y-%m-%dT%H:%M:%S')} {' '.join(command)}\n".encode())
        log.flush()
        # A new session: the process outlives `llm-otel stack up` and ignores the terminal's Ctrl-C.
        process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=run_dir,
            env=dict(env),
            start_new_session=True,
        )
    _CHILDREN[process.pid] = process
    (run_dir / f"{component}.pid").write_text(f"{process.pid}\n")
    return process.pid


def _wait_healthy(component: str, url: str, pid: int, run_dir: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _running(pid, run_dir):
            raise StackError(f"{component} exited during startup:\n{_log_tail(run_dir / f'{component}.log')}")
        if _http_ok(url):
            return
        time.sleep(0.2)
    raise StackError(
        f"{component} did not become healthy at {url} within {timeout:.0f}s:\n"
        f"{_log_tail(run_dir / f'{component}.log')}"
    )


def _terminate(pid: int, run_dir: Path, timeout: float = 20.0) -> bool:
    """SIGTERM, then SIGKILL after ``timeout``; True if our process was running."""
    if not _running(pid, run_dir):
        _reap(pid)
        return False
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while _running(pid, run_dir) and time.monotonic() < deadline:
        time.sleep(0.1)
    if _running(pid, run_dir):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    _reap(pid, wait=True)
    return True


def _reap(pid: int, wait: bool = False) -> None:
    process = _CHILDREN.pop(pid, None)
    if process is not None:
        if wait:
            process.wait(timeout=10)
        else:
            process.poll()


def _running(pid: int, run_dir: Path) -> bool:
    """Is ``pid`` alive and one of the processes started for ``run_dir``?"""
    process = _CHILDREN.get(pid)
    if process is not None:
        return process.poll() is None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return False  # another user's process: a recycled pid, not ours
    proc = Path(f"/proc/{pid}")
    if not proc.is_dir():
        return True  # no procfs (macOS): trust the pid file
    try:
        # A zombie (exited, not yet reaped by its parent) is not running.
        if (proc / "stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
            return False
        # Processes are started with the run directory as working directory; a
        # recycled pid belongs to something else and must not be signalled.
        return Path(os.readlink(proc / "cwd")) == run_dir
    except (OSError, IndexError):
        return False


def _component_up(info: StackInfo, component: str, url: str) -> bool:
    pid = info.pids.get(component)
    if info.mode == "native" and pid is not None and not _running(pid, info.run_dir):
        return False
    return _http_ok(url)


def _http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return 200 <= int(response.status) < 300
    except (urllib.error.URLError, OSError, ValueError):
        return False


def _check_ports_free(ports: StackPorts, host: str, with_prometheus: bool) -> None:
    busy = []
    for name, port in ports.named().items():
        if (name == "prometheus" and not with_prometheus) or name in _DOCKER_ONLY_PORTS:
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind((host, port))
            except OSError:
                busy.append(f"{port} ({name})")
    if busy:
        raise StackError(
            f"ports already in use on {host}: {', '.join(busy)}; stop what uses them "
            "(`llm-otel stack down`, or the docker compose stack) or move the stack's ports "
            "(`llm-otel stack up --ports free`, `--ports +10000`, or `--ports otlp_grpc=14317,...`; "
            f"${PORTS_ENV} takes the same)"
        )


def _log_tail(path: Path, lines: int = 25) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return f"(no log at {path})"


def _with_pids(info: StackInfo, pids: Mapping[str, int]) -> StackInfo:
    return StackInfo(**{**{f.name: getattr(info, f.name) for f in fields(info)}, "pids": dict(pids)})


def _save_state(info: StackInfo) -> None:
    (info.run_dir / _STATE_FILE).write_text(json.dumps(info._to_json(), indent=2) + "\n")


def _load_state(run_dir: Path) -> StackInfo | None:
    try:
        return StackInfo._from_json(json.loads((run_dir / _STATE_FILE).read_text()))
    except (OSError, ValueError, KeyError, TypeError):
        return None


# --------------------------------------------------------------------------- docker compose


def _docker_available() -> bool:
    if shutil.which("docker") is None:
        return False
    try:
        result = subprocess.run(["docker", "info"], capture_output=True, timeout=20, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return result.returncode == 0


def _compose(*args: str, env: Mapping[str, str] | None = None) -> None:
    compose_file = observability_dir() / "docker-compose.yml"
    command = ["docker", "compose", "-f", str(compose_file), *args]
    result = subprocess.run(command, capture_output=True, text=True, check=False,
                            env={**os.environ, **env} if env else None)
    if result.returncode != 0:
        raise StackError(f"`{' '.join(command)}` failed:\n{result.stderr.strip()}")


def compose_environment(ports: StackPorts) -> dict[str, str]:
    """The host ports docker-compose.yml publishes (``${LLM_OTEL_PORT_<NAME>:-default}``)."""
    return {f"LLM_OTEL_PORT_{name.upper()}": str(port) for name, port in ports.named().items()}


def _docker_up(run_dir: Path, host: str, ports: StackPorts) -> StackInfo:
    """docker compose up -d with ``ports`` published on the host (not covered by the test suite)."""
    if not os.environ.get("GF_SECURITY_ADMIN_PASSWORD"):
        raise StackError("set GF_SECURITY_ADMIN_PASSWORD (the Grafana admin password) before starting with Docker")
    _compose("up", "-d", env=compose_environment(ports))
    run_dir.mkdir(parents=True, exist_ok=True)
    info = StackInfo(mode="docker", run_dir=run_dir, ports=ports, host=host)
    _save_state(info)
    return info
