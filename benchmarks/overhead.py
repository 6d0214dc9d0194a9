"""Per-call overhead of ``@traced_llm`` against a bare call and a hand-written OTel floor.

    python benchmarks/overhead.py [--calls 20000] [--repeat 7]

All variants run in one process, interleaved, on the same response object; the
figures to compare are the ratios, not the absolute microseconds (the machine is
shared). The floor does the same telemetry work with the raw OpenTelemetry SDK,
with every attribute precomputed: one CLIENT span with the same attributes, made
the current span while the call runs (as any instrumentation must, so HTTP client
spans nest under it), and the same seven instrument records with the span as
exemplar context — the least a plain SDK implementation of these signals does.
A second floor sums the two token counters in process, as the kit does (two SDK
measurements fewer); against it, what remains is the kit's own work.

Telemetry off: the kit disabled, no SDK provider at all (configure() never ran),
traces sampled out with no metrics pipeline (measured against the SDK sampler's own
decision), and traces sampled out with metrics on (spans skipped; metrics are still
recorded, since totals must stay exact).
"""

from __future__ import annotations

import argparse
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from _timing import Row, fmt_us, interleaved, ratio_verdict, sdk_providers
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, TraceIdRatioBased
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
OVERHEAD_TARGET = 1.25


def bare() -> dict[str, Any]:
    return RESPONSE


class FloorInstruments:
    """The kit's per-call instruments, created by hand on a raw SDK meter."""

    def __init__(self, meter_provider: MeterProvider, scope: str = "floor") -> None:
        meter = meter_provider.get_meter(scope)
        self.duration = meter.create_histogram(n.OPERATION_DURATION.name, unit="s",
                                               explicit_bucket_boundaries_advisory=list(n.DURATION_BUCKETS))
        self.token_usage = meter.create_histogram(n.TOKEN_USAGE.name, unit="{token}",
                                                  explicit_bucket_boundaries_advisory=list(n.TOKEN_BUCKETS))
        self.tokens_in = meter.create_counter(n.TOKENS_INPUT.name, unit="{token}")
        self.tokens_out = meter.create_counter(n.TOKENS_OUTPUT.name, unit="{token}")
        self.cost = meter.create_histogram(n.COST.name, unit="{USD}",
                                           explicit_bucket_boundaries_advisory=list(n.COST_BUCKETS))
        self.utilization = meter.create_histogram(n.CONTEXT_UTILIZATION.name, unit="1",
                                                  explicit_bucket_boundaries_advisory=list(n.UTILIZATION_BUCKETS))
        self.time_to_first_chunk = meter.create_histogram(
            n.TIME_TO_FIRST_CHUNK.name, unit="s",
            explicit_bucket_boundaries_advisory=list(n.TIME_TO_FIRST_CHUNK.buckets or ()))
        self.time_per_output_chunk = meter.create_histogram(
            n.TIME_PER_OUTPUT_CHUNK.name, unit="s",
            explicit_bucket_boundaries_advisory=list(n.TIME_PER_OUTPUT_CHUNK.buckets or ()))


START_ATTRS = {n.GEN_AI_OPERATION_NAME: "chat", n.GEN_AI_PROVIDER_NAME: "openai", n.GEN_AI_REQUEST_MODEL: "gpt-4o-mini"}
METRIC_ATTRS = {**START_ATTRS, n.GEN_AI_RESPONSE_MODEL: "gpt-4o-mini-2024-07-18"}
INPUT_ATTRS = {**METRIC_ATTRS, n.GEN_AI_TOKEN_TYPE: "input"}
OUTPUT_ATTRS = {**METRIC_ATTRS, n.GEN_AI_TOKEN_TYPE: "output"}
PRICE_IN, PRICE_OUT = 0.15e-6, 0.6e-6


def dict_facts(response: Any) -> tuple[str, str, str, int, int]:
    usage = response["usage"]
    return (response["model"], response["id"], response["choices"][0]["finish_reason"],
            usage["prompt_tokens"], usage["completion_tokens"])


