"""Real LangChain building blocks for the handler tests: a chat model that reports usage like
ChatOpenAI does, an in-memory retriever, a tool, and the RAG chain that combines them."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator, Mapping
from operator import itemgetter
from typing import Any

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.callbacks.manager import CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.language_models import BaseChatModel
from langchain_core.language_models.base import LangSmithParams
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.messages.ai import UsageMetadata
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.retrievers import BaseRetriever
from langchain_core.runnables import Runnable, RunnableLambda, RunnableParallel
from langchain_core.tools import tool
from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor

REQUEST_MODEL = "gpt-4o-mini"
RESPONSE_MODEL = "gpt-4o-mini-2024-07-18"
INPUT_TOKENS = 1200
CACHED_TOKENS = 200
OUTPUT_TOKENS = 300
REPLY = "Paris is the capital of France and its largest city."
RESPONSE_ID = "chatcmpl-fake-1"


class UsageChatModel(BaseChatModel):
    """Answers with a fixed reply and reports usage the way ChatOpenAI does.

    ``usage_in_message=False`` reports usage only in ``llm_output["token_usage"]`` (older integrations).
    Streaming sends the usage and finish reason on the last chunk only.
    """

    model_name: str = REQUEST_MODEL
    response_model: str = RESPONSE_MODEL
    provider: str = "openai"
    reply: str = REPLY
    input_tokens: int = INPUT_TOKENS
    cached_tokens: int = CACHED_TOKENS
    output_tokens: int = OUTPUT_TOKENS
    temperature: float = 0.2
    max_tokens: int = 256
    usage_in_message: bool = True
    fail_with: Any = None
    fail_mid_stream: Any = None  # raised after a first chunk that already carries the usage
    delay_s: float = 0.0

    @property
    def _llm_type(self) -> str:
        return "usage-fake-chat"

    @property
    def _identifying_params(self) -> Mapping[str, Any]:
        return {"model_name": self.model_name, "temperature": self.temperature, "max_tokens": self.max_tokens}

    def _get_ls_params(self, stop: list[str] | None = None, **kwargs: Any) -> LangSmithParams:
        params = super()._get_ls_params(stop=stop, **kwargs)
        params["ls_provider"] = self.provider
        params["ls_model_name"] = self.model_name
        return params

    def _usage(self) -> UsageMetadata:
        return UsageMetadata(
            input_tokens=self.input_tokens,
            output_tokens=self.output_tokens,
            total_tokens=self.input_tokens + self.output_tokens,
            input_token_details={"cache_read": self.cached_tokens},
        )

    def _result(self) -> ChatResult:
        if self.fail_with is not None:
            raise self.fail_with
        message = AIMessage(
            content=self.reply,
            id=RESPONSE_ID,
            usage_metadata=self._usage() if self.usage_in_message else None,
            response_metadata={"model_name": self.response_model, "finish_reason": "stop"},
        )
        token_usage = {
            "prompt_tokens": self.input_tokens,
            "completion_tokens": self.output_tokens,
            "prompt_tokens_details": {"cached_tokens": self.cached_tokens},
        }
        return ChatResult(
            generations=[ChatGeneration(message=message, generation_info={"finish_reason": "stop"})],
            llm_output={"token_usage": token_usage, "model_name": self.response_model},
        )

    def _chunks(self) -> Iterator[ChatGenerationChunk]:
        if self.fail_with is not None:
            raise self.fail_with
        if self.fail_mid_stream is not None:
            yield ChatGenerationChunk(message=AIMessageChunk(content="Paris", usage_metadata=self._usage()))
            raise self.fail_mid_stream
        words = self.reply.split(" ")
        for index, word in enumerate(words):
            last = index == len(words) - 1
            yield ChatGenerationChunk(
                message=AIMessageChunk(
                    content=word if last else word + " ",
                    id=RESPONSE_ID,
                    usage_metadata=self._usage() if last else None,
                    response_metadata={"model_name": self.response_model, "finish_reason": "stop"} if last else {},
                )
            )

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        return self._result()

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        await asyncio.sleep(self.delay_s)
        return self._result()

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        yield from self._chunks()

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        for chunk in self._chunks():
            await asyncio.sleep(self.delay_s)
            yield chunk


class ListRetriever(BaseRetriever):
    """Documents sharing a word with the query, from an in-memory list."""

    documents: list[Document]

    def _get_relevant_documents(self, query: str, *, run_manager: CallbackManagerForRetrieverRun) -> list[Document]:
        words = set(query.lower().split())
        return [doc for doc in self.documents if words & set(doc.page_content.lower().split())]


DOCUMENTS = [
    Document(page_content="paris is the capital of france"),
    Document(page_content="berlin is the capital of germany"),
    Document(page_content="the seine flows through paris"),
]


@tool
def word_count(text: str) -> int:
    """Count the words in a text."""
    return len(text.split())


def format_docs(documents: list[Document]) -> str:
    return "\n".join(doc.page_content for doc in documents)


PROMPT = ChatPromptTemplate.from_messages(
    [("system", "Answer from the context ({words} words asked):\n{context}"), ("user", "{question}")]
)


def rag_chain(model: Runnable[Any, Any] | None = None, *, name: str = "rag", step: Any = None) -> Runnable[Any, Any]:
    """question -> (retriever, tool) in parallel -> prompt -> [step] -> chat model."""
    gather = RunnableParallel(
        context=itemgetter("question") | ListRetriever(documents=DOCUMENTS) | format_docs,
        question=itemgetter("question"),
        words=itemgetter("question") | word_count,
    )
    chain: Runnable[Any, Any] = gather | PROMPT
    if step is not None:
        chain = chain | RunnableLambda(step)
    return (chain | (model or UsageChatModel())).with_config(run_name=name)


class OpenSpanTracker(SpanProcessor):
    """Remembers spans started and not yet ended on a tracer provider."""

    def __init__(self) -> None:
        self.open: dict[int, str] = {}

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        self.open[span.context.span_id] = span.name

    def on_end(self, span: ReadableSpan) -> None:
        if span.context is not None:
            self.open.pop(span.context.span_id, None)
