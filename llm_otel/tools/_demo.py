"""``llm-otel demo``: the kit working in one command, with or without the observability stack.

It starts the local stand-in LLM API (``llm_otel.tools.devserver``) with a latency
profile and a small rate of injected failures, routes traffic to three models
through ``llm_otel.route`` + ``@traced_llm`` (the multi-model router of
``sample_apps/router``, driven in this process over real HTTP with the OpenAI
SDK), and prints a table per model computed from the kit's OWN metrics, read
through an in-process ``InMemoryMetricReader``. When a collector answers on
the OTLP endpoint (or with ``--stack``) the same telemetry is exported there.

Bounded: at most ``rate x duration`` requests, a 10 s client timeout, a drain
limit, and only localhost is contacted unless OTEL_EXPORTER_OTLP_ENDPOINT says otherwise.
"""

from __future__ import annotations

import math
import random
import sys
import threading
import time
import urllib.parse
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as wait_futures
from dataclasses import dataclass, field
from typing import Any, TextIO

from opentelemetry.context import Context
from opentelemetry.sdk.metrics.export import InMemoryMetricReader, MetricsData
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor

import llm_otel
from llm_otel import _config
from llm_otel import _names as n
from llm_otel.tools import _doctor

SERVICE_NAME = "llm-otel-demo"
CLIENT_TIMEOUT_S = 10.0
DRAIN_S = 15.0
MAX_REQUESTS = 10_000
# (task type, model, streamed, share of the traffic): cheap classifier, mid default, expensive reasoner.
TASKS: tuple[tuple[str, str, bool, float], ...] = (
    ("classify", "gpt-4o-mini", False, 0.5),
    ("default", "gpt-4o", True, 0.35),
    ("reason", "o3-mini", True, 0.15),
)
PROMPTS: dict[str, tuple[str, ...]] = {
    "classify": ("Classify this ticket: 'my invoice is wrong'", "Label the sentiment: 'great release'"),
    "default": ("Summarize our refund policy.", "Suggest a name for a coffee shop.", "Explain OTLP briefly."),
    "reason": ("Why does checkout slow down on Mondays? Think step by step.", "Plan a zero-downtime migration."),
}


# --------------------------------------------------------------------------- quantiles from buckets


def bucket_quantile(q: float, bounds: Sequence[float], counts: Sequence[int]) -> float | None:
    """The q-quantile of an explicit-bucket histogram, estimated like Prometheus's ``histogram_quantile``.

    ``counts[i]`` observations fell in ``(bounds[i-1], bounds[i]]`` and the last count is
    the overflow bucket ``(bounds[-1], +Inf)`` (OpenTelemetry's layout). The value is
    interpolated linearly inside the bucket holding the rank; the first bucket starts at 0
    (or is its upper bound when that is not positive); a rank in the overflow bucket gives
    the highest finite bound. None when there are no observations.
    """
    if not 0.0 <= q <= 1.0:
        raise ValueError(f"quantile must be within [0, 1], got {q}")
    if len(counts) != len(bounds) + 1:
        raise ValueError("counts must have one more entry than bounds (the +Inf bucket)")
    total = sum(counts)
    if total <= 0:
        return None
    rank = q * total
    below = 0
    for index, count in enumerate(counts):
        if count > 0 and below + count >= rank:
            if index == len(bounds):
                return float(bounds[-1]) if bounds else None
            upper = float(bounds[index])
            if index == 0 and upper <= 0:
                return upper
            lower = float(bounds[index - 1]) if index > 0 else 0.0
            return lower + (upper - lower) * max(0.0, rank - below) / count
        below += count
    return float(bounds[-1]) if bounds else None


