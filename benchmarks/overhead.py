"""Per-call overhead of ``@traced_llm`` against a bare call and a hand-written OTel floor.

    python benchmarks/overhead.py [--calls 20000] [--repeat 7]

All variants run in one process, interleaved, on the same response object;
the figures to compare are the ratios, not the absolute microseconds (the
machine is shared). The floor does the same telemetry work with the raw
OpenTelemetry SDK: one CLIENT span with the same attributes and the same
instrument records, with attributes precomputed — the least any
instrumentation recording these signals can do.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable, Sequence
from typing import Any

from opentelemetry import trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    SimpleSpanProcessor,
    SpanExporter,
    SpanExportResult,
)
from opentelemetry.trace import SpanKind

import llm_otel
from llm_otel import _names as n

RESPONSE = {
    "id": "chatcmpl-1",
    "object": "chat.completion",
    "model": "gpt-4o-mini-2024-07-18",
    "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": "ok"}}],
    "usage": {"prompt_tokens": 120, "completion_tokens": 30, "prompt_tokens_details": {"cached_tokens": 0}},
}


class NullExporter(SpanExporter):
    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return SpanExportResult.SUCCESS


def providers(processor: str) -> tuple[TracerProvider, MeterProvider]:
    tracer_provider = TracerProvider()
    exporter = NullExporter()
    tracer_provider.add_span_processor(
        SimpleSpanProcessor(exporter) if processor == "simple" else BatchSpanProcessor(exporter, max_queue_size=1 << 16)
    )
    return tracer_provider, MeterProvider(metric_readers=[InMemoryMetricReader()])


def bare() -> dict[str, Any]:
    return RESPONSE


def make_floor(tracer_provider: TracerProvider, meter_provider: MeterProvider) -> Callable[[], dict[str, Any]]:
    tracer = tracer_provider.get_tracer("floor")
    meter = meter_provider.get_meter("floor")
    duration = meter.create_histogram(n.OPERATION_DURATION.name, unit="s",
                                      explicit_bucket_boundaries_advisory=list(n.DURATION_BUCKETS))
    token_usage = meter.create_histogram(n.TOKEN_USAGE.name, unit="{token}",
                                         explicit_bucket_boundaries_advisory=list(n.TOKEN_BUCKETS))
    tokens_in = meter.create_counter(n.TOKENS_INPUT.name, unit="{token}")
    tokens_out = meter.create_counter(n.TOKENS_OUTPUT.name, unit="{token}")
    cost = meter.create_histogram(n.COST.name, unit="{USD}", explicit_bucket_boundaries_advisory=list(n.COST_BUCKETS))
    utilization = meter.create_histogram(n.CONTEXT_UTILIZATION.name, unit="1",
                                         explicit_bucket_boundaries_advisory=list(n.UTILIZATION_BUCKETS))
    start_attrs = {n.GEN_AI_OPERATION_NAME: "chat", n.GEN_AI_PROVIDER_NAME: "openai",
                   n.GEN_AI_REQUEST_MODEL: "gpt-4o-mini"}
    metric_attrs = {**start_attrs, n.GEN_AI_RESPONSE_MODEL: "gpt-4o-mini-2024-07-18"}
    input_attrs = {**metric_attrs, n.GEN_AI_TOKEN_TYPE: "input"}
    output_attrs = {**metric_attrs, n.GEN_AI_TOKEN_TYPE: "output"}
    price_in, price_out = 0.15e-6, 0.6e-6

    def floor() -> dict[str, Any]:
        span = tracer.start_span("chat gpt-4o-mini", kind=SpanKind.CLIENT, attributes=start_attrs)
        start = time.perf_counter()
        response = bare()
        elapsed = time.perf_counter() - start
        usage = response["usage"]
        prompt, completion = usage["prompt_tokens"], usage["completion_tokens"]
        call_cost = prompt * price_in + completion * price_out
        span.set_attributes({
            n.GEN_AI_RESPONSE_MODEL: response["model"], n.GEN_AI_RESPONSE_ID: response["id"],
            n.GEN_AI_RESPONSE_FINISH_REASONS: [response["choices"][0]["finish_reason"]],
            n.GEN_AI_USAGE_INPUT_TOKENS: prompt, n.GEN_AI_USAGE_OUTPUT_TOKENS: completion, n.LLM_COST_USD: call_cost,
        })
        span.end()
        ctx = trace.set_span_in_context(span)  # exemplars carry the trace id, as ours do
        duration.record(elapsed, metric_attrs, ctx)
        tokens_in.add(prompt, metric_attrs, ctx)
        tokens_out.add(completion, metric_attrs, ctx)
        token_usage.record(prompt, input_attrs, ctx)
        token_usage.record(completion, output_attrs, ctx)
        cost.record(call_cost, metric_attrs, ctx)
        utilization.record(prompt / 128_000, metric_attrs, ctx)
        return response

    return floor


def per_call_us(fn: Callable[[], Any], calls: int) -> float:
    start = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - start) / calls * 1e6


def measure(variants: dict[str, Callable[[], Any]], calls: int, repeat: int) -> dict[str, float]:
    best = {name: float("inf") for name in variants}
    for fn in variants.values():
        per_call_us(fn, min(calls, 2000))  # warm caches (price lookup, attribute sets)
    for _ in range(repeat):
        for name, fn in variants.items():
            best[name] = min(best[name], per_call_us(fn, calls))
    return best


def run(calls: int, repeat: int) -> list[tuple[str, dict[str, float]]]:
    results = []
    for processor in ("simple", "batch"):
        floor_tp, floor_mp = providers(processor)
        floor = make_floor(floor_tp, floor_mp)
        kit_tp, kit_mp = providers(processor)
        llm_otel.configure(tracer_provider=kit_tp, meter_provider=kit_mp, set_global=False)
        traced = llm_otel.traced_llm(provider="openai", model="gpt-4o-mini")(bare)
        results.append((processor, measure({"bare": bare, "floor": floor, "traced_llm": traced}, calls, repeat)))
        llm_otel.shutdown()
        for provider in (floor_tp, floor_mp, kit_tp, kit_mp):
            provider.shutdown()

    off_tp, off_mp = TracerProvider(), MeterProvider()
    llm_otel.configure(tracer_provider=off_tp, meter_provider=off_mp, enabled=False, set_global=False)
    disabled = llm_otel.traced_llm(provider="openai", model="gpt-4o-mini")(bare)
    results.append(("disabled", measure({"bare": bare, "traced_llm": disabled}, calls, repeat)))
    llm_otel.shutdown()
    return results


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=20000)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args(argv)
    print(f"per-call cost, best of {args.repeat} runs of {args.calls} calls (microseconds)")
    print(f"{'span processor':<15} {'bare':>8} {'floor':>8} {'traced_llm':>11} {'overhead':>9} "
          f"{'floor ovh':>9} {'ratio':>6}")
    for processor, best in run(args.calls, args.repeat):
        ours = best["traced_llm"] - best["bare"]
        if "floor" in best:
            floor = best["floor"] - best["bare"]
            print(f"{processor:<15} {best['bare']:8.2f} {best['floor']:8.2f} {best['traced_llm']:11.2f} "
                  f"{ours:9.2f} {floor:9.2f} {ours / floor:5.2f}x")
        else:
            print(f"{processor:<15} {best['bare']:8.2f} {'-':>8} {best['traced_llm']:11.2f} {ours:9.2f} "
                  f"{'-':>9} {best['traced_llm'] / best['bare']:5.2f}x of bare")


if __name__ == "__main__":
    main()
