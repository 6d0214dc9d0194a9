"""The LlamaIndex query sample (instrument() + a CustomLLM over the OpenAI SDK) against the stand-in."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from opentelemetry.trace import SpanKind

from llm_otel import _names as n
from llm_otel.integrations import llamaindex
from llm_otel.testing import CapturedTelemetry
from llm_otel.tools.devserver import StandInServer
from sample_apps.llamaindex_query.app import MODEL, QUESTIONS, build_query_engine, load_corpus
from sample_apps.llamaindex_query.embedding import MODEL_NAME as EMBEDDING_MODEL
from sample_apps.llamaindex_query.llm import OpenAICompletionLLM

from .conftest import assert_tokens_match, ground_truth

SHAPE = {
    "query": {
        "retrieve": {f"embeddings {EMBEDDING_MODEL}": {}},
        "synthesize": {f"text_completion {MODEL}": {}},
    }
}


@pytest.fixture
def llm(stand_in: StandInServer) -> Iterator[OpenAICompletionLLM]:
    model = OpenAICompletionLLM(model=MODEL, base_url=stand_in.openai_base_url, api_key="test", max_retries=0)
    yield model
    model.close()
    llamaindex.uninstrument()


def test_corpus_is_bundled() -> None:
    assert len(load_corpus()) >= 3


@pytest.mark.parametrize("streaming", [False, True])
def test_query_is_one_trace_with_retrieval_and_a_priced_completion(
    llm: OpenAICompletionLLM, stand_in: StandInServer, telemetry: CapturedTelemetry, streaming: bool
) -> None:
    engine = build_query_engine(llm, streaming=streaming)
    telemetry.clear()  # the index was built (documents embedded) outside any query

    response = engine.query("How long does express shipping take?")
    answer = "".join(response.response_gen) if streaming else str(response)  # type: ignore[union-attr]

    assert answer
    assert response.source_nodes[0].metadata["file_name"] == "shipping.md"
    telemetry.assert_single_trace(SHAPE)
    call = telemetry.span(f"text_completion {MODEL}")
    assert call.kind is SpanKind.CLIENT
    attributes = dict(call.attributes or {})
    assert attributes[n.GEN_AI_PROVIDER_NAME] == "openai"
    assert attributes[n.LLM_COST_USD] > 0

    truth = ground_truth(stand_in.requests)
    assert truth.calls == 1
    assert_tokens_match(telemetry, truth)
    assert telemetry.histogram_sum("llm.cost.usd", gen_ai__request__model=MODEL) > 0
    ttft = telemetry.histogram_count("gen_ai.client.operation.time_to_first_chunk", gen_ai__request__model=MODEL)
    assert ttft == (1 if streaming else 0)


def test_every_sample_question_retrieves_its_file(
    llm: OpenAICompletionLLM, stand_in: StandInServer, telemetry: CapturedTelemetry
) -> None:
    engine = build_query_engine(llm)
    telemetry.clear()
    expected = ["shipping.md", "refunds.md", "support.md", "accounts.md"]

    for question, file_name in zip(QUESTIONS, expected, strict=True):
        response = engine.query(question)
        assert response.source_nodes[0].metadata["file_name"] == file_name, question

    assert len(telemetry.traces()) == len(QUESTIONS)
    assert_tokens_match(telemetry, ground_truth(stand_in.requests))