@dataclass
class _Histogram:
    """Points of one histogram merged across label sets (same bucket layout)."""

    bounds: tuple[float, ...] = ()
    counts: list[int] = field(default_factory=list)
    total: float = 0.0
    count: int = 0
    low: float = math.inf
    high: float = -math.inf

    def add(self, point: Any) -> None:
        bounds = tuple(point.explicit_bounds)
        if not self.counts:
            self.bounds, self.counts = bounds, [0] * (len(bounds) + 1)
        if bounds != self.bounds:
            return
        self.counts = [a + b for a, b in zip(self.counts, point.bucket_counts, strict=True)]
        self.total += point.sum
        self.count += point.count
        if point.count:
            self.low, self.high = min(self.low, point.min), max(self.high, point.max)

    def quantile(self, q: float) -> float | None:
        value = bucket_quantile(q, self.bounds, self.counts) if self.counts else None
        # The exact min/max of the observations tighten the bucket estimate.
        return None if value is None else min(max(value, self.low), self.high)


@dataclass
class ModelRow:
    """One line of the demo table; every number comes from the kit's own instruments."""

    model: str
    requests: int = 0  # observations of gen_ai.client.operation.duration (failed calls included)
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    errors: int = 0  # llm.errors (rate limits included)
    rate_limited: int = 0
    latency: _Histogram = field(default_factory=_Histogram)
    first_chunk: _Histogram = field(default_factory=_Histogram)


def _points(data: MetricsData | None) -> Iterable[tuple[str, Any]]:
    for resource in data.resource_metrics if data is not None else ():
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                for point in metric.data.data_points:
                    yield metric.name, point


# either conventions mode (OTEL_SEMCONV_STABILITY_OPT_IN) names these differently
_DURATIONS = frozenset({n.OPERATION_DURATION.name, n.INFERENCE_DURATION.name})
_FIRST_CHUNKS = frozenset({n.TIME_TO_FIRST_CHUNK.name, n.INFERENCE_TIME_TO_FIRST_CHUNK.name})


def summarize(data: MetricsData | None) -> list[ModelRow]:
    """Per request model, from the kit's metrics (sorted by model name)."""
    rows: dict[str, ModelRow] = {}
    for name, point in _points(data):
        model = (point.attributes or {}).get(n.GEN_AI_REQUEST_MODEL)
        if not isinstance(model, str):
            continue
        row = rows.setdefault(model, ModelRow(model))
        if name in _DURATIONS:
            row.requests += point.count
            row.latency.add(point)
        elif name in _FIRST_CHUNKS:
            row.first_chunk.add(point)
        elif name == n.TOKENS_INPUT.name:
            row.input_tokens += int(point.value)
        elif name == n.TOKENS_OUTPUT.name:
            row.output_tokens += int(point.value)
        elif name == n.COST.name:
            row.cost_usd += point.sum
        elif name == n.ERRORS.name:
            row.errors += int(point.value)
        elif name == n.RATE_LIMITED.name:
            row.rate_limited += int(point.value)
    return [rows[model] for model in sorted(rows)]


def cost_by_task(data: MetricsData | None) -> dict[str, float]:
    costs: dict[str, float] = {}
    for name, point in _points(data):
        if name == n.COST.name:
            task = str((point.attributes or {}).get(n.LLM_TASK_TYPE, "-"))
            costs[task] = costs.get(task, 0.0) + point.sum
    return dict(sorted(costs.items()))


def _ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1000:.0f}"


TABLE_HEADER = ("model", "requests", "tokens in", "tokens out", "cost $", "p50 ms", "p95 ms", "TTFT p50 ms",
                "errors", "429s")


