"""The real ``openai`` client over an ``httpx.MockTransport``: our decorator against other instrumentations.

    python benchmarks/peers.py [--python /path/to/venv/bin/python]

Peers, each measured only when installed (see docs/performance.md for the
``pip install`` lines; keep them out of the project's own environment):

* ``openai-v2``: the official ``opentelemetry-instrumentation-openai-v2``
* ``openllmetry``: OpenLLMetry's ``opentelemetry-instrumentation-openai``
* ``openlit``: ``openlit`` with only its OpenAI instrumentor

Every peer runs in a fresh interpreter (instrumentors patch the client class
for the whole process). In that process the same client call is timed bare,
wrapped in ``@traced_llm``, wrapped in two hand-written floors from
``overhead.py`` (raw SDK: our signals with token sums in process, and the GenAI
conventions' three client measurements only), and with the peer instrumenting
the client. Ours and the floors are timed first, round by round with the bare
call. A peer that can be switched off cleanly (``uninstrument()`` leaves the
bare call as fast as before) then takes turns with the bare call, switched on
only for its own; one that cannot (openlit, or one whose ``uninstrument()``
leaves wrappers behind) is measured in a fresh interpreter, switched on once
after the others. The overheads are against the bare call of the same
process. Message content capture is off everywhere (our default; the peers are
configured to match). All spans go to a null exporter through the given span
processor, metrics to an in-memory reader, so no I/O is measured.
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
PEERS = {
    "openai-v2": ("opentelemetry.instrumentation.openai_v2", "opentelemetry-instrumentation-openai-v2"),
    "openllmetry": ("opentelemetry.instrumentation.openai", "opentelemetry-instrumentation-openai"),
    "openlit": ("openlit", "openlit"),
}
COMPLETION = {
    "id": "chatcmpl-bench", "object": "chat.completion", "created": 1700000000, "model": "gpt-4o-mini-2024-07-18",
    "choices": [{"index": 0, "finish_reason": "stop", "logprobs": None,
                 "message": {"role": "assistant", "content": "Paris.", "refusal": None}}],
    "usage": {"prompt_tokens": 120, "completion_tokens": 30, "total_tokens": 150,
              "prompt_tokens_details": {"cached_tokens": 0}, "completion_tokens_details": {"reasoning_tokens": 0}},
}


# ----------------------------------------------------------------------------- child process


def _client() -> Any:
    import httpx
    import openai

    body = json.dumps(COMPLETION).encode()

    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=body, headers={"content-type": "application/json"})

    return openai.OpenAI(api_key="sk-bench", base_url="http://llm.bench/v1", max_retries=0,
                         http_client=httpx.Client(transport=httpx.MockTransport(answer)))


def _instrument(peer: str, tracer_provider: Any, meter_provider: Any) -> Callable[[], None] | None:
    """Turn the peer on; returns how to turn it off again, if it can be."""
    if peer == "openai-v2":
        from opentelemetry.instrumentation.openai_v2 import OpenAIInstrumentor

        instrumentor = OpenAIInstrumentor()
        instrumentor.instrument(tracer_provider=tracer_provider, meter_provider=meter_provider)
        return instrumentor.uninstrument
    if peer == "openllmetry":
        from opentelemetry.instrumentation.openai import OpenAIInstrumentor as OpenLLMetryInstrumentor

        llmetry = OpenLLMetryInstrumentor()
        llmetry.instrument(tracer_provider=tracer_provider, meter_provider=meter_provider)
        return llmetry.uninstrument
    if peer == "openlit":
        import openlit
        from openlit._instrumentors import MODULE_NAME_MAP

        # a local price file: openlit otherwise downloads one at start-up
        prices = Path(tempfile.mkdtemp()) / "pricing.json"
        prices.write_text(json.dumps({"chat": {"gpt-4o-mini": {"promptPrice": 0.00015, "completionPrice": 0.0006},
                                               "gpt-4o-mini-2024-07-18": {"promptPrice": 0.00015,
                                                                          "completionPrice": 0.0006}}}))
        options: dict[str, Any] = {
            "capture_message_content": False, "collect_gpu_stats": False, "pricing_json": str(prices),
            "disabled_instrumentors": [name for name in MODULE_NAME_MAP if name != "openai"],
        }
        accepted = inspect.signature(openlit.init).parameters
        if "tracer" in accepted:  # older releases take a tracer and meter; newer ones use the global providers
            options.update(tracer=tracer_provider.get_tracer("openlit"), meter=meter_provider.get_meter("openlit"))
        if "disable_events" in accepted:
            options["disable_events"] = True
        openlit.init(**{key: value for key, value in options.items() if key in accepted})
        return None
    raise ValueError(peer)


def child(peer: str, processor: str, calls: int, repeat: int, switching: bool = True) -> dict[str, Any]:
    from _timing import EmittedSpans, interleaved, sdk_providers
    from opentelemetry import metrics, trace
    from overhead import make_floor, sdk_facts

    import llm_otel

    os.environ["TRACELOOP_TRACE_CONTENT"] = "false"  # OpenLLMetry records prompts unless told not to
    tracer_provider, meter_provider = sdk_providers(processor)

    names = EmittedSpans()
    tracer_provider.add_span_processor(names)
    trace.set_tracer_provider(tracer_provider)
    metrics.set_meter_provider(meter_provider)
    client = _client()
    messages = [{"role": "user", "content": "What is the capital of France?"}]

    def ask(model: str = "gpt-4o-mini") -> Any:
        return client.chat.completions.create(model=model, messages=messages)

    llm_otel.configure(tracer_provider=tracer_provider, meter_provider=meter_provider, set_global=False)
    ours = llm_otel.traced_llm(provider="openai")(ask)
    # the raw-SDK floors: our signals (tokens summed in process, as the kit does), and the GenAI
    # conventions' three client measurements (what openai-v2 records)
    floor = make_floor(tracer_provider, meter_provider, ask, sdk_facts, sum_tokens=True)
    semconv_floor = make_floor(tracer_provider, meter_provider, ask, sdk_facts, product_metrics=False)
    result: dict[str, Any] = {"peer": peer, "processor": processor}
    # ours and the floors first, before the peer has touched the process
    result.update(interleaved({"bare": ask, "ours": ours, "floor": floor, "semconv floor": semconv_floor},
                              calls, repeat))
    result["ours_spans"] = sorted(name for scope, name in names.names if scope == "llm_otel")
    off = _instrument(peer, tracer_provider, meter_provider)
    on = _reinstrument(peer, tracer_provider, meter_provider)
    if switching and off is not None and _switches_cleanly(ask, on, off):
        # the peer takes its turn in every round against the bare call, switched on and off around it
        turns = interleaved({"bare": ask, "peer": ask}, calls, repeat, switches={"peer": (on, off)})
        result["rounds"] = "interleaved"
    elif switching and off is not None:  # switching left something behind: measure again, never switching
        llm_otel.shutdown()
        return {"peer": peer, "rounds": "switching unclean"}
    else:  # the peer stays on for the rest of the process
        turns = {"bare": result["bare"], "peer": interleaved({"peer": ask}, calls, repeat)["peer"]}
        result["rounds"] = "peer last"
    result["peer_overhead"] = turns["peer"] - turns["bare"]
    result["peer_spans"] = sorted(name for scope, name in names.names
                                  if scope != "llm_otel" and not scope.startswith("floor"))
    llm_otel.shutdown()
    return result


def _switches_cleanly(ask: Callable[[], Any], on: Callable[[], None], off: Callable[[], None]) -> bool:
    """Switching the peer on and off again leaves the bare call as fast as before (some
    instrumentors leave wrappers behind on ``uninstrument()``, which would slow every variant)."""
    from _timing import per_call_us

    off()
    before = min(per_call_us(ask, 300) for _ in range(3))
    for _ in range(3):
        on()
        per_call_us(ask, 50)
        off()
    after = min(per_call_us(ask, 300) for _ in range(3))
    return after <= before * 1.1


def _reinstrument(peer: str, tracer_provider: Any, meter_provider: Any) -> Callable[[], None]:
    def on() -> None:
        _instrument(peer, tracer_provider, meter_provider)

    return on


# ----------------------------------------------------------------------------- parent


def installed(python: str, module: str) -> bool:
    probe = f"import importlib.util, sys; sys.exit(0 if importlib.util.find_spec({module!r}) else 1)"
    return subprocess.run([python, "-c", probe], capture_output=True, timeout=60).returncode == 0


def run_child(python: str, peer: str, processor: str, calls: int, repeat: int) -> dict[str, Any]:
    result = _run_child(python, peer, processor, calls, repeat, [])
    if result["rounds"] == "switching unclean":
        result = _run_child(python, peer, processor, calls, repeat, ["--no-switching"])
    return result


def _run_child(python: str, peer: str, processor: str, calls: int, repeat: int, extra: list[str]) -> dict[str, Any]:
    command = [python, str(Path(__file__)), "--child", peer, "--processor", processor,
               "--calls", str(calls), "--repeat", str(repeat), *extra]
    from _timing import child_env

    done = subprocess.run(command, capture_output=True, text=True, timeout=900, env=child_env(), cwd=HERE.parent)
    if done.returncode != 0:
        raise RuntimeError(f"{peer}/{processor} failed:\n{done.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def candidates(given: list[str] | None) -> list[str]:
    """Where to look for peers, in order: --python (repeatable), $LLM_OTEL_BENCH_PEERS_PYTHON
    (os.pathsep-separated), then this interpreter; those that exist."""
    found = list(given or [])
    found += [p for p in os.environ.get("LLM_OTEL_BENCH_PEERS_PYTHON", "").split(os.pathsep) if p]
    found.append(sys.executable)
    return [python for python in dict.fromkeys(found) if Path(python).exists()]


def interpreters(given: list[str] | None) -> list[str]:
    """The candidates with the openai client. Each peer runs under the first one that has it installed."""
    return [python for python in candidates(given) if installed(python, "openai") and installed(python, "httpx")]


def rows(calls: int, repeat: int, pythons: list[str] | None = None) -> list[Any]:
    from _timing import Row, fmt_us

    usable = interpreters(pythons)
    if not usable:
        return [Row("peers", "openai client", "-", verdict="skipped", note="openai/httpx not installed")]
    out = []
    calls = max(calls // 10, 300)  # a client call costs ~10x a bare function call
    for processor in ("simple", "batch"):
        for peer, (module, package) in PEERS.items():
            python = next((p for p in usable if installed(p, module)), None)
            if python is None:
                out.append(Row("peers", f"{peer}, {processor}", "-", verdict="skipped",
                               note=f"not installed: pip install {package}"))
                continue
            try:
                result = run_child(python, peer, processor, calls, repeat)
            except (RuntimeError, subprocess.TimeoutExpired) as exc:
                out.append(Row("peers", f"{peer}, {processor}", "-", verdict="failed",
                               note=str(exc).strip().splitlines()[-1][:160]))
                continue
            bare = result["bare"]
            ours = result["ours"] - bare  # measured in the same process, same client and SDK
            theirs = result["peer_overhead"]
            floor = result["floor"] - bare
            emitted = "span " + ", ".join(result["peer_spans"]) if result["peer_spans"] else "NO span emitted"
            out.append(Row(
                "peers", f"{peer} vs @traced_llm, {processor}", f"+{fmt_us(theirs)} vs +{fmt_us(ours)}",
                f"ours is {ours / theirs:.2f}x of it", "ours below", "ok" if ours < theirs else "MISSED",
                f"bare client call {fmt_us(bare)}; peer emitted {emitted}; rounds {result['rounds']}",
            ))
            semconv = result["semconv floor"] - bare
            out.append(Row(
                "peers", f"  raw-SDK floors, {processor}", f"+{fmt_us(semconv)} vs +{fmt_us(floor)}",
                f"our floor is {floor / theirs:.2f}x of {peer}", "", "",
                "GenAI semconv's signals (span + 3 measurements) vs ours (span + 5 measurements, token sums)",
            ))
            theirs_own, ours_own = theirs - semconv, ours - floor
            own_ratio = f"ours is {ours_own / theirs_own:.2f}x of it" if theirs_own > 0 else ""
            out.append(Row(
                "peers", f"  own work beyond the floor, {processor}", f"+{fmt_us(theirs_own)} vs "
                f"+{fmt_us(ours_own)}", own_ratio, "", "",
                f"{peer} over the semconv floor (a peer recording more shows more) vs ours over our floor",
            ))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--child")
    parser.add_argument("--processor", default="batch")
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--python", action="append", help="an interpreter with peers installed (repeatable)")
    parser.add_argument("--no-switching", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        sys.path.insert(0, str(HERE))
        print(json.dumps(child(args.child, args.processor, args.calls, args.repeat, not args.no_switching)))
        return
    for row in rows(args.calls * 10, args.repeat, args.python):
        print(row)


if __name__ == "__main__":
    main()
