from __future__ import annotations

from collections.abc import Iterator

import pytest

from llm_otel._log import forget_logged_causes
from llm_otel.testing import CapturedTelemetry, capture


@pytest.fixture
def telemetry() -> Iterator[CapturedTelemetry]:
    forget_logged_causes()
    with capture() as captured:
        yield captured


def chat_response(
    *,
    model: str = "gpt-4o-mini",
    prompt_tokens: object = 100,
    completion_tokens: object = 20,
    cached: object = None,
    reasoning: object = None,
    finish_reason: str = "stop",
    response_id: str = "chatcmpl-1",
) -> dict[str, object]:
    usage: dict[str, object] = {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens}
    if cached is not None:
        usage["prompt_tokens_details"] = {"cached_tokens": cached}
    if reasoning is not None:
        usage["completion_tokens_details"] = {"reasoning_tokens": reasoning}
    return {
        "id": response_id,
        "object": "chat.completion",
        "model": model,
        "choices": [{"index": 0, "finish_reason": finish_reason, "message": {"role": "assistant", "content": "ok"}}],
        "usage": usage,
    }
