"""A small LlamaIndex LLM over the official OpenAI SDK (chat completions).

``llama_index.llms.openai.OpenAI`` does the same with more options; this one keeps
the sample's dependencies to ``llama-index-core`` and ``openai``. The SDK response
is handed back as ``raw``, which is where llm-otel reads usage, response model,
id and finish reason from (streamed: the last chunk carries the usage).
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import openai
from llama_index.core.base.llms.types import CompletionResponse, CompletionResponseGen, LLMMetadata
from llama_index.core.llms import CustomLLM
from llama_index.core.llms.callbacks import llm_completion_callback
from openai.types.chat import ChatCompletionMessageParam
from pydantic import Field, PrivateAttr


class OpenAICompletionLLM(CustomLLM):
    """Completes a prompt with one chat completion at ``base_url``."""

    model: str = "gpt-4o-mini"
    base_url: str | None = None
    api_key: str = Field(default="stand-in", repr=False)
    max_tokens: int = 256
    timeout: float = 30.0
    max_retries: int = 2

    _client: openai.OpenAI | None = PrivateAttr(default=None)

    @classmethod
    def class_name(cls) -> str:
        # LlamaIndex's serialization name; llm-otel derives gen_ai.provider.name ("openai") from it.
        return "openai_sdk_llm"

    @property
    def metadata(self) -> LLMMetadata:
        return LLMMetadata(model_name=self.model, is_chat_model=False, num_output=self.max_tokens,
                           context_window=128_000)

    @property
    def client(self) -> openai.OpenAI:
        if self._client is None:
            self._client = openai.OpenAI(
                base_url=self.base_url, api_key=self.api_key, timeout=self.timeout, max_retries=self.max_retries
            )
        return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def _messages(self, prompt: str) -> list[ChatCompletionMessageParam]:
        return [{"role": "user", "content": prompt}]

    @llm_completion_callback()
    def complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponse:
        completion = self.client.chat.completions.create(
            model=self.model, messages=self._messages(prompt), max_tokens=self.max_tokens
        )
        return CompletionResponse(text=completion.choices[0].message.content or "", raw=completion)

    @llm_completion_callback()
    def stream_complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponseGen:
        stream = self.client.chat.completions.create(
            model=self.model,
            messages=self._messages(prompt),
            max_tokens=self.max_tokens,
            stream=True,
            stream_options={"include_usage": True},
        )

        def chunks() -> Generator[CompletionResponse, None, None]:
            text = ""
            with stream:
                for chunk in stream:
                    delta = (chunk.choices[0].delta.content or "") if chunk.choices else ""
                    text += delta
                    yield CompletionResponse(text=text, delta=delta, raw=chunk)

        return chunks()
