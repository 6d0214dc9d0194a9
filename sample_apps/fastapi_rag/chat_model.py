"""A thin LangChain chat model over the official OpenAI SDK.

It exists so the sample needs nothing beyond ``langchain-core`` and ``openai``;
``langchain_openai.ChatOpenAI`` is a drop-in replacement (the llm-otel handler
reads both the same way: model and provider from the run's metadata, usage from
``AIMessage.usage_metadata``).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

import openai
from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel, LanguageModelInput
from langchain_core.language_models.base import LangSmithParams
from langchain_core.messages import AIMessage, BaseMessage, ToolMessage
from langchain_core.messages.ai import UsageMetadata
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.runnables import Runnable
from langchain_core.tools import BaseTool
from langchain_core.utils.function_calling import convert_to_openai_tool
from pydantic import ConfigDict, Field, PrivateAttr

_ROLES = {"system": "system", "human": "user", "ai": "assistant", "tool": "tool"}


def to_openai_message(message: BaseMessage) -> dict[str, Any]:
    role = _ROLES.get(message.type, "user")
    converted: dict[str, Any] = {"role": role, "content": message.text if role != "assistant" else message.text or None}
    if isinstance(message, AIMessage) and message.tool_calls:
        converted["tool_calls"] = [
            {"id": call["id"], "type": "function",
             "function": {"name": call["name"], "arguments": json.dumps(call["args"])}}
            for call in message.tool_calls
        ]
    if isinstance(message, ToolMessage):
        converted["tool_call_id"] = message.tool_call_id
    return converted


def to_ai_message(completion: Any) -> AIMessage:
    """An OpenAI ChatCompletion as the AIMessage LangChain expects (text, tool calls, usage)."""
    choice = completion.choices[0]
    tool_calls = [
        {"name": call.function.name, "args": json.loads(call.function.arguments or "{}"), "id": call.id}
        for call in (choice.message.tool_calls or [])
    ]
    usage = completion.usage
    usage_metadata = None
    if usage is not None:
        cached = getattr(usage.prompt_tokens_details, "cached_tokens", None) or 0
        reasoning = getattr(usage.completion_tokens_details, "reasoning_tokens", None) or 0
        usage_metadata = UsageMetadata(
            input_tokens=usage.prompt_tokens,
            output_tokens=usage.completion_tokens,
            total_tokens=usage.total_tokens,
            input_token_details={"cache_read": cached},
            output_token_details={"reasoning": reasoning},
        )
    return AIMessage(
        content=choice.message.content or "",
        tool_calls=tool_calls,
        id=completion.id,
        usage_metadata=usage_metadata,
        response_metadata={"model_name": completion.model, "finish_reason": choice.finish_reason},
    )


class OpenAIChatModel(BaseChatModel):
    """Chat completions through ``openai.OpenAI`` / ``openai.AsyncOpenAI`` at ``base_url``."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    model: str = "gpt-4o-mini"
    base_url: str | None = None
    api_key: str = Field(default="stand-in", repr=False)
    temperature: float | None = None
    max_tokens: int | None = None
    timeout: float = 30.0
    max_retries: int = 2

    _client: openai.OpenAI | None = PrivateAttr(default=None)
    _async_client: openai.AsyncOpenAI | None = PrivateAttr(default=None)

    @property
    def _llm_type(self) -> str:
        return "openai-sdk-chat"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {"model": self.model, "temperature": self.temperature, "max_tokens": self.max_tokens}

    def _get_ls_params(self, stop: list[str] | None = None, **kwargs: Any) -> LangSmithParams:
        params = super()._get_ls_params(stop=stop, **kwargs)
        params["ls_provider"] = "openai"
        params["ls_model_name"] = self.model
        return params

    @property
    def client(self) -> openai.OpenAI:
        if self._client is None:
            self._client = openai.OpenAI(
                base_url=self.base_url, api_key=self.api_key, timeout=self.timeout, max_retries=self.max_retries
            )
        return self._client

    @property
    def async_client(self) -> openai.AsyncOpenAI:
        if self._async_client is None:
            self._async_client = openai.AsyncOpenAI(
                base_url=self.base_url, api_key=self.api_key, timeout=self.timeout, max_retries=self.max_retries
            )
        return self._async_client

    async def aclose(self) -> None:
        """Close the HTTP clients (call at application shutdown)."""
        if self._async_client is not None:
            await self._async_client.close()
        if self._client is not None:
            self._client.close()
        self._client = self._async_client = None

    def bind_tools(
        self,
        tools: Sequence[dict[str, Any] | type | Callable[..., Any] | BaseTool],
        *,
        tool_choice: str | None = None,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, AIMessage]:
        kwargs["tools"] = [convert_to_openai_tool(tool) for tool in tools]
        if tool_choice is not None:
            kwargs["tool_choice"] = tool_choice
        return self.bind(**kwargs)

    def _request(self, messages: list[BaseMessage], stop: list[str] | None, kwargs: dict[str, Any]) -> dict[str, Any]:
        request: dict[str, Any] = {"model": self.model, "messages": [to_openai_message(m) for m in messages]}
        if self.temperature is not None:
            request["temperature"] = self.temperature
        if self.max_tokens is not None:
            request["max_tokens"] = self.max_tokens
        if stop:
            request["stop"] = stop
        request.update(kwargs)
        return request

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        completion = self.client.chat.completions.create(**self._request(messages, stop, kwargs))
        return ChatResult(generations=[ChatGeneration(message=to_ai_message(completion))])

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        completion = await self.async_client.chat.completions.create(**self._request(messages, stop, kwargs))
        return ChatResult(generations=[ChatGeneration(message=to_ai_message(completion))])
