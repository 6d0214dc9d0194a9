"""Throughput through the scaled-out tiers: apps -> 2 agents -> 3 gateways -> Prometheus.

    python benchmarks/scaleout.py [--apps 4] [--seconds 20]

Runs the same native tiers as tests/scaleout (the shipped agent.yaml / gateway.yaml,
mutual TLS between the tiers, a bearer token into the agents, tail sampling at the
shipped default share of 10%), and ``--apps`` application processes driving plain
``@traced_llm`` calls (two calls under one ``llm.route`` span per trace) as fast as
they can for ``--seconds``. The run counts only if it is lossless: Prometheus'
token and call totals equal what the apps sent and no app counted a dropped export.

Reported: calls per second end to end, and the CPU time and peak memory each
Collector used per 1000 calls, which is what docs/stack.md's sizing table is
derived from (the apps share the machine, so the call rate is a floor).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from llm_otel.tools._stack import collector_cache_path
from tests.scaleout import _tiers
from tests.scaleout._certs import make_pki
from tests.stack._support import COLLECTOR_DIR

_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICKS  # utime + stime


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def accepted_spans(collector: _tiers.Collector) -> float:
    """Spans the Collector's OTLP receiver accepted so far (its own otelcol_* telemetry)."""
    import urllib.request

    with urllib.request.urlopen(f"http://127.0.0.1:{collector.telemetry}/metrics", timeout=10) as response:
        text = response.read().decode()
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith("otelcol_receiver_accepted_spans"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--apps", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=20.0)
    args = parser.parse_args()
    binary = Path(os.environ.get("LLM_OTEL_COLLECTOR_BIN") or collector_cache_path(COLLECTOR_DIR / "builder-config.yaml"))
    prometheus_bin = Path(os.environ.get("LLM_OTEL_PROMETHEUS_BIN", "prometheus"))
    os.environ.pop("LLM_OTEL_SAMPLING_PERCENT", None)
    with tempfile.TemporaryDirectory(prefix="llm-otel-scaleout-") as tmp:
        run_dir = Path(tmp)
        pki = make_pki(run_dir)
        _tiers.SAMPLING_ENV.pop("LLM_OTEL_SAMPLING_PERCENT", None)  # the shipped default share
        started = []
        apps = []
        try:
            gateways = [_tiers.start_gateway(binary, run_dir, f"gateway-{i}", pki) for i in range(3)]
            started += [g.component for g in gateways]
            gateways_file = run_dir / "gateways.yaml"
            _tiers.write_gateways(gateways_file, gateways)
            agents = [_tiers.start_agent(binary, run_dir, f"agent-{i}", pki, gateways_file) for i in range(2)]
            started += [a.component for a in agents]
            prometheus, url = _tiers.start_prometheus(prometheus_bin, run_dir, gateways, gateways + agents)
            started.append(prometheus)
            apps = [_tiers.start_app("bench", f"bench-{i}", agents[i % 2], pki, run_dir) for i in range(args.apps)]
            for app in apps:  # warm up: imports, connections, price database
                app.send({"units": 5, "plain": True})
            warm = [app.answer() for app in apps]
            collectors = gateways + agents
            cpu_before = {c.name: cpu_seconds(c.component.pid) for c in collectors}
            spans_before = {c.name: accepted_spans(c) for c in collectors}
            began = time.monotonic()
            for app in apps:
                app.send({"seconds": args.seconds, "plain": True})
            answers = [app.answer(timeout=args.seconds + 120) for app in apps]
            elapsed = time.monotonic() - began
            calls = sum(a["calls"] for a in answers + warm)
            tokens = sum(a["input_tokens"] for a in answers + warm)
            deadline = time.monotonic() + 120
            seen = None
            while time.monotonic() < deadline:
                seen = _tiers.promql_value(url, 'sum(gen_ai_client_operation_duration_seconds_count{job="bench"})')
                if seen == calls:
                    break
                time.sleep(0.5)
            cpu = {c.name: cpu_seconds(c.component.pid) - cpu_before[c.name] for c in collectors}
            spans = {c.name: accepted_spans(c) - spans_before[c.name] for c in collectors}
            seen_tokens = _tiers.promql_value(url, 'sum(llm_tokens_input_total{job="bench"})')
            for app in apps:
                app.send({"exit": True})
            dropped = [app.answer()["dropped"] for app in apps]
            lossless = seen == calls and seen_tokens == tokens and not any(dropped)
            measured = sum(a["calls"] for a in answers)
            print(f"apps: {args.apps}, {args.seconds:.0f}s, lossless: {lossless} "
                  f"(Prometheus calls {seen} / sent {calls}, tokens {seen_tokens} / {tokens}, dropped {dropped})")
            print(f"end to end: {measured / elapsed:.0f} calls/s ({measured / 2 / elapsed:.0f} traces/s, "
                  f"{measured / 2 * 3 / elapsed:.0f} spans/s)")
            print(f"{'collector':<10} {'CPU s':>7} {'spans in':>9} {'CPU ms / 1000 own calls':>24} "
                  f"{'calls/s per core':>17} {'peak RSS MiB':>13}")
            for c in collectors:
                own_calls = spans[c.name] * 2 / 3  # 3 spans (route + 2 calls) per trace
                per_k = 1000 * cpu[c.name] / own_calls * 1000
                print(f"{c.name:<10} {cpu[c.name]:>7.2f} {spans[c.name]:>9.0f} {per_k:>24.1f} "
                      f"{own_calls / cpu[c.name]:>17.0f} {peak_rss_mib(c.component.pid):>13.0f}")
            total_cpu = sum(cpu.values())
            print(f"all collectors: {1000 * total_cpu / measured * 1000:.1f} CPU ms per 1000 calls; "
                  f"machine: {os.cpu_count()} cores")
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


if __name__ == "__main__":
    main()
