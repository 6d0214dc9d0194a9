"""The LLM call of the chat sample: the Anthropic SDK, traced with ``@llm_otel.traced_llm``."""

from __future__ import annotations

import threading
from typing import Any

import anthropic

import llm_otel
from sample_apps import common

MODEL = "claude-haiku-4-5"
SYSTEM = "You are the support assistant of a small web shop. Answer in at most three sentences."

_lock = threading.Lock()
_client: anthropic.Anthropic | None = None


def client() -> anthropic.Anthropic:
    """One SDK client per process (it pools connections), created on first use."""
    global _client
    with _lock:
        if _client is None:
            _client = anthropic.Anthropic(
                base_url=common.anthropic_base_url(), api_key=common.anthropic_api_key(), max_retries=1
            )
        return _client


@llm_otel.traced_llm(provider="anthropic", prompt_name="support-chat", prompt_version="1")
def ask_claude(messages: list[dict[str, Any]], model: str = MODEL, max_tokens: int = 300) -> Any:
    """One Messages API call; usage, model, id and stop reason are read from the returned Message."""
    return client().messages.create(model=model, max_tokens=max_tokens, system=SYSTEM, messages=messages)  # type: ignore[arg-type]
