"""The providers and helpers every part of the kit records through.

``configure()`` builds one immutable ``Telemetry`` and swaps it in; decorators,
middleware and handlers read ``current()`` at call time, so a second
``configure()`` (as tests do) takes effect everywhere at once.
"""

from __future__ import annotations

import atexit
import dataclasses
import logging
import sys
import threading
import time
import weakref
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from opentelemetry import metrics, trace
from opentelemetry._logs import Logger, LoggerProvider, get_logger_provider
from opentelemetry.metrics import MeterProvider, NoOpMeterProvider
from opentelemetry.trace import Tracer, TracerProvider

from llm_otel import _config, _fork, _lifecycle, _log, _retrieved
from llm_otel._cardinality import CardinalityGuard
from llm_otel._content import Redactor, default_redactor
from llm_otel._log import log_once
from llm_otel._metrics import Recorder
from llm_otel._names import SCHEMA_URL_V1_41, SEMCONV_DEFAULT, SEMCONV_LATEST
from llm_otel._ownership import WireResponses
from llm_otel._pricing import Price, PriceBook, load_price_file
from llm_otel._sampling import DropForecast
from llm_otel._version import VERSION


@dataclass
class Telemetry:
    tracer_provider: TracerProvider
    meter_provider: MeterProvider
    tracer: Tracer
    recorder: Recorder
    prices: PriceBook
    settings: Mapping[str, Any]
    capture_content: bool
    redactor: Redactor
    enabled: bool = True
    semconv: str = SEMCONV_DEFAULT
    event_logger: Logger | None = None  # the gen_ai.client.operation.exception events go here
    evaluator: Any = None
    owned: list[Any] = field(default_factory=list)
    sink: Any = None  # the DropSink of the exporters this setup created
    drop_forecast: DropForecast = field(init=False)
    # response ids recorded by provider SDK instrumentors (docs/instrumentation.md, "One record per API call")
    wire_responses: WireResponses = field(init=False, default_factory=WireResponses)
    configured: bool = False  # built by configure(), not bound to the global providers on first use
    # this setup recording through other providers (an instrumentor given its own), by those providers
    _rebound: dict[tuple[Any, Any, Any], Telemetry] = field(init=False, default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self.drop_forecast = DropForecast(self.tracer_provider)

    def on_providers(
        self,
        tracer_provider: TracerProvider | None = None,
        meter_provider: MeterProvider | None = None,
        logger_provider: LoggerProvider | None = None,
        *,
        source: str = "an instrumentor",
    ) -> Telemetry:
        """This setup recording spans, metrics and events through the given providers instead of
        its own (the ones not given stay as they are), as an OpenTelemetry instrumentor given
        ``tracer_provider=``/``meter_provider=``/``logger_provider=`` does. Settings, prices,
        redaction, the evaluator and the record of wire-level responses stay shared, so the
        call still counts once. Built once per providers; the providers are never closed here.
        """
        key = (tracer_provider, meter_provider, logger_provider)
        found = self._rebound.get(key)
        if found is not None:
            return found
        if ((tracer_provider is None or tracer_provider is self.tracer_provider)
                and (meter_provider is None or meter_provider is self.meter_provider) and logger_provider is None):
            return self
        with _lock:
            found = self._rebound.get(key)
            if found is None:
                found = self._rebind(tracer_provider, meter_provider, logger_provider)
                self._rebound[key] = found
                _explain_rebound(self, found, source)
        return found

    def _rebind(self, tracer_provider: TracerProvider | None, meter_provider: MeterProvider | None,
                logger_provider: LoggerProvider | None) -> Telemetry:
        schema = None if self.semconv == SEMCONV_LATEST else SCHEMA_URL_V1_41
        tracer_provider = tracer_provider or self.tracer_provider
        recorder = self.recorder
        if meter_provider is not None and meter_provider is not self.meter_provider:
            recorder = Recorder(meter_provider, CardinalityGuard(self.settings["cardinality_limit"]), self.semconv)
        # everything else is shared; nothing here is the kit's to shut down
        rebound = dataclasses.replace(
            self,
            tracer_provider=tracer_provider,
            meter_provider=meter_provider or self.meter_provider,
            tracer=tracer_provider.get_tracer("llm_otel", VERSION, schema_url=schema),
            recorder=recorder,
            event_logger=(logger_provider.get_logger("llm_otel", VERSION, schema_url=schema)
                          if logger_provider is not None else self.event_logger),
            owned=[],
            sink=None,
        )
        rebound.wire_responses = self.wire_responses  # one record per API call across both
        return rebound

    @property
    def needs_unsampled_calls(self) -> bool:
        """Whether a call whose span is sampled out still has work to do: metrics or evaluation."""
        evaluator = self.evaluator
        return not isinstance(self.meter_provider, NoOpMeterProvider) or (
            evaluator is not None and evaluator.scores_every_call
        )

    @property
    def wants_text(self) -> bool:
        """Completion text is gathered only for content capture, an evaluator of every call, or (for
        the groundedness scorers) once a retrieval step has kept context for some trace."""
        evaluator = self.evaluator
        if self.capture_content:
            return True
        if evaluator is None:
            return False
        return bool(evaluator.scores_every_call or (evaluator.scores_context and _retrieved.active()))

    def shutdown(self, timeout_millis: float | None = None, *, spare: Sequence[Any] = ()) -> None:
        """Stop what this setup created within ``timeout_millis`` (default ``shutdown_timeout_ms``).

        Providers in ``spare`` are left running (the OpenTelemetry globals still point at them).
        """
        timeout = float(self.settings["shutdown_timeout_ms"] if timeout_millis is None else timeout_millis)
        deadline = time.monotonic() + timeout / 1000
        if self.evaluator is not None:
            self.evaluator.close(min(5.0, timeout / 4000))  # a quarter: the exports need the rest
        closing = [p for p in self.owned if not any(p is kept for kept in spare)]
        if self.sink is not None:
            self.sink.closing = True
        left_ms = max(0.0, deadline - time.monotonic()) * 1000
        _lifecycle.shutdown(
            [p for p in closing if hasattr(p, "get_tracer")],
            [p for p in closing if hasattr(p, "get_meter")],
            left_ms,
        )
        line = self.sink.summary() if self.sink is not None and len(closing) == len(self.owned) else None
        if line:
            _logger.warning("%s", line)

    def force_flush(self, timeout_millis: float = 30000) -> bool:
        """Flush both providers within ``timeout_millis`` in all (the SDK alone may take far longer)."""
        return _lifecycle.force_flush((self.tracer_provider, self.meter_provider), timeout_millis)


_logger = logging.getLogger("llm_otel")
_lock = threading.Lock()
_state: Telemetry | None = None


def _build(
    settings: Mapping[str, Any],
    tracer_provider: TracerProvider,
    meter_provider: MeterProvider,
    overrides: Mapping[str, Mapping[str, Any] | Price],
    redactor: Redactor | None,
    owned: list[Any],
    logger_provider: LoggerProvider | None = None,
) -> Telemetry:
    semconv = _config.parse_semconv_opt_in(settings["semconv_stability_opt_in"])
    return Telemetry(
        tracer_provider=tracer_provider,
        meter_provider=meter_provider,
        tracer=tracer_provider.get_tracer(
            "llm_otel", VERSION, schema_url=None if semconv == SEMCONV_LATEST else SCHEMA_URL_V1_41),
        recorder=Recorder(meter_provider, CardinalityGuard(settings["cardinality_limit"]), semconv),
        semconv=semconv,
        event_logger=(logger_provider or get_logger_provider()).get_logger(
            "llm_otel", VERSION, schema_url=None if semconv == SEMCONV_LATEST else SCHEMA_URL_V1_41),
        prices=PriceBook(overrides),
        settings=settings,
        capture_content=bool(settings["capture_content"]),
        redactor=redactor or default_redactor,
        enabled=bool(settings["enabled"]),
        owned=owned,
    )


def current() -> Telemetry:
    """The configured telemetry, or one bound to the global providers until configure() runs."""
    state = _state
    if state is not None:
        return state
    with _lock:
        if _state is None:
            _set(_lazy_build())
        assert _state is not None
        return _state


# A bad setting met without configure() (which would have raised at start-up): counted
# under this source, the environment variable as the reason (a closed set: the settings table).
SETTINGS_SOURCE = "settings"
PRICES_FILE_VARIABLE = "LLM_OTEL_PRICES_FILE"


def _lazy_build() -> Telemetry:
    """Telemetry for a process that never called configure(); never raises for a bad setting.

    The first LLM call builds it, so raising would turn a typo in the environment into a
    failed request. A bad value falls back to its default, is logged once and counted.
    """
    bad: dict[str, str] = {}
    settings = _config.resolve({}, bad=bad)
    tracer_provider, meter_provider = trace.get_tracer_provider(), metrics.get_meter_provider()
    try:
        state = _build(settings, tracer_provider, meter_provider, _file_prices(settings), None, [])
    except Exception as exc:  # a missing, unreadable or malformed prices file
        bad[PRICES_FILE_VARIABLE] = f"{PRICES_FILE_VARIABLE}={settings.get('prices_file')!r}: {exc}"
        state = _build(settings, tracer_provider, meter_provider, {}, None, [])
    for variable, why in bad.items():
        state.recorder.count_unknown_input(SETTINGS_SOURCE, variable)
        log_once(f"setting:{variable}", "llm-otel: ignored a bad setting (%s); using the default instead. "
                 "configure() would refuse it at start-up.", why)
    return state


def _set(state: Telemetry) -> None:
    global _state
    _state = state


def _file_prices(settings: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    path = settings.get("prices_file")
    if not path:
        return {}
    try:
        return load_price_file(path)
    except Exception as exc:  # name the setting: "No such file" alone does not say which
        raise ValueError(f"prices_file / LLM_OTEL_PRICES_FILE={path!r}: {exc}") from exc


def configure(
    *,
    service_name: str | None = None,
    endpoint: str | None = None,
    protocol: str | None = None,
    headers: Mapping[str, str] | None = None,
    tracer_provider: TracerProvider | None = None,
    meter_provider: MeterProvider | None = None,
    logger_provider: LoggerProvider | None = None,
    capture_content: bool | None = None,
    prices: Mapping[str, Mapping[str, Any] | Price] | None = None,
    redactor: Redactor | None = None,
    cardinality_limit: int | None = None,
    metric_export_interval_ms: int | None = None,
    metric_readers: Sequence[Any] = (),
    span_processors: Sequence[Any] = (),
    resource_attributes: Mapping[str, Any] | None = None,
    evaluator: Callable[..., Any] | None = None,
    evaluation_sample_rate: float | None = None,
    judge: Any = None,
    enabled: bool | None = None,
    set_global: bool = True,
    **more: Any,
) -> Telemetry:
    """Set up traces and metrics for the whole kit; see docs/configuration.md for every option.

    Providers passed in or already installed globally by someone else are used, never
    closed (docs/configuration.md, "Joining an existing OpenTelemetry setup"). Calling it
    again replaces what an earlier call set up and shuts down the providers that call
    created, except one the OpenTelemetry globals still point at.
    """
    unknown = set(more) - set(_config.SETTINGS_BY_NAME)
    if unknown:
        raise TypeError(f"configure() got unexpected arguments: {', '.join(sorted(unknown))}")
    arguments = {
        "service_name": service_name, "endpoint": endpoint, "protocol": protocol, "headers": headers,
        "capture_content": capture_content, "cardinality_limit": cardinality_limit,
        "metric_export_interval_ms": metric_export_interval_ms,
        "evaluation_sample_rate": evaluation_sample_rate, "enabled": enabled, **more,
    }
    settings = _config.resolve(arguments)
    overrides: dict[str, Mapping[str, Any] | Price] = dict(_file_prices(settings))
    overrides.update(prices or {})

    from llm_otel import _providers

    owned: list[Any] = []
    sink = _providers.DropSink(_providers.target(settings))
    joined = _join_globals(settings, set_global)
    if tracer_provider is None and joined.tracer is not None:
        tracer_provider = joined.tracer
    if meter_provider is None and joined.meter is not None:
        meter_provider = joined.meter
    if tracer_provider is None:
        tracer_provider = _providers.tracer_provider(settings, resource_attributes, span_processors, sink)
        owned.append(tracer_provider)
    else:
        for processor in span_processors:
            tracer_provider.add_span_processor(processor)  # type: ignore[attr-defined]
    if meter_provider is None:
        meter_provider = _providers.meter_provider(settings, resource_attributes, metric_readers, sink)
        if hasattr(meter_provider, "shutdown"):
            owned.append(meter_provider)
    elif metric_readers:
        _log.log_once("readers-ignored", "llm-otel: metric_readers are ignored with a MeterProvider llm-otel did "
                      "not create (a reader joins a provider when it is built); add them to yours")
    for provider in owned:
        _created.add(provider)
    if set_global:
        _providers.set_global_if_unset(tracer_provider, meter_provider)
    joined.explain(tracer_provider, meter_provider)

    state = _build(settings, tracer_provider, meter_provider, overrides, redactor, owned, logger_provider)
    state.configured = True
    state.sink = sink
    sink.recorder = state.recorder
    state.evaluator = _evaluator(settings, evaluator, judge)
    _retrieved.forget_all()
    with _lock:
        previous = _state
        _set(state)
        # providers the OpenTelemetry globals point at keep serving other instrumentations:
        # they are left running (and stopped at exit or by shutdown()), never closed here
        spare = [p for p in previous.owned if _is_global(p)] if previous is not None else []
        _spared.extend(spare)
    _register_exit()
    if previous is not None:
        previous.shutdown(spare=spare)
    return state


def _explain_rebound(base: Telemetry, rebound: Telemetry, source: str) -> None:
    """Say once where a rebound setup records, and where the rest of the kit still does."""
    def name(provider: Any) -> str:
        return f"{type(provider).__module__}.{type(provider).__qualname__} at {id(provider):#x}"

    spans, metrics_ = rebound.tracer_provider, rebound.meter_provider
    if base.configured:
        _log.log_once(
            f"rebound:{id(spans)}:{id(metrics_)}",
            "llm-otel: %s records its calls through the providers given to it (spans: %s; metrics: %s), "
            "not through the ones configure() set up (spans: %s; metrics: %s). Decorators and framework "
            "handlers record through configure()'s: their spans stay the parents of these calls, without "
            "tokens or cost (one record per API call), so the calls' tokens and cost are counted only "
            "in the providers given to %s.",
            source, name(spans), name(metrics_), name(base.tracer_provider), name(base.meter_provider), source,
            level=logging.WARNING,
        )
    else:
        _log.log_once(
            f"rebound:{id(spans)}:{id(metrics_)}",
            "llm-otel: %s records its calls through the providers given to it (spans: %s; metrics: %s); "
            "the rest of the kit uses the global providers until llm_otel.configure() runs.",
            source, name(spans), name(metrics_), level=logging.INFO,
        )


def _evaluator(settings: Mapping[str, Any], scorer: Callable[..., Any] | None, judge: Any) -> Any:
    """The background evaluator: the user's scorer, the built-in groundedness scorer (on by default,
    for calls with retrieved context), an opt-in LLM judge and drift; None when all are off."""
    from llm_otel._drift import DriftTracker
    from llm_otel._quality import BackgroundEvaluator
    from llm_otel._scorers import GroundednessScorer

    grounding = GroundednessScorer(settings["groundedness"]) if settings["groundedness"] != "off" else None
    drift = None
    if settings["drift"] != "off":
        drift = DriftTracker(window=settings["drift_window"], every_call=settings["drift"] == "all")
    if scorer is None and grounding is None and judge is None and (drift is None or not drift.every_call):
        return None
    return BackgroundEvaluator(
        scorer, sample_rate=settings["evaluation_sample_rate"], queue_size=settings["evaluation_queue_size"],
        grounding=grounding, judge=judge, drift=drift,
    )


class _Joined:
    """Which globally installed providers configure() records into, and the one line saying so."""

    def __init__(self, tracer: Any, meter: Any) -> None:
        self.tracer = tracer
        self.meter = meter

    def explain(self, tracer_provider: Any, meter_provider: Any) -> None:
        if self.tracer is None and self.meter is None:
            return
        parts = []
        for signal, joined, used in (("spans", self.tracer, tracer_provider), ("metrics", self.meter, meter_provider)):
            name = type(used).__module__ + "." + type(used).__qualname__
            if joined is not None and used is joined:
                parts.append(f"{signal} go to the global {name} already installed")
            else:
                parts.append(f"{signal} go to a new {name}")
        _log.log_once(
            f"joined:{id(self.tracer)}:{id(self.meter)}",
            "llm-otel: joined the existing OpenTelemetry setup: %s; no exporter of llm-otel's own was added to "
            "them, so its endpoint, service_name and resource settings do not apply there "
            "(LLM_OTEL_USE_GLOBAL_PROVIDERS=false to create separate providers)",
            "; ".join(parts), level=logging.INFO,
        )


def _join_globals(settings: Mapping[str, Any], set_global: bool) -> _Joined:
    """The providers someone else installed globally, per signal, when the kit is to use them.

    The API's placeholders mean nothing is installed; providers an earlier configure()
    created are the kit's own and are replaced by new ones, as a second configure() asks.
    """
    if not (settings["use_global_providers"] and set_global):
        return _Joined(None, None)
    from llm_otel import _providers

    found = []
    for provider in (trace.get_tracer_provider(), metrics.get_meter_provider()):
        foreign = not _providers.is_api_default(provider) and provider not in _created
        found.append(provider if foreign else None)
    return _Joined(found[0], found[1])


def _is_global(provider: Any) -> bool:
    return provider is trace.get_tracer_provider() or provider is metrics.get_meter_provider()


# every provider the kit created (the ones it may close); and the ones kept for the globals
_created: weakref.WeakSet[Any] = weakref.WeakSet()
_spared: list[Any] = []
_exit_registered = False


def _register_exit() -> None:
    """Interpreter exit shuts down what the kit created within ``shutdown_timeout_ms``
    (the SDK's own exit hook, turned off for the kit's providers, could wait 30 s)."""
    global _exit_registered
    if not _exit_registered:
        _exit_registered = True
        atexit.register(shutdown)


def shutdown(timeout_millis: float | None = None) -> None:
    """Flush and stop what configure() created, within ``timeout_millis`` (default: the
    ``shutdown_timeout_ms`` setting); later calls fall back to the global providers.
    Providers the kit did not create are left alone."""
    global _state
    with _lock:
        previous, _state = _state, None
        spared, _spared[:] = list(_spared), []
    if previous is not None:
        timeout = float(previous.settings["shutdown_timeout_ms"] if timeout_millis is None else timeout_millis)
        deadline = time.monotonic() + timeout / 1000
        previous.shutdown(timeout)
        if spared:
            left_ms = max(0.0, deadline - time.monotonic()) * 1000
            _lifecycle.shutdown([p for p in spared if hasattr(p, "get_tracer")],
                                [p for p in spared if hasattr(p, "get_meter")], left_ms)


def force_flush(timeout_millis: int = 30000) -> bool:
    """Export what is pending; returns within ``timeout_millis`` (False if not all was sent)."""
    state = _state
    return state.force_flush(timeout_millis) if state is not None else True


def _after_fork_in_child() -> None:
    """The child's own locks and a fresh evaluator; the providers and sums reset themselves."""
    global _lock
    _lock = threading.Lock()
    _log._seen_lock = threading.Lock()
    state = _state
    if state is None:
        return
    multiprocessing_util = sys.modules.get("multiprocessing.util")
    if multiprocessing_util is not None:
        # a multiprocessing worker leaves through os._exit, skipping atexit; its finalizers still
        # run (registered once the worker has cleared the ones it inherited)
        multiprocessing_util.register_after_fork(_worker_exit, _shut_down_at_worker_exit)
    for holder in (state.recorder.guard, state.prices):
        if hasattr(holder, "_lock"):
            holder._lock = threading.Lock()
    if state.sink is not None:
        state.sink.after_fork()
    _retrieved.after_fork_in_child()
    evaluator = state.evaluator
    if evaluator is not None:
        # built anew from the settings: the parent's worker thread, queue, drift windows and locks stay behind
        state.evaluator = _evaluator(state.settings, evaluator.scorer, evaluator.judge)


class _WorkerExit:
    """The object multiprocessing's after-fork registry holds (it keeps values weakly)."""


_worker_exit = _WorkerExit()


def _shut_down_at_worker_exit(_: object) -> None:
    import multiprocessing.util

    multiprocessing.util.Finalize(None, shutdown, exitpriority=0)


_fork.on_fork(_after_fork_in_child)