def render_table(rows: Sequence[ModelRow]) -> list[str]:
    lines = [[row.model, str(row.requests), str(row.input_tokens), str(row.output_tokens), f"{row.cost_usd:.6f}",
              _ms(row.latency.quantile(0.5)), _ms(row.latency.quantile(0.95)), _ms(row.first_chunk.quantile(0.5)),
              str(row.errors), str(row.rate_limited)] for row in rows]
    lines.append(["total", str(sum(r.requests for r in rows)), str(sum(r.input_tokens for r in rows)),
                  str(sum(r.output_tokens for r in rows)), f"{sum(r.cost_usd for r in rows):.6f}", "", "", "",
                  str(sum(r.errors for r in rows)), str(sum(r.rate_limited for r in rows))])
    widths = [max(len(TABLE_HEADER[i]), *(len(line[i]) for line in lines)) for i in range(len(TABLE_HEADER))]

    def fmt(cells: Sequence[str]) -> str:
        return "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths, strict=True)))

    return [fmt(TABLE_HEADER), "  ".join("-" * w for w in widths), *(fmt(line) for line in lines)]


# --------------------------------------------------------------------------- traces seen in-process


class TraceTally(SpanProcessor):
    """Counts finished spans and traces, and keeps the latest ones to show an example trace."""

    def __init__(self, keep: int = 400) -> None:
        self.spans = 0
        self.traces = 0
        self._recent: deque[ReadableSpan] = deque(maxlen=keep)
        self._lock = threading.Lock()

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        return None

    def on_end(self, span: ReadableSpan) -> None:
        with self._lock:
            self.spans += 1
            if span.parent is None:
                self.traces += 1
            self._recent.append(span)

    def shutdown(self) -> None:
        return None

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True

    def example(self) -> list[str]:
        """The latest successful streamed request as an indented tree."""
        with self._lock:
            recent = list(self._recent)
        for root in reversed(recent):
            if root.parent is not None or root.context is None:
                continue
            trace_spans = [s for s in recent if s.context is not None and s.context.trace_id == root.context.trace_id]
            calls = [s for s in trace_spans if s is not root]
            if calls and all(n.ERROR_TYPE not in (s.attributes or {}) for s in trace_spans) and any(
                (s.attributes or {}).get(n.GEN_AI_REQUEST_STREAM) for s in calls
            ):
                return [_span_line(root, "")] + [_span_line(s, "└── ") for s in calls]
        return []


def _span_line(span: ReadableSpan, prefix: str) -> str:
    attributes = span.attributes or {}
    duration = ((span.end_time or 0) - (span.start_time or 0)) / 1e9
    facts = [f"{key}={attributes[key]!s}" for key in (n.LLM_TASK_TYPE, n.LLM_ROUTED_MODEL) if key in attributes]
    if n.GEN_AI_USAGE_INPUT_TOKENS in attributes:
        facts = [f"{n.GEN_AI_USAGE_INPUT_TOKENS}={attributes[n.GEN_AI_USAGE_INPUT_TOKENS]!s}",
                 f"{n.GEN_AI_USAGE_OUTPUT_TOKENS}={attributes.get(n.GEN_AI_USAGE_OUTPUT_TOKENS)!s}"]
        if n.LLM_COST_USD in attributes:
            facts.append(f"{n.LLM_COST_USD}={float(str(attributes[n.LLM_COST_USD])):.6f}")
        if n.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK in attributes:
            facts.append(f"first chunk {float(str(attributes[n.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK])) * 1000:.0f} ms")
    label = f"{prefix}{span.name}"
    return f"  {label:<26} {duration * 1000:6.0f} ms  {', '.join(facts)}"


# --------------------------------------------------------------------------- where telemetry goes


@dataclass(frozen=True)
class Destination:
    export: bool
    endpoint: str
    note: str
    started_stack: Any = None  # llm_otel.tools._stack.StackInfo when the demo started it


class DemoError(RuntimeError):
    """The demo cannot run as asked; the message says what to do."""


