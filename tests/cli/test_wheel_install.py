"""A user who only has the wheel: ``pip install llm-otel``, then the demo and ``llm-otel stack up``.

The wheel is built from this tree and installed (not editable) into a fresh virtual
environment that borrows the installed dependencies but not the kit; every command
runs through the installed ``llm-otel`` script from a directory outside the checkout.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
import venv
from pathlib import Path

import pytest

from llm_otel.tools._stack import collector_cache_path

ROOT = Path(__file__).resolve().parents[2]


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    tmp = tmp_path_factory.mktemp("wheel-user")
    # build from a clean copy of the tree (links kept as links): a stale build/ in the checkout
    # would otherwise put modules into the wheel that the tree no longer has
    source = tmp / "source"
    shutil.copytree(ROOT, source, symlinks=True, ignore=shutil.ignore_patterns(
        ".git", "build", "dist", ".run", "*.egg-info", "__pycache__", ".*_cache", ".hypothesis"))
    wheels = tmp / "wheels"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(wheels),
         str(source)],
        check=True, timeout=300,
    )
    (wheel,) = wheels.glob("llm_otel-*.whl")
    env_dir = tmp / "venv"
    venv.create(env_dir, system_site_packages=True, with_pip=False)
    python = env_dir / "bin" / "python"
    # the venv's own pip (borrowed from the system site) installs the kit and its script into the venv
    subprocess.run(
        [str(python), "-m", "pip", "install", "--no-deps", "--ignore-installed", "-q", str(wheel)],
        check=True, timeout=300,
    )
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "LLM_OTEL_OBSERVABILITY_DIR",
                                                           "LLM_OTEL_RUN_DIR", "LLM_OTEL_STACK_PORTS")}
    # never a stack someone else runs on the default ports
    env["OTEL_EXPORTER_OTLP_ENDPOINT"] = f"http://127.0.0.1:{_closed_port()}"
    where = subprocess.run([str(python), "-c", "import llm_otel, llm_otel.tools._stack as s; "
                            "print(llm_otel.__file__); print(s.observability_dir())"],
                           cwd=tmp, env=env, capture_output=True, text=True, check=True).stdout.split()
    assert Path(where[0]).resolve().is_relative_to(env_dir.resolve()), where  # the kit comes from the wheel
    assert Path(where[1]).resolve().is_relative_to(env_dir.resolve()), where  # and so do its configs
    return env_dir / "bin" / "llm-otel", env


def _run(command: list[str], cwd: Path, env: dict[str, str], timeout: float = 180) -> str:
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"{command}: {done.returncode}\n{done.stdout}\n{done.stderr}"
    return done.stdout


@pytest.mark.slow
def test_demo_runs_from_the_wheel(installed: tuple[Path, dict[str, str]], tmp_path: Path) -> None:
    script, env = installed
    out = _run([str(script), "demo", "--duration", "2", "--rate", "6", "--no-live"], tmp_path, env)
    assert "gpt" in out  # the per-model table the demo prints from its own metrics


@pytest.mark.slow
@pytest.mark.stack
def test_stack_up_with_moved_ports_and_down_from_the_wheel(
    installed: tuple[Path, dict[str, str]], tmp_path: Path, collector_bin: Path, prometheus_bin: Path
) -> None:
    script, env = installed
    env = {**env, "LLM_OTEL_PROMETHEUS_BIN": str(prometheus_bin)}
    env.pop("LLM_OTEL_COLLECTOR_BIN", None)
    if collector_bin.resolve() == collector_cache_path().resolve():
        # the wheel's build script and manifest find the cached build (a Go build when there is none)
        built = subprocess.run([str(script), "stack", "build"], cwd=tmp_path, env=env, capture_output=True,
                               text=True, timeout=900)
        assert built.returncode == 0, built.stderr
        assert f"collector binary: {collector_bin}" in built.stderr
    else:
        env["LLM_OTEL_COLLECTOR_BIN"] = str(collector_bin)
    run_dir = tmp_path / "run"
    ports = {"otlp_grpc": _closed_port(), "otlp_http": _closed_port(), "collector_metrics": _closed_port(),
             "collector_health": _closed_port(), "collector_telemetry": _closed_port(),
             "prometheus": _closed_port()}
    spec = ",".join(f"{name}={port}" for name, port in ports.items())
    try:
        out = _run([str(script), "stack", "up", "--mode", "native", "--run-dir", str(run_dir), "--ports", spec],
                   tmp_path, env)
        assert f"OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:{ports['otlp_grpc']}" in out
        status = _run([str(script), "stack", "status", "--run-dir", str(run_dir)], tmp_path, env)
        assert f":{ports['prometheus']}" in status and "down" not in status
        # Prometheus runs the alert rules the wheel carries
        with urllib.request.urlopen(f"http://127.0.0.1:{ports['prometheus']}/api/v1/rules", timeout=10) as response:
            groups = json.load(response)["data"]["groups"]
        assert groups and all(Path(g["file"]).resolve().is_relative_to(script.parent.parent.resolve())
                              for g in groups), [g["file"] for g in groups]
        # an application sends to the moved OTLP port and its series reach the moved Prometheus
        # ... through a decorated call site and the openai SDK instrumentor, both from the wheel,
        # the SDK calling the stand-in server the wheel also carries
        app = ("import llm_otel, openai\n"
               "from llm_otel.tools.devserver import StandInServer\n"
               f"llm_otel.configure(service_name='wheel-user', endpoint='http://127.0.0.1:{ports['otlp_grpc']}',"
               " metric_export_interval_ms=500)\n"
               "assert llm_otel.instrument('openai') == ['openai']\n"
               "@llm_otel.traced_llm(provider='openai', model='gpt-4o-mini')\n"
               "def chat():\n"
               "    return {'id': 'x', 'object': 'chat.completion', 'model': 'gpt-4o-mini', 'choices': [],"
               " 'usage': {'prompt_tokens': 7, 'completion_tokens': 3}}\n"
               "chat()\n"
               "with StandInServer() as server, openai.OpenAI(base_url=server.openai_base_url, api_key='t',"
               " max_retries=0) as client:\n"
               "    done = client.chat.completions.create(model='gpt-4o-mini',"
               " messages=[{'role': 'user', 'content': 'hi'}])\n"
               "llm_otel.uninstrument('openai'); llm_otel.shutdown()\n"
               "print(7 + done.usage.prompt_tokens)\n")
        expected = float(_run([str(script.parent / "python"), "-c", app], tmp_path, env).split()[-1])
        query = "sum(llm_tokens_input_total{job=\"wheel-user\"})"
        for _ in range(120):  # the shipped 15 s scrape interval
            with urllib.request.urlopen(f"http://127.0.0.1:{ports['prometheus']}/api/v1/query?query="
                                        + urllib.parse.quote(query), timeout=10) as response:
                result = json.load(response)["data"]["result"]
            if result and float(result[0]["value"][1]) == expected:
                break
            time.sleep(0.5)
        assert result and float(result[0]["value"][1]) == expected > 7
    finally:
        down = _run([str(script), "stack", "down", "--run-dir", str(run_dir)], tmp_path, env)
    assert "collector" in down and "prometheus" in down
