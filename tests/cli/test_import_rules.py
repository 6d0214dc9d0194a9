"""The dependency direction of docs/architecture.md, checked on the source (AST, nothing imported)."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
INTEGRATIONS = ROOT / "integrations"

# What an adapter may reach: the public package, the adapter surface, its sibling adapters.
# Internals of a call (its facts, the recorder, the telemetry it was started with) are read through
# the accessors of llm_otel.adapter, never touched directly.
CALL_INTERNALS = frozenset({"facts", "recorder", "telemetry"})


def imported_modules(path: Path, package: str | None = None) -> Iterator[tuple[int, str]]:
    """(line, absolute module name) of every import; ``from x import y`` yields ``x.y`` as well as ``x``."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = _package_of(path) if package is None else package
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            base = _resolve(node, package)
            yield node.lineno, base
            for alias in node.names:
                yield node.lineno, f"{base}.{alias.name}"


def _package_of(path: Path) -> str:
    relative = path.relative_to(ROOT).with_suffix("")
    parts = list(relative.parts[:-1])
    if parts and parts[0] == "integrations":
        parts = ["llm_otel", *parts]
    return ".".join(parts)


def _resolve(node: ast.ImportFrom, package: str) -> str:
    if not node.level:
        return node.module or ""
    parts = package.split(".")
    base = parts[: len(parts) - node.level + 1]
    return ".".join([*base, node.module] if node.module else base)


def adapter_import_violations(path: Path, package: str | None = None) -> list[str]:
    found = []
    for line, module in imported_modules(path, package):
        parts = module.split(".")
        if parts[0] != "llm_otel" or parts[:2] == ["llm_otel", "integrations"]:
            continue
        if any(part.startswith("_") for part in parts[1:]):
            found.append(f"{path.name}:{line} imports {module}")
    return found


def call_internal_uses(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = [
        (node.lineno, node.attr)
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute) and node.attr in CALL_INTERNALS
        and not (isinstance(node.value, ast.Name) and node.value.id == "self")  # an adapter's own fields
    ]
    return [f"{path.name}:{line} uses .{attr}" for line, attr in sorted(found)]


def test_integrations_use_only_the_public_surface() -> None:
    files = sorted(INTEGRATIONS.glob("*.py"))
    assert len(files) >= 9
    assert [v for path in files for v in adapter_import_violations(path)] == []
    assert [v for path in files for v in call_internal_uses(path)] == []


def test_the_rule_catches_private_imports_and_internals(tmp_path: Path) -> None:
    sample = tmp_path / "_rule_probe.py"
    sample.write_text(
        "from llm_otel import _names as n\n"
        "from llm_otel._log import log_once\n"
        "import llm_otel._call\n"
        "from llm_otel.adapter import names\n"
        "from . import _web\n"
        "call.facts.response_id = None\n"
        "telemetry = run.call.telemetry\n"
        "self.telemetry = None\n",
        encoding="utf-8",
    )
    assert adapter_import_violations(sample, "llm_otel.integrations") == [
        "_rule_probe.py:1 imports llm_otel._names",
        "_rule_probe.py:2 imports llm_otel._log",
        "_rule_probe.py:2 imports llm_otel._log.log_once",
        "_rule_probe.py:3 imports llm_otel._call",
    ]
    assert call_internal_uses(sample) == ["_rule_probe.py:6 uses .facts", "_rule_probe.py:7 uses .telemetry"]


# --- the core ----------------------------------------------------------------------------------
CORE = ROOT / "llm_otel"
# Everything in llm_otel/ except the tools and the integrations link; the core is what `import llm_otel`
# may load, and it never reaches outward.
FORBIDDEN_FOR_CORE = ("llm_otel.tools", "llm_otel.integrations", "integrations", "sample_apps", "tests",
                      "langchain", "langchain_core", "llama_index", "starlette", "fastapi", "django",
                      "openai", "anthropic", "google.genai", "uvicorn")


def core_files() -> list[Path]:
    return sorted(
        path for path in CORE.rglob("*.py")
        if path.relative_to(CORE).parts[0] not in ("tools", "integrations")
    )


def core_import_violations(path: Path, package: str = "llm_otel") -> list[str]:
    return [
        f"{path.name}:{line} imports {module}"
        for line, module in imported_modules(path, package)
        if any(module == bad or module.startswith(bad + ".") for bad in FORBIDDEN_FOR_CORE)
    ]


def test_the_core_never_imports_tools_integrations_or_frameworks() -> None:
    files = core_files()
    assert {p.name for p in files} >= {"_call.py", "adapter.py", "testing.py", "__init__.py"}
    assert [v for path in files for v in core_import_violations(path)] == []


def test_the_core_rule_sees_lazy_and_relative_imports(tmp_path: Path) -> None:
    probe = tmp_path / "probe.py"
    probe.write_text(
        "from .tools import _stack\n"
        "def later():\n"
        "    from llm_otel.integrations import langchain\n"
        "    import openai.types\n"
        "from llm_otel import _names\n",
        encoding="utf-8",
    )
    assert core_import_violations(probe) == [
        "probe.py:1 imports llm_otel.tools",
        "probe.py:1 imports llm_otel.tools._stack",
        "probe.py:3 imports llm_otel.integrations",
        "probe.py:3 imports llm_otel.integrations.langchain",
        "probe.py:4 imports openai.types",
    ]


# --- tools and samples ------------------------------------------------------------------------------
TOOLS = CORE / "tools"
SAMPLES = ROOT / "sample_apps"
TOOLS_MAY_READ = frozenset({"llm_otel._names", "llm_otel._config", "llm_otel._version"})


def private_core_imports(path: Path, package: str | None = None, allowed: frozenset[str] = frozenset()) -> list[str]:
    """Imports of a private core module (``llm_otel._x``) other than ``allowed``; tools may import each other."""
    found = []
    for line, module in imported_modules(path, package):
        parts = module.split(".")
        if parts[0] != "llm_otel" or parts[1:2] in (["tools"], ["integrations"]) or len(parts) < 2:
            continue
        if parts[1].startswith("_") and ".".join(parts[:2]) not in allowed:
            found.append(f"{path.name}:{line} imports {module}")
    return found


def test_tools_use_the_public_api_and_read_only_the_contract() -> None:
    files = sorted(TOOLS.rglob("*.py"))
    assert len(files) >= 5
    assert [v for path in files for v in private_core_imports(path, allowed=TOOLS_MAY_READ)] == []


def test_samples_are_user_code() -> None:
    files = sorted(SAMPLES.rglob("*.py"))
    assert files
    assert [v for path in files for v in private_core_imports(path, "sample_apps")] == []


def test_nothing_in_the_kit_imports_the_tools() -> None:
    users = [
        f"{path.relative_to(ROOT)}:{line}"
        for path in [*core_files(), *INTEGRATIONS.glob("*.py")]
        for line, module in imported_modules(path)
        if module == "llm_otel.tools" or module.startswith("llm_otel.tools.")
    ]
    assert users == []


def test_the_tools_rule_allows_only_the_contract(tmp_path: Path) -> None:
    probe = tmp_path / "probe.py"
    probe.write_text(
        "from llm_otel import _names as n, _config\n"
        "from llm_otel._call import LLMCall\n"
        "from llm_otel.tools import _stack\n"
        "import llm_otel\n",
        encoding="utf-8",
    )
    assert private_core_imports(probe, "llm_otel.tools", TOOLS_MAY_READ) == [
        "probe.py:2 imports llm_otel._call",
        "probe.py:2 imports llm_otel._call.LLMCall",
    ]
