"""Streamed responses: per-chunk cost of a ``@traced_llm`` generator against a bare generator.

    python benchmarks/streams.py

A stream of N OpenAI-shaped chunks (the last one carries usage) is consumed
completely. The per-chunk figure is the slope between a short and a long
stream, so the fixed per-call cost (span, metrics) does not hide in it; that
fixed cost is reported separately and compared with a hand-written floor that
does the per-call telemetry of a stream with the raw SDK (span current while
each chunk is produced, time to first chunk, one time-per-output-chunk observation
per chunk after the first as GenAI semconv v1.41 asks, usage from the last chunk).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

from _timing import Row, fmt_us, interleaved, sdk_providers
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import SpanKind
from overhead import (
    INPUT_ATTRS,
    METRIC_ATTRS,
    OUTPUT_ATTRS,
    PRICE_IN,
    PRICE_OUT,
    START_ATTRS,
    FloorInstruments,
)

import llm_otel
from llm_otel import _names as n

SHORT, LONG = 10, 200
CHUNK = {"id": "chatcmpl-s", "object": "chat.completion.chunk", "model": "gpt-4o-mini-2024-07-18",
         "choices": [{"index": 0, "delta": {"content": "tok"}, "finish_reason": None}]}
LAST = {"id": "chatcmpl-s", "object": "chat.completion.chunk", "model": "gpt-4o-mini-2024-07-18",
        "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 120, "completion_tokens": 30}}


def chunks(count: int) -> Iterator[dict[str, Any]]:
    for _ in range(count - 1):
        yield CHUNK
    yield LAST


def consume(make: Callable[[int], Iterator[Any]], count: int) -> Callable[[], None]:
    def run() -> None:
        for _ in make(count):
            pass

    return run


def make_floor(tracer_provider: Any, meter_provider: Any) -> Callable[[int], Iterator[Any]]:
    tracer = tracer_provider.get_tracer("floor")
    m = FloorInstruments(meter_provider)

    def floor(count: int) -> Iterator[Any]:
        span = tracer.start_span("chat gpt-4o-mini", kind=SpanKind.CLIENT, attributes=START_ATTRS)
        ctx = trace.set_span_in_context(span)
        start = time.perf_counter()
        first: float | None = None
        last = start
        usage = None
        source = chunks(count)
        while True:
            token = otel_context.attach(ctx)  # current while the provider's generator runs
            try:
                chunk = next(source)
            except StopIteration:
                break
            finally:
                otel_context.detach(token)
            now = time.perf_counter()
            if first is None:
                first = now - start
            else:
                m.time_per_output_chunk.record(now - last, METRIC_ATTRS, ctx)
            last = now
            usage = chunk.get("usage") or usage
            yield chunk
        elapsed = time.perf_counter() - start
        prompt, completion = usage["prompt_tokens"], usage["completion_tokens"]
        cost = prompt * PRICE_IN + completion * PRICE_OUT
        span.set_attributes({n.GEN_AI_USAGE_INPUT_TOKENS: prompt, n.GEN_AI_USAGE_OUTPUT_TOKENS: completion,
                             n.LLM_COST_USD: cost, n.GEN_AI_RESPONSE_FINISH_REASONS: ["stop"]})
        span.end()
        m.duration.record(elapsed, METRIC_ATTRS, ctx)
        m.tokens_in.add(prompt, METRIC_ATTRS, ctx)
        m.tokens_out.add(completion, METRIC_ATTRS, ctx)
        m.token_usage.record(prompt, INPUT_ATTRS, ctx)
        m.token_usage.record(completion, OUTPUT_ATTRS, ctx)
        m.cost.record(cost, METRIC_ATTRS, ctx)
        m.utilization.record(prompt / 128_000, METRIC_ATTRS, ctx)
        m.time_to_first_chunk.record(first or 0.0, METRIC_ATTRS, ctx)

    return floor


def rows(calls: int, repeat: int) -> list[Row]:
    tracer_provider, meter_provider = sdk_providers("batch")
    floor_tp, floor_mp = sdk_providers("batch")
    llm_otel.configure(tracer_provider=tracer_provider, meter_provider=meter_provider, set_global=False)
    traced = llm_otel.traced_llm(provider="openai", model="gpt-4o-mini")(chunks)
    floor = make_floor(floor_tp, floor_mp)
    streams = max(calls // 50, 40)
    variants = {}
    for count in (SHORT, LONG):
        variants[f"bare {count}"] = consume(chunks, count)
        variants[f"floor {count}"] = consume(floor, count)
        variants[f"traced {count}"] = consume(traced, count)
    best = interleaved(variants, streams, repeat)
    llm_otel.shutdown()
    for provider in (tracer_provider, meter_provider, floor_tp, floor_mp):
        provider.shutdown()

    def per_chunk(name: str) -> float:
        return (best[f"{name} {LONG}"] - best[f"{name} {SHORT}"]) / (LONG - SHORT)

    def fixed(name: str) -> float:
        return best[f"{name} {SHORT}"] - SHORT * per_chunk(name)

    ours_chunk = per_chunk("traced") - per_chunk("bare")
    floor_chunk = per_chunk("floor") - per_chunk("bare")
    ours_fixed = fixed("traced") - fixed("bare")
    floor_fixed = fixed("floor") - fixed("bare")
    return [
        Row("stream", "per chunk, @traced_llm generator", fmt_us(ours_chunk),
            f"{ours_chunk / floor_chunk:.2f}x floor ({fmt_us(floor_chunk)})", "", "",
            f"bare generator {per_chunk('bare'):.2f} us/chunk"),
        Row("stream", "per stream (fixed), @traced_llm", fmt_us(ours_fixed),
            f"{ours_fixed / floor_fixed:.2f}x floor ({fmt_us(floor_fixed)})", "", ""),
    ]


if __name__ == "__main__":
    for row in rows(20000, 5):
        print(row)
