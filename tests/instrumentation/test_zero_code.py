"""``opentelemetry-instrument python app.py`` activates the kit's instrumentors (a real subprocess).

The entry points come from this checkout's pyproject.toml: the test lays them out as an
installed distribution's metadata in a temporary folder put first on the path, so the
real ``opentelemetry-instrument`` finds them exactly as it would after ``pip install``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import tomllib

from llm_otel.tools.devserver import StandInServer

ROOT = Path(__file__).resolve().parents[2]

APP = """
import openai, anthropic, os
from google import genai
c = openai.OpenAI(base_url=os.environ["STANDIN_OPENAI"], api_key="test", max_retries=0)
r = c.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
a = anthropic.Anthropic(base_url=os.environ["STANDIN_ANTHROPIC"], api_key="test", max_retries=0)
m = a.messages.create(model="claude-3-5-haiku-latest", max_tokens=50, messages=[{"role": "user", "content": "hi"}])
g = genai.Client(api_key="test", http_options={"base_url": os.environ["STANDIN_GEMINI"]})
u = g.models.generate_content(model="gemini-2.5-flash", contents="hi").usage_metadata
print("USAGE", r.usage.prompt_tokens, r.usage.completion_tokens, m.usage.input_tokens, m.usage.output_tokens,
      u.prompt_token_count, u.candidates_token_count)
"""


def _dist_info(target: Path) -> Path:
    """This checkout's entry points as an installed distribution's metadata."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    info = target / "llm_otel-0.0.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: llm-otel\nVersion: 0.0.0\n")
    lines = []
    for group, entries in project["entry-points"].items():
        lines.append(f"[{group}]")
        lines.extend(f"{name} = {value}" for name, value in entries.items())
    (info / "entry_points.txt").write_text("\n".join(lines) + "\n")
    return info


def _spans(stdout: str) -> list[dict[str, Any]]:
    """The JSON objects the console span exporter printed."""
    decoder = json.JSONDecoder()
    spans, index = [], 0
    while (start := stdout.find("{", index)) != -1:
        try:
            found, index = decoder.raw_decode(stdout, start)
        except json.JSONDecodeError:
            index = start + 1
            continue
        if isinstance(found, dict) and "attributes" in found and "context" in found:
            spans.append(found)
    return spans


def _run(tmp_path: Path, server: StandInServer, disabled: str) -> tuple[str, list[dict[str, Any]]]:
    launcher = shutil.which("opentelemetry-instrument")
    if launcher is None:
        pytest.fail("opentelemetry-instrument is not installed (pip install 'llm-otel[instrument]')")
    _dist_info(tmp_path / "meta")
    (tmp_path / "app.py").write_text(APP)
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(tmp_path / "meta"), str(ROOT), os.environ.get("PYTHONPATH", "")]),
        "OTEL_PYTHON_DISABLED_INSTRUMENTATIONS": disabled,
        "OTEL_TRACES_EXPORTER": "console",
        "OTEL_METRICS_EXPORTER": "none",
        "OTEL_LOGS_EXPORTER": "none",
        "STANDIN_OPENAI": server.openai_base_url,
        "STANDIN_ANTHROPIC": server.anthropic_base_url,
        "STANDIN_GEMINI": server.gemini_base_url,
    }
    done = subprocess.run(
        [launcher, sys.executable, str(tmp_path / "app.py")],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout, _spans(done.stdout)


@pytest.mark.slow
def test_opentelemetry_instrument_activates_the_kit(tmp_path: Path, server: StandInServer) -> None:
    # the other vendors' openai instrumentations register under the name "openai"
    stdout, spans = _run(tmp_path, server, disabled="openai")
    usage = next(line for line in stdout.splitlines() if line.startswith("USAGE")).split()[1:]
    calls = [s for s in spans if s["name"].startswith(("chat ", "generate_content "))]
    by_provider = {s["attributes"]["gen_ai.provider.name"]: s["attributes"] for s in calls}
    assert sorted(by_provider) == ["anthropic", "gcp.gemini", "openai"] and len(calls) == 3
    assert [by_provider[provider][f"gen_ai.usage.{kind}_tokens"]
            for provider in ("openai", "anthropic", "gcp.gemini") for kind in ("input", "output")
            ] == [int(u) for u in usage]


@pytest.mark.slow
def test_disabling_the_kit_by_entry_point_name(tmp_path: Path, server: StandInServer) -> None:
    _, spans = _run(tmp_path, server, disabled="openai,llm_otel_openai,llm_otel_anthropic,llm_otel_google_genai")
    assert [s for s in spans if s["name"].startswith(("chat ", "generate_content "))] == []


def test_the_hook_configures_only_when_nothing_else_did(monkeypatch: pytest.MonkeyPatch) -> None:
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider

    from llm_otel import _instrument, _runtime

    configured: list[int] = []
    monkeypatch.setattr(_runtime, "_state", None)
    monkeypatch.setattr(_runtime, "configure", lambda **_: configured.append(1))
    monkeypatch.setattr(trace, "get_tracer_provider", TracerProvider)  # a distro set one up
    _instrument.configure_if_unset()
    assert configured == []
    monkeypatch.setattr(trace, "get_tracer_provider", trace.ProxyTracerProvider)  # nobody did
    _instrument.configure_if_unset()
    assert configured == [1]
    monkeypatch.setattr(_runtime, "_state", object())  # configure() ran in the application already
    _instrument.configure_if_unset()
    assert configured == [1]
