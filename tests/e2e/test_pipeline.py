"""The whole path: @traced_llm → OTLP → real Collector → real Prometheus → every dashboard and alert query.

Known traffic goes through the shipped collector config and is scraped by
Debian's Prometheus with the shipped prometheus.yml and alert rules; every
dashboard expression and alert rule is evaluated by Prometheus itself and the
raw series are compared with the ground truth the traffic generator computed.

This module runs the default GenAI conventions (v1.41.0); test_pipeline_latest.py
runs the same tests, on a stack of its own, with gen_ai_latest_experimental.
"""

from __future__ import annotations

import json
import math
import re
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

import llm_otel
from llm_otel import _names as n
from llm_otel.tools._stack import StackInfo
from tests.stack._support import SLO_RULES

from . import _traffic
from ._traffic import Truth

JOB = "llm-e2e"
ROUNDS = 3
RAG_ROUNDS = 4
SEMCONV = n.SEMCONV_DEFAULT  # test_pipeline_latest.py sets the other mode


@pytest.fixture(scope="module")
def semconv(request: pytest.FixtureRequest) -> str:
    mode: str = getattr(request.module, "SEMCONV", SEMCONV)
    return mode


def series_names(semconv: str) -> dict[str, str]:
    """The mode's Prometheus names of what these tests count."""
    latest = semconv == n.SEMCONV_LATEST
    return {
        "requests": (n.INFERENCE_DURATION if latest else n.OPERATION_DURATION).prometheus + "_count",
        "first_chunk": (n.INFERENCE_TIME_TO_FIRST_CHUNK if latest else n.TIME_TO_FIRST_CHUNK).prometheus + "_count",
        "chunk_gaps": (n.INFERENCE_TIME_PER_OUTPUT_CHUNK if latest else n.TIME_PER_OUTPUT_CHUNK).prometheus + "_count",
        "absent": (n.TOKEN_USAGE.prometheus if latest else n.INFERENCE_DURATION.prometheus) + "_count",
    }


def _get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.load(response)


def query(info: StackInfo, expr: str) -> list[dict[str, Any]]:
    assert info.prometheus_url is not None
    body = _get(f"{info.prometheus_url}/api/v1/query?" + urllib.parse.urlencode({"query": expr}))
    assert body["status"] == "success", (expr, body)
    result: list[dict[str, Any]] = body["data"]["result"]
    return result


def scalar(info: StackInfo, expr: str) -> float:
    result = query(info, expr)
    assert len(result) == 1, (expr, result)
    return float(result[0]["value"][1])


def by_label(info: StackInfo, expr: str, label: str) -> dict[str, float]:
    return {row["metric"].get(label, ""): float(row["value"][1]) for row in query(info, expr)}


