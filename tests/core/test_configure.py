from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
import time

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider

import llm_otel
from llm_otel import _config
from llm_otel import _names as n
from tests.faults._outage import StallingServer


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


# --------------------------------------------------------------------------- configure() again


def _token_sums(reader: InMemoryMetricReader) -> tuple[float, float]:
    """(llm.tokens.input total, input side of the gen_ai.client.token.usage histogram sum)."""
    counter = histogram = 0.0
    data = reader.get_metrics_data()
    for resource in data.resource_metrics if data else ():
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                for point in metric.data.data_points:
                    if metric.name == n.TOKENS_INPUT.name:
                        counter += point.value  # type: ignore[union-attr]
                    elif metric.name == n.TOKEN_USAGE.name and (point.attributes or {}).get(
                            n.GEN_AI_TOKEN_TYPE) == "input":
                        histogram += point.sum  # type: ignore[union-attr]
    return counter, histogram


def test_configure_again_with_the_same_meter_provider_keeps_counting_tokens() -> None:
    """The SDK hands the second observable counter back with its first callback: the sums it
    reads must be the ones every later configure() adds to."""
    reader = InMemoryMetricReader()
    meter_provider = MeterProvider(metric_readers=[reader])
    tracer_provider = TracerProvider()
    try:
        for _ in range(3):
            llm_otel.configure(tracer_provider=tracer_provider, meter_provider=meter_provider, set_global=False,
                               traces_exporter="none", metrics_exporter="none")
            with llm_otel.llm_call(provider="openai", model="gpt-4o") as call:
                call.set_usage(input_tokens=11, output_tokens=2)
        assert _token_sums(reader) == (33, 33)
    finally:
        llm_otel.shutdown()
        meter_provider.shutdown()
        tracer_provider.shutdown()


def _run(*parts: str, env: dict[str, str] | None = None, command: list[str] | None = None) -> str:
    """Run the script ``parts`` (each dedented on its own) in a fresh interpreter; its output."""
    script = "\n".join(textwrap.dedent(part) for part in parts)
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "LLM_OTEL_"))}
    environment.update(env or {})
    result = subprocess.run([*(command or []), sys.executable, "-c", script],
                            capture_output=True, text=True, timeout=90, env=environment)
    assert result.returncode == 0 and "ok" in result.stdout.split(), result.stdout + result.stderr
    return result.stdout + result.stderr


def test_second_configure_never_closes_the_provider_the_globals_point_at() -> None:
    """Other instrumentations record through the globals the first configure() installed."""
    _run("""
        import llm_otel
        from opentelemetry import trace
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

        spans = InMemorySpanExporter()
        first = llm_otel.configure(traces_exporter="none", metrics_exporter="none",
                                   span_processors=[SimpleSpanProcessor(spans)])
        assert trace.get_tracer_provider() is first.tracer_provider
        second = llm_otel.configure(traces_exporter="none", metrics_exporter="none")
        assert second.tracer_provider is not first.tracer_provider  # the new settings apply to the kit
        trace.get_tracer("another.instrumentation").start_span("GET /health").end()
        assert [s.name for s in spans.get_finished_spans()] == ["GET /health"]
        llm_otel.shutdown()  # now both are stopped: the kit created them
        trace.get_tracer("another.instrumentation").start_span("late").end()
        assert [s.name for s in spans.get_finished_spans()] == ["GET /health"]
        print("ok")
    """)


# --------------------------------------------------------------------------- joining an existing setup

_USER_SETUP = """
    import logging, sys
    from opentelemetry import metrics, trace
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(name)s: %(message)s")
    spans = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
    reader = InMemoryMetricReader()
    meter_provider = MeterProvider(metric_readers=[reader])
    trace.set_tracer_provider(tracer_provider)
    metrics.set_meter_provider(meter_provider)

    def tokens():
        data = reader.get_metrics_data()
        return sum(p.value for r in data.resource_metrics for s in r.scope_metrics for m in s.metrics
                   if m.name == "llm.tokens.input" for p in m.data.data_points)

    def call(model="gpt-4o"):
        with trace.get_tracer("app").start_as_current_span("POST /chat"):
            with llm_otel.llm_call(provider="openai", model=model) as c:
                c.set_usage(input_tokens=11, output_tokens=2)
"""


