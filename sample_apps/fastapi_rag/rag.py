"""The LangChain part of the sample: an in-memory corpus, a retriever, a prompt, a tool and the chain."""

from __future__ import annotations

import re
from collections.abc import Sequence
from operator import itemgetter
from typing import Any

from langchain_core.callbacks import CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.retrievers import BaseRetriever
from langchain_core.runnables import (
    Runnable,
    RunnableConfig,
    RunnableLambda,
    RunnableParallel,
    RunnablePassthrough,
)
from langchain_core.tools import tool

CORPUS: tuple[Document, ...] = (
    Document(
        page_content="Refunds: customers can return any order within 30 days for a full refund. "
        "Refunds reach the original payment method within 5 business days.",
        metadata={"title": "refund-policy"},
    ),
    Document(
        page_content="Shipping: standard shipping takes 3 to 5 business days; express shipping "
        "takes 1 business day and costs 9 dollars.",
        metadata={"title": "shipping"},
    ),
    Document(
        page_content="Order status: every order has a number like A-1042. The order tracker shows "
        "whether an order is packed, shipped or delivered.",
        metadata={"title": "order-tracking"},
    ),
    Document(
        page_content="Support hours: the support team answers chat and email from 8am to 8pm CET, "
        "Monday to Saturday.",
        metadata={"title": "support-hours"},
    ),
)

_WORD = re.compile(r"[a-z0-9]+")
_STOP_WORDS = frozenset({"a", "an", "the", "is", "are", "my", "to", "of", "and", "or", "do", "does", "how", "what"})


def _words(text: str) -> set[str]:
    return {word for word in _WORD.findall(text.lower()) if word not in _STOP_WORDS}


class KeywordRetriever(BaseRetriever):
    """The ``k`` documents sharing the most words with the query (a stand-in for a vector store)."""

    documents: Sequence[Document] = CORPUS
    k: int = 2

    def _get_relevant_documents(self, query: str, *, run_manager: CallbackManagerForRetrieverRun) -> list[Document]:
        wanted = _words(query)
        scored = sorted(
            self.documents, key=lambda doc: len(wanted & _words(doc.page_content)), reverse=True
        )
        return list(scored[: self.k])


_ORDERS = {"A-1042": "shipped on Monday, arriving Thursday", "A-2001": "packed, ships tomorrow"}


@tool
def order_status(order_id: str) -> str:
    """Look up the status of an order by its number (like A-1042)."""
    match = re.search(r"[A-Z]-\d{4}", order_id.upper())
    if match is None:
        return "no order number given"
    return f"order {match.group(0)}: {_ORDERS.get(match.group(0), 'not found')}"


TOOLS = (order_status,)
_TOOLS_BY_NAME = {t.name: t for t in TOOLS}
MAX_TOOL_ROUNDS = 3

PROMPT = ChatPromptTemplate.from_messages(
    [
        ("system", "You answer customer questions from the context below. Use the order_status tool "
                   "for questions about an order.\n\nContext:\n{context}"),
        ("human", "{question}"),
    ]
)


def format_docs(documents: Sequence[Document]) -> str:
    return "\n\n".join(f"[{doc.metadata.get('title', '?')}] {doc.page_content}" for doc in documents)


def build_chain(model: BaseChatModel, retriever: BaseRetriever | None = None) -> Runnable[dict[str, Any], Any]:
    """question -> {docs, question, answer}: retrieve, prompt, model (with tool calls), parse."""
    retriever = retriever or KeywordRetriever()
    with_tools = model.bind_tools(list(TOOLS))

    async def answer_with_tools(messages: Any, config: RunnableConfig) -> AIMessage:
        history: list[BaseMessage] = list(messages.to_messages())
        reply = await with_tools.ainvoke(history, config)
        for _ in range(MAX_TOOL_ROUNDS):
            if not reply.tool_calls:
                break
            history.append(reply)
            for call in reply.tool_calls:
                history.append(await _TOOLS_BY_NAME[call["name"]].ainvoke(call, config))
            reply = await with_tools.ainvoke(history, config)
        return reply

    answer: Runnable[Any, str] = (
        RunnableLambda(lambda x: {"context": format_docs(x["docs"]), "question": x["question"]}, name="context")
        | PROMPT
        | RunnableLambda(answer_with_tools, name="model_with_tools")
        | StrOutputParser()
    )
    chain = RunnableParallel(docs=itemgetter("question") | retriever, question=itemgetter("question")) | (
        RunnablePassthrough.assign(answer=answer)
    )
    return chain.with_config(run_name="rag")
