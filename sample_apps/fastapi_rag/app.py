"""FastAPI RAG service: llm-otel's ASGI middleware + a LangChain chain with a retriever and a tool.

Run it (from the repository root)::

    python -m sample_apps.fastapi_rag                # http://127.0.0.1:8000, stand-in LLM API
    curl -s localhost:8000/ask -H 'content-type: application/json' \\
         -d '{"question": "Where is my order A-1042?"}'

Every request is one trace::

    POST /ask                         SERVER  http.*, llm.calls, llm.usage.*, llm.cost.usd_total
    └── invoke_workflow rag           the LangChain run
        ├── retrieval KeywordRetriever
        ├── chat gpt-4o-mini          CLIENT  asks for the order_status tool
        ├── execute_tool order_status
        └── chat gpt-4o-mini          CLIENT  answers with the tool result

Environment: ``OPENAI_BASE_URL`` (default: a local stand-in API is started),
``OTEL_EXPORTER_OTLP_ENDPOINT`` (default: the local collector), ``PORT`` (8000).
"""

from __future__ import annotations

import argparse
import os
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from pydantic import BaseModel

from llm_otel.integrations.asgi import LLMOtelMiddleware
from llm_otel.integrations.langchain import LLMOtelCallbackHandler
from sample_apps import common
from sample_apps.fastapi_rag.chat_model import OpenAIChatModel
from sample_apps.fastapi_rag.rag import build_chain

MODEL = "gpt-4o-mini"


class Question(BaseModel):
    question: str


class Reply(BaseModel):
    answer: str
    sources: list[str]


def create_app(*, model: str = MODEL, max_retries: int = 2) -> FastAPI:
    """The app; call ``llm_otel.configure()`` once before serving it (``main`` does)."""
    chat_model = OpenAIChatModel(
        model=model, base_url=common.openai_base_url(), api_key=common.openai_api_key(), max_retries=max_retries
    )
    chain = build_chain(chat_model)
    # One handler for the whole app; nested LCEL plumbing (prompt, parser, sequences) gets no spans.
    handler = LLMOtelCallbackHandler(chain_spans=False)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        await chat_model.aclose()

    app = FastAPI(title="llm-otel RAG sample", lifespan=lifespan)
    app.add_middleware(LLMOtelMiddleware, excluded_paths=["/health"])

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/ask", response_model=Reply)
    async def ask(body: Question) -> Reply:
        result: dict[str, Any] = await chain.ainvoke({"question": body.question}, config={"callbacks": [handler]})
        return Reply(answer=result["answer"], sources=[d.metadata.get("title", "?") for d in result["docs"]])

    app.state.chat_model = chat_model
    return app


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sample_apps.fastapi_rag", description=__doc__.split("\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))
    args = parser.parse_args(argv)

    import uvicorn

    import llm_otel

    common.setup_telemetry("fastapi-rag-sample")
    try:
        uvicorn.run(create_app(), host=args.host, port=args.port)
    finally:
        llm_otel.shutdown()
    return 0
