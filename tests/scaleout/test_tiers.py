"""Agent -> gateway Collector tiers with real processes: routing, tail sampling, failover.

2 agents and 3 gateways from the shipped configs (observability/collector/agent.yaml,
gateway.yaml: the files the Kubernetes manifests embed), Prometheus scraping the
gateways with the shipped prometheus.yml, and 6 application processes (two services,
three instances each, distinct service.instance.id) using the real kit over TLS with a
bearer token to their agent. Known traffic, then:

* token, cost and call totals in Prometheus equal the ground truth (metrics are never
  sampled, although most traces are dropped);
* every series is exposed by exactly one gateway, every resource lives on one gateway;
* every span of a trace lands on one gateway; exactly the traces with an error, a rate
  limit, a slow call, an expensive call or a low quality score are kept, whole;
* one gateway is killed mid-run and the agents are given the new membership: totals
  are exact again (applications re-send cumulative values; nothing is double counted),
  every trace started after the failover is kept exactly once, and the traces lost are
  counted and all fall into the failover window.

The measured loss is printed (run with -s) and written to docs/stack.md.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

import llm_otel
from tests.e2e import _traffic
from tests.faults._outage import EXPORTER_TIMEOUT_ENV, dropped, eventually
from tests.scaleout import _tiers
from tests.scaleout._certs import Pki, make_pki
from tests.scaleout._tiers import App, Collector

pytestmark = [pytest.mark.stack, pytest.mark.slow]

SERVICES = ("scaleout-chat", "scaleout-rag")
INSTANCES_PER_SERVICE = 3
INTERESTING = {"error", "rate_limited", "slow", "expensive", "low_quality"}
JOBS = 'job=~"scaleout-.*"'
SLOW_BUDGET_S = float(_tiers.SAMPLING_ENV["LLM_OTEL_SAMPLING_SLOW_MS"]) / 1000


@dataclass
class Tiers:
    run_dir: Path
    pki: Pki
    gateways: list[Collector]
    agents: list[Collector]
    gateways_file: Path
    prometheus_url: str
    apps: list[App]

    def live_gateways(self) -> list[Collector]:
        return [g for g in self.gateways if g.component.process.poll() is None]


@pytest.fixture(scope="module")
def tiers(tmp_path_factory: pytest.TempPathFactory, collector_bin: Path, prometheus_bin: Path) -> Iterator[Tiers]:
    run_dir = tmp_path_factory.mktemp("scaleout")
    pki = make_pki(run_dir)
    started: list[Any] = []
    apps: list[App] = []
    try:
        gateways = [_tiers.start_gateway(collector_bin, run_dir, f"gateway-{i}", pki) for i in range(3)]
        started += [g.component for g in gateways]
        gateways_file = run_dir / "gateways.yaml"
        _tiers.write_gateways(gateways_file, gateways)
        agents = [_tiers.start_agent(collector_bin, run_dir, f"agent-{i}", pki, gateways_file) for i in range(2)]
        started += [a.component for a in agents]
        prometheus, url = _tiers.start_prometheus(prometheus_bin, run_dir, gateways, gateways + agents)
        started.append(prometheus)
        for index in range(len(SERVICES) * INSTANCES_PER_SERVICE):
            service = SERVICES[index % len(SERVICES)]
            apps.append(_tiers.start_app(service, f"{service}-{index}", agents[index % 2], pki, run_dir))
        yield Tiers(run_dir, pki, gateways, agents, gateways_file, url, apps)
    finally:
        for app in apps:
            if app.process.poll() is None:
                app.process.kill()
            app.process.wait(timeout=10)
            for stream in (app.process.stdin, app.process.stdout):
                if stream:
                    stream.close()
        for component in reversed(started):
            component.stop()


class Ledger:
    """Ground truth summed over the applications' answers."""

    def __init__(self) -> None:
        self.input_tokens = 0
        self.output_tokens = 0
        self.cost = 0.0
        self.calls = 0
        self.errors = 0
        self.traces: list[dict[str, Any]] = []

    def add(self, answer: dict[str, Any]) -> None:
        for key in ("input_tokens", "output_tokens", "cost", "calls", "errors"):
            setattr(self, key, getattr(self, key) + answer[key])
        self.traces += answer["traces"]

    def kept(self) -> dict[str, dict[str, Any]]:
        return {t["trace_id"]: t for t in self.traces if t["kind"] in INTERESTING}

    def dropped(self) -> set[str]:
        """Plain traces; one the busy machine made nearly as slow as the slow-call budget is in neither set."""
        return {t["trace_id"] for t in self.traces
                if t["kind"] not in INTERESTING and t["end"] - t["start"] < 0.8 * SLOW_BUDGET_S}


def run_phase(tiers: Tiers, units: int, pause_s: float = 0.0, during: Any = None) -> Ledger:
    for app in tiers.apps:
        app.send({"units": units, "pause_s": pause_s})
    if during is not None:
        during()
    ledger = Ledger()
    for app in tiers.apps:
        ledger.add(app.answer())
    return ledger


