"""Fixtures for the framework integration tests: in-memory telemetry and a minimal Django setup."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from llm_otel._log import forget_logged_causes
from llm_otel.testing import CapturedTelemetry, capture

try:  # Django is configured once per process, before any test imports the middleware.
    import django
    from django.conf import settings as django_settings
except ImportError:  # pragma: no cover - the dev extra installs Django
    django = None
else:
    if not django_settings.configured:
        django_settings.configure(
            DEBUG=False,
            ALLOWED_HOSTS=["testserver"],
            SECRET_KEY="tests-only-not-a-secret",
            ROOT_URLCONF="tests.integrations.django_urls",
            MIDDLEWARE=["llm_otel.integrations.django.LLMOtelMiddleware"],
            INSTALLED_APPS=[],
            DATABASES={},
            USE_TZ=True,
            LLM_OTEL={},
        )
        django.setup()


@pytest.fixture
def telemetry() -> Iterator[CapturedTelemetry]:
    forget_logged_causes()
    with capture() as captured:
        yield captured


def chat_response(
    *, model: str = "gpt-4o-mini", prompt_tokens: int = 100, completion_tokens: int = 20
) -> dict[str, Any]:
    """A chat completion shaped like the OpenAI SDK's, as a dict."""
    return {
        "id": "chatcmpl-test",
        "object": "chat.completion",
        "model": model,
        "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": "ok"}}],
        "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens},
    }


def stream_chunks(words: list[str], *, prompt_tokens: int, completion_tokens: int) -> list[dict[str, Any]]:
    """Chat completion chunks shaped like OpenAI's, the last one carrying usage (include_usage)."""
    chunks: list[dict[str, Any]] = [
        {"object": "chat.completion.chunk", "model": "gpt-4o-mini", "choices": [{"index": 0, "delta": {"content": w}}]}
        for w in words
    ]
    chunks.append(
        {
            "object": "chat.completion.chunk",
            "model": "gpt-4o-mini",
            "choices": [],
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens},
        }
    )
    return chunks


def span_attributes(span: Any) -> dict[str, Any]:
    return dict(span.attributes or {})


def traceparent(trace_id: int, span_id: int, sampled: bool = True) -> str:
    return f"00-{trace_id:032x}-{span_id:016x}-{'01' if sampled else '00'}"