def wait_for(info: StackInfo, expr: str, expected: float, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    seen: Any = None
    while time.monotonic() < deadline:
        result = query(info, expr)
        if result:
            seen = float(result[0]["value"][1])
            if seen == expected:
                return
        time.sleep(0.5)
    raise AssertionError(f"{expr} stayed at {seen}, expected {expected}")


@pytest.fixture(scope="module")
def pipeline(native_stack: StackInfo, semconv: str) -> Iterator[tuple[StackInfo, Truth, _traffic.BlockingScorer]]:
    scorer = _traffic.BlockingScorer()
    llm_otel.configure(
        service_name=JOB, endpoint=native_stack.otlp_grpc_endpoint, protocol="grpc", semconv_stability_opt_in=semconv,
        metric_export_interval_ms=500, span_schedule_delay_ms=200, set_global=False,
        evaluator=scorer, evaluation_sample_rate=1.0, evaluation_queue_size=1, drift_window=4,
    )
    truth = Truth()
    try:
        for round_index in range(ROUNDS):
            _traffic.drive(round_index, truth)
            llm_otel.force_flush()
            # every round must be scraped separately, so rate() windows hold real increases
            wait_for(native_stack, f'sum(llm_tokens_input_total{{job="{JOB}"}})',
                     float(sum(truth.input_tokens.values())))
        scorer.release.set()
        evaluator = llm_otel.current().evaluator
        evaluator.join()
        scorer.dropped = evaluator.dropped
        for round_index in range(RAG_ROUNDS):
            _traffic.drive_rag(round_index, truth, evaluator.join)  # scored by the built-in groundedness scorer
            llm_otel.force_flush()
            # scraped round by round, so increase() over the rule windows sees real increases
            scored = f'sum(llm_evaluation_score_count{{job="{JOB}",gen_ai_evaluation_name="hallucination",llm_task_type="rag"}})'
            wait_for(native_stack, scored, float(sum(truth.rag_scored.values())))
        llm_otel.force_flush()
        time.sleep(2.5)  # a few scrapes and rule evaluations after the last export
        yield native_stack, truth, scorer
    finally:
        scorer.release.set()
        llm_otel.shutdown()


def test_token_totals_are_exact(pipeline: tuple[StackInfo, Truth, Any]) -> None:
    info, truth, _ = pipeline
    series = f'llm_tokens_input_total{{job="{JOB}"}}'
    assert by_label(info, f"sum by (gen_ai_request_model) ({series})", "gen_ai_request_model") == {
        model: float(tokens) for model, tokens in truth.input_tokens.items()
    }
    output = by_label(info, f'sum by (gen_ai_request_model) (llm_tokens_output_total{{job="{JOB}"}})',
                      "gen_ai_request_model")
    assert output == {model: float(tokens) for model, tokens in truth.output_tokens.items()}


def test_cost_matches_genai_prices_to_1e9(pipeline: tuple[StackInfo, Truth, Any]) -> None:
    info, truth, _ = pipeline
    by_model = by_label(info, f'sum by (gen_ai_request_model) (llm_cost_usd_sum{{job="{JOB}"}})',
                        "gen_ai_request_model")
    assert set(by_model) == set(truth.cost_by_model)
    for model, cost in truth.cost_by_model.items():
        assert by_model[model] == pytest.approx(cost, rel=1e-9), model
    by_task = by_label(info, f'sum by (llm_task_type) (llm_cost_usd_sum{{job="{JOB}"}})', "llm_task_type")
    for task, cost in truth.cost_by_task.items():
        assert by_task[task] == pytest.approx(cost, rel=1e-9), task
    assert scalar(info, f'sum(llm_cost_usd_count{{job="{JOB}"}})') == truth.priced_calls


def test_requests_errors_rate_limits_and_unpriced(pipeline: tuple[StackInfo, Truth, Any], semconv: str) -> None:
    info, truth, _ = pipeline
    names = series_names(semconv)
    requests = by_label(
        info, f'sum by (gen_ai_request_model) ({names["requests"]}{{job="{JOB}"}})', "gen_ai_request_model",
    )
    assert requests == {model: float(calls) for model, calls in truth.calls_by_model.items()}
    assert scalar(info, f'sum(llm_errors_total{{job="{JOB}"}})') == truth.errors
    assert scalar(info, f'sum(llm_errors_total{{job="{JOB}",error_type="rate_limited"}})') == truth.rate_limited
    assert scalar(info, f'sum(llm_rate_limited_total{{job="{JOB}"}})') == truth.rate_limited
    assert scalar(info, f'sum(llm_cost_unpriced_total{{job="{JOB}"}})') == truth.unpriced
    assert scalar(info, f'sum({names["first_chunk"]}{{job="{JOB}"}})') == truth.streams
    # three chunks a stream: two gaps after the first
    assert scalar(info, f'sum({names["chunk_gaps"]}{{job="{JOB}"}})') == 2 * truth.streams
    assert query(info, f'{names["absent"]}{{job="{JOB}"}}') == []  # the other mode's name is not emitted
    # the call site named its server: labels on the series, as the conventions ask
    servers = query(info, f'count by (server_address, server_port) ({names["requests"]}{{job="{JOB}",server_address!=""}})')
    assert [(row["metric"]["server_address"], row["metric"]["server_port"]) for row in servers] == [
        ("api.openai.com", "443")]
    assert scalar(info, f'sum(llm_otel_input_unknown_total{{job="{JOB}"}})') == truth.bad_input


def test_quality_context_and_kit_health_series(pipeline: tuple[StackInfo, Truth, Any]) -> None:
    info, truth, scorer = pipeline
    score = scalar(info, f'max(llm_hallucination_score{{job="{JOB}",gen_ai_request_model="gpt-4o-mini"}})')
    assert score == pytest.approx(truth.hallucination["gpt-4o-mini"])
    utilization = scalar(info, f'sum(llm_context_utilization_count{{job="{JOB}"}})')
    assert utilization == truth.priced_calls  # every priced model here has a known context window
    dropped = scalar(info, f'sum(llm_otel_telemetry_dropped_total{{job="{JOB}",signal="evaluations"}})')
    assert dropped == scorer.dropped > 0


def test_every_dashboard_query_parses_and_returns_data(
    pipeline: tuple[StackInfo, Truth, Any], dashboard_queries: list[Any]
) -> None:
    info, _, _ = pipeline
    assert dashboard_queries
    empty = []
    for dashboard_query in dashboard_queries:
        expr = dashboard_query.promql(rate_interval="1m", range_="1h")
        result = query(info, expr)
        values = [float(row["value"][1]) for row in result]
        if not values or all(math.isnan(v) for v in values):
            empty.append(f"{dashboard_query.panel}: {expr}")
    assert empty == [], "panels without data:\n" + "\n".join(empty)


def _left_side(expr: str) -> str:
    """The measured quantity of an alert: the expression without its final threshold comparison."""
    match = re.match(r"(?s)^(.*?)\s*(>|<|>=|<=|==|!=)\s*[0-9.e+-]+\s*$", expr.strip())
    return match.group(1) if match else expr


def _top_level_and_clauses(expr: str) -> list[str]:
    """``A > x and B > y`` as ``[A > x, B > y]``; an ``and`` inside brackets, or one that matches
    vectors on labels (``and on (...)``: a filter, not a second window), stays where it is."""
    clauses, depth, start = [], 0, 0
    for match in re.finditer(r"[()\[\]{}]|\band\b(?!\s+(?:on|ignoring)\b)", expr):
        token = match.group()
        if token in "([{":
            depth += 1
        elif token in ")]}":
            depth -= 1
        elif depth == 0:
            clauses.append(expr[start:match.start()])
            start = match.end()
    clauses.append(expr[start:])
    return [clause.strip() for clause in clauses]


def test_every_alert_rule_evaluates_on_real_series(
    pipeline: tuple[StackInfo, Truth, Any], alert_rules: list[Any]
) -> None:
    info, _, _ = pipeline
    assert info.prometheus_url is not None
    groups = _get(f"{info.prometheus_url}/api/v1/rules")["data"]["groups"]
    loaded = {rule["name"]: rule for group in groups for rule in group["rules"]}
    for rule in alert_rules:
        assert loaded[rule.alert]["health"] == "ok", (rule.alert, loaded[rule.alert].get("lastError"))
        # a multiwindow rule ("A > x and B > x") measures each window on its own
        for clause in _top_level_and_clauses(rule.expr):
            measured = _left_side(clause)
            result = query(info, measured)
            if measured.lstrip().startswith("absent"):
                assert result == [], rule.alert  # the data is there, so "absent" must not fire
            else:
                assert result, f"{rule.alert}: {measured} returned no data"
    assert loaded["OtelCollectorDown"]["state"] == "inactive"


def test_latest_usage_counters_match_the_kit_totals(pipeline: tuple[StackInfo, Truth, Any], semconv: str) -> None:
    if semconv != n.SEMCONV_LATEST:
        pytest.skip("gen_ai.client.inference.usage.* exist in the latest mode only")
    info, truth, _ = pipeline
    by_model = by_label(
        info, f'sum by (gen_ai_request_model) ({n.USAGE_INPUT_TOKENS.prometheus}{{job="{JOB}",gen_ai_token_modality="unknown"}})',
        "gen_ai_request_model",
    )
    assert {model: tokens for model, tokens in by_model.items() if tokens} == {
        model: float(tokens) for model, tokens in truth.input_tokens.items()
    }
    output = scalar(info, f'sum({n.USAGE_OUTPUT_TOKENS.prometheus}{{job="{JOB}"}})')
    assert output == float(sum(truth.output_tokens.values()))


def test_traces_reach_the_collector_with_genai_attributes(pipeline: tuple[StackInfo, Truth, Any]) -> None:
    info, _, _ = pipeline
    assert info.traces_file is not None
    spans = _read_spans(Path(info.traces_file))
    llm_spans = [s for s in spans if s["name"] == "chat gpt-4o-mini" and s["attributes"].get("llm.task_type")]
    assert len(llm_spans) == 4 * ROUNDS  # three answers and one rate-limited call per round
    attrs = llm_spans[0]["attributes"]
    assert attrs["gen_ai.provider.name"] == "openai"
    assert attrs["gen_ai.operation.name"] == "chat"
    assert attrs["llm.task_type"] == "classify"
    assert "gen_ai.usage.input_tokens" in attrs and "llm.cost.usd" in attrs
    assert attrs[n.GEN_AI_REQUEST_STREAM] is False
    streamed = [s for s in spans if s["attributes"].get(n.GEN_AI_REQUEST_STREAM) is True]
    assert streamed and all(s["attributes"][n.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK] >= 0 for s in streamed)
    assert llm_spans[0]["kind"] == 3  # SPAN_KIND_CLIENT
    routes = {s["spanId"]: s for s in spans if s["name"] == "llm.route"}
    assert all(s.get("parentSpanId") in routes for s in llm_spans), "routed calls are children of llm.route"
    assert all(s["traceId"] == routes[s["parentSpanId"]]["traceId"] for s in llm_spans)
    resource_services = {s["service"] for s in spans}
    assert resource_services == {JOB}


def _read_spans(path: Path) -> list[dict[str, Any]]:
    deadline = time.monotonic() + 30
    spans: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        spans = []
        if path.exists():
            for line in path.read_text().splitlines():
                for resource_spans in json.loads(line).get("resourceSpans", []):
                    service = next(
                        (a["value"].get("stringValue") for a in resource_spans["resource"]["attributes"]
                         if a["key"] == "service.name"), None)
                    for scope in resource_spans.get("scopeSpans", []):
                        for span in scope.get("spans", []):
                            span["attributes"] = {a["key"]: _value(a["value"]) for a in span.get("attributes", [])}
                            span["service"] = service
                            spans.append(span)
        if any(s["name"] == "llm.route" for s in spans):
            return spans
        time.sleep(0.5)
    return spans


def _value(value: dict[str, Any]) -> Any:
    for key in ("stringValue", "boolValue", "doubleValue"):
        if key in value:
            return value[key]
    if "intValue" in value:
        return int(value["intValue"])
    if "arrayValue" in value:
        return [_value(v) for v in value["arrayValue"].get("values", [])]
    return value


# -- quality signals --------------------------------------------------------------------------


def test_groundedness_scores_tell_grounded_from_invented_answers(pipeline: tuple[StackInfo, Truth, Any]) -> None:
    info, truth, _ = pipeline
    selector = f'job="{JOB}",gen_ai_evaluation_name="hallucination",llm_task_type="rag"'
    counts = by_label(info, f"sum by (llm_prompt_version) (llm_evaluation_score_count{{{selector}}})",
                      "llm_prompt_version")
    assert counts == {version: float(n) for version, n in truth.rag_scored.items()}
    means = by_label(info, f"sum by (llm_prompt_version) (llm_evaluation_score_sum{{{selector}}}) / "
                           f"sum by (llm_prompt_version) (llm_evaluation_score_count{{{selector}}})",
                     "llm_prompt_version")
    assert means["v1"] < 0.2 and means["v2"] >= 0.5
    supported = by_label(info, f'sum by (llm_prompt_version) (llm_evaluation_score_bucket{{{selector},le="0.5"}})',
                         "llm_prompt_version")
    assert supported == {"v1": truth.rag_scored["v1"], "v2": 0.0}
    gauge = scalar(info, f'max(llm_hallucination_score{{job="{JOB}",llm_prompt_version="v2"}})')
    assert gauge >= 0.5
    drift = by_label(info, f'max by (llm_drift_signal) (llm_drift_score{{job="{JOB}",llm_task_type="rag"}})',
                     "llm_drift_signal")
    assert {"answer_length", "refusal_rate"} <= set(drift)


def test_quality_alerts_fire_for_the_regressed_prompt_version(pipeline: tuple[StackInfo, Truth, Any]) -> None:
    info, _, _ = pipeline
    assert info.prometheus_url is not None
    deadline = time.monotonic() + 30
    active: dict[str, list[dict[str, str]]] = {}
    while time.monotonic() < deadline:
        alerts = _get(f"{info.prometheus_url}/api/v1/alerts")["data"]["alerts"]
        active = {}
        for alert in alerts:
            active.setdefault(alert["labels"]["alertname"], []).append(alert["labels"])
        if {"LLMPromptVersionRegression", "LLMHallucinationRateHigh"} <= set(active):
            break
        time.sleep(0.5)
    # pending: the condition holds; `for:` (15m) keeps them from firing within a test run
    regressed = active.get("LLMPromptVersionRegression", [])
    assert [(a["llm_prompt_name"], a["llm_prompt_version"]) for a in regressed] == [("answer", "v2")]
    assert [a["llm_task_type"] for a in active.get("LLMHallucinationRateHigh", [])] == ["rag"]


def test_evaluation_events_reach_the_collector_without_answer_text(pipeline: tuple[StackInfo, Truth, Any]) -> None:
    info, _, _ = pipeline
    assert info.traces_file is not None
    events = []
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not events:
        for line in Path(info.traces_file).read_text().splitlines():
            for resource_spans in json.loads(line).get("resourceSpans", []):
                for scope in resource_spans.get("scopeSpans", []):
                    for span in scope.get("spans", []):
                        events += [
                            {a["key"]: _value(a["value"]) for a in event.get("attributes", [])}
                            for event in span.get("events", []) if event["name"] == "gen_ai.evaluation.result"
                        ]
        time.sleep(0.5)
    invented = [e for e in events if e.get("gen_ai.response.id") == "chatcmpl-rag-v2"]
    assert invented and all(e["gen_ai.evaluation.score.label"] == "unsupported" for e in invented)
    assert all(e["gen_ai.evaluation.name"] == "hallucination" for e in invented)
    explanation = invented[0]["gen_ai.evaluation.explanation"]
    assert "checkable claims not in the context" in explanation
    assert "Daniel Brooks" not in explanation and "1,450" not in explanation  # content capture is off


def test_every_slo_rule_evaluates_on_real_series(pipeline: tuple[StackInfo, Truth, Any]) -> None:
    """slo.yml on real data: every rule healthy, every recorded series present, the burn alerts
    firing where this traffic burns a budget (2 failed calls in 10) and quiet where it does not."""
    info, truth, _ = pipeline
    assert info.prometheus_url is not None
    groups = _get(f"{info.prometheus_url}/api/v1/rules")["data"]["groups"]
    slo_rules = [rule for group in groups if group["file"].endswith("slo.yml") for rule in group["rules"]]
    assert len(slo_rules) == sum(len(g["rules"]) for g in yaml.safe_load(SLO_RULES.read_text())["groups"])
    assert [(r["name"], r.get("lastError")) for r in slo_rules if r["health"] != "ok"] == []
    for rule in slo_rules:
        if rule["type"] != "recording":
            continue
        selector = ",".join(f'{key}="{value}"' for key, value in sorted(rule.get("labels", {}).items()))
        job = f'job="{JOB}"' if rule["name"].startswith("job") else ""
        matchers = ",".join(part for part in (selector, job) if part)
        values = [float(row["value"][1]) for row in query(info, f"{rule['name']}{{{matchers}}}")]
        assert values and all(math.isfinite(v) for v in values), (rule["name"], selector, values)
    error_ratio = truth.errors / sum(truth.calls_by_model.values())
    assert error_ratio / 0.01 > 6  # this traffic burns the error budget at least at the slow rate
    burn = scalar(info, f'job:llm_slo_burn_rate:1h{{job="{JOB}",slo="llm-errors"}}')
    assert burn == pytest.approx(error_ratio / 0.01, rel=0.25)
    states = {(rule["name"], alert["labels"].get("job")): alert["state"]
              for rule in slo_rules if rule["type"] == "alerting" for alert in rule.get("alerts", [])}
    fast = states.get(("LLMErrorBudgetBurnFast", JOB))
    if burn > 14.4 * 1.25:
        assert fast in ("pending", "firing"), states
    elif burn < 14.4 / 1.25:
        assert fast is None, states
    assert states.get(("LLMErrorBudgetBurnSlow", JOB)) in ("pending", "firing"), states
    # the grounded objective is left out here: this traffic's RAG rounds answer v2 with invented facts on purpose
    quiet = ("LLMTimeToFirstTokenBudgetBurn", "LLMServiceSpendBurn", "LLMTaskSpendBurn")
    assert not [key for key in states if key[0].startswith(quiet)], states
