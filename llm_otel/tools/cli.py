"""The ``llm-otel`` command: demo, stack control, doctor."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from llm_otel._version import VERSION


def _stack(args: argparse.Namespace) -> int:
    from llm_otel.tools import _stack

    run_dir = Path(args.run_dir) if args.run_dir else None
    try:
        if args.action == "build":
            return _stack.build_collector()
        if args.action == "up":
            ports = _stack.StackPorts.parse(args.ports) if args.ports else None
            info = _stack.stack_up(run_dir, mode=args.mode, with_prometheus=not args.no_prometheus, ports=ports)
            print(info.describe())
        elif args.action == "down":
            stopped = _stack.stack_down(run_dir)
            print("stopped: " + (", ".join(stopped) if stopped else "nothing was running"))
        else:
            rows = _stack.stack_status(run_dir)
            for row in rows:
                print(f"{row.component:<18} {'up' if row.up else 'down':<5} {row.url}")
            return 0 if all(row.up for row in rows) else 1
    except _stack.StackError as exc:
        print(f"llm-otel stack {args.action}: {exc}", file=sys.stderr)
        return 2
    return 0


def _demo(args: argparse.Namespace) -> int:
    from llm_otel.tools import _demo

    options = _demo.DemoOptions(duration_s=args.duration, rate=args.rate, stack=args.stack, live=not args.no_live)
    return _demo.main(options)


def _doctor(args: argparse.Namespace) -> int:
    from llm_otel.tools import _doctor

    return _doctor.run_doctor(timeout=args.timeout, skip=args.skip)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="llm-otel", description="OpenTelemetry-native monitoring for LLM apps.")
    parser.add_argument("--version", action="version", version=f"llm-otel {VERSION}")
    commands = parser.add_subparsers(dest="command", required=True)

    stack = commands.add_parser("stack", help="start, stop or inspect the bundled Collector + Prometheus stack")
    stack.add_argument("action", choices=("up", "down", "status", "build"),
                       help="build: compile the Collector the native stack runs, once (needs Go; cached)")
    stack.add_argument("--run-dir", help="where logs, pids and rendered configs live (default ./.run/stack)")
    stack.add_argument("--mode", choices=("auto", "native", "docker"), default="auto",
                       help="docker compose when a Docker engine answers (auto), or native processes")
    stack.add_argument("--no-prometheus", action="store_true", help="start only the collector")
    stack.add_argument(
        "--ports", metavar="SPEC",
        help="move ports that are taken (default from $LLM_OTEL_STACK_PORTS): 'free' (any free ports), "
        "'+N' (every default + N), or name=port pairs, e.g. otlp_grpc=14317,otlp_http=14318,prometheus=19090; "
        "names: otlp_grpc, otlp_http, collector_metrics, collector_health, collector_telemetry, prometheus, "
        "grafana, tempo, alertmanager (the last three with docker only)",
    )
    stack.set_defaults(handler=_stack)

    demo = commands.add_parser(
        "demo",
        help="see the kit work: drive a sample app against a local stand-in LLM API and show its metrics",
        description="Starts a local stand-in LLM API (with latency and a few injected failures), routes "
        "traffic to three models and prints a table per model computed from the kit's own metrics. "
        "Exports to the collector when one answers on the OTLP endpoint (or with --stack).",
    )
    demo.add_argument("--duration", type=float, default=15.0, metavar="S", help="seconds of traffic (default 15)")
    demo.add_argument("--rate", type=float, default=8.0, metavar="R", help="requests per second (default 8)")
    demo.add_argument("--stack", action="store_true",
                      help="export to the stack; start it (`llm-otel stack up`) when no collector answers")
    demo.add_argument("--no-live", action="store_true", help="print the table once at the end, not live")
    demo.set_defaults(handler=_demo)

    doctor = commands.add_parser(
        "doctor",
        help="check configuration, OTLP endpoint, collector, Prometheus and Grafana; say what to fix",
        description="One line per check (OK/WARN/FAIL/SKIP). Exit code 1 when a required check fails. "
        "Reads OTEL_* / LLM_OTEL_* like configure(); Prometheus and Grafana from "
        "LLM_OTEL_PROMETHEUS_URL / LLM_OTEL_GRAFANA_URL (defaults http://127.0.0.1:9090 and :3000).",
    )
    doctor.add_argument("--timeout", type=float, default=2.0, metavar="S", help="seconds per probe (default 2)")
    doctor.add_argument("--skip", action="append", default=[], metavar="CHECK",
                        choices=("otlp-endpoint", "collector-health", "prometheus", "llm-series", "telemetry-drops",
                                 "grafana", "export"),
                        help="skip a check (repeatable): otlp-endpoint, collector-health, prometheus, "
                        "llm-series, telemetry-drops, grafana, export")
    doctor.set_defaults(handler=_doctor)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.handler(args))


if __name__ == "__main__":
    raise SystemExit(main())
