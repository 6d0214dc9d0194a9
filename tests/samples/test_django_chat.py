"""The Django chat sample (Django middleware + @traced_llm over the Anthropic SDK) against the stand-in."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from llm_otel.tools.devserver import StandInServer

from .conftest import ground_truth

REPO = Path(__file__).resolve().parents[2]


def run_probe(*bodies: Any) -> dict[str, Any]:
    result = subprocess.run(
        [sys.executable, "-m", "tests.samples._django_probe", *(json.dumps(b) for b in bodies)],
        cwd=REPO,
        env={**os.environ, "PYTHONWARNINGS": "error"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    data: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    return data


@pytest.mark.slow
def test_chat_is_one_trace_per_request_with_anthropic_tokens_and_cost(stand_in: StandInServer) -> None:
    found = run_probe({"message": "Do you ship to Norway?"})

    assert found["responses"][0]["status"] == 200
    assert found["responses"][0]["json"]["reply"]
    assert found["traces"] == 1
    assert found["tree"] == {"POST /chat/": {"chat claude-haiku-4-5": {}}}
    call = next(s for s in found["spans"] if s["name"] == "chat claude-haiku-4-5")
    assert call["kind"] == "CLIENT"
    assert call["attributes"]["gen_ai.provider.name"] == "anthropic"
    assert call["attributes"]["llm.prompt.name"] == "support-chat"
    assert call["attributes"]["gen_ai.response.finish_reasons"] == ["end_turn"]

    truth = ground_truth(stand_in.requests)
    assert truth.calls == 1
    assert (found["input_tokens"], found["output_tokens"]) == (truth.input_tokens, truth.output_tokens)
    assert found["cost"] > 0
    assert found["cost_by_prompt"] == found["cost"]
    server = next(s for s in found["spans"] if s["kind"] == "SERVER")
    assert server["attributes"]["llm.calls"] == 1
    assert server["attributes"]["llm.usage.input_tokens"] == truth.input_tokens


@pytest.mark.slow
def test_history_bad_input_and_rate_limits(stand_in: StandInServer) -> None:
    found = run_probe(
        {"message": "And to Sweden?", "history": [{"role": "user", "content": "Hi"},
                                                  {"role": "assistant", "content": "Hello!"}]},
        {"message": ""},
        {"message": "hello [[standin:fault=429]]"},
    )

    assert [r["status"] for r in found["responses"]] == [200, 400, 503]
    assert found["health"] == 200  # excluded from tracing
    assert found["traces"] == 3
    assert found["rate_limited"] == 1
    truth = ground_truth(stand_in.requests)
    assert truth.calls == 1
    assert (found["input_tokens"], found["output_tokens"]) == (truth.input_tokens, truth.output_tokens)
