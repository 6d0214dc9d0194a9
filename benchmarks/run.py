"""Every benchmark of the kit in one command, printed as one table.

    python benchmarks/run.py                       # everything (about 5-8 minutes on 2 cores)
    python benchmarks/run.py --quick               # fewer calls per round, fewer rounds
    python benchmarks/run.py --only overhead,streams
    python benchmarks/run.py --peers-python /path/to/venv/bin/python   # where the peers are installed

Sections: overhead (per call vs bare and vs a raw-SDK floor, both span
processors), off (telemetry switched off), instrumentor (the openai SDK instrumentor
against @traced_llm around the same call), streams, langchain and asgi
(frameworks; the LangChain handler also against @traced_llm and OpenLLMetry's
LangChain instrumentation), imports, peers (other OpenAI instrumentations, skipped when not
installed), pipeline (real Collector + Prometheus, skipped when not built),
quality (groundedness scorer time per pair, embedding model memory, request-path
cost of a scored call site), exit (flush and exit time per collector outage mode,
fresh interpreters).
Figures are ratios of variants measured in one process, interleaved; where
valgrind is installed, the instrumentor and LangChain sections also count
instructions per call (steady whatever the load, and the verdict of those sections). See
docs/performance.md for how to read them.
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _timing import Row

SECTIONS = ("overhead", "instrumentor", "streams", "frameworks", "imports", "peers", "pipeline", "quality", "exit")


def collect(sections: list[str], calls: int, repeat: int, peers_python: list[str], seconds: float,
            instructions: bool = True) -> list[Row]:
    rows: list[Row] = []
    for section in sections:
        started = time.perf_counter()
        if section == "overhead":
            import overhead

            rows += overhead.rows(calls, repeat)
        elif section == "streams":
            import streams

            rows += streams.rows(calls, repeat)
        elif section == "frameworks":
            import frameworks

            rows += frameworks.rows(calls, repeat, peers_python, instructions)
        elif section == "imports":
            import imports

            rows += imports.rows()
        elif section == "instrumentor":
            import instrumentor

            rows += instrumentor.rows(calls, repeat, instructions)
        elif section == "peers":
            import peers

            rows += peers.rows(calls, repeat, peers_python)
        elif section == "pipeline":
            import pipeline

            rows += pipeline.rows(seconds)
        elif section == "quality":
            import quality

            rows += quality.rows(calls, repeat)
        elif section == "exit":
            import exits

            rows += exits.rows()
        print(f"  {section}: {time.perf_counter() - started:.0f}s", file=sys.stderr, flush=True)
    return rows


def table(rows: list[Row]) -> str:
    headers = ("section", "variant", "measured", "comparison", "target", "", "notes")
    cells = [(r.section, r.variant, r.value, r.ratio, r.target, r.verdict, r.note) for r in rows]
    widths = [max(len(h), *(len(c[i]) for c in cells)) if cells else len(h) for i, h in enumerate(headers[:-1])]
    lines = []
    for row in (headers, *cells):
        lines.append("  ".join(cell.ljust(width) for cell, width in zip(row[:-1], widths, strict=True)) + "  " + row[-1])
        if row is headers:
            lines.append("  ".join("-" * width for width in widths) + "  " + "-" * 5)
    return "\n".join(line.rstrip() for line in lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer calls and rounds (noisier)")
    parser.add_argument("--only", default=",".join(SECTIONS), help=f"comma-separated subset of {', '.join(SECTIONS)}")
    parser.add_argument("--peers-python", action="append", default=[], help="interpreter with peers (repeatable)")
    parser.add_argument("--pipeline-seconds", type=float, default=10.0)
    parser.add_argument("--no-instructions", action="store_true",
                        help="skip the callgrind instruction counts (the steady rows; valgrind)")
    args = parser.parse_args()
    sections = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = set(sections) - set(SECTIONS)
    if unknown:
        parser.error(f"unknown sections: {', '.join(sorted(unknown))}")
    calls, repeat = (5_000, 3) if args.quick else (20_000, 7)
    print(f"llm-otel benchmarks: Python {platform.python_version()}, {platform.machine()}, "
          f"{calls} calls per round, best of {repeat} interleaved rounds", file=sys.stderr)
    rows = collect(sections, calls, repeat, args.peers_python, args.pipeline_seconds, not args.no_instructions)
    print(table(rows))
    missed = [r for r in rows if r.verdict == "MISSED"]
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
