"""Prometheus restarted while traffic flows: every dashboard query answers again, totals stay exact.

Prometheus of the native stack is stopped with SIGTERM (the collector keeps running
and the application keeps exporting), then started again with exactly the same
command line, rendered config and data directory. Afterwards every PromQL target of
every dashboard returns data, the scrapes are fresh (not just the replayed WAL), and
the counters equal the ground truth of all calls, including those made while
Prometheus was down.
"""

from __future__ import annotations

import math
import os
import signal
import time
from collections.abc import Sequence
from typing import Any

import pytest

import llm_otel
from llm_otel.tools._stack import StackInfo, stack_status
from tests.e2e import _traffic
from tests.e2e.test_pipeline import by_label, query, scalar, wait_for
from tests.faults._outage import Component, eventually, process_command

pytestmark = pytest.mark.stack

JOB = "faults-prometheus-restart"


def panels_without_data(info: StackInfo, dashboard_queries: Sequence[Any]) -> list[str]:
    empty = []
    for dashboard_query in dashboard_queries:
        expr = dashboard_query.promql(rate_interval="1m", range_="1h")
        values = [float(row["value"][1]) for row in query(info, expr)]
        if not values or all(math.isnan(value) for value in values):
            empty.append(f"{dashboard_query.dashboard} / {dashboard_query.panel}: {expr}")
    return empty


def drive_round(info: StackInfo, round_index: int, truth: _traffic.Truth, *, scraped: bool = True) -> None:
    """One round of the end-to-end traffic; optionally wait until Prometheus has it."""
    _traffic.drive(round_index, truth)
    llm_otel.force_flush()
    if scraped:
        wait_for(info, f'sum(llm_tokens_input_total{{job="{JOB}"}})', float(sum(truth.input_tokens.values())))


def prometheus_running(info: StackInfo) -> bool:
    return any(row.component == "prometheus" and row.up for row in stack_status(info.run_dir))


def test_dashboards_recover_after_prometheus_restart(native_stack: StackInfo, dashboard_queries: Sequence[Any]) -> None:
    info = native_stack
    assert dashboard_queries
    scorer = _traffic.BlockingScorer()  # holds the evaluator, so dropped evaluations feed the kit-health panel
    llm_otel.configure(
        service_name=JOB, endpoint=info.otlp_grpc_endpoint, protocol="grpc", set_global=False,
        metric_export_interval_ms=500, span_schedule_delay_ms=200,
        evaluator=scorer, evaluation_sample_rate=1.0, evaluation_queue_size=1,
        drift_window=1,  # the first sample a task type's baseline: the drift panel has data at once
    )
    truth = _traffic.Truth()
    restarted: Component | None = None
    try:
        for round_index in range(2):
            drive_round(info, round_index, truth)
        time.sleep(1.5)  # a scrape and a rule evaluation after the last export
        assert panels_without_data(info, dashboard_queries) == [], "panels must have data before the restart"

        old_pid = info.pids["prometheus"]
        argv, env = process_command(old_pid)
        os.kill(old_pid, signal.SIGTERM)
        eventually(lambda: not prometheus_running(info), "Prometheus to shut down", timeout=30)

        drive_round(info, 2, truth, scraped=False)  # the application keeps exporting meanwhile

        restarted_at = time.time()
        restarted = Component("prometheus-restarted", argv, info.run_dir, env)
        restarted.wait_healthy(f"{info.prometheus_url}/-/ready", timeout=60)

        for round_index in range(3, 5):
            drive_round(info, round_index, truth)

        # Fresh scrapes, not only samples replayed from the write-ahead log.
        def scraped_since_restart() -> bool:
            rows = query(info, 'timestamp(up{job="otel-collector"})')
            return bool(rows) and float(rows[0]["value"][1]) > restarted_at

        eventually(scraped_since_restart, "a scrape by the restarted Prometheus", timeout=30, interval=0.5)
        assert scalar(info, 'up{job="otel-collector"}') == 1

        series = f'sum by (gen_ai_request_model) (%s{{job="{JOB}"}})'
        assert by_label(info, series % "llm_tokens_input_total", "gen_ai_request_model") == {
            model: float(tokens) for model, tokens in truth.input_tokens.items()
        }
        assert by_label(info, series % "llm_tokens_output_total", "gen_ai_request_model") == {
            model: float(tokens) for model, tokens in truth.output_tokens.items()
        }
        assert by_label(info, series % "gen_ai_client_operation_duration_seconds_count", "gen_ai_request_model") == {
            model: float(calls) for model, calls in truth.calls_by_model.items()
        }
        assert scalar(info, f'sum(llm_errors_total{{job="{JOB}"}})') == truth.errors

        missing: list[str] = []

        def every_panel_has_data() -> bool:
            missing[:] = panels_without_data(info, dashboard_queries)
            return not missing

        try:
            eventually(every_panel_has_data, "every dashboard query to return data", timeout=60, interval=1.0)
        except AssertionError:
            pytest.fail("panels without data after the restart:\n" + "\n".join(missing))
    finally:
        scorer.release.set()
        llm_otel.shutdown()
        if restarted is not None:
            restarted.stop()
