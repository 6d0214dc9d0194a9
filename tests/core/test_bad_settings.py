"""A bad setting in the environment never makes a call raise; configure() refuses it at start-up.

Without configure(), the first call builds the kit's state lazily from the
environment. A bad value there falls back to its default, is logged once and
counted (``llm_otel_input_unknown_total{source="settings", reason=<variable>}``);
``configure()`` raises a ValueError naming the variable instead.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import llm_otel
from llm_otel.tools._doctor import check_configuration

ROOT = Path(__file__).resolve().parents[2]
BAD = {
    "OTEL_EXPORTER_OTLP_PROTOCOL": "http/json",
    "LLM_OTEL_CARDINALITY_LIMIT": "abc",
    "LLM_OTEL_PRICES_FILE": "/nonexistent/llm-prices.json",
}

# Runs in a fresh interpreter: no configure(), a global SDK meter provider so the count can be read.
_SCRIPT = r"""
import asyncio, json, logging, sys
from opentelemetry import metrics
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

reader = InMemoryMetricReader()
metrics.set_meter_provider(MeterProvider(metric_readers=[reader]))
logging.basicConfig(stream=sys.stderr, level=logging.WARNING, format="LOG %(message)s")

import llm_otel

@llm_otel.traced_llm(provider="openai", model="gpt-4o-mini")
def ask():
    return {"model": "gpt-4o-mini", "usage": {"prompt_tokens": 3, "completion_tokens": 1}}

@llm_otel.traced_llm(provider="openai", model="gpt-4o-mini")
async def ask_async():
    return {"model": "gpt-4o-mini", "usage": {"prompt_tokens": 3, "completion_tokens": 1}}

@llm_otel.traced_llm(provider="openai", model="gpt-4o-mini")
def stream():
    yield {"model": "gpt-4o-mini", "usage": {"prompt_tokens": 3, "completion_tokens": 1}}

results = [ask(), ask(), asyncio.run(ask_async()), list(stream())]
with llm_otel.llm_call(provider="openai", model="gpt-4o-mini") as call:
    call.set_usage(input_tokens=3, output_tokens=1)
started = llm_otel.start_call(provider="openai", model="gpt-4o-mini")
started.end()
with llm_otel.route(task_type="t"):
    pass

counts = {}
for rm in reader.get_metrics_data().resource_metrics:
    for sm in rm.scope_metrics:
        for metric in sm.metrics:
            for point in metric.data.data_points:
                key = metric.name + "|" + ",".join(f"{k}={v}" for k, v in sorted(point.attributes.items()))
                counts[key] = getattr(point, "value", getattr(point, "count", None))
print(json.dumps({"results": len(results), "limit": llm_otel.current().recorder.guard.limit, "counts": counts}))
"""


def _run(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "LLM_OTEL_"))}
    environ.update(env)
    environ["PYTHONPATH"] = str(ROOT) + os.pathsep + environ.get("PYTHONPATH", "")
    return subprocess.run([sys.executable, "-c", _SCRIPT], capture_output=True, text=True, timeout=120, env=environ)


def test_bad_environment_settings_never_make_a_call_raise() -> None:
    result = _run(BAD)

    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["results"] == 4
    assert report["limit"] == 100  # the default, in place of "abc"
    counts = report["counts"]
    for variable in BAD:
        assert counts[f"llm_otel.input.unknown|reason={variable},source=settings"] == 1, counts
    # the calls themselves were recorded as usual
    assert any(key.startswith("gen_ai.client.operation.duration|") for key in counts)
    logged = [line for line in result.stderr.splitlines() if line.startswith("LOG ") and "bad setting" in line]
    assert len(logged) == 3, result.stderr  # once per variable, not once per call
    for variable, value in BAD.items():
        assert any(f"{variable}={value!r}" in line for line in logged), (variable, logged)


def test_good_environment_logs_and_counts_nothing() -> None:
    result = _run({})

    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert not [key for key in report["counts"] if key.startswith("llm_otel.input.unknown") and "source=settings" in key]
    assert "bad setting" not in result.stderr


@pytest.mark.parametrize(("variable", "fragment"), [
    ("OTEL_EXPORTER_OTLP_PROTOCOL", "protocol must be grpc or http/protobuf"),
    ("LLM_OTEL_CARDINALITY_LIMIT", "invalid literal for int()"),
    ("LLM_OTEL_PRICES_FILE", "No such file"),
])
def test_configure_refuses_a_bad_setting_at_start_up_naming_it(
    monkeypatch: pytest.MonkeyPatch, variable: str, fragment: str
) -> None:
    monkeypatch.setenv(variable, BAD[variable])

    with pytest.raises(ValueError, match=variable) as caught:
        llm_otel.configure(traces_exporter="none", metrics_exporter="none", set_global=False)
    assert fragment in str(caught.value)
    assert repr(BAD[variable]) in str(caught.value)


def test_doctor_reports_a_prices_file_it_cannot_use(tmp_path: Path) -> None:
    check, _ = check_configuration({"LLM_OTEL_PRICES_FILE": str(tmp_path / "missing.json")})
    assert check.status == "FAIL"
    assert "LLM_OTEL_PRICES_FILE=" in check.detail and "missing.json" in check.detail

    not_a_mapping = tmp_path / "prices.json"
    not_a_mapping.write_text("[1, 2]")
    check, _ = check_configuration({"LLM_OTEL_PRICES_FILE": str(not_a_mapping)})
    assert check.status == "FAIL" and "expected a mapping" in check.detail

    good = tmp_path / "good.json"
    good.write_text(json.dumps({"my-model": {"input_per_mtok": 1.0, "output_per_mtok": 2.0}}))
    check, _ = check_configuration({"LLM_OTEL_PRICES_FILE": str(good)})
    assert check.status == "OK", check.line()
