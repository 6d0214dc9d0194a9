"""The kit next to another vendor's instrumentation of the same openai client.

Whichever was instrumented first, the kit's wrapper runs nearest the wire, inside the other
vendor's span: the API call keeps ONE span with usage (theirs, with the kit's cost added),
one set of GenAI convention metrics (theirs) and the kit's own ``llm.*`` metrics once.
"""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest

import llm_otel
from llm_otel.testing import CapturedTelemetry
from llm_otel.tools.devserver import StandInServer
from tests.instrumentation.conftest import llm_spans

MESSAGES = [{"role": "user", "content": "Say hello"}]
# OpenLLMetry's models use pydantic's class-based config, which warns when they are built
pytestmark = pytest.mark.filterwarnings("ignore:Support for class-based `config`:DeprecationWarning")

# OpenLLMetry's uninstrument() leaves patches behind that break later async streams in the same
# process: its pairings run in a fresh interpreter (a pytest child running just that case).
LEAKY_PEERS = frozenset({"openllmetry"})
_IN_CHILD = "LLM_OTEL_TEST_PEER_CHILD"

PEERS = {
    "openai-v2": ("opentelemetry.instrumentation.openai_v2", "OpenAIInstrumentor"),
    "openllmetry": ("opentelemetry.instrumentation.openai", "OpenAIInstrumentor"),
}




def _run_in_a_fresh_interpreter(peer_name: str, kit_first: bool) -> None:
    case = f"{Path(__file__).resolve()}::test_one_record_next_to_a_peer[{kit_first}-{peer_name}]"
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", case],
        env={**os.environ, _IN_CHILD: "1"}, capture_output=True, text=True, timeout=300, check=False,
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert "1 passed" in done.stdout, done.stdout[-2000:]


def _peer(name: str) -> Any:
    module, cls = PEERS[name]
    try:
        with warnings.catch_warnings():  # OpenLLMetry's models warn about pydantic v1 style on import
            warnings.simplefilter("ignore", DeprecationWarning)
            return getattr(importlib.import_module(module), cls)()
    except ImportError:
        pytest.fail(f"{name} is not installed; the dev extra installs it")


@pytest.fixture
def client(server: StandInServer) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=server.openai_base_url, api_key="test", max_retries=0) as c:
        yield c


@pytest.mark.parametrize(
    "peer_name", [pytest.param(name, marks=pytest.mark.slow) if name in LEAKY_PEERS else name for name in sorted(PEERS)]
)
@pytest.mark.parametrize("kit_first", [True, False])
def test_one_record_next_to_a_peer(
    client: openai.OpenAI, telemetry: CapturedTelemetry, peer_name: str, kit_first: bool
) -> None:
    if peer_name in LEAKY_PEERS and not os.environ.get(_IN_CHILD):
        _run_in_a_fresh_interpreter(peer_name, kit_first)
        return
    peer = _peer(peer_name)
    providers = {"tracer_provider": telemetry.telemetry.tracer_provider,
                 "meter_provider": telemetry.telemetry.meter_provider}
    if kit_first:
        llm_otel.instrument("openai")
        peer.instrument(**providers)
    else:
        peer.instrument(**providers)
        llm_otel.instrument("openai")
    try:
        response = client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
        stream = client.chat.completions.create(
            model="gpt-4o-mini", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
        )
        chunks = list(stream)
    finally:
        llm_otel.uninstrument("openai")
        peer.uninstrument()
    usage_in = response.usage.prompt_tokens + chunks[-1].usage.prompt_tokens
    usage_out = response.usage.completion_tokens + chunks[-1].usage.completion_tokens

    with_usage = llm_spans(telemetry)
    assert len(with_usage) == 2, [(s.name, s.instrumentation_scope.name) for s in telemetry.spans()]
    assert all(s.instrumentation_scope.name != "llm_otel" for s in with_usage)  # the peer's spans
    assert all(s.attributes["llm.cost.usd"] > 0 for s in with_usage)  # enriched by the kit
    assert not [s for s in telemetry.spans() if s.instrumentation_scope.name == "llm_otel"]
    assert telemetry.counter("llm.tokens.input") == usage_in
    assert telemetry.counter("llm.tokens.output") == usage_out
    assert telemetry.histogram_count("llm.cost.usd") == 2
    # the conventions' client metrics come from one instrumentation only
    scopes = {
        scope.scope.name
        for resource in telemetry.reader.get_metrics_data().resource_metrics
        for scope in resource.scope_metrics
        if any(m.name == "gen_ai.client.operation.duration" for m in scope.metrics)
    }
    assert "llm_otel" not in scopes


def test_uninstrumenting_either_leaves_the_other_working(
    client: openai.OpenAI, telemetry: CapturedTelemetry
) -> None:
    from openai.resources.chat.completions.completions import Completions

    original = vars(Completions)["create"]
    peer = _peer("openai-v2")
    peer.instrument(tracer_provider=telemetry.telemetry.tracer_provider)
    llm_otel.instrument("openai")
    peer.uninstrument()
    client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    assert [s.instrumentation_scope.name for s in llm_spans(telemetry)] == ["llm_otel"]
    llm_otel.uninstrument("openai")
    assert vars(Completions)["create"] is original