def choose_destination(stack: bool, out: TextIO, timeout: float = 1.0) -> Destination:
    try:
        settings = _config.resolve({})
        endpoint = _doctor.otlp_endpoint(settings)
    except ValueError as exc:
        raise DemoError(f"bad configuration: {exc} (run `llm-otel doctor`)") from None
    problem = _doctor.tcp_problem(endpoint.host, endpoint.port, timeout)
    if problem is None:
        return Destination(True, endpoint.url, f"a collector answers at {endpoint.url}")
    if not stack:
        return Destination(False, endpoint.url, f"no collector at {endpoint.url} ({problem})")
    from llm_otel.tools import _stack

    print(f"no collector at {endpoint.url}: starting the stack (`llm-otel stack up`) ...", file=out, flush=True)
    try:
        info = _stack.stack_up()
    except _stack.StackError as exc:
        raise DemoError(f"--stack: the stack could not be started: {exc}") from None
    url = info.otlp_grpc_endpoint if endpoint.protocol == "grpc" else info.otlp_http_endpoint
    return Destination(True, url, f"started the {info.mode} stack", started_stack=info)


# --------------------------------------------------------------------------- traffic


@llm_otel.traced_llm(provider="openai")
def _complete(client: Any, messages: list[dict[str, str]], model: str, stream: bool = False) -> Any:
    if stream:
        return client.chat.completions.create(
            model=model, messages=messages, stream=True, stream_options={"include_usage": True}
        )
    return client.chat.completions.create(model=model, messages=messages)


def _routed_request(client: Any, task: str, model: str, stream: bool, prompt: str) -> None:
    with llm_otel.route(task_type=task, model=model):
        response = _complete(client, [{"role": "user", "content": prompt}], model=model, stream=stream)
        if stream:
            for _ in response:
                pass


@dataclass
class DemoOptions:
    duration_s: float = 15.0
    rate: float = 8.0
    stack: bool = False
    live: bool = True
    seed: int = 7
    fault_rate_429: float = 0.03
    fault_rate_500: float = 0.015
    fault_rate_truncate: float = 0.01
    concurrency: int = 32


@dataclass
class DemoResult:
    exit_code: int
    rows: list[ModelRow] = field(default_factory=list)
    metrics: MetricsData | None = None
    sent: int = 0
    failed: int = 0
    traces: int = 0
    spans: int = 0
    exported: bool = False
    stand_in_requests: tuple[Any, ...] = ()  # llm_otel.tools.devserver.RecordedRequest, for checking the numbers


class _Screen:
    """Progress bar and live table on a terminal; plain output elsewhere."""

    def __init__(self, out: TextIO, live: bool) -> None:
        self.out = out
        self.tty = bool(getattr(out, "isatty", lambda: False)())
        self.live = live and self.tty
        self._drawn = 0

    def draw(self, lines: Sequence[str]) -> None:
        if not self.tty:
            return
        if self._drawn:
            self.out.write(f"\x1b[{self._drawn}F\x1b[J")  # back to the block's first line, clear below
        self.out.write("\n".join(lines) + "\n")
        self.out.flush()
        self._drawn = len(lines)


def _progress(elapsed: float, duration: float, sent: int, failed: int, width: int = 30) -> str:
    share = min(1.0, elapsed / duration) if duration > 0 else 1.0
    filled = int(share * width)
    return (f"[{'#' * filled}{'-' * (width - filled)}] {share * 100:3.0f}%  {elapsed:4.1f}/{duration:.0f} s  "
            f"requests {sent}  failed {failed}")