def sdk_facts(response: Any) -> tuple[str, str, str, int, int]:
    """The same facts from an ``openai`` SDK ``ChatCompletion``."""
    usage = response.usage
    return response.model, response.id, response.choices[0].finish_reason, usage.prompt_tokens, usage.completion_tokens


def make_floor(
    tracer_provider: TracerProvider,
    meter_provider: MeterProvider,
    call: Callable[[], Any] = bare,
    facts: Callable[[Any], tuple[str, str, str, int, int]] = dict_facts,
    *,
    sum_tokens: bool = False,
    product_metrics: bool = True,
) -> Callable[[], Any]:
    """The floor; ``sum_tokens`` gives it the kit's one trick: token totals summed in process
    (read at export by observable counters) instead of two SDK counter measurements per call.
    Without ``product_metrics`` it records only the GenAI semantic conventions' client metrics
    (duration and token usage, three measurements): no token counters, cost or context utilisation."""
    scope = "floor-sums" if sum_tokens else "floor" if product_metrics else "floor-semconv"
    tracer = tracer_provider.get_tracer(scope)
    m = FloorInstruments(meter_provider, scope)
    sums: dict[tuple[tuple[str, str], ...], list[int]] | None = {} if sum_tokens else None
    key = tuple(sorted(METRIC_ATTRS.items()))  # one series, looked up per call as the kit does
    lock = threading.Lock()

    def floor() -> Any:
        span = tracer.start_span("chat gpt-4o-mini", kind=SpanKind.CLIENT, attributes=START_ATTRS)
        ctx = trace.set_span_in_context(span)
        token = otel_context.attach(ctx)
        start = time.perf_counter()
        try:
            response = call()
        finally:
            otel_context.detach(token)
        elapsed = time.perf_counter() - start
        model, response_id, finish_reason, prompt, completion = facts(response)
        response_attributes: dict[str, Any] = {
            n.GEN_AI_RESPONSE_MODEL: model, n.GEN_AI_RESPONSE_ID: response_id,
            n.GEN_AI_RESPONSE_FINISH_REASONS: [finish_reason],
            n.GEN_AI_USAGE_INPUT_TOKENS: prompt, n.GEN_AI_USAGE_OUTPUT_TOKENS: completion,
        }
        call_cost = prompt * PRICE_IN + completion * PRICE_OUT
        if product_metrics:
            response_attributes[n.LLM_COST_USD] = call_cost
        span.set_attributes(response_attributes)
        span.end()
        m.duration.record(elapsed, METRIC_ATTRS, ctx)  # exemplars carry the trace id, as ours do
        m.token_usage.record(prompt, INPUT_ATTRS, ctx)
        m.token_usage.record(completion, OUTPUT_ATTRS, ctx)
        if not product_metrics:
            return response
        if sums is None:
            m.tokens_in.add(prompt, METRIC_ATTRS, ctx)
            m.tokens_out.add(completion, METRIC_ATTRS, ctx)
        else:
            with lock:
                totals = sums.setdefault(key, [0, 0])
                totals[0] += prompt
                totals[1] += completion
        m.cost.record(call_cost, METRIC_ATTRS, ctx)
        m.utilization.record(prompt / 128_000, METRIC_ATTRS, ctx)
        return response

    return floor


def measure_processors(calls: int, repeat: int) -> list[tuple[str, dict[str, float]]]:
    results = []
    for processor in ("simple", "batch"):
        floor_tp, floor_mp = sdk_providers(processor)
        floor = make_floor(floor_tp, floor_mp)
        kit_tp, kit_mp = sdk_providers(processor)
        llm_otel.configure(tracer_provider=kit_tp, meter_provider=kit_mp, set_global=False)
        traced = llm_otel.traced_llm(provider="openai", model="gpt-4o-mini")(bare)
        summing = make_floor(floor_tp, floor_mp, sum_tokens=True)
        results.append((processor, interleaved(
            {"bare": bare, "floor": floor, "summing floor": summing, "traced_llm": traced}, calls, repeat)))
        llm_otel.shutdown()
        for provider in (floor_tp, floor_mp, kit_tp, kit_mp):
            provider.shutdown()
    return results