def test_joins_sdk_providers_already_installed_globally() -> None:
    """Situation 2: spans and metrics reach the user's pipeline; nothing of ours is added to it."""
    with StallingServer() as otlp:
        output = _run(_USER_SETUP, """
        import llm_otel
        telemetry = llm_otel.configure(service_name="chatbot")
        assert telemetry.tracer_provider is tracer_provider and telemetry.meter_provider is meter_provider
        assert len(tracer_provider._active_span_processor._span_processors) == 1  # no exporter of ours
        call()
        by_name = {s.name: s for s in spans.get_finished_spans()}
        assert by_name["chat gpt-4o"].parent.span_id == by_name["POST /chat"].context.span_id
        assert tokens() == 11
        again = llm_otel.configure(service_name="chatbot")  # a second configure() joins the same setup
        assert again.tracer_provider is tracer_provider and again.meter_provider is meter_provider
        call("gpt-4o-mini")
        assert tokens() == 22
        llm_otel.shutdown()  # not the kit's to close: the user's pipeline keeps working
        trace.get_tracer("app").start_span("after").end()
        assert "after" in [s.name for s in spans.get_finished_spans()]
        assert tokens() == 22
        print("ok")
        """, env={"OTEL_EXPORTER_OTLP_ENDPOINT": otlp.endpoint, "OTEL_METRIC_EXPORT_INTERVAL": "100",
              "OTEL_BSP_SCHEDULE_DELAY": "100"})
        time.sleep(0.3)
        assert otlp.accepted == 0  # the kit made no OTLP exporter of its own
    decided = [line for line in output.splitlines() if "joined the existing OpenTelemetry setup" in line]
    assert len(decided) == 1, output  # said once, although configure() ran twice
    assert "spans go to the global opentelemetry.sdk.trace.TracerProvider" in decided[0]


def test_joins_only_the_signal_that_is_installed() -> None:
    """A team with tracing only: spans join theirs, metrics get a provider of the kit's own."""
    _run(_USER_SETUP.replace("metrics.set_meter_provider(meter_provider)", ""), """
        import llm_otel
        from opentelemetry.sdk.metrics import MeterProvider as Sdk
        telemetry = llm_otel.configure(service_name="chatbot", metrics_exporter="none",
                                       metric_readers=[own := InMemoryMetricReader()])
        assert telemetry.tracer_provider is tracer_provider
        assert isinstance(telemetry.meter_provider, Sdk) and telemetry.meter_provider is not meter_provider
        assert metrics.get_meter_provider() is telemetry.meter_provider  # installed: nothing was there
        call()
        assert "chat gpt-4o" in [s.name for s in spans.get_finished_spans()]
        print("ok")
    """)


def test_opting_out_creates_separate_providers_and_leaves_the_globals() -> None:
    _run(_USER_SETUP, """
        import llm_otel
        telemetry = llm_otel.configure(service_name="chatbot", traces_exporter="none", metrics_exporter="none")
        assert telemetry.tracer_provider is not tracer_provider
        assert trace.get_tracer_provider() is tracer_provider  # never replaced
        llm_otel.shutdown()
        trace.get_tracer("app").start_span("after").end()
        assert [s.name for s in spans.get_finished_spans()] == ["after"]
        print("ok")
    """, env={"LLM_OTEL_USE_GLOBAL_PROVIDERS": "false"})


def test_explicit_providers_are_used_and_never_closed() -> None:
    """Situation 3, also across a second configure() and shutdown()."""
    _run(_USER_SETUP.replace("trace.set_tracer_provider(tracer_provider)", "")
         .replace("metrics.set_meter_provider(meter_provider)", ""), """
        import llm_otel
        for _ in range(2):
            telemetry = llm_otel.configure(tracer_provider=tracer_provider, meter_provider=meter_provider)
            assert telemetry.tracer_provider is tracer_provider and telemetry.owned == []
            call()
        llm_otel.shutdown()
        assert tokens() == 22
        trace.get_tracer("app").start_span("after").end()  # the global is theirs (installed: nothing was)
        assert "after" in [s.name for s in spans.get_finished_spans()]
        print("ok")
    """)


@pytest.mark.slow
def test_joins_what_opentelemetry_instrument_installed() -> None:
    """Situation 2 as a distro sets it up: `opentelemetry-instrument` with console exporters."""
    instrument = shutil.which("opentelemetry-instrument")
    assert instrument is not None, "opentelemetry-instrument (opentelemetry-distro, dev extra) is not installed"
    with StallingServer() as otlp:
        output = _run(f"ENDPOINT = {otlp.endpoint!r}", """
            import llm_otel
            from opentelemetry import trace
            from opentelemetry.sdk.trace import TracerProvider
            assert isinstance(trace.get_tracer_provider(), TracerProvider)  # installed by the distro
            telemetry = llm_otel.configure(service_name="chatbot", endpoint=ENDPOINT)
            assert telemetry.tracer_provider is trace.get_tracer_provider() and telemetry.owned == []
            with llm_otel.llm_call(provider="openai", model="gpt-4o") as c:
                c.set_usage(input_tokens=11, output_tokens=2)
            print("ok")
        """, env={"OTEL_TRACES_EXPORTER": "console", "OTEL_METRICS_EXPORTER": "console",
                               "OTEL_LOGS_EXPORTER": "none", "OTEL_SERVICE_NAME": "distro-app"},
            command=[instrument])
        assert otlp.accepted == 0
    assert '"name": "chat gpt-4o"' in output  # the span went out through the distro's exporter
    assert '"name": "llm.tokens.input"' in output and '"distro-app"' in output
