"""``llm-otel stack up --ports`` / ``$LLM_OTEL_STACK_PORTS``: every port of the stack can move."""

from __future__ import annotations

import pytest

from llm_otel.tools._stack import StackError, StackPorts, compose_environment
from tests.stack._support import OBSERVABILITY


def test_named_ports_move_and_the_rest_keep_their_defaults() -> None:
    ports = StackPorts.parse("otlp_grpc=14317, otlp-http=14318,prometheus=19090")
    assert (ports.otlp_grpc, ports.otlp_http, ports.prometheus) == (14317, 14318, 19090)
    assert ports.collector_metrics == StackPorts().collector_metrics


def test_an_offset_moves_every_port() -> None:
    moved = StackPorts.parse("+10000").named()
    assert moved == {name: port + 10000 for name, port in StackPorts().named().items()}


def test_free_ports_are_distinct() -> None:
    ports = StackPorts.parse("free").named().values()
    assert len(set(ports)) == len(ports)


@pytest.mark.parametrize("spec", ["grpc=1", "otlp_grpc", "otlp_grpc=x", "otlp_grpc=70000", "+60000"])
def test_a_bad_spec_says_what_it_takes(spec: str) -> None:
    with pytest.raises(StackError, match="ports"):
        StackPorts.parse(spec)


def test_compose_publishes_every_port_from_its_variable() -> None:
    compose = (OBSERVABILITY / "docker-compose.yml").read_text()
    for variable, port in compose_environment(StackPorts()).items():
        if variable == "LLM_OTEL_PORT_COLLECTOR_TELEMETRY":
            continue  # the Collector's own metrics are scraped inside the compose network only
        assert f"${{{variable}:-{port}}}:{port}" in compose, variable
