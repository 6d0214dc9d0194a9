"""Every setting in one declarative table: argument > environment variable > default."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from llm_otel._names import SEMCONV_DEFAULT, SEMCONV_LATEST, SEMCONV_OPT_IN_ENV

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def parse_bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ValueError(f"expected true/false, got {text!r}")


def parse_headers(text: str) -> dict[str, str]:
    """``k1=v1,k2=v2`` as in OTEL_EXPORTER_OTLP_HEADERS (values may be percent-encoded)."""
    from urllib.parse import unquote

    headers = {}
    for pair in text.split(","):
        if not pair.strip():
            continue
        key, sep, value = pair.partition("=")
        if not sep:
            raise ValueError(f"header {pair!r} is not key=value")
        headers[unquote(key.strip()).lower()] = unquote(value.strip())
    return headers


def parse_protocol(text: str) -> str:
    value = text.strip().lower()
    if value not in ("grpc", "http/protobuf", "http"):
        raise ValueError(f"protocol must be grpc or http/protobuf, got {text!r}")
    return "http/protobuf" if value == "http" else value


def parse_exporter(text: str) -> str:
    value = text.strip().lower() or "otlp"
    if value not in ("otlp", "none", "console"):
        raise ValueError(f"exporter must be otlp, console or none, got {text!r}")
    return value


def parse_rate(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"sample rate must be within 0..1, got {text!r}")
    return value


def parse_positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise ValueError(f"expected a positive integer, got {text!r}")
    return value


def parse_semconv_opt_in(text: str) -> str:
    """OTEL_SEMCONV_STABILITY_OPT_IN is a comma-separated list shared with other instrumentations
    (``http``, ``database``...): only ``gen_ai_latest_experimental`` matters here, and no other
    value is an error. Returns ``gen_ai_latest_experimental`` or ``default``."""
    return SEMCONV_LATEST if SEMCONV_LATEST in (part.strip() for part in str(text).split(",")) else SEMCONV_DEFAULT


@dataclass(frozen=True)
class Setting:
    name: str
    env: tuple[str, ...]
    default: Any
    parse: Callable[[str], Any]
    doc: str


def parse_choice(*choices: str) -> Callable[[str], str]:
    def parse(text: str) -> str:
        value = text.strip().lower()
        if value not in choices:
            raise ValueError(f"expected one of {', '.join(choices)}, got {text!r}")
        return value

    return parse


SETTINGS: tuple[Setting, ...] = (
    Setting("service_name", ("OTEL_SERVICE_NAME",), "llm-app", str,
            "service.name resource attribute (Prometheus job label)."),
    Setting("endpoint", ("OTEL_EXPORTER_OTLP_ENDPOINT",), None, str,
            "OTLP endpoint; default http://localhost:4317 (gRPC) or http://localhost:4318 (HTTP)."),
    Setting("protocol", ("OTEL_EXPORTER_OTLP_PROTOCOL",), "grpc", parse_protocol,
            "OTLP transport: grpc or http/protobuf."),
    Setting("headers", ("OTEL_EXPORTER_OTLP_HEADERS",), None, parse_headers,
            "Extra OTLP headers, e.g. authorization=Bearer%20TOKEN."),
    Setting("traces_exporter", ("OTEL_TRACES_EXPORTER",), "otlp", parse_exporter,
            "otlp, console or none."),
    Setting("metrics_exporter", ("OTEL_METRICS_EXPORTER",), "otlp", parse_exporter,
            "otlp, console or none; none with no `metric_readers` records no metrics at all."),
    Setting("capture_content", ("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT",), False, parse_bool,
            "Record prompts and completions on spans (redacted). Off by default."),
    Setting("attribute_max_length", ("OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT", "OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT"),
            4096, parse_positive_int,
            "Longest free-text span attribute the kit writes (exception messages, request parameters, framework "
            "metadata), in characters; longer text is cut and ends with an ellipsis. Metric labels, model names "
            "and span names are capped at 128 characters regardless."),
    Setting("content_max_message_chars", ("LLM_OTEL_CONTENT_MAX_MESSAGE_CHARS",), 16384, parse_positive_int,
            "With capture_content: characters kept per captured message, before redaction; longer text is cut "
            "(ending with an ellipsis) and the span gets llm.content.truncated=true."),
    Setting("content_max_call_chars", ("LLM_OTEL_CONTENT_MAX_CALL_CHARS",), 65536, parse_positive_int,
            "With capture_content: characters kept per call, prompts and completion together."),
    Setting("semconv_stability_opt_in", (SEMCONV_OPT_IN_ENV,), SEMCONV_DEFAULT, parse_semconv_opt_in,
            "GenAI semantic conventions: v1.41.0 names by default; gen_ai_latest_experimental in the "
            "comma-separated list emits the newer names (docs/metrics.md, both sets)."),
    Setting("cardinality_limit", ("LLM_OTEL_CARDINALITY_LIMIT",), 100, parse_positive_int,
            "Distinct values per metric attribute before folding into _other."),
    Setting("metric_export_interval_ms", ("OTEL_METRIC_EXPORT_INTERVAL",), 10000, parse_positive_int,
            "How often metrics are pushed over OTLP."),
    Setting("metric_export_timeout_ms", ("OTEL_METRIC_EXPORT_TIMEOUT",), 5000, parse_positive_int,
            "Upper bound for one metric export."),
    Setting("span_queue_size", ("OTEL_BSP_MAX_QUEUE_SIZE",), 16384, parse_positive_int,
            "Spans buffered before export; a full queue drops spans (counted in llm_otel_telemetry_dropped_total). "
            "Holds about 3 s of a collector stall at the ~5,000 calls/s one process sustains (docs/performance.md)."),
    Setting("span_batch_size", ("OTEL_BSP_MAX_EXPORT_BATCH_SIZE",), 1024, parse_positive_int,
            "Spans per OTLP export request."),
    Setting("span_schedule_delay_ms", ("OTEL_BSP_SCHEDULE_DELAY",), 1000, parse_positive_int,
            "Longest wait before a partial batch of spans is exported."),
    Setting("span_export_timeout_ms", ("OTEL_BSP_EXPORT_TIMEOUT",), 10000, parse_positive_int,
            "Upper bound for one span export."),
    Setting("shutdown_timeout_ms", ("LLM_OTEL_SHUTDOWN_TIMEOUT",), 5000, parse_positive_int,
            "Upper bound for llm_otel.shutdown() and for the final flush at interpreter exit, whatever "
            "the collector does (down, hung, refusing); what is not sent by then is counted as dropped."),
    Setting("use_global_providers", ("LLM_OTEL_USE_GLOBAL_PROVIDERS",), True, parse_bool,
            "When OpenTelemetry providers are already installed globally (your SDK setup, "
            "opentelemetry-instrument, a vendor SDK), record into them instead of creating new ones."),
    Setting("prices_file", ("LLM_OTEL_PRICES_FILE",), None, str,
            "JSON or YAML file of price overrides (model -> input_per_mtok, output_per_mtok, ...)."),
    Setting("enabled", ("LLM_OTEL_ENABLED",), True, parse_bool,
            "Master switch; OTEL_SDK_DISABLED=true also turns the kit off."),
    Setting("evaluation_sample_rate", ("LLM_OTEL_EVAL_SAMPLE_RATE",), 0.1, parse_rate,
            "Share of successful calls handed to the background evaluator."),
    Setting("evaluation_queue_size", ("LLM_OTEL_EVAL_QUEUE_SIZE",), 1000, parse_positive_int,
            "Pending evaluations kept; beyond it samples are dropped and counted."),
    Setting("groundedness", ("LLM_OTEL_GROUNDEDNESS",), "auto",
            parse_choice("auto", "lexical", "embedding", "off"),
            "Built-in hallucination scorer for calls with retrieved context: auto (embeddings when the eval "
            "extra is installed, else lexical), lexical, embedding, or off. Sampled by evaluation_sample_rate."),
    Setting("drift", ("LLM_OTEL_DRIFT",), "sampled", parse_choice("sampled", "all", "off"),
            "Drift of prompts/answers per task type: sampled (calls the evaluator samples anyway), all "
            "(every sampled call keeps its text for drift), or off."),
    Setting("drift_window", ("LLM_OTEL_DRIFT_WINDOW",), 200, parse_positive_int,
            "Sampled calls per drift window; the first full window of a task type is its baseline."),
)

SETTINGS_BY_NAME: Mapping[str, Setting] = {s.name: s for s in SETTINGS}


def resolve(
    arguments: Mapping[str, Any],
    environ: Mapping[str, str] | None = None,
    *,
    bad: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Settings by name; a bad environment value raises ValueError naming the variable.

    With ``bad`` (a dict to fill) nothing raises: a bad value falls back to the
    setting's default and ``bad[variable]`` says why. The kit's lazy set-up uses
    this, so a call path never raises because of a setting; ``configure()`` keeps
    the strict form and fails at start-up.
    """
    env = os.environ if environ is None else environ
    resolved: dict[str, Any] = {}
    for setting in SETTINGS:
        value = arguments.get(setting.name)
        if value is None:
            value = setting.default
            for var in setting.env:
                raw = env.get(var)
                if raw is not None and raw.strip() != "":
                    try:
                        value = setting.parse(raw)
                    except ValueError as exc:
                        if bad is None:
                            raise ValueError(f"{var}={raw!r}: {exc}") from None
                        bad[var] = f"{var}={raw!r}: {exc}"
                    break
        resolved[setting.name] = value
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true" and arguments.get("enabled") is None:
        resolved["enabled"] = False
    return resolved
