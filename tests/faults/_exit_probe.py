"""A short application run in its own interpreter: configure, call, flush, exit (timed).

    python -m tests.faults._exit_probe '{"configure": {...}, "calls": 2000, "flush_ms": 1500}'

Prints one JSON line when its work is done: how long ``force_flush`` (and, when asked,
``shutdown``) took and the wall-clock instant the work ended, so the parent can time
the interpreter's exit from there. The benchmark of exit times runs it too.
"""

from __future__ import annotations

import importlib
import json
import sys
import time

import llm_otel


def main() -> None:
    plan = json.loads(sys.argv[1])
    for module in plan.get("imports", []):  # a comparison run loads what the exporters would
        importlib.import_module(module)
    llm_otel.configure(**plan.get("configure", {}))
    for index in range(int(plan.get("calls", 1))):
        with llm_otel.llm_call(provider="openai", model="gpt-4o-mini") as call:
            call.set_usage(input_tokens=10 + index % 7, output_tokens=2)
    report: dict[str, object] = {}
    if plan.get("flush_ms") is not None:
        start = time.monotonic()
        report["flush_ok"] = llm_otel.force_flush(timeout_millis=int(plan["flush_ms"]))
        report["flush_s"] = time.monotonic() - start
    if plan.get("shutdown_ms") is not None:
        start = time.monotonic()
        llm_otel.shutdown(timeout_millis=int(plan["shutdown_ms"]))
        report["shutdown_s"] = time.monotonic() - start
    report["done_at"] = time.time()
    print(json.dumps(report), flush=True)


if __name__ == "__main__":
    main()
