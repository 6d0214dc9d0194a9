"""Throughput through the real pipeline: one process, the real Collector, the real Prometheus.

    python benchmarks/pipeline.py [--seconds 10]

Starts the native stack (the built Collector and ``prometheus`` from PATH, as
``llm-otel stack up`` does) on free ports, configures the kit with its DEFAULT
export settings, and drives ``@traced_llm`` calls from one thread for a fixed
time: first as fast as the thread can go, then paced at lower rates if anything
was lost. A run counts as lossless only if every span reached the Collector
(its own ``otelcol_receiver_accepted_spans``), the kit counted no dropped span
or metric export, and Prometheus' ``llm_tokens_input_total`` equals the tokens
the run sent. Reported: the highest lossless rate, and where the time went
(the calling thread, the span export thread, the Collector).
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from _timing import Row
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

import llm_otel
from llm_otel.tools._stack import StackError, StackInfo, StackPorts, collector_binary, stack_down, stack_up

INPUT_TOKENS = 120
PAUSE_S = 1.0


def _get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.read().decode()


def _prometheus_value(info: StackInfo, expr: str) -> float | None:
    import json

    assert info.prometheus_url is not None
    body = json.loads(_get(f"{info.prometheus_url}/api/v1/query?" + urllib.parse.urlencode({"query": expr})))
    result = body["data"]["result"]
    return float(result[0]["value"][1]) if result else None


def _collector_counter(info: StackInfo, name: str) -> float:
    total = 0.0
    for line in _get(info.collector_telemetry_url).splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            total += float(line.rsplit(" ", 1)[1])
    return total


def _cpu_seconds(pid: int, tid: int | None = None) -> float:
    """user+system CPU of a process (or one of its threads) from /proc, in seconds."""
    path = f"/proc/{pid}/task/{tid}/stat" if tid else f"/proc/{pid}/stat"
    fields = Path(path).read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _export_thread_ids() -> list[int]:
    return [t.native_id for t in threading.enumerate() if "OtelBatch" in t.name and t.native_id is not None]


def _dropped(reader: InMemoryMetricReader) -> int:
    data = reader.get_metrics_data()
    total = 0
    for rm in data.resource_metrics if data else ():
        for sm in rm.scope_metrics:
            for metric in sm.metrics:
                if metric.name == "llm_otel.telemetry.dropped":
                    total += sum(int(p.value) for p in metric.data.data_points)  # type: ignore[union-attr]
    return total


# The OpenTelemetry SDK's own BatchSpanProcessor defaults, for comparison with the kit's.
SDK_DEFAULTS = {"span_queue_size": 2048, "span_batch_size": 512, "span_schedule_delay_ms": 5000}


def run_once(
    info: StackInfo, job: str, seconds: float, rate: float | None, settings: dict[str, int] | None = None,
    pause_s: float = 0.0,
) -> dict[str, Any]:
    """Drive calls for ``seconds`` (paced to ``rate`` per second if given); report what arrived.

    ``pause_s`` freezes the Collector (SIGSTOP, then SIGCONT) that long, halfway through.
    """
    reader = InMemoryMetricReader()
    llm_otel.configure(service_name=job, endpoint=info.otlp_grpc_endpoint, protocol="grpc", set_global=False,
                       metric_readers=[reader], **(settings or {}))  # unless given: the kit's defaults

    @llm_otel.traced_llm(provider="openai", model="gpt-4o-mini")
    def call() -> dict[str, Any]:
        return {"id": "c", "object": "chat.completion", "model": "gpt-4o-mini",
                "choices": [{"index": 0, "finish_reason": "stop", "message": {"content": "ok"}}],
                "usage": {"prompt_tokens": INPUT_TOKENS, "completion_tokens": 5}}

    spans_before = _collector_counter(info, "otelcol_receiver_accepted_spans")
    collector_pid = info.pids["collector"]
    collector_cpu = _cpu_seconds(collector_pid)
    exporters = _export_thread_ids()
    export_cpu = sum(_cpu_seconds(os.getpid(), tid) for tid in exporters)
    main_cpu = time.thread_time()
    calls = 0
    start = time.perf_counter()
    deadline = start + seconds
    interval = 1.0 / rate if rate else 0.0
    timers = []
    if pause_s:
        timers = [threading.Timer(seconds / 2, os.kill, (collector_pid, signal.SIGSTOP)),
                  threading.Timer(seconds / 2 + pause_s, os.kill, (collector_pid, signal.SIGCONT))]
        for timer in timers:
            timer.start()
    while True:
        now = time.perf_counter()
        if now >= deadline:
            break
        if interval:
            target = start + calls * interval
            if target > now:
                time.sleep(target - now)
        call()
        calls += 1
    elapsed = time.perf_counter() - start
    main_cpu = time.thread_time() - main_cpu
    for timer in timers:
        timer.join()
    exporters = _export_thread_ids()
    export_cpu = sum(_cpu_seconds(os.getpid(), tid) for tid in exporters) - export_cpu
    flush_start = time.perf_counter()
    llm_otel.force_flush(60_000)
    flush = time.perf_counter() - flush_start
    dropped = _dropped(reader)
    llm_otel.shutdown()
    # wait for the spans to be accepted and the tokens to show in Prometheus
    expected_tokens = calls * INPUT_TOKENS
    tokens = None
    spans = 0.0
    settle = time.monotonic() + 30
    while time.monotonic() < settle:
        spans = _collector_counter(info, "otelcol_receiver_accepted_spans") - spans_before
        tokens = _prometheus_value(info, f'sum(llm_tokens_input_total{{job="{job}"}})')
        if spans >= calls and tokens == expected_tokens:
            break
        time.sleep(0.5)
    collector_cpu = _cpu_seconds(collector_pid) - collector_cpu
    return {
        "rate": calls / elapsed, "calls": calls, "spans": int(spans), "dropped": dropped,
        "tokens_ok": tokens == expected_tokens, "lossless": spans == calls and dropped == 0 and
        tokens == expected_tokens, "main_cpu": main_cpu / elapsed, "export_cpu": export_cpu / elapsed,
        "collector_cpu": collector_cpu / (elapsed + flush), "flush_s": flush,
    }


def rows(seconds: float = 10.0) -> list[Row]:
    if shutil.which("prometheus") is None and not os.environ.get("LLM_OTEL_PROMETHEUS_BIN"):
        return [Row("pipeline", "real collector + prometheus", "-", verdict="skipped", note="prometheus not found")]
    try:
        collector = collector_binary()
    except StackError as exc:
        return [Row("pipeline", "real collector + prometheus", "-", verdict="skipped", note=str(exc)[:120])]
    prometheus = os.environ.get("LLM_OTEL_PROMETHEUS_BIN")
    run_dir = Path(tempfile.mkdtemp(prefix="llm-otel-pipeline-"))
    info = stack_up(run_dir, mode="native", ports=StackPorts.free(), scrape_interval="1s", collector=collector,
                    prometheus=Path(prometheus) if prometheus else None, timeout=120)
    out = []
    try:
        results = [run_once(info, "bench-pipeline-max", seconds, None)]
        fastest = results[0]["rate"]
        for share in (0.8, 0.6, 0.4):
            if results[-1]["lossless"]:
                break
            results.append(run_once(info, f"bench-pipeline-{int(share * 100)}", seconds, fastest * share))
        paused = run_once(info, "bench-pipeline-pause", seconds, None, None, PAUSE_S)
        sdk = run_once(info, "bench-pipeline-sdk-defaults", seconds, None, SDK_DEFAULTS, PAUSE_S)
    finally:
        stack_down(run_dir)
        shutil.rmtree(run_dir, ignore_errors=True)
    for result in results:
        label = "unpaced (as fast as one thread goes)" if result is results[0] else "paced"
        out.append(Row(
            "pipeline", f"{label}, {seconds:.0f}s", f"{result['rate']:.0f} calls/s",
            "lossless" if result["lossless"] else
            f"LOSS: {result['calls'] - result['spans']} spans missing, {result['dropped']} dropped counted",
            "zero loss", "ok" if result["lossless"] else "MISSED",
            f"CPU: calling thread {result['main_cpu']:.0%}, span export thread {result['export_cpu']:.0%}, "
            f"collector {result['collector_cpu']:.0%} of a core; final flush {result['flush_s']:.1f}s",
        ))
    for name, result, note in (
        ("kit defaults", paused, "queue 16384, batch 1024, delay 1 s"),
        ("SDK's BatchSpanProcessor defaults", sdk, "queue 2048, batch 512, delay 5 s"),
    ):
        out.append(Row(
            "pipeline", f"unpaced, collector frozen {PAUSE_S:.0f} s mid-run, {name}", f"{result['rate']:.0f} calls/s",
            "lossless" if result["lossless"] else
            f"{result['calls'] - result['spans']} spans lost, {result['dropped']} counted as dropped", "", "",
            note,
        ))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()
    for row in rows(args.seconds):
        print(row)


if __name__ == "__main__":
    main()
