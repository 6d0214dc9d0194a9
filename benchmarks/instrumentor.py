"""The openai SDK instrumentor against ``@traced_llm`` around the same call, in one process.

    python benchmarks/instrumentor.py [--calls 5000] [--repeat 7]

The real ``openai`` client answers from an in-process mock transport (no network).
Three variants take turns, round by round: the bare client call, the call inside a
``@traced_llm`` function, and the bare call with ``llm_otel.instrument("openai")``
switched on for its own rounds only (the instrumentor wraps the SDK class for the
whole process). Both kit variants record the same signals through the same SDK
providers (null span exporter, in-memory metric reader): the decorator is given the
client's server address, as the instrumentor reads it from the client, and every
response carries its own id, as real ones do. Target: the instrumentor's overhead is
at most 1.10 x the decorator's.

With valgrind installed, the same three variants are also counted in instructions
per call (``_instructions.py``), under the simple processor: the verdict is taken
from the counts, which do not move with the machine's load; the timed rows then
show the figures for context.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import _instructions
from _timing import Row, fmt_us, interleaved, ratio_verdict, sdk_providers

import llm_otel

TARGET = 1.10
COMPLETION = {
    "id": "chatcmpl-bench", "object": "chat.completion", "created": 1, "model": "gpt-4o-mini-2024-07-18",
    "choices": [{"index": 0, "finish_reason": "stop", "logprobs": None,
                 "message": {"role": "assistant", "content": "Paris."}}],
    "usage": {"prompt_tokens": 14, "completion_tokens": 2, "total_tokens": 16},
}


def _client() -> Any:
    import openai

    transport_module: Any
    try:  # the SDK's own HTTP library: httpx, or httpx2 in the newest releases
        import httpx2 as transport_module
    except ImportError:
        import httpx as transport_module

    ids = itertools.count()

    def body() -> bytes:
        return json.dumps({**COMPLETION, "id": f"chatcmpl-bench-{next(ids)}"}).encode()

    def answer(request: Any) -> Any:
        return transport_module.Response(200, content=body(), headers={"content-type": "application/json"})

    http_client = transport_module.Client(transport=transport_module.MockTransport(answer))
    try:
        return openai.OpenAI(api_key="sk-bench", base_url="http://llm.bench/v1", max_retries=0,
                             http_client=http_client)
    except TypeError:  # an SDK built on the other HTTP library
        import httpx

        return openai.OpenAI(api_key="sk-bench", base_url="http://llm.bench/v1", max_retries=0,
                             http_client=httpx.Client(transport=httpx.MockTransport(
                                 lambda request: httpx.Response(200, content=body(),
                                                                headers={"content-type": "application/json"}))))


Variants = dict[str, Callable[[], Any]]
Switches = dict[str, tuple[Callable[[], Any], Callable[[], Any]]]
NAMES = ("bare", "@traced_llm", "instrumented")


def variants(processor: str) -> tuple[Variants, Switches]:
    """The three variants, the kit configured on SDK providers with the given span processor."""
    tracer_provider, meter_provider = sdk_providers(processor)
    llm_otel.configure(tracer_provider=tracer_provider, meter_provider=meter_provider, set_global=False)
    client = _client()
    messages = [{"role": "user", "content": "What is the capital of France?"}]

    def ask(model: str = "gpt-4o-mini") -> Any:
        return client.chat.completions.create(model=model, messages=messages)

    decorated = llm_otel.traced_llm(provider="openai", server_address=str(client.base_url))(ask)
    switches: Switches = {"instrumented": (lambda: llm_otel.instrument("openai"),
                                           lambda: llm_otel.uninstrument("openai"))}
    return {"bare": ask, "@traced_llm": decorated, "instrumented": ask}, switches


def measure(calls: int, repeat: int, processor: str = "batch") -> dict[str, float]:
    timed, switches = variants(processor)
    try:
        return interleaved(timed, calls, repeat, switches=switches)
    finally:
        llm_otel.shutdown()


def instruction_rows(calls: int = 200) -> list[Row]:
    if not _instructions.available():
        return [_instructions.unavailable_row("instrumentor")]

    per_call = _instructions.count(sys.executable, Path(__file__), ["--instructions", str(calls)], NAMES, calls)
    traced = per_call["@traced_llm"] - per_call["bare"]
    instrumented = per_call["instrumented"] - per_call["bare"]
    ratio = instrumented / traced
    return [
        Row("instrumentor", "openai client call, bare (instructions)", _instructions.fmt_instructions(per_call["bare"])),
        Row("instrumentor", "@traced_llm around it (instructions)", "+" + _instructions.fmt_instructions(traced)),
        Row("instrumentor", "llm_otel.instrument('openai') (instructions)",
            "+" + _instructions.fmt_instructions(instrumented), f"{ratio:.2f} x decorator", f"<= {TARGET:.2f} x",
            ratio_verdict(ratio, TARGET), "simple processor; counted, the verdict of this section"),
    ]


def rows(calls: int, repeat: int, instructions: bool = True) -> list[Row]:
    counts = instruction_rows() if instructions else []
    judged_by_counts = any(row.verdict in ("ok", "MISSED") for row in counts)
    calls = max(calls // 4, 500)  # a client call costs ~100 us: fewer calls give the same precision
    out = []
    for processor in ("batch", "simple"):
        best = measure(calls, repeat, processor)
        traced = best["@traced_llm"] - best["bare"]
        instrumented = best["instrumented"] - best["bare"]
        ratio = instrumented / traced if traced > 0 else float("inf")
        out.append(Row("instrumentor", f"openai client call, bare ({processor} processor)", fmt_us(best["bare"])))
        noisy = traced <= 0 or instrumented <= 0  # a loaded machine: the overheads drowned in the call's noise
        out.append(Row("instrumentor", f"@traced_llm around it ({processor})", _signed(traced)))
        verdict = "noisy" if noisy else ratio_verdict(ratio, TARGET)
        out.append(Row("instrumentor", f"llm_otel.instrument('openai') ({processor})", _signed(instrumented),
                       "" if noisy else f"{ratio:.2f} x decorator", f"<= {TARGET:.2f} x",
                       "" if judged_by_counts else verdict,
                       f"timed ({verdict}); judged by the instruction counts" if judged_by_counts else ""))
    return out + counts


def _signed(value: float) -> str:
    return ("+" if value >= 0 else "-") + fmt_us(abs(value))


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=5000)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--no-instructions", action="store_true", help="skip the callgrind counts")
    parser.add_argument("--instructions", type=int, metavar="CALLS", help=argparse.SUPPRESS)  # the counted child
    args = parser.parse_args(argv)
    if args.instructions:
        counted, switches = variants("simple")
        _instructions.counted(counted, args.instructions, switches)
        llm_otel.shutdown()
        return
    for row in rows(args.calls * 4, args.repeat, instructions=not args.no_instructions):
        print(f"{row.variant:55} {row.value:>12} {row.ratio:>18} {row.target:>10} {row.verdict}")


if __name__ == "__main__":
    main()