def measure_off(calls: int, repeat: int) -> dict[str, float]:
    """The kit switched off three ways; each decorated function is the same ``bare``."""
    decorate = llm_otel.traced_llm(provider="openai", model="gpt-4o-mini")
    variants: dict[str, Callable[[], Any]] = {"bare": bare}

    llm_otel.configure(tracer_provider=TracerProvider(), meter_provider=MeterProvider(), enabled=False,
                       set_global=False)
    disabled = decorate(bare)
    variants["disabled"] = disabled
    best = interleaved(variants, calls, repeat)

    llm_otel.shutdown()  # back to the global providers, which nobody set: no SDK at all
    best["no provider"] = interleaved({"bare": bare, "no provider": decorate(bare)}, calls, repeat)["no provider"]

    sampled_out = TracerProvider(sampler=ALWAYS_OFF)
    meter_provider = MeterProvider(metric_readers=[InMemoryMetricReader()])
    llm_otel.configure(tracer_provider=sampled_out, meter_provider=meter_provider, set_global=False)
    metrics_on = decorate(bare)
    best["sampled out"] = interleaved({"bare": bare, "sampled out": metrics_on}, calls, repeat)["sampled out"]

    # Traces sampled out and no metrics pipeline. always_off (and a parent-based sampler under an
    # unsampled parent) is known before any span starts; a ratio sampler at the root has to be
    # asked, so its own decision (a raw start_span with the same attributes) is the reference.
    llm_otel.configure(tracer_provider=sampled_out, metrics_exporter="none", set_global=False)
    best["sampled out, metrics off"] = interleaved(
        {"bare": bare, "both off": decorate(bare)}, calls, repeat)["both off"]
    by_ratio = TracerProvider(sampler=TraceIdRatioBased(0.0))
    llm_otel.configure(tracer_provider=by_ratio, metrics_exporter="none", set_global=False)
    tracer = by_ratio.get_tracer("reference")

    def sampler_decision() -> Any:
        tracer.start_span("chat gpt-4o-mini", kind=SpanKind.CLIENT, attributes=START_ATTRS).end()
        return bare()

    asked = interleaved({"bare": bare, "sampler": sampler_decision, "ratio": decorate(bare)}, calls, repeat)
    best["ratio sampled out, metrics off"] = asked["ratio"] - asked["bare"] + best["bare"]
    best["sampler decision"] = asked["sampler"] - asked["bare"] + best["bare"]
    llm_otel.shutdown()
    return best


def measure_sdk_measurement(calls: int, repeat: int) -> dict[str, float]:
    """What one SDK measurement costs, with the kit's four labels and the span as exemplar context:
    the unit every instrumentation's metric cost is made of."""
    tracer_provider, meter_provider = sdk_providers("simple")
    m = FloorInstruments(meter_provider, "unit")
    span = tracer_provider.get_tracer("unit").start_span("chat gpt-4o-mini")
    ctx = trace.set_span_in_context(span)

    def nothing() -> None:
        return None

    def histogram() -> None:
        m.cost.record(0.001, METRIC_ATTRS, ctx)

    def counter() -> None:
        m.tokens_in.add(120, METRIC_ATTRS, ctx)

    best = interleaved({"bare": nothing, "histogram": histogram, "counter": counter}, calls, repeat)
    span.end()
    for provider in (tracer_provider, meter_provider):
        provider.shutdown()
    return best


