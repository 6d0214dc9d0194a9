"""The CLI's tools stay out of ``import llm_otel`` (and of ``import llm_otel.tools.cli`` until a command runs)."""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = ("llm_otel.tools._demo", "llm_otel.tools._doctor", "llm_otel.tools.devserver", "llm_otel.tools._stack",
         "openai", "anthropic", "fastapi", "starlette", "django", "langchain_core", "llama_index", "sample_apps")


def imported_after(statement: str) -> list[str]:
    code = f"import json, sys; {statement}; print(json.dumps(sorted(sys.modules)))"
    output = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    modules = json.loads(output.stdout)
    return [name for name in HEAVY if any(m == name or m.startswith(name + ".") for m in modules)]


def test_import_llm_otel_loads_no_demo_devserver_or_framework() -> None:
    assert imported_after("import llm_otel") == []
    assert imported_after("import llm_otel.adapter, llm_otel.testing") == []


def test_import_cli_defers_its_commands() -> None:
    assert imported_after("import llm_otel.tools.cli; llm_otel.tools.cli.build_parser()") == []
