"""The gateway keeps the configured share of ordinary traces, whole, and never samples metrics.

One gateway from the shipped gateway.yaml with LLM_OTEL_SAMPLING_PERCENT=50; the kit
exports to it directly over mutual TLS (the agents' client certificate, through the
SDK's OTEL_EXPORTER_OTLP_CLIENT_* settings). 200 ordinary traces: about half are kept
(the hash of the trace id decides), each kept one with all its spans, and the token
totals the gateway exposes for Prometheus count every call.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from opentelemetry import trace

import llm_otel
from tests.e2e import _traffic
from tests.faults._outage import eventually
from tests.scaleout import _tiers
from tests.scaleout._certs import make_pki
from tests.scaleout._tiers import Collector

pytestmark = [pytest.mark.stack, pytest.mark.slow]

TRACES = 200
SERVICE = "scaleout-share"


@pytest.fixture
def gateway(tmp_path: Path, collector_bin: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Collector]:
    pki = make_pki(tmp_path)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_CERTIFICATE", str(pki.ca))
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE", str(pki.cert))
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_CLIENT_KEY", str(pki.key))
    collector = _tiers.start_gateway(collector_bin, tmp_path, "gateway-share", pki,
                                     sampling={"LLM_OTEL_SAMPLING_PERCENT": "50"})
    try:
        yield collector
    finally:
        collector.component.stop()


def _input_tokens(gateway: Collector) -> float:
    return sum(float(series.rsplit(" ", 1)[-1]) for series in _metric_lines(gateway)
               if series.startswith("llm_tokens_input_total{") and f'job="{SERVICE}"' in series)


def _metric_lines(gateway: Collector) -> list[str]:
    import urllib.request

    with urllib.request.urlopen(f"http://127.0.0.1:{gateway.metrics}/metrics", timeout=10) as response:
        return response.read().decode().splitlines()


def test_a_configured_share_of_plain_traces_is_kept_and_metrics_are_exact(gateway: Collector) -> None:
    llm_otel.configure(service_name=SERVICE, endpoint=f"https://{gateway.endpoint}", protocol="grpc",
                       set_global=False, metric_export_interval_ms=300, span_schedule_delay_ms=100)
    sent: set[str] = set()
    try:
        for _ in range(TRACES):
            with llm_otel.route(task_type="share", model="gpt-4o-mini"):
                sent.add(format(trace.get_current_span().get_span_context().trace_id, "032x"))
                _traffic.openai_chat("gpt-4o-mini", (100, 5, 0))
                _traffic.openai_chat("gpt-4o-mini", (100, 5, 0))
        llm_otel.force_flush(10_000)
        eventually(lambda: _input_tokens(gateway) == 2 * 100 * TRACES, "every call's tokens on the gateway", 60)
    finally:
        llm_otel.shutdown()
    # Decisions come decision_wait (2 s) after a trace's first span: wait until the count stops changing.
    eventually(lambda: _tiers.spans_by_trace([gateway]), "the first kept traces", timeout=30)
    counts = [-1]
    for _ in range(12):
        counts.append(len(_tiers.spans_by_trace([gateway])))
        if counts[-1] == counts[-2]:
            break
        time.sleep(5)  # longer than the decision wait, its tick and the file flush together
    kept = _tiers.spans_by_trace([gateway])
    assert set(kept) <= sent
    assert 0.3 * TRACES <= len(kept) <= 0.7 * TRACES, len(kept)  # 50% of 200: binomial, sd about 7
    for trace_id, by_gateway in kept.items():
        assert sorted(len(spans) for spans in by_gateway.values()) == [3], trace_id  # whole or not at all
    assert _input_tokens(gateway) == 2 * 100 * TRACES  # metrics are never sampled

