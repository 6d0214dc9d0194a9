"""`llm-otel demo` with no stack: the table is the kit's own metrics, and they match the stand-in's truth."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest

from llm_otel import _names as n
from llm_otel.tools._demo import TASKS, DemoOptions, bucket_quantile, main, run_demo
from llm_otel.tools.devserver import expected_usage

from .conftest import parse_table

REPO = Path(__file__).resolve().parents[2]
MODELS = sorted(model for _, model, _, _ in TASKS)


def metric_sums(data: Any) -> dict[str, dict[str, float]]:
    """Straight sums of the exported points per request model (independent of the demo's code)."""
    sums: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for resource in data.resource_metrics:
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                for point in metric.data.data_points:
                    model = dict(point.attributes or {}).get(n.GEN_AI_REQUEST_MODEL)
                    if model is None:
                        continue
                    if metric.name in (n.COST.name, n.OPERATION_DURATION.name):
                        sums[model][metric.name] += point.sum
                        sums[model][metric.name + ".count"] += point.count
                    elif hasattr(point, "value"):
                        sums[model][metric.name] += point.value
    return sums


def truth_by_model(requests: Any) -> dict[str, tuple[int, int]]:
    """Tokens the stand-in actually delivered (complete answers only), per model."""
    found: dict[str, tuple[int, int]] = defaultdict(lambda: (0, 0))
    for request in requests:
        if request.status != 200 or request.fault is not None:
            continue
        body = request.body
        usage = expected_usage(body["model"], body["messages"], max_tokens=body.get("max_tokens"))
        before = found[body["model"]]
        found[body["model"]] = (before[0] + usage.input_tokens, before[1] + usage.output_tokens)
    return found


def test_demo_without_a_stack_prints_the_kits_own_numbers(no_stack: dict[str, str]) -> None:
    out = io.StringIO()

    result = run_demo(DemoOptions(duration_s=2, rate=20, live=False), out)

    text = out.getvalue()
    assert result.exit_code == 0
    assert not result.exported
    table = parse_table(text)
    assert sorted(m for m in table if m != "total") == MODELS

    sums = metric_sums(result.metrics)
    truth = truth_by_model(result.stand_in_requests)
    for model in MODELS:
        row = table[model]
        assert row["requests"] > 0 and row["tokens in"] > 0 and row["tokens out"] > 0, row
        assert row["cost $"] > 0
        # The printed numbers are the in-memory metrics ...
        assert row["requests"] == sums[model][n.OPERATION_DURATION.name + ".count"]
        assert row["tokens in"] == sums[model][n.TOKENS_INPUT.name]
        assert row["tokens out"] == sums[model][n.TOKENS_OUTPUT.name]
        assert row["cost $"] == pytest.approx(sums[model][n.COST.name], abs=1e-6)
        assert row["errors"] == sums[model].get(n.ERRORS.name, 0)
        assert row["429s"] == sums[model].get(n.RATE_LIMITED.name, 0)
        assert row["p50 ms"] is not None and row["p95 ms"] is not None
        assert row["p50 ms"] <= row["p95 ms"]
        # ... and the metrics are what the stand-in really answered.
        assert (row["tokens in"], row["tokens out"]) == truth[model]
    streamed = {model for _, model, stream, _ in TASKS if stream}
    for model in MODELS:
        assert (table[model]["TTFT p50 ms"] is not None) == (model in streamed)

    # One HTTP request per call (no retries), each one counted as a request.
    assert table["total"]["requests"] == result.sent == len(result.stand_in_requests)
    assert 0 < result.sent <= 40
    assert result.traces == result.sent
    assert "recorded in this process and not exported" in text
    assert "llm-otel stack up" in text
    assert "example trace" in text


def test_demo_latency_columns_come_from_the_duration_buckets(no_stack: dict[str, str]) -> None:
    out = io.StringIO()
    result = run_demo(DemoOptions(duration_s=1, rate=20, live=False, fault_rate_429=0, fault_rate_500=0,
                                  fault_rate_truncate=0), out)

    table = parse_table(out.getvalue())
    for row in result.rows:
        bounds = row.latency.bounds
        p95 = bucket_quantile(0.95, bounds, row.latency.counts)
        assert p95 is not None
        expected = min(max(p95, row.latency.low), row.latency.high) * 1000
        assert table[row.model]["p95 ms"] == round(expected)
        assert table[row.model]["errors"] == 0


def test_stack_flag_without_a_collector_binary_explains_and_exits_2(
    no_stack: dict[str, str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("LLM_OTEL_COLLECTOR_BIN", str(tmp_path / "missing-otelcol"))
    monkeypatch.setenv("LLM_OTEL_RUN_DIR", str(tmp_path / "run"))
    monkeypatch.setenv("PATH", str(tmp_path))  # no docker, no prometheus: native mode, which fails early

    code = main(DemoOptions(duration_s=1, rate=5, stack=True, live=False))

    err = capsys.readouterr().err
    assert code == 2
    assert "--stack: the stack could not be started" in err
    assert "LLM_OTEL_COLLECTOR_BIN" in err


def test_bad_configuration_is_reported_not_raised(
    no_stack: dict[str, str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "carrier-pigeon")

    assert main(DemoOptions(duration_s=1, rate=5, live=False)) == 2
    assert "OTEL_EXPORTER_OTLP_PROTOCOL" in capsys.readouterr().err


@pytest.mark.slow
def test_cli_command_exits_0_quickly_and_quietly_without_a_collector(no_stack: dict[str, str]) -> None:
    completed = subprocess.run(
        [sys.executable, "-m", "llm_otel.tools.cli", "demo", "--duration", "2", "--rate", "20", "--no-live"],
        cwd=REPO,
        env={**os.environ, **no_stack},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert completed.returncode == 0, completed.stderr
    table = parse_table(completed.stdout)
    assert sorted(m for m in table if m != "total") == MODELS
    # No exporter is set up without a collector, so nothing complains about failed exports.
    assert "Failed to export" not in completed.stderr
    assert "Traceback" not in completed.stderr


def test_demo_table_reads_the_latest_convention_names_too(
    no_stack: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_SEMCONV_STABILITY_OPT_IN", "gen_ai_latest_experimental")
    out = io.StringIO()
    result = run_demo(DemoOptions(duration_s=1, rate=20, live=False), out)

    table = parse_table(out.getvalue())
    counts: dict[str, int] = defaultdict(int)
    for resource in result.metrics.resource_metrics:
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                assert metric.name != n.OPERATION_DURATION.name  # every demo call is a chat: inference
                if metric.name == n.INFERENCE_DURATION.name:
                    for point in metric.data.data_points:
                        counts[dict(point.attributes or {})[n.GEN_AI_REQUEST_MODEL]] += point.count
    assert counts and all(table[model]["requests"] == calls for model, calls in counts.items())
    streamed = {model for _, model, stream, _ in TASKS if stream}
    for model in MODELS:
        assert (table[model]["TTFT p50 ms"] is not None) == (model in streamed)
