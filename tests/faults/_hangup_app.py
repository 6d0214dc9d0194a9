"""Streaming chat endpoints for the client hang-up fault test: Starlette and Django, same LLM calls.

Each endpoint streams a chat completion from the stand-in LLM server through the
real ``openai`` SDK, either from a ``@traced_llm`` async generator (``/gen``) or
by returning the SDK's own stream from a ``@traced_llm`` function (``/sdk``).
Also the Django URLconf (``ROOT_URLCONF = "tests.faults._hangup_app"``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import openai
from django.http import HttpRequest, StreamingHttpResponse
from django.urls import path as django_path
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import StreamingResponse
from starlette.routing import Route

import llm_otel
from llm_otel.integrations.asgi import LLMOtelMiddleware

MODEL = "gpt-4o-mini"
MESSAGES = [{"role": "user", "content": "tell me a long story about the sea and the ships on it"}]
LLM_BASE_URL: dict[str, str] = {}  # set by the test before the server starts


def _client() -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=LLM_BASE_URL["openai"], api_key="test", max_retries=0)


@llm_otel.traced_llm(provider="openai", model=MODEL)
async def generated_answer() -> AsyncIterator[Any]:
    async with _client() as client:
        stream = await client.chat.completions.create(
            model=MODEL, messages=MESSAGES, stream=True,  # type: ignore[arg-type]
            stream_options={"include_usage": True},
        )
        async for chunk in stream:
            yield chunk  # the decorator reads model, usage and finish reason from the chunks


@llm_otel.traced_llm(provider="openai")
async def sdk_stream(client: openai.AsyncOpenAI, model: str) -> Any:
    return await client.chat.completions.create(
        model=model, messages=MESSAGES, stream=True,  # type: ignore[arg-type]
        stream_options={"include_usage": True},
    )


async def body(kind: str) -> AsyncIterator[bytes]:
    if kind == "gen":
        async for chunk in generated_answer():
            if chunk.choices and chunk.choices[0].delta.content:
                yield chunk.choices[0].delta.content.encode()
        return
    async with _client() as client:
        async for chunk in await sdk_stream(client, MODEL):
            if chunk.choices and chunk.choices[0].delta.content:
                yield chunk.choices[0].delta.content.encode()


async def starlette_endpoint(request: Request) -> StreamingResponse:
    return StreamingResponse(body(request.path_params["kind"]), media_type="text/plain")


def starlette_app() -> Starlette:
    return Starlette(routes=[Route("/{kind}", starlette_endpoint)], middleware=[Middleware(LLMOtelMiddleware)])


async def django_view(request: HttpRequest, kind: str) -> StreamingHttpResponse:
    return StreamingHttpResponse(body(kind), content_type="text/plain")


urlpatterns = [django_path("<str:kind>", django_view)]
