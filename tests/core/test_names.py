"""The documented Prometheus series follow from each instrument's name, kind and unit.

This mirrors the Collector prometheus exporter's default translation so a
rename or unit change that would move a series is caught here; the
end-to-end stack test proves the same names against the real Collector.
"""

from __future__ import annotations

import ast
import re
from collections import Counter
from pathlib import Path

from llm_otel import _names as n

_UNIT_WORDS = {"s": "seconds", "ms": "milliseconds", "By": "bytes", "1": ""}


def expected_series(spec: n.Instrument) -> str:
    name = re.sub(r"[^a-zA-Z0-9_:]", "_", spec.name)
    unit = "" if spec.unit.startswith("{") else _UNIT_WORDS.get(spec.unit, spec.unit)
    if unit and not name.endswith(unit):
        name = f"{name}_{unit}"
    if spec.kind == "gauge" and spec.unit == "1":
        name += "_ratio"
    if spec.kind == "counter":
        name += "_total"
    return name


def test_every_documented_series_matches_the_translation() -> None:
    for spec in (*n.INSTRUMENTS, *n.LATEST_INSTRUMENTS):
        assert spec.prometheus == expected_series(spec), spec.name


def test_names_are_unique_and_histograms_have_buckets() -> None:
    every = (*n.INSTRUMENTS, *n.LATEST_INSTRUMENTS)
    assert len({s.name for s in every}) == len(every)
    for spec in every:
        assert (spec.kind == "histogram") == (spec.buckets is not None), spec.name
        if spec.buckets:
            assert list(spec.buckets) == sorted(spec.buckets)


def test_no_deprecated_genai_names() -> None:
    values = {v for k, v in vars(n).items() if isinstance(v, str) and k.isupper()}
    assert "gen_ai.system" not in values
    assert not any("prompt_tokens" in v or "completion_tokens" in v for v in values)
    # the kit's own streaming attributes gave way to gen_ai.request.stream / response.time_to_first_chunk
    assert not {"llm.streaming", "llm.time_to_first_chunk_s"} & values


# --- one source of truth: attribute keys are spelled in the names module only ---------------
ROOT = Path(__file__).resolve().parents[2]
CODE_DIRS = (ROOT / "llm_otel", ROOT / "integrations")
NAMES_MODULE = ROOT / "llm_otel" / "_names.py"
# Keys of the kit's contract and of the OTel namespaces it writes (HTTP/URL keys come from
# opentelemetry-semantic-conventions' attribute modules, ASGI message types are not attributes).
KEY_PATTERN = re.compile(r"^(gen_ai|llm|error|service)\.[a-z0-9_.]+$")


def _python_files() -> list[Path]:
    return sorted(p for d in CODE_DIRS for p in d.rglob("*.py") if p.resolve() != NAMES_MODULE.resolve())


def _docstrings(tree: ast.AST) -> set[int]:
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                found.add(id(first.value))
    return found


def literal_keys(path: Path) -> list[str]:
    """Attribute keys spelled as string literals, and literal operation names passed as ``operation``."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    docstrings = _docstrings(tree)
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
            if KEY_PATTERN.match(node.value):
                found.append((node.lineno, repr(node.value)))
        elif isinstance(node, ast.keyword) and node.arg == "operation" and isinstance(node.value, ast.Constant):
            found.append((node.value.lineno, f"operation={node.value.value!r}"))
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            defaults = [*node.args.defaults, *node.args.kw_defaults]
            ordered = [*node.args.posonlyargs, *node.args.args]
            positional = ordered[len(ordered) - len(node.args.defaults):]
            for argument, default in zip([*positional, *node.args.kwonlyargs], defaults, strict=True):
                if argument.arg == "operation" and isinstance(default, ast.Constant) and default.value is not None:
                    found.append((default.lineno, f"operation={default.value!r}"))
        elif (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)
              and node.target.id == "operation" and isinstance(node.value, ast.Constant)):
            found.append((node.lineno, f"operation={node.value.value!r}"))
    return [f"{path.name}:{line} {what}" for line, what in sorted(found)]


def test_no_attribute_key_is_spelled_outside_the_names_module() -> None:
    files = _python_files()
    assert any(p.parent.name == "integrations" for p in files)
    assert [hit for path in files for hit in literal_keys(path)] == []


def test_the_literal_check_sees_keys_and_operations(tmp_path: Path) -> None:
    probe = tmp_path / "probe.py"
    probe.write_text(
        '"""Mentions "gen_ai.request.model" in a docstring, which is fine."""\n'
        'attributes = {"gen_ai.request.top_p": 1}\n'
        'span.set_attribute("llm.route.reason", reason)\n'
        'start_call(operation="chat")\n'
        'def call(operation: str = "embeddings") -> None: ...\n'
        'class Spec:\n'
        '    operation: str = "chat"\n'
        'send({"type": "http.response.start"})\n',
        encoding="utf-8",
    )
    assert literal_keys(probe) == [
        "probe.py:2 'gen_ai.request.top_p'",
        "probe.py:3 'llm.route.reason'",
        "probe.py:4 operation='chat'",
        "probe.py:5 operation='embeddings'",
        "probe.py:7 operation='chat'",
    ]


def test_every_name_is_used() -> None:
    tree = ast.parse(NAMES_MODULE.read_text(encoding="utf-8"))
    defined = [
        target.id
        for node in tree.body
        if isinstance(node, (ast.Assign, ast.AnnAssign))
        for target in (node.targets if isinstance(node, ast.Assign) else [node.target])
        if isinstance(target, ast.Name)
    ]
    code = NAMES_MODULE.read_text(encoding="utf-8") + "".join(
        p.read_text(encoding="utf-8") for d in (*CODE_DIRS, ROOT / "tests") for p in d.rglob("*.py")
        if p.resolve() != NAMES_MODULE.resolve()
    )
    words = Counter(re.findall(r"\w+", code))
    unused = [name for name in defined if words[name] < 2]  # the definition itself is one
    assert unused == []
