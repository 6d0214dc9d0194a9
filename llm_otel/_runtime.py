"""The providers and helpers every part of the kit records through.

``configure()`` builds one immutable ``Telemetry`` and swaps it in; decorators,
middleware and handlers read ``current()`` at call time, so a second
``configure()`` (as tests do) takes effect everywhere at once.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from opentelemetry import metrics, trace
from opentelemetry.metrics import MeterProvider, NoOpMeterProvider
from opentelemetry.trace import Tracer, TracerProvider

from llm_otel import _config, _retrieved
from llm_otel._cardinality import CardinalityGuard
from llm_otel._content import Redactor, default_redactor
from llm_otel._log import log_once
from llm_otel._metrics import Recorder
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
    evaluator: Any = None
    owned: list[Any] = field(default_factory=list)
    drop_forecast: DropForecast = field(init=False)

    def __post_init__(self) -> None:
        self.drop_forecast = DropForecast(self.tracer_provider)

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

    def shutdown(self) -> None:
        if self.evaluator is not None:
            self.evaluator.close()
        for provider in self.owned:
            provider.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        ok = True
        for provider in (self.tracer_provider, self.meter_provider):
            flush = getattr(provider, "force_flush", None)
            if flush is not None:
                ok = bool(flush(timeout_millis=timeout_millis)) and ok
        return ok


_lock = threading.Lock()
_state: Telemetry | None = None


def _build(
    settings: Mapping[str, Any],
    tracer_provider: TracerProvider,
    meter_provider: MeterProvider,
    overrides: Mapping[str, Mapping[str, Any] | Price],
    redactor: Redactor | None,
    owned: list[Any],
) -> Telemetry:
    return Telemetry(
        tracer_provider=tracer_provider,
        meter_provider=meter_provider,
        tracer=tracer_provider.get_tracer("llm_otel", VERSION),
        recorder=Recorder(meter_provider, CardinalityGuard(settings["cardinality_limit"])),
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

    Calling it again replaces what an earlier call set up (and shuts down the
    providers that call created).
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
    sink = _providers.DropSink()
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
    if set_global:
        _providers.set_global_if_unset(tracer_provider, meter_provider)

    state = _build(settings, tracer_provider, meter_provider, overrides, redactor, owned)
    sink.recorder = state.recorder
    state.evaluator = _evaluator(settings, evaluator, judge)
    _retrieved.forget_all()
    with _lock:
        previous = _state
        _set(state)
    if previous is not None:
        previous.shutdown()
    return state


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


def shutdown() -> None:
    """Flush and stop what configure() created; later calls fall back to the global providers."""
    global _state
    with _lock:
        previous, _state = _state, None
    if previous is not None:
        previous.shutdown()


def force_flush(timeout_millis: int = 30000) -> bool:
    state = _state
    return state.force_flush(timeout_millis) if state is not None else True