def totals(url: str) -> dict[str, float | None]:
    return {
        "input_tokens": _tiers.promql_value(url, f"sum(llm_tokens_input_total{{{JOBS}}})"),
        "output_tokens": _tiers.promql_value(url, f"sum(llm_tokens_output_total{{{JOBS}}})"),
        "calls": _tiers.promql_value(url, f"sum(gen_ai_client_operation_duration_seconds_count{{{JOBS}}})"),
        "errors": _tiers.promql_value(url, f"sum(llm_errors_total{{{JOBS}}})"),
        "cost": _tiers.promql_value(url, f"sum(llm_cost_usd_sum{{{JOBS}}})"),
    }


def expected_totals(ledgers: list[Ledger]) -> dict[str, float]:
    return {key: float(sum(getattr(ledger, key) for ledger in ledgers))
            for key in ("input_tokens", "output_tokens", "calls", "errors", "cost")}


def wait_for_totals(url: str, ledgers: list[Ledger], timeout: float = 90.0) -> dict[str, float | None]:
    expected = expected_totals(ledgers)

    def matches() -> bool:
        seen = totals(url)
        return all(seen[k] is not None and abs(float(seen[k] or 0) - v) <= 1e-9 * max(1.0, v)
                   for k, v in expected.items())

    try:
        eventually(matches, "Prometheus totals to equal the ground truth", timeout=timeout, interval=0.5)
    except AssertionError:
        raise AssertionError(f"totals {totals(url)} != truth {expected}") from None
    time.sleep(2.5)  # a few more scrapes: a late duplicate would show up now
    seen = totals(url)
    assert seen["cost"] == pytest.approx(expected["cost"], rel=1e-9)
    assert {k: seen[k] for k in expected if k != "cost"} == {k: v for k, v in expected.items() if k != "cost"}
    return seen


def assert_series_on_one_gateway(tiers: Tiers) -> dict[str, set[tuple[str, str]]]:
    exposed = {g.name: _tiers.exposed_series(g) for g in tiers.live_gateways()}
    names = sorted(exposed)
    for i, first in enumerate(names):
        for second in names[i + 1:]:
            assert not exposed[first] & exposed[second], f"{first} and {second} expose the same series"
    resources = {name: _tiers.resources_of(series) for name, series in exposed.items()}
    for i, first in enumerate(names):
        for second in names[i + 1:]:
            assert not resources[first] & resources[second], f"a resource is split over {first} and {second}"
    return resources


def wait_for_kept_traces(tiers: Tiers, expected: set[str]) -> dict[str, dict[str, list[str]]]:
    eventually(lambda: expected <= set(_tiers.spans_by_trace(tiers.gateways)), "the kept traces", timeout=60)
    time.sleep(4)  # past the decision wait and the file flush: a trace kept by mistake would be written by now
    return _tiers.spans_by_trace(tiers.gateways)


