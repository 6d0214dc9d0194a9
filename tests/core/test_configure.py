from __future__ import annotations

import subprocess
import sys

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.trace import TracerProvider

import llm_otel
from llm_otel import _config


def test_argument_beats_environment_beats_default() -> None:
    env = {"OTEL_SERVICE_NAME": "from-env", "LLM_OTEL_CARDINALITY_LIMIT": "7"}
    resolved = _config.resolve({"service_name": "from-arg"}, env)
    assert resolved["service_name"] == "from-arg"
    assert resolved["cardinality_limit"] == 7
    assert _config.resolve({}, {})["protocol"] == "grpc"
    assert _config.resolve({}, {"OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf"})["protocol"] == "http/protobuf"


def test_bad_environment_value_names_the_variable() -> None:
    with pytest.raises(ValueError, match="LLM_OTEL_CARDINALITY_LIMIT"):
        _config.resolve({}, {"LLM_OTEL_CARDINALITY_LIMIT": "lots"})
    with pytest.raises(ValueError, match="OTEL_EXPORTER_OTLP_PROTOCOL"):
        _config.resolve({}, {"OTEL_EXPORTER_OTLP_PROTOCOL": "carrier-pigeon"})


def test_sdk_disabled_turns_the_kit_off() -> None:
    assert _config.resolve({}, {"OTEL_SDK_DISABLED": "true"})["enabled"] is False


def test_headers_parse() -> None:
    assert _config.parse_headers("Authorization=Bearer%20abc, x-tenant=a") == {
        "authorization": "Bearer abc", "x-tenant": "a",
    }


def test_unknown_argument_is_rejected() -> None:
    with pytest.raises(TypeError, match="servce_name"):
        llm_otel.configure(servce_name="typo", set_global=False)


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
def test_configure_builds_otlp_providers_without_blocking(protocol: str) -> None:
    """With nothing listening, configure() and a call return at once; shutdown is bounded."""
    telemetry = llm_otel.configure(
        service_name="svc", endpoint="http://127.0.0.1:9", protocol=protocol, set_global=False,
        metric_export_timeout_ms=500, span_export_timeout_ms=500,
    )
    try:
        assert isinstance(telemetry.tracer_provider, TracerProvider)
        assert isinstance(telemetry.meter_provider, MeterProvider)
        assert telemetry.tracer_provider.resource.attributes["service.name"] == "svc"
        with llm_otel.llm_call(provider="openai", model="gpt-4o") as call:
            call.set_usage(input_tokens=1, output_tokens=1)
    finally:
        llm_otel.shutdown()


def test_global_providers_set_only_when_unset() -> None:
    script = (
        "import llm_otel\n"
        "from opentelemetry import trace\n"
        "t = llm_otel.configure(traces_exporter='none', metrics_exporter='none')\n"
        "assert trace.get_tracer_provider() is t.tracer_provider\n"
        "t2 = llm_otel.configure(traces_exporter='none', metrics_exporter='none')\n"
        "assert trace.get_tracer_provider() is t.tracer_provider\n"
        "assert llm_otel.current() is t2\n"
        "llm_otel.shutdown()\n"
        "print('ok')\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert result.stdout.strip() == "ok", result.stderr


def test_import_does_not_pull_frameworks() -> None:
    script = (
        "import sys, llm_otel\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in "
        "('langchain', 'langchain_core', 'llama_index', 'starlette', 'django', 'fastapi', 'openai', 'anthropic')]\n"
        "print(bad)\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert result.stdout.strip() == "[]", result.stderr


def test_public_api_is_curated_and_sorted() -> None:
    assert llm_otel.__all__ == sorted(llm_otel.__all__)
    for name in llm_otel.__all__:
        assert hasattr(llm_otel, name), name
    for required in ("configure", "shutdown", "force_flush", "traced_llm", "llm_call", "route", "record_quality"):
        assert required in llm_otel.__all__


def test_installed_version_is_the_package_version() -> None:
    from importlib.metadata import version

    assert version("llm-otel") == llm_otel.__version__