def measure_bounds(calls: int, repeat: int) -> dict[str, float]:
    """The value checks a clean call pays (llm_otel._bounds via the call record): identifiers,
    token counts and response facts, all already within bounds."""
    from llm_otel import _bounds
    from llm_otel._call import _bound_facts
    from llm_otel._extract import ResponseFacts
    from llm_otel._usage import TokenUsage, UsageProblems, bounded

    usage, problems = TokenUsage(120, 40), UsageProblems()
    facts = ResponseFacts(usage=usage, response_model="gpt-4o-mini-2024-07-18", response_id="chatcmpl-1",
                          finish_reasons=["stop"])

    def nothing() -> None:
        return None

    def clean_call() -> None:
        _bounds.is_clean_label("gpt-4o-mini")
        _bounds.is_clean_label("openai")
        bounded(usage, problems)
        _bound_facts(facts)

    return interleaved({"bare": nothing, "bounds": clean_call}, calls, repeat)


def rows(calls: int, repeat: int) -> list[Row]:
    out = []
    unit = measure_sdk_measurement(calls, repeat)
    for kind in ("histogram", "counter"):
        out.append(Row("sdk", f"one {kind} measurement, 4 labels", fmt_us(unit[kind] - unit["bare"]), "", "", "",
                       "raw SDK, span context for exemplars; the kit makes 5 per call, openai-v2 3"))
    checks = measure_bounds(calls, repeat)
    added = checks["bounds"] - checks["bare"]
    histogram = unit["histogram"] - unit["bare"]
    out.append(Row("per call", "value bounds, a clean call", fmt_us(added),
                   f"{added / histogram:.2f}x one SDK measurement", "<= 0.5x one SDK measurement",
                   ratio_verdict(added / histogram, 0.5),
                   "token counts, identifiers and response facts checked before they reach the SDK"))
    for processor, best in measure_processors(calls, repeat):
        ours = best["traced_llm"] - best["bare"]
        floor = best["floor"] - best["bare"]
        ratio = ours / floor
        out.append(Row(
            "per call", f"@traced_llm, {processor} processor", fmt_us(ours),
            f"{ratio:.2f}x floor ({fmt_us(floor)})", f"<= {OVERHEAD_TARGET}x floor",
            ratio_verdict(ratio, OVERHEAD_TARGET),
        ))
        summing = best["summing floor"] - best["bare"]
        out.append(Row(
            "per call", f"  same, vs a floor with token sums, {processor}", fmt_us(ours),
            f"{ours / summing:.2f}x ({fmt_us(summing)})", "", "",
            "the floor summing tokens in process as the kit does: what is left is the kit's own work",
        ))
    off = measure_off(calls, repeat)
    for variant in ("disabled", "no provider"):
        added = off[variant] - off["bare"]
        out.append(Row("telemetry off", f"@traced_llm, {variant}", f"+{added:.2f} us",
                       f"{off[variant] / off['bare']:.1f}x bare ({off['bare']:.2f} us)", "<= 1 us added",
                       ratio_verdict(added, 1.0)))
    added = off["sampled out, metrics off"] - off["bare"]
    out.append(Row("telemetry off", "@traced_llm, sampled out, metrics off", f"+{added:.2f} us",
                   f"{off['sampled out, metrics off'] / off['bare']:.1f}x bare ({off['bare']:.2f} us)",
                   "<= 1 us added", ratio_verdict(added, 1.0), "always_off, or an unsampled parent"))
    decision = off["sampler decision"] - off["bare"]
    added = off["ratio sampled out, metrics off"] - off["bare"]
    out.append(Row("telemetry off", "same, ratio sampler at the root", f"+{added:.2f} us",
                   f"SDK sampler alone +{decision:.2f} us", "", "",
                   "the sampler must be asked; the rest of the call is skipped"))
    added = off["sampled out"] - off["bare"]
    out.append(Row("telemetry off", "@traced_llm, sampled out, metrics on", f"+{added:.1f} us", "", "",
                   "", "spans skipped; the metrics are still recorded so totals stay exact"))
    return out


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--calls", type=int, default=20000)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args(argv)
    for row in rows(args.calls, args.repeat):
        print(f"{row.section:<14} {row.variant:<34} {row.value:>10}  {row.ratio:<28} {row.verdict}")


if __name__ == "__main__":
    main()
