"""LlamaIndex query engine over a small bundled corpus, traced with llm-otel's LlamaIndex handler.

Run it (from the repository root)::

    python -m sample_apps.llamaindex_query                           # a few questions, stand-in LLM API
    python -m sample_apps.llamaindex_query "How long does shipping take?" --stream

Every query is one trace::

    query
    ├── retrieve
    │   └── embeddings hashing-embedding-256   CLIENT  the local embedding of the question
    └── synthesize
        └── text_completion gpt-4o-mini        CLIENT  tokens, cost, time to first chunk when streamed

The corpus is the Markdown files in ``corpus/``; the embedding is a local hashed
bag of words (no download). LlamaIndex's embedding events carry no token usage,
so embedding calls are counted in ``llm_cost_unpriced_total`` (reason
``usage_unknown``) rather than as $0. Environment: ``OPENAI_BASE_URL`` (default: a local
stand-in API is started), ``OTEL_EXPORTER_OTLP_ENDPOINT`` (default: the local collector).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from llama_index.core import Document, VectorStoreIndex
from llama_index.core.base.base_query_engine import BaseQueryEngine
from llama_index.core.base.response.schema import StreamingResponse

import llm_otel
from llm_otel.integrations import llamaindex
from sample_apps import common
from sample_apps.llamaindex_query.embedding import HashingEmbedding
from sample_apps.llamaindex_query.llm import OpenAICompletionLLM

CORPUS_DIR = Path(__file__).resolve().parent / "corpus"
MODEL = "gpt-4o-mini"

QUESTIONS: tuple[str, ...] = (
    "How long does express shipping take?",
    "Within how many days can I return an order for a refund?",
    "When does the support team answer email?",
    "How do I switch on two-factor authentication?",
)


def load_corpus(directory: Path = CORPUS_DIR) -> list[Document]:
    return [
        Document(text=path.read_text(encoding="utf-8"), metadata={"file_name": path.name})
        for path in sorted(directory.glob("*.md"))
    ]


def build_query_engine(
    llm: OpenAICompletionLLM | None = None, *, streaming: bool = False, top_k: int = 2
) -> BaseQueryEngine:
    """Index the corpus (embeddings computed here, once) and return a query engine over it."""
    llamaindex.instrument()  # once per process; idempotent
    llm = llm or OpenAICompletionLLM(model=MODEL, base_url=common.openai_base_url(), api_key=common.openai_api_key())
    index = VectorStoreIndex.from_documents(load_corpus(), embed_model=HashingEmbedding())
    return index.as_query_engine(llm=llm, similarity_top_k=top_k, streaming=streaming)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sample_apps.llamaindex_query", description=__doc__.split("\n")[0])
    parser.add_argument("questions", nargs="*", help="questions to ask (default: a few sample questions)")
    parser.add_argument("--stream", action="store_true", help="stream the answers")
    args = parser.parse_args(argv)

    common.setup_telemetry("llamaindex-query-sample")
    try:
        engine = build_query_engine(streaming=args.stream)
        for question in args.questions or QUESTIONS:
            response = engine.query(question)
            answer = "".join(response.response_gen) if isinstance(response, StreamingResponse) else str(response)
            sources = ", ".join(str(node.metadata.get("file_name")) for node in response.source_nodes)
            print(f"Q: {question}\n   sources: {sources}\n   A: {answer[:100]}\n")
    finally:
        llm_otel.shutdown()
    return 0
