"""The issue's poisoned values, sent over real OTLP/gRPC to the real Collector.

Before the bounds, each of these made the Collector or the encoder refuse whole
requests: the process's metric exports all failed from the first 2**63 token count on,
and a lone surrogate, a 1 MB model name or a 5 MB captured prompt cost whole batches.
Here they are sent first, and the good calls made after them must reach the Collector's
output files with their exact token totals, with nothing counted as lost.
"""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

import llm_otel
from llm_otel.tools._stack import StackInfo

pytestmark = [pytest.mark.stack, pytest.mark.slow]

SERVICE = "faults-poisoned-values"


def _response(model: str, prompt_tokens: Any, completion_tokens: Any = 1) -> dict[str, Any]:
    return {"id": "r", "object": "chat.completion", "model": model,
            "choices": [{"finish_reason": "stop", "message": {"content": "ok"}}],
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens}}


def _lines(path: Any, kind: str) -> list[dict[str, Any]]:
    found = []
    for line in path.read_text(errors="replace").splitlines() if path is not None and path.exists() else ():
        for resource in json.loads(line).get(kind, []):
            attrs = {a["key"]: a["value"].get("stringValue") for a in resource["resource"]["attributes"]}
            if attrs.get("service.name") == SERVICE:
                found.append(resource)
    return found


def _good_input_tokens(metrics: list[dict[str, Any]]) -> int:
    best = 0
    for resource in metrics:
        for scope in resource.get("scopeMetrics", []):
            for metric in scope.get("metrics", []):
                if metric["name"] != "llm.tokens.input":
                    continue
                for point in metric["sum"]["dataPoints"]:
                    attrs = {a["key"]: a["value"].get("stringValue") for a in point.get("attributes", [])}
                    if attrs.get("gen_ai.request.model") == "good-model":
                        best = max(best, int(point.get("asInt", 0)))
    return best


def test_poisoned_values_cost_no_good_telemetry(native_stack: StackInfo) -> None:
    telemetry = llm_otel.configure(service_name=SERVICE, endpoint=native_stack.otlp_grpc_endpoint, protocol="grpc",
                                   set_global=False, capture_content=True, metric_export_interval_ms=500,
                                   span_schedule_delay_ms=200)
    try:
        @llm_otel.traced_llm(provider="openai")
        def ask(model: str, messages: Any, response: Any) -> Any:
            return response

        prompt = [{"role": "user", "content": "z" * 5_400_000}]
        ask("poison-a", prompt, _response("poison-a", 2**63))
        ask("poison-b", prompt, _response("poison-b", 2**62, 2**62))
        ask("poison-c", prompt, _response("poison-c", "9" * 20))
        ask("gpt-\ud800", prompt, _response("gpt-\ud800", 5))
        ask("m" * 1_000_000, prompt, _response("m" * 1_000_000, 5))
        for i in range(90):  # under the cardinality cap of 100 with the good model
            ask(f"{i:03d}" + "x" * 10_000, prompt, _response("same", 1))
        for _ in range(10):
            ask("good-model", [{"role": "user", "content": "hi"}], _response("good-model", 7, 3))
        assert llm_otel.force_flush(20_000)
        deadline = time.monotonic() + 60
        spans: list[dict[str, Any]] = []
        while time.monotonic() < deadline:
            spans = _lines(native_stack.traces_file, "resourceSpans")
            metrics = _lines(native_stack.metrics_file, "resourceMetrics")
            if _good_input_tokens(metrics) == 70 and "chat good-model" in json.dumps(spans):
                break
            time.sleep(0.5)
        assert _good_input_tokens(metrics) == 70
        names = [s["name"] for r in spans for sc in r.get("scopeSpans", []) for s in sc.get("spans", [])]
        assert names.count("chat good-model") == 10
        assert len(names) == 105  # every poisoned call's span arrived too, bounded
        telemetry.meter_provider.force_flush()  # type: ignore[attr-defined]
        from llm_otel._delivery import pipeline_status

        sink = pipeline_status()
        assert sink is not None and sink.totals == {}, sink.totals
    finally:
        llm_otel.shutdown()
