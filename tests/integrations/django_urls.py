"""URLconf and views for the Django middleware tests (``ROOT_URLCONF`` in conftest)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import Any

from django.http import HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse
from django.urls import path
from opentelemetry import baggage, trace

import llm_otel

from .conftest import chat_response, stream_chunks


class ViewFailed(Exception):
    """What the failing views raise."""


RAISED: list[BaseException] = []
STREAM_SPAN_IDS: list[int] = []


@llm_otel.traced_llm(provider="openai")
def ask(prompt: str, model: str = "gpt-4o-mini", tokens: int = 100) -> dict[str, Any]:
    return chat_response(model=model, prompt_tokens=tokens, completion_tokens=20)


@llm_otel.traced_llm(provider="openai")
async def ask_async(prompt: str, model: str = "gpt-4o-mini", tokens: int = 100) -> dict[str, Any]:
    await asyncio.sleep(0)
    return chat_response(model=model, prompt_tokens=tokens, completion_tokens=20)


@llm_otel.traced_llm(provider="openai", model="gpt-4o-mini")
def stream_answer(prompt: str) -> Iterator[dict[str, Any]]:
    yield from stream_chunks(["a", "b"], prompt_tokens=10, completion_tokens=2)


@llm_otel.traced_llm(provider="openai", model="gpt-4o-mini")
async def stream_answer_async(prompt: str) -> AsyncIterator[dict[str, Any]]:
    for chunk in stream_chunks(["a", "b"], prompt_tokens=10, completion_tokens=2):
        await asyncio.sleep(0)
        yield chunk


def _current_span_id() -> int:
    return trace.get_current_span().get_span_context().span_id


def chat(request: HttpRequest, pk: int) -> HttpResponse:
    ask("one", tokens=pk)
    ask("two", tokens=pk)
    return JsonResponse({"trace_id": f"{trace.get_current_span().get_span_context().trace_id:032x}"})


async def achat(request: HttpRequest, pk: int) -> HttpResponse:
    await ask_async("one", tokens=pk)
    await asyncio.sleep(0.001 * (pk % 5))
    await ask_async("two", tokens=pk)
    return JsonResponse({"trace_id": f"{trace.get_current_span().get_span_context().trace_id:032x}"})


def fail(request: HttpRequest) -> HttpResponse:
    ask("before failing")
    error = ViewFailed("the view failed")
    RAISED.append(error)
    raise error


async def afail(request: HttpRequest) -> HttpResponse:
    await ask_async("before failing")
    error = ViewFailed("the async view failed")
    RAISED.append(error)
    raise error


def stream(request: HttpRequest) -> HttpResponse:
    def body() -> Iterator[bytes]:
        for chunk in stream_answer("hi"):
            STREAM_SPAN_IDS.append(_current_span_id())
            yield repr(chunk).encode() + b"\n"
        ask("after the stream", tokens=5)
        yield b"done\n"

    return StreamingHttpResponse(body())


async def astream(request: HttpRequest) -> HttpResponse:
    async def body() -> AsyncIterator[bytes]:
        async for chunk in stream_answer_async("hi"):
            STREAM_SPAN_IDS.append(_current_span_id())
            yield repr(chunk).encode() + b"\n"
        await ask_async("after the stream", tokens=5)
        yield b"done\n"

    return StreamingHttpResponse(body())


# Set while a view waits on the (never answering) provider; the disconnect tests hang up then.
WAITING: dict[str, asyncio.Event] = {}


@llm_otel.traced_llm(provider="openai", model="gpt-4o-mini")
async def ask_forever(prompt: str) -> dict[str, Any]:
    WAITING["view"].set()
    await asyncio.sleep(3600)
    return chat_response()


@llm_otel.traced_llm(provider="openai", model="gpt-4o-mini")
async def stream_forever(prompt: str) -> AsyncIterator[dict[str, Any]]:
    yield stream_chunks(["a"], prompt_tokens=10, completion_tokens=2)[0]
    await asyncio.sleep(3600)  # the provider stalls after the first chunk
    yield stream_chunks(["b"], prompt_tokens=10, completion_tokens=2)[0]


async def await_provider(request: HttpRequest) -> HttpResponse:
    await ask_forever("hi")
    return HttpResponse("never")


async def stream_stalled(request: HttpRequest) -> HttpResponse:
    async def body() -> AsyncIterator[bytes]:
        async for chunk in stream_forever("hi"):
            yield repr(chunk).encode() + b"\n"
            WAITING["stream"].set()

    return StreamingHttpResponse(body())


def echo_baggage(request: HttpRequest) -> HttpResponse:
    return JsonResponse({"baggage": dict(baggage.get_all())})


def health(request: HttpRequest, name: str = "") -> HttpResponse:
    ask("not traced by the middleware")
    return HttpResponse("ok")


urlpatterns = [
    path("chat/<int:pk>/", chat),
    path("achat/<int:pk>/", achat),
    path("fail/", fail),
    path("afail/", afail),
    path("stream/", stream),
    path("astream/", astream),
    path("baggage/", echo_baggage),
    path("await-provider/", await_provider),
    path("stream-stalled/", stream_stalled),
    path("health/", health),
    path("static/<str:name>", health),
]
