"""``llm_otel.instrument()`` / ``uninstrument()``: provider SDK instrumentors by name.

The instrumentors live with the other adapters (``llm_otel.integrations.<sdk>``) and need
``opentelemetry-instrumentation``; they are imported only here, when asked for, so
``import llm_otel`` stays free of them. The same classes are registered under the
``opentelemetry_instrumentor`` entry point group for ``opentelemetry-instrument``.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
from typing import Any

from llm_otel._log import log_once

_logger = logging.getLogger("llm_otel")

# name -> (module of the instrumentor, class, the SDK's import name)
INSTRUMENTORS: dict[str, tuple[str, str, str]] = {
    "openai": ("llm_otel.integrations.openai", "OpenAIInstrumentor", "openai"),
    "anthropic": ("llm_otel.integrations.anthropic", "AnthropicInstrumentor", "anthropic"),
    "bedrock": ("llm_otel.integrations.bedrock", "BedrockInstrumentor", "botocore"),
    "litellm": ("llm_otel.integrations.litellm", "LiteLLMInstrumentor", "litellm"),
    "google_genai": ("llm_otel.integrations.google_genai", "GoogleGenAIInstrumentor", "google.genai"),
}


def _instrumentor(name: str) -> Any:
    module, cls, _ = INSTRUMENTORS[name]
    try:
        return getattr(importlib.import_module(module), cls)()
    except ImportError as exc:
        if getattr(exc, "name", None) and exc.name.startswith("opentelemetry.instrumentation"):  # type: ignore[union-attr]
            raise ImportError(
                "llm_otel.instrument() needs opentelemetry-instrumentation: pip install 'llm-otel[instrument]'"
            ) from exc
        raise


def _installed(sdk: str) -> bool:
    try:
        return importlib.util.find_spec(sdk) is not None
    except ImportError:  # a dotted name whose parent package is missing (``google.genai``)
        return False


def _chosen(names: tuple[str, ...]) -> list[str]:
    unknown = [name for name in names if name not in INSTRUMENTORS]
    if unknown:
        raise ValueError(f"unknown SDK {', '.join(unknown)}; known: {', '.join(sorted(INSTRUMENTORS))}")
    return list(names) if names else list(INSTRUMENTORS)


def instrument(*names: str, **options: Any) -> list[str]:
    """Instrument the named provider SDKs (all installed ones when none is named).

    ``options`` go to each instrumentor's ``instrument()`` (e.g. ``provider_by_host`` for
    openai; ``tracer_provider``, ``meter_provider`` and ``logger_provider`` for any, which
    its calls then record through, see docs/instrumentation.md "Providers"). Returns the
    names instrumented now or before; an SDK that is not installed is skipped when none was
    named, and raises ``ImportError`` when it was. An SDK already instrumented keeps the
    options it was given first (a warning says so when others are given now).
    """
    done = []
    for name in _chosen(names):
        sdk = INSTRUMENTORS[name][2]
        if not _installed(sdk):
            if names:
                raise ImportError(f"llm_otel.instrument({name!r}): the {sdk} package is not installed")
            log_once(f"instrument:{name}:missing", "llm-otel: %s is not installed; not instrumented", sdk)
            continue
        instrumentor = _instrumentor(name)
        if not instrumentor.is_instrumented_by_opentelemetry:
            instrumentor.instrument(**options)
        elif options and options != getattr(instrumentor, "options", None):
            _logger.warning(
                "llm-otel: %s is already instrumented; the options given now (%s) are not applied, it keeps "
                "the ones given first. Call llm_otel.uninstrument(%r) first to change them.",
                name, ", ".join(sorted(options)), name,
            )
        done.append(name)
    return done


def uninstrument(*names: str) -> None:
    """Undo ``instrument()`` for the named SDKs (all when none is named)."""
    for name in _chosen(names):
        if not _installed(INSTRUMENTORS[name][2]):
            continue
        instrumentor = _instrumentor(name)
        if instrumentor.is_instrumented_by_opentelemetry:
            instrumentor.uninstrument()


def configure_if_unset() -> None:
    """``opentelemetry-instrument`` hook (``opentelemetry_post_instrument``), run after every
    configurator and instrumentor: when no OpenTelemetry SDK was set up (no distro or
    configurator installed one) and ``configure()`` never ran, set the kit up from the
    environment (OTEL_* variables), so the zero-code start exports. A setup that exists wins.
    """
    from opentelemetry import trace

    from llm_otel import _runtime

    if _runtime._state is not None or not isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider):
        return
    try:
        _runtime.configure()
    except Exception as exc:  # a bad OTEL_* value must not stop the application from starting
        _logger.warning("llm-otel: not configured by opentelemetry-instrument: %s", exc)
