"""The ``llm-otel`` command: demo, stack control, doctor."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from llm_otel._version import VERSION


def _stack(args: argparse.Namespace) -> int:
    from llm_otel import _stack

    run_dir = Path(args.run_dir) if args.run_dir else None
    try:
        if args.action == "up":
            info = _stack.stack_up(run_dir, mode=args.mode, with_prometheus=not args.no_prometheus)
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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="llm-otel", description="OpenTelemetry-native monitoring for LLM apps.")
    parser.add_argument("--version", action="version", version=f"llm-otel {VERSION}")
    commands = parser.add_subparsers(dest="command", required=True)

    stack = commands.add_parser("stack", help="start, stop or inspect the bundled Collector + Prometheus stack")
    stack.add_argument("action", choices=("up", "down", "status"))
    stack.add_argument("--run-dir", help="where logs, pids and rendered configs live (default ./.run/stack)")
    stack.add_argument("--mode", choices=("auto", "native", "docker"), default="auto",
                       help="docker compose when a Docker engine answers (auto), or native processes")
    stack.add_argument("--no-prometheus", action="store_true", help="start only the collector")
    stack.set_defaults(handler=_stack)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.handler(args))


if __name__ == "__main__":
    raise SystemExit(main())