class _Traffic:
    """Requests at a fixed rate for a fixed time on a thread pool, bounded in count and time."""

    def __init__(self, options: DemoOptions, server: Any, client: Any, faults: Any) -> None:
        self.options = options
        self.server = server
        self.client = client
        self.faults = faults
        self.planned = min(max(1, int(options.rate * options.duration_s)), MAX_REQUESTS)
        self.sent = 0
        self.failed = 0
        self._lock = threading.Lock()
        self._rng = random.Random(options.seed)

    def _one(self, task: str, model: str, stream: bool, prompt: str) -> None:
        try:
            _routed_request(self.client, task, model, stream, prompt)
        except Exception:  # recorded by the kit (llm.errors, llm.rate_limited); the demo goes on
            with self._lock:
                self.failed += 1

    def run(self, redraw: Callable[[float], None]) -> None:
        from llm_otel.tools.devserver import FaultPlan

        options = self.options
        pool = ThreadPoolExecutor(max_workers=max(1, options.concurrency), thread_name_prefix="llm-otel-demo")
        futures: list[Future[None]] = []
        start = time.monotonic()
        deadline = start + options.duration_s
        # A short burst of rate limits in longer runs, so the 429 panel has a spike.
        burst = start + options.duration_s * 0.6 if options.duration_s >= 10 else math.inf
        try:
            for index in range(self.planned):
                due = start + index / options.rate
                while (now := time.monotonic()) < min(due, deadline):
                    redraw(now - start)
                    time.sleep(min(0.05, due - now))
                if time.monotonic() >= deadline and index > 0:
                    break
                in_burst = burst <= time.monotonic() < burst + 1.5
                self.server.faults = FaultPlan(rate_429=0.5, retry_after_s=1.0) if in_burst else self.faults
                task, model, stream, _ = self._rng.choices(TASKS, weights=[t[3] for t in TASKS])[0]
                futures.append(pool.submit(self._one, task, model, stream, self._rng.choice(PROMPTS[task])))
                self.sent += 1
            wait_futures(futures, timeout=DRAIN_S)
        finally:
            pool.shutdown(wait=False, cancel_futures=True)
            self.server.stop()  # cuts any connection still open, so the workers return at once
            pool.shutdown(wait=True)
            redraw(time.monotonic() - start)


def run_demo(options: DemoOptions, out: TextIO | None = None) -> DemoResult:
    """Drive the router against the stand-in and report from the kit's metrics (see the module docstring)."""
    out = out or sys.stdout
    if not 0 < options.rate <= 200 or not 0 < options.duration_s <= 3600:
        raise DemoError("--rate must be within (0, 200] and --duration within (0, 3600]")
    try:
        import openai
    except ImportError:
        raise DemoError("the demo needs the OpenAI SDK: pip install openai (or pip install 'llm-otel[dev]')") from None
    from llm_otel.tools.devserver import FaultPlan, LatencyProfile, StandInServer

    destination = choose_destination(options.stack, out)
    reader = InMemoryMetricReader()
    tally = TraceTally()
    exporters: dict[str, Any] = {} if destination.export else {"traces_exporter": "none", "metrics_exporter": "none"}
    try:
        llm_otel.configure(
            service_name=SERVICE_NAME,
            endpoint=destination.endpoint if destination.export else None,
            metric_readers=[reader],
            span_processors=[tally],
            metric_export_interval_ms=2000,
            set_global=False,
            **exporters,
        )
    except ValueError as exc:
        raise DemoError(f"bad configuration: {exc} (run `llm-otel doctor`)") from None

    result = DemoResult(exit_code=0, exported=destination.export)
    try:
        faults = FaultPlan(rate_429=options.fault_rate_429, rate_500=options.fault_rate_500,
                           rate_truncate=options.fault_rate_truncate, retry_after_s=1.0)
        latency = LatencyProfile.lognormal(180, 900, per_chunk_ms=3)
        with StandInServer(latency=latency, faults=faults, seed=options.seed) as server, openai.OpenAI(
            base_url=server.openai_base_url, api_key="demo", max_retries=0, timeout=CLIENT_TIMEOUT_S
        ) as client:
            traffic = _Traffic(options, server, client, faults)
            injected = (options.fault_rate_429 + options.fault_rate_500 + options.fault_rate_truncate) * 100
            print(f"llm-otel demo: {traffic.planned} requests at {options.rate:g}/s for {options.duration_s:g} s "
                  f"to a local stand-in LLM API ({server.base_url}, ~{injected:.0f}% injected failures); "
                  f"telemetry: {destination.note}", file=out, flush=True)
            screen = _Screen(out, options.live)
            next_draw = 0.0

            def redraw(elapsed: float) -> None:
                nonlocal next_draw
                if not screen.tty or time.monotonic() < next_draw:
                    return
                next_draw = time.monotonic() + (1.0 if screen.live else 0.2)
                lines = [_progress(elapsed, options.duration_s, traffic.sent, traffic.failed)]
                if screen.live:
                    lines += ["", *render_table(summarize(reader.get_metrics_data()))]
                screen.draw(lines)

            try:
                traffic.run(redraw)
            finally:
                result.stand_in_requests = server.requests
        result.sent, result.failed = traffic.sent, traffic.failed
        next_draw = 0.0
        screen.live = False
        redraw(options.duration_s)  # the final progress line replaces the live table
        result.metrics = reader.get_metrics_data()
        result.rows = summarize(result.metrics)
        result.traces, result.spans = tally.traces, tally.spans
        print("", *render_table(result.rows), sep="\n", file=out)
        print("requests: calls (failed ones included); p50/p95: call duration; TTFT: time to first chunk of "
              "streamed calls; errors: failed calls, 429s included", file=out)
        costs = cost_by_task(result.metrics)
        print("\ncost by task type (llm_task_type): " + ", ".join(f"{k} ${v:.6f}" for k, v in costs.items()),
              file=out)
        example = tally.example()
        if example:
            print("\nexample trace (one request):", *example, sep="\n", file=out)
    finally:
        llm_otel.shutdown()  # flushes the last spans and metrics to the collector, if any
    _where_it_went(result, destination, out)
    return result


