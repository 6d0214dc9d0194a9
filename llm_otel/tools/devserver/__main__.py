"""Command line for the development stand-in server: ``python -m llm_otel.tools.devserver``."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from collections.abc import Sequence

from ._faults import FaultPlan
from ._latency import LatencyProfile
from ._server import StandInServer


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m llm_otel.tools.devserver",
        description="Local OpenAI/Anthropic-compatible stand-in LLM API (a development and demo tool).",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default: %(default)s)")
    parser.add_argument(
        "--port", type=int, default=8400, help="port; 0 picks a free one (default: %(default)s)"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the latency and fault draws")
    timing = parser.add_argument_group("latency")
    timing.add_argument("--latency-ms-mean", type=float, default=0.0, help="mean time to first chunk, ms")
    timing.add_argument(
        "--latency-ms-p99", type=float, default=None, help="p99 time to first chunk, ms (lognormal)"
    )
    timing.add_argument("--chunk-ms", type=float, default=0.0, help="generation time per output token, ms")
    faults = parser.add_argument_group("injected failures (rates between 0 and 1)")
    faults.add_argument("--fail-rate-429", type=float, default=0.0, help="share of requests answered 429")
    faults.add_argument("--fail-rate-500", type=float, default=0.0, help="share of requests answered 500")
    faults.add_argument("--fail-rate-timeout", type=float, default=0.0, help="share of requests held")
    faults.add_argument("--fail-rate-truncate", type=float, default=0.0, help="share of responses cut short")
    faults.add_argument("--retry-after", type=float, default=1.0, help="retry-after of 429 answers, seconds")
    faults.add_argument(
        "--timeout-hold", type=float, default=30.0, help="how long a held request waits, seconds"
    )
    faults.add_argument("--truncate-after", type=int, default=2, help="stream events sent before a cut")
    parser.add_argument("-v", "--verbose", action="store_true", help="log every request")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        latency = LatencyProfile(args.latency_ms_mean, args.latency_ms_p99, args.chunk_ms)
        faults = FaultPlan(
            rate_429=args.fail_rate_429,
            rate_500=args.fail_rate_500,
            rate_timeout=args.fail_rate_timeout,
            rate_truncate=args.fail_rate_truncate,
            retry_after_s=args.retry_after,
            timeout_hold_s=args.timeout_hold,
            truncate_after_events=args.truncate_after,
        )
    except ValueError as error:
        parser.error(str(error))
    if args.verbose:
        logging.basicConfig(level=logging.DEBUG, format="%(asctime)s %(message)s")

    server = StandInServer(args.host, args.port, latency=latency, faults=faults, seed=args.seed)
    try:
        server.start()
    except OSError as error:
        print(f"cannot listen on {args.host}:{args.port}: {error}", file=sys.stderr)
        return 1
    stopped = threading.Event()
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, lambda *_: stopped.set())
    print(
        f"llm-otel stand-in LLM API (development/demo tool) listening on {server.base_url}\n"
        f"  OpenAI:    OPENAI_BASE_URL={server.openai_base_url} OPENAI_API_KEY=test\n"
        f"  Anthropic: ANTHROPIC_BASE_URL={server.anthropic_base_url} ANTHROPIC_API_KEY=test\n"
        f"  Gemini:    GOOGLE_GEMINI_BASE_URL={server.gemini_base_url} GEMINI_API_KEY=test\n"
        "Press Ctrl+C to stop.",
        flush=True,
    )
    try:
        while not stopped.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
