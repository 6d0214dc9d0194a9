"""A local stand-in for paid LLM APIs, for development, tests and demos.

This is a development tool, not part of the monitoring core: ``import llm_otel``
does not import it. It serves OpenAI-compatible (chat completions, Responses,
embeddings, models), Anthropic-compatible (messages) and Gemini-compatible
(generateContent, streamGenerateContent, embeddings) endpoints over real HTTP with
deterministic answers, a configurable latency distribution and injectable
failures, so the official ``openai``, ``anthropic`` and ``google-genai`` SDKs can
be exercised without an API key or a bill::

    from llm_otel.tools.devserver import StandInServer
    import openai

    with StandInServer() as server:
        client = openai.OpenAI(base_url=server.openai_base_url, api_key="test")
        client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])

Run it standalone with ``python -m llm_otel.tools.devserver --port 8400``.
"""

from __future__ import annotations

from ._content import Reply, ToolCall, Usage, count_tokens, expected_reply, expected_usage, is_reasoning_model
from ._faults import FAULT_HEADER, FaultPlan
from ._http import RecordedRequest
from ._latency import LatencyProfile
from ._server import StandInServer

__all__ = [
    "FAULT_HEADER",
    "FaultPlan",
    "LatencyProfile",
    "RecordedRequest",
    "Reply",
    "StandInServer",
    "ToolCall",
    "Usage",
    "count_tokens",
    "expected_reply",
    "expected_usage",
    "is_reasoning_model",
]