def _where_it_went(result: DemoResult, destination: Destination, out: TextIO) -> None:
    print("", file=out)
    if not destination.export:
        print(f"traces: {result.traces} traces ({result.spans} spans) were recorded in this process and not exported: "
              f"{destination.note}.", file=out)
        print("        To see them in Grafana/Tempo and the metrics in Prometheus: `llm-otel stack up`, then run "
              "`llm-otel demo` again (it finds the collector), or `llm-otel demo --stack`.", file=out)
        return
    print(f"traces: {result.traces} traces ({result.spans} spans) and the metrics above were exported over OTLP "
          f"to {destination.endpoint}.", file=out)
    prometheus = _doctor.prometheus_url()
    if _doctor.http_get(f"{prometheus}/-/ready", 1.0).ok:
        query = urllib.parse.quote("sum by (gen_ai_request_model) (increase(llm_tokens_input_total[5m]))")
        print(f"Prometheus: {prometheus}/graph?g0.expr={query}  (series appear after the next scrape, "
              "15 s by default)", file=out)
    else:
        print(f"Prometheus: not reachable at {prometheus} (set {_doctor.PROMETHEUS_URL_ENV} if it runs elsewhere)",
              file=out)
    grafana = _doctor.grafana_url()
    if _doctor.http_get(f"{grafana}/api/health", 1.0).ok:
        print(f"Grafana:    {grafana}{_doctor.DASHBOARD_PATH}  (traces: Explore > Tempo, service.name="
              f"{SERVICE_NAME})", file=out)
    else:
        from llm_otel.tools import _stack

        print(f"Grafana:    not running at {grafana}; the docker stack has Grafana and Tempo "
              "(`llm-otel stack up --mode docker`). The native stack writes traces to "
              f"{_stack.default_run_dir() / 'traces.jsonl'}.", file=out)
    if destination.started_stack is not None:
        print("The stack keeps running; stop it with `llm-otel stack down`.", file=out)


def main(options: DemoOptions, out: TextIO | None = None, err: TextIO | None = None) -> int:
    """Run the demo; 0 on success, 2 when it cannot run as asked, 130 on Ctrl-C."""
    try:
        return run_demo(options, out).exit_code
    except DemoError as exc:
        print(f"llm-otel demo: {exc}", file=err or sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\nllm-otel demo: interrupted", file=err or sys.stderr)
        return 130
