"""Package surface and the command line."""

from __future__ import annotations

import re
import subprocess
import sys

import openai
import pytest

import llm_otel.tools.devserver
from llm_otel.tools.devserver import StandInServer
from llm_otel.tools.devserver.__main__ import main


def test_all_is_sorted_and_importable() -> None:
    names = llm_otel.tools.devserver.__all__
    assert names == sorted(names)
    assert all(hasattr(llm_otel.tools.devserver, name) for name in names)


def test_core_import_does_not_load_the_devserver() -> None:
    code = "import sys, llm_otel; assert 'llm_otel.tools.devserver' not in sys.modules, 'devserver imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_cli_serves_until_terminated() -> None:
    command = [sys.executable, "-m", "llm_otel.tools.devserver", "--port", "0", "--seed", "3", "--chunk-ms", "1"]
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as process:
        assert process.stdout is not None
        banner = process.stdout.readline()
        match = re.search(r"listening on (http://\S+)", banner)
        assert match, banner
        try:
            with openai.OpenAI(base_url=match.group(1) + "/v1", api_key="test", max_retries=0) as client:
                completion = client.chat.completions.create(
                    model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}]
                )
            assert completion.choices[0].finish_reason == "stop"
            rest = process.stdout.readline() + process.stdout.readline()
            assert "OPENAI_BASE_URL=" in rest and "ANTHROPIC_BASE_URL=" in rest
        finally:
            process.terminate()
            assert process.wait(10) == 0


def test_cli_rejects_bad_settings(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        main(["--fail-rate-429", "0.8", "--fail-rate-500", "0.8"])
    assert caught.value.code == 2
    assert "add up to at most 1" in capsys.readouterr().err


def test_cli_reports_a_busy_port(capsys: pytest.CaptureFixture[str]) -> None:
    with StandInServer() as busy:
        assert main(["--port", str(busy.port)]) == 1
    assert "cannot listen" in capsys.readouterr().err
