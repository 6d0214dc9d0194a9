"""Load generator for the samples: a steady request rate for a fixed time, with a progress bar.

Run it (from the repository root)::

    python -m sample_apps.loadgen router --rate 5 --duration 30        # the router, in this process
    python -m sample_apps.loadgen llamaindex --rate 2 --duration 20    # the LlamaIndex sample, in process
    python -m sample_apps.loadgen fastapi --rate 5 --duration 30       # POST http://127.0.0.1:8000/ask
    python -m sample_apps.loadgen django --rate 5 --duration 30        # POST http://127.0.0.1:8001/chat/
    python -m sample_apps.loadgen fastapi --url http://127.0.0.1:9000/ask

Start the HTTP samples first (``python -m sample_apps.fastapi_rag`` /
``python -m sample_apps.django_chat``). Every run is bounded: at most
``rate x duration`` requests (and ``--max-requests``), nothing new is sent after
``--duration`` seconds, and requests still in flight get ``--drain`` seconds.
HTTP targets must be on this machine (127.0.0.1, localhost or ::1).

The generator itself uses only the standard library; the in-process targets
import their sample (and so need its packages).
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import threading
import time
import urllib.parse
import urllib.request
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as wait_futures
from dataclasses import dataclass, field
from typing import TextIO

MAX_RATE = 200.0
MAX_DURATION_S = 3600.0
MAX_REQUESTS = 100_000
LOCAL_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})

HTTP_TARGETS: dict[str, tuple[str, str]] = {
    # target: (default URL, JSON field the question goes into)
    "fastapi": ("http://127.0.0.1:8000/ask", "question"),
    "django": ("http://127.0.0.1:8001/chat/", "message"),
}
QUESTIONS: tuple[str, ...] = (
    "Where is my order A-1042?",
    "Classify this ticket: 'my invoice is wrong'",
    "How long does express shipping take?",
    "Why does checkout slow down on Mondays? Think step by step.",
    "What is the refund policy?",
    "When does the support team answer email?",
)


@dataclass
class LoadStats:
    planned: int
    sent: int = 0
    ok: int = 0
    failed: int = 0
    elapsed_s: float = 0.0
    unfinished: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    latencies_s: list[float] = field(default_factory=list)

    def percentile(self, q: float) -> float | None:
        if not self.latencies_s:
            return None
        ordered = sorted(self.latencies_s)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    def summary(self) -> str:
        rate = self.sent / self.elapsed_s if self.elapsed_s > 0 else 0.0
        text = f"sent {self.sent} requests in {self.elapsed_s:.1f} s ({rate:.1f}/s): {self.ok} ok, {self.failed} failed"
        if self.errors:
            text += " (" + ", ".join(f"{name} x{count}" for name, count in self.errors.most_common()) + ")"
        p50, p95 = self.percentile(0.5), self.percentile(0.95)
        if p50 is not None and p95 is not None:
            text += f"; latency p50 {p50 * 1000:.0f} ms, p95 {p95 * 1000:.0f} ms"
        if self.unfinished:
            text += f"; {self.unfinished} still running at the end"
        return text


class ProgressBar:
    """``[#####-----]  50%  12.0/24.0 s  sent 60  ok 58  failed 2`` on one line (carriage return)."""

    def __init__(self, out: TextIO, duration_s: float, width: int = 30) -> None:
        self.out = out
        self.duration_s = duration_s
        self.width = width
        self.enabled = bool(getattr(out, "isatty", lambda: False)())

    def draw(self, elapsed_s: float, stats: LoadStats) -> None:
        if not self.enabled:
            return
        share = min(1.0, elapsed_s / self.duration_s) if self.duration_s > 0 else 1.0
        filled = int(share * self.width)
        self.out.write(
            f"\r[{'#' * filled}{'-' * (self.width - filled)}] {share * 100:3.0f}%  "
            f"{elapsed_s:5.1f}/{self.duration_s:.1f} s  sent {stats.sent}  ok {stats.ok}  failed {stats.failed} "
        )
        self.out.flush()

    def finish(self) -> None:
        if self.enabled:
            self.out.write("\n")
            self.out.flush()


def run_load(
    send: Callable[[int], object],
    *,
    rate: float,
    duration_s: float,
    max_requests: int | None = None,
    concurrency: int = 8,
    drain_s: float = 30.0,
    out: TextIO | None = None,
) -> LoadStats:
    """Call ``send(i)`` ``rate`` times a second for ``duration_s`` seconds on ``concurrency`` threads.

    Bounded in count (``rate x duration``, ``max_requests``, at most 100,000) and in time:
    nothing is started after ``duration_s``, and in-flight calls get ``drain_s`` more.
    A call that raises counts as failed (by exception class); it never stops the run.
    """
    if not 0 < rate <= MAX_RATE:
        raise ValueError(f"rate must be within (0, {MAX_RATE:g}] requests per second")
    if not 0 < duration_s <= MAX_DURATION_S:
        raise ValueError(f"duration must be within (0, {MAX_DURATION_S:g}] seconds")
    planned = min(int(rate * duration_s) or 1, max_requests or MAX_REQUESTS, MAX_REQUESTS)
    stats = LoadStats(planned=planned)
    bar = ProgressBar(out or sys.stderr, duration_s)
    lock = threading.Lock()
    slots = threading.BoundedSemaphore(max(1, concurrency))

    def one(index: int) -> None:
        started = time.monotonic()
        try:
            send(index)
        except Exception as exc:
            with lock:
                stats.failed += 1
                stats.errors[type(exc).__name__] += 1
        else:
            with lock:
                stats.ok += 1
                stats.latencies_s.append(time.monotonic() - started)
        finally:
            slots.release()

    futures: list[Future[None]] = []
    pool = ThreadPoolExecutor(max_workers=max(1, concurrency), thread_name_prefix="loadgen")
    start = time.monotonic()
    deadline = start + duration_s
    try:
        for index in range(planned):
            due = start + index / rate
            while True:  # wait for this request's slot in the schedule, redrawing the bar
                now = time.monotonic()
                bar.draw(now - start, stats)
                if now >= due or now >= deadline:
                    break
                time.sleep(min(0.1, due - now))
            if time.monotonic() >= deadline and index > 0:
                break
            # At most `concurrency` requests in flight; a slow target lowers the achieved rate.
            if not slots.acquire(timeout=max(0.0, deadline - time.monotonic())):
                break
            with lock:
                stats.sent += 1
            futures.append(pool.submit(one, index))
    except KeyboardInterrupt:
        pass  # stop sending; what is in flight still gets its drain time
    finally:
        _, pending = wait_futures(futures, timeout=drain_s)
        stats.unfinished = len(pending)
        stats.elapsed_s = time.monotonic() - start
        bar.draw(stats.elapsed_s, stats)
        bar.finish()
        # Never wait here for a request that outlived the drain time (its own timeout ends it).
        pool.shutdown(wait=not pending, cancel_futures=True)
    return stats


def http_sender(url: str, field_name: str, *, timeout_s: float = 30.0) -> Callable[[int], object]:
    """POST ``{field_name: question}`` as JSON to a local URL; a non-2xx answer raises."""
    host = urllib.parse.urlsplit(url).hostname
    if urllib.parse.urlsplit(url).scheme not in ("http", "https") or host not in LOCAL_HOSTS:
        raise ValueError(f"refusing to send load to {url!r}: only http(s) URLs on 127.0.0.1/localhost/::1")

    def send(index: int) -> object:
        body = json.dumps({field_name: QUESTIONS[index % len(QUESTIONS)]}).encode()
        request = urllib.request.Request(url, data=body, headers={"content-type": "application/json"}, method="POST")
        with urllib.request.urlopen(request, timeout=timeout_s) as response:  # raises HTTPError on 4xx/5xx
            return response.read()

    return send


def in_process_sender(target: str) -> tuple[Callable[[int], object], Callable[[], None]]:
    """(send, close) for a sample driven inside this process, with telemetry configured."""
    import llm_otel
    from sample_apps import common

    common.setup_telemetry(f"loadgen-{target}")
    if target == "router":
        from sample_apps.router import SAMPLE_PROMPTS, Router, make_client

        client = make_client(max_retries=0)
        router = Router(client)
        prompts = itertools.cycle(SAMPLE_PROMPTS)
        prompt_lock = threading.Lock()

        def send_router(index: int) -> object:
            with prompt_lock:
                prompt = next(prompts)
            return router.handle(prompt)

        def close_router() -> None:
            client.close()
            llm_otel.shutdown()

        return send_router, close_router

    from sample_apps.llamaindex_query.app import QUESTIONS as LI_QUESTIONS
    from sample_apps.llamaindex_query.app import build_query_engine

    engine = build_query_engine()
    return (lambda index: engine.query(LI_QUESTIONS[index % len(LI_QUESTIONS)])), llm_otel.shutdown


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sample_apps.loadgen", description=__doc__.split("\n")[0])
    parser.add_argument("target", choices=("router", "llamaindex", *HTTP_TARGETS))
    parser.add_argument("--url", help="URL of an HTTP target (default: the sample's own address)")
    parser.add_argument("--rate", type=float, default=5.0, help="requests per second (default 5, at most 200)")
    parser.add_argument("--duration", type=float, default=30.0, help="seconds to send for (default 30)")
    parser.add_argument("--max-requests", type=int, default=None, help="stop after this many requests")
    parser.add_argument("--concurrency", type=int, default=8, help="requests in flight at most (default 8)")
    parser.add_argument("--drain", type=float, default=30.0, help="seconds to wait for in-flight requests")
    args = parser.parse_args(argv)

    close: Callable[[], None] = lambda: None  # noqa: E731
    try:
        if args.target in HTTP_TARGETS:
            default_url, field_name = HTTP_TARGETS[args.target]
            send = http_sender(args.url or default_url, field_name)
            where = args.url or default_url
        else:
            if args.url:
                parser.error("--url applies to the HTTP targets (fastapi, django) only")
            send, close = in_process_sender(args.target)
            where = f"the {args.target} sample in this process"
        print(f"loadgen: {args.rate:g} requests/s for {args.duration:g} s against {where}", file=sys.stderr)
        stats = run_load(
            send,
            rate=args.rate,
            duration_s=args.duration,
            max_requests=args.max_requests,
            concurrency=args.concurrency,
            drain_s=args.drain,
        )
    except ValueError as exc:
        print(f"loadgen: {exc}", file=sys.stderr)
        return 2
    finally:
        close()
    print(stats.summary())
    return 0 if stats.sent else 1


if __name__ == "__main__":
    raise SystemExit(main())
