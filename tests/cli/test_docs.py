"""The user docs written for the demo, the doctor and the migration: links resolve and every
series name, label and command they give exists."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest

from tests.stack._support import is_known_series, known_labels, label_names, metric_names

REPO = Path(__file__).resolve().parents[2]
DOCS = REPO / "docs"
SERIES_TOKEN = re.compile(r"`((?:llm|gen_ai)_[a-z_]+)`")


def promql_blocks(text: str) -> list[str]:
    return re.findall(r"```promql\n(.*?)```", text, flags=re.DOTALL)


def table(text: str, first_header: str) -> list[list[str]]:
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"| {first_header} |"))
    rows = []
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip("|").split("|")])
    return rows


def test_index_links_every_doc_and_every_link_resolves() -> None:
    index = (DOCS / "README.md").read_text()
    links = set(re.findall(r"\]\(([^)#]+\.md)\)", index))
    published = {str(p.relative_to(DOCS)) for p in DOCS.rglob("*.md") if not p.name.startswith("_")} - {"README.md"}
    assert published <= links, sorted(published - links)
    for link in links:
        assert (DOCS / link).is_file(), link


@pytest.mark.parametrize("name", ["quickstart.md", "migrating.md"])
def test_relative_links_resolve(name: str) -> None:
    path = DOCS / name
    for link in re.findall(r"\]\(([^)#:]+)\)", path.read_text()):
        assert (path.parent / link).exists(), link


@pytest.mark.parametrize("name", ["quickstart.md", "migrating.md"])
def test_promql_uses_only_series_and_labels_that_exist(name: str) -> None:
    text = (DOCS / name).read_text()
    queries = [line for block in promql_blocks(text) for line in block.splitlines() if line and not line.startswith("#")]
    queries += re.findall(r"`((?:sum|histogram_quantile|rate|increase)\b[^`(]*\([^`]*)`", text)
    queries = [q for q in queries if re.search(r"(llm|gen_ai)_[a-z_]+", q)]  # not prose like `sum by (le)`
    if name == "migrating.md":  # only the llm-otel column of the dashboard table
        queries = [q for q in queries if "llm_latency_ms" not in q and "rateLimited" not in q and "by (model)" not in q]
    assert queries
    for query in queries:
        for series in metric_names(query):
            assert is_known_series(series), (query, series)
        assert label_names(query) <= known_labels() | {"job"}, query


def test_quickstart_names_only_real_series() -> None:
    text = (DOCS / "quickstart.md").read_text()
    tokens = set(SERIES_TOKEN.findall(text)) - {"llm_llm_"}
    assert tokens
    for token in tokens:
        assert is_known_series(token) or any(is_known_series(token + s) for s in ("_bucket", "_total")), token


def test_migration_table_maps_tutorial_names_to_real_series() -> None:
    rows = table((DOCS / "migrating.md").read_text(), "Tutorial instrument (unit)")
    assert len(rows) >= 7
    for _, with_namespace, without_namespace, _, ours in rows:
        for name in SERIES_TOKEN.findall(ours):
            assert is_known_series(name) or is_known_series(name + "_sum"), name
        for name in SERIES_TOKEN.findall(with_namespace):
            assert name.startswith("llm_llm_") and not is_known_series(name), name
        for name in SERIES_TOKEN.findall(without_namespace):
            # unit suffixes the tutorial's units produce; ours never do
            assert name in {"llm_tokens_input_total", "llm_tokens_output_total"} or not is_known_series(name), name


def test_migration_attribute_table_uses_the_kits_keys() -> None:
    from llm_otel import _names as n

    rows = table((DOCS / "migrating.md").read_text(), "Tutorial")
    ours = {key for row in rows for key in re.findall(r"`([a-z_.]+)`", row[1])}
    for key in (n.GEN_AI_PROVIDER_NAME, n.GEN_AI_USAGE_INPUT_TOKENS, n.GEN_AI_USAGE_OUTPUT_TOKENS,
                n.GEN_AI_RESPONSE_FINISH_REASONS, n.ERROR_TYPE, n.LLM_COST_USD):
        assert key in ours, key
    tutorial = {key for row in rows for key in re.findall(r"`([a-z_.]+)`", row[0])}
    assert {"gen_ai.system", "gen_ai.usage.prompt_tokens", "gen_ai.usage.completion_tokens",
            "gen_ai.choice.finish_reason", "gen_ai.response.finish_reason"} <= tutorial


def test_sample_commands_in_the_docs_exist() -> None:
    text = (DOCS / "quickstart.md").read_text() + (REPO / "sample_apps" / "README.md").read_text()
    modules = set(re.findall(r"python -m (sample_apps\.[a-z_]+)", text))
    assert {"sample_apps.router", "sample_apps.fastapi_rag", "sample_apps.django_chat",
            "sample_apps.llamaindex_query", "sample_apps.loadgen"} <= modules
    for module in modules:
        assert importlib.util.find_spec(module) is not None, module