@pytest.mark.parametrize("scheme, token", [("https", "not-the-token"), ("http", _tiers.TOKEN)])
def test_agent_host_port_refuses_a_wrong_token_and_plaintext(
    tiers: Tiers, monkeypatch: pytest.MonkeyPatch, scheme: str, token: str
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_CERTIFICATE", str(tiers.pki.ca))
    monkeypatch.setenv(EXPORTER_TIMEOUT_ENV, "2")
    reader = InMemoryMetricReader()
    service = f"scaleout-intruder-{scheme}"
    llm_otel.configure(service_name=service, endpoint=f"{scheme}://127.0.0.1:{tiers.agents[0].otlp}",
                       protocol="grpc", set_global=False, headers={"authorization": f"Bearer {token}"},
                       metric_readers=[reader], metric_export_interval_ms=300, span_schedule_delay_ms=100)
    try:
        for _ in range(3):
            _traffic.openai_chat("gpt-4o-mini", (10, 1, 0))  # never raises, whatever the agent says
        llm_otel.force_flush(5_000)
    finally:
        llm_otel.shutdown()
    assert dropped(reader).get(("spans", "export_failed"), 0) == 3
    time.sleep(2)  # a few scrapes: nothing of this service may reach a gateway
    assert _tiers.promql(tiers.prometheus_url, f'llm_tokens_input_total{{job="{service}"}}') == []


def test_routing_sampling_and_failover(tiers: Tiers) -> None:
    url = tiers.prometheus_url
    app_instances = {(app.service, app.instance) for app in tiers.apps}

    # --- phase 1: all three gateways up -------------------------------------------------
    first = run_phase(tiers, units=20)
    wait_for_totals(url, [first])
    resources = assert_series_on_one_gateway(tiers)
    assert set().union(*resources.values()) == app_instances  # every app instance is somewhere, once
    traces = wait_for_kept_traces(tiers, set(first.kept()))
    assert set(first.kept()) <= set(traces)
    assert not first.dropped() & set(traces), "plain traces were kept"
    assert set(traces) - set(first.kept()) <= {t["trace_id"] for t in first.traces} - first.dropped()
    for trace_id, by_gateway in traces.items():
        assert len(by_gateway) == 1, f"trace {trace_id} is split over {sorted(by_gateway)}"
        (span_ids,) = by_gateway.values()
        assert len(span_ids) == len(set(span_ids)) == 3, trace_id  # whole, and once
    slow_plain = set(traces) - set(first.kept())
    if slow_plain:
        print(f"\n{len(slow_plain)} plain trace(s) slowed by the machine were kept as slow")
    gateways_used = {name for by_gateway in traces.values() for name in by_gateway}
    assert len(gateways_used) == 3, "traces are spread over every gateway"

    # --- phase 2: one gateway dies while traffic flows -----------------------------------
    victim_name = max(resources, key=lambda name: len(resources[name]))
    victim = next(g for g in tiers.gateways if g.name == victim_name)
    moved = resources[victim_name]
    assert moved, "the killed gateway must hold application resources"
    events: dict[str, float] = {}

    def kill_and_fail_over() -> None:
        time.sleep(2.0)
        events["kill"] = time.time()
        os.kill(victim.component.pid, signal.SIGKILL)
        victim.component.process.wait(timeout=10)
        time.sleep(1.0)  # membership lags the death (Kubernetes: readiness + DNS interval)
        _tiers.write_gateways(tiers.gateways_file, tiers.live_gateways())
        for agent in tiers.agents:
            _tiers.reload(agent)
        events["reload"] = time.time()

    second = run_phase(tiers, units=30, pause_s=0.1, during=kill_and_fail_over)
    for agent in tiers.agents:
        agent.component.wait_healthy(f"http://127.0.0.1:{agent.health}/", timeout=30)
    wait_for_totals(url, [first, second])  # cumulative re-send: nothing lost, nothing twice
    resources_after = assert_series_on_one_gateway(tiers)
    assert set().union(*resources_after.values()) == app_instances
    for name, held in resources.items():  # consistent hashing: only the dead gateway's resources moved
        if name != victim_name:
            assert held <= resources_after[name], name

    # --- phase 3: after the failover ------------------------------------------------------
    before = totals(url)
    third = run_phase(tiers, units=20)
    after = wait_for_totals(url, [first, second, third])
    phase3 = expected_totals([third])
    for key in ("input_tokens", "output_tokens", "calls", "errors"):
        assert float(after[key] or 0) - float(before[key] or 0) == phase3[key], key
    expected_kept = set(first.kept()) | set(third.kept())
    traces = wait_for_kept_traces(tiers, expected_kept)
    for trace_id in set(third.kept()):
        (span_ids,) = traces[trace_id].values()
        assert len(span_ids) == len(set(span_ids)) == 3, trace_id
    assert not third.dropped() & set(traces), "plain traces were kept"

    # --- the loss of the failover: bounded to its window, and counted -------------------------
    lost = {trace_id: t for trace_id, t in second.kept().items() if trace_id not in traces}
    for trace_id, by_gateway in traces.items():
        assert len(by_gateway) == 1 and all(len(s) == len(set(s)) for s in by_gateway.values()), trace_id
    # A trace is at risk from its end until its sampling decision: the app's span delay (0.2 s), the agent's
    # batch (1 s), the decision wait (2 s) and the decision tick (1 s); doubled for a loaded machine.
    window = (events["kill"] - 2 * 4.2, events["reload"] + 5.0)
    outside = [t for t in lost.values() if not window[0] <= t["end"] <= window[1]]
    assert outside == [], f"traces lost outside the failover window {window}: {outside}"
    # Counted where it happens: the traces the dead gateway held awaiting a decision (its own gauge,
    # last scraped by Prometheus), and the spans the agents dropped for it ("Dropping data" in their
    # logs: the load-balancing exporter gives its per-gateway exporters no meter).
    victim_job = f'job="otel-collector-internal",instance="127.0.0.1:{victim.telemetry}"'
    held = _tiers.promql_value(
        url, f"last_over_time(otelcol_processor_tail_sampling_sampling_traces_on_memory{{{victim_job}}}[5m])")
    agent_dropped = sum(_tiers.dropped_items(agent, "traces") for agent in tiers.agents)
    for app in tiers.apps:
        app.send({"exit": True})
    kit_dropped = [app.answer()["dropped"] for app in tiers.apps]
    summary = {
        "calls": expected_totals([first, second, third])["calls"],
        "phase2_kept_traces": len(second.kept()), "lost_traces": len(lost),
        "lost_spans": 3 * len(lost), "victim_traces_in_memory": held, "agent_dropped_spans": agent_dropped,
        "kit_dropped": kit_dropped, "failover_s": round(events["reload"] - events["kill"], 2),
    }
    print("\nscale-out failover:", summary)
    assert not any(kit_dropped), "the applications never lose data to a gateway failure"
    assert held is not None and (agent_dropped > 0 or held > 0 or not lost), summary
    assert len(lost) <= len(second.kept()) // 2, summary
