"""The official ``google-genai`` SDK against the stand-in, over real HTTP."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from google import genai
from google.genai import errors, types

from llm_otel.tools.devserver import FAULT_HEADER, FaultPlan, StandInServer, expected_reply

PROMPT = "Which model is cheapest for classification?"
HISTORY = [{"role": "user", "content": [{"type": "text", "text": PROMPT}]}]
SYSTEM = "You are a cost analyst."


def gemini(server: StandInServer, *, vertex: bool = False) -> genai.Client:
    options = types.HttpOptions(base_url=server.gemini_base_url)
    if vertex:  # Vertex AI express mode: an API key instead of a project
        return genai.Client(vertexai=True, api_key="test", http_options=options)
    return genai.Client(api_key="test", http_options=options)


@pytest.fixture
def client(server: StandInServer) -> Iterator[genai.Client]:
    c = gemini(server)
    yield c
    c.close()


@pytest.mark.parametrize("vertex", [False, True])
def test_generate_content(server: StandInServer, vertex: bool) -> None:
    c = gemini(server, vertex=vertex)
    response = c.models.generate_content(
        model="gemini-2.5-flash", contents=PROMPT, config={"system_instruction": SYSTEM}
    )
    c.close()
    expected = expected_reply("gemini-2.5-flash", HISTORY, system=[{"type": "text", "text": SYSTEM}])
    assert response.text == expected.text
    assert response.candidates and response.candidates[0].finish_reason == types.FinishReason.STOP
    usage = response.usage_metadata
    assert usage is not None
    assert usage.prompt_token_count == expected.usage.input_tokens
    assert usage.candidates_token_count == expected.usage.output_tokens
    assert usage.total_token_count == expected.usage.total_tokens
    assert response.model_version == "gemini-2.5-flash"
    assert response.response_id
    recorded = server.requests[-1]
    assert recorded.api == "gemini" and recorded.headers["x-goog-api-key"] == "test"
    assert recorded.path.endswith("models/gemini-2.5-flash:generateContent")
    if vertex:
        assert recorded.path.startswith("/v1beta1/publishers/google/models/")


def test_stream_chunks_carry_the_usage_so_far(client: genai.Client, server: StandInServer) -> None:
    chunks = list(client.models.generate_content_stream(model="gemini-2.5-flash", contents=PROMPT))
    expected = expected_reply("gemini-2.5-flash", HISTORY)
    assert "".join(chunk.text or "" for chunk in chunks) == expected.text
    counts = [chunk.usage_metadata.candidates_token_count for chunk in chunks if chunk.usage_metadata]
    assert counts == list(range(1, len(chunks) + 1))  # running totals: one answer token per chunk
    assert counts[-1] == expected.usage.output_tokens
    last = chunks[-1]
    assert last.candidates and last.candidates[0].finish_reason == types.FinishReason.STOP
    assert all(chunk.candidates[0].finish_reason is None for chunk in chunks[:-1] if chunk.candidates)
    assert server.requests[-1].stream and server.requests[-1].path.endswith(":streamGenerateContent")


def test_thoughts_and_cached_content_follow_gemini_semantics(client: genai.Client) -> None:
    prompt = "context " * 1200
    response = client.models.generate_content(model="gemini-2.5-thinking", contents=prompt)
    expected = expected_reply("gemini-2.5-thinking", [{"role": "user", "content": prompt}]).usage
    usage = response.usage_metadata
    assert usage is not None
    assert usage.prompt_token_count == expected.input_tokens  # the cached tokens are inside it
    assert usage.cached_content_token_count == expected.cached_input_tokens == 1152
    assert usage.thoughts_token_count == expected.reasoning_tokens > 0
    assert usage.candidates_token_count == expected.output_tokens - expected.reasoning_tokens


def test_max_output_tokens_cuts_the_answer(client: genai.Client) -> None:
    response = client.models.generate_content(
        model="gemini-2.5-flash", contents="[[standin:reply=one two three]]", config={"max_output_tokens": 2}
    )
    assert response.text == "one two"
    assert response.candidates and response.candidates[0].finish_reason == types.FinishReason.MAX_TOKENS


def test_automatic_function_calling_round_trip(client: genai.Client, server: StandInServer) -> None:
    asked: list[str] = []

    def lookup_price(model: str) -> str:
        """Price of a model."""
        asked.append(model)
        return "$2.50 per million"

    server.clear_requests()
    response = client.models.generate_content(
        model="gemini-2.5-flash", contents="price of gpt-4o", config={"tools": [lookup_price]}
    )
    assert asked == ["price of gpt-4o"]
    assert response.text  # the second call answers with text
    assert [r.path.rsplit(":", 1)[-1] for r in server.requests] == ["generateContent", "generateContent"]


def test_embeddings(client: genai.Client, server: StandInServer) -> None:
    response = client.models.embed_content(
        model="gemini-embedding-001", contents=["one two", "three"], config={"output_dimensionality": 8}
    )
    assert response.embeddings and [len(e.values or ()) for e in response.embeddings] == [8, 8]
    assert response.usage_metadata is not None and response.usage_metadata.prompt_token_count == 3
    assert server.requests[-1].path.endswith(":batchEmbedContents")


def test_rate_limit_in_gemini_error_shape(client: genai.Client) -> None:
    with pytest.raises(errors.ClientError) as info:
        client.models.generate_content(
            model="gemini-2.5-flash", contents=PROMPT,
            config={"http_options": {"headers": {FAULT_HEADER: "429"}}},
        )
    assert (info.value.code, info.value.status) == (429, "RESOURCE_EXHAUSTED")


def test_truncated_stream_raises(client: genai.Client, server: StandInServer) -> None:
    server.faults = FaultPlan(truncate_after_events=2)
    import httpx2  # the HTTP client this SDK is built on

    with pytest.raises(httpx2.RemoteProtocolError):
        list(client.models.generate_content_stream(
            model="gemini-2.5-flash", contents=PROMPT, config={"automatic_continuation": False,
                                                               "http_options": {"headers": {FAULT_HEADER: "truncate"}}},
        ))


async def test_async_client_plain_and_stream(server: StandInServer) -> None:
    c = gemini(server)
    response = await c.aio.models.generate_content(model="gemini-2.5-flash", contents=PROMPT)
    stream = await c.aio.models.generate_content_stream(model="gemini-2.5-flash", contents=PROMPT)
    text = "".join([chunk.text or "" async for chunk in stream])
    await c.aio.aclose()
    c.close()
    assert response.text == text == expected_reply("gemini-2.5-flash", HISTORY).text


def test_unknown_method_and_wrong_verb(server: StandInServer) -> None:
    import http.client

    connection = http.client.HTTPConnection(server.host, server.port, timeout=5)
    connection.request("POST", "/v1beta/models/gemini-2.5-flash:countTokens", body="{}",
                       headers={"content-type": "application/json"})
    response = connection.getresponse()
    assert response.status == 404 and b'"status":"NOT_FOUND"' in response.read()
    connection.request("GET", "/v1beta/models/gemini-2.5-flash:generateContent")
    response = connection.getresponse()
    assert response.status == 405 and b'"code":405' in response.read()
    connection.close()
