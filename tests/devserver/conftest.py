"""Fixtures: a fresh stand-in server per test and SDK clients pointed at it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import anthropic
import openai
import pytest

from llm_otel.tools.devserver import StandInServer

from ._support import devserver_threads


@pytest.fixture
def server() -> Iterator[StandInServer]:
    with StandInServer() as stand_in:
        yield stand_in
    assert devserver_threads() == []


@pytest.fixture
def openai_client(server: StandInServer) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=server.openai_base_url, api_key="test", max_retries=0) as client:
        yield client


@pytest.fixture
async def async_openai_client(server: StandInServer) -> AsyncIterator[openai.AsyncOpenAI]:
    async with openai.AsyncOpenAI(base_url=server.openai_base_url, api_key="test", max_retries=0) as client:
        yield client


@pytest.fixture
def anthropic_client(server: StandInServer) -> Iterator[anthropic.Anthropic]:
    with anthropic.Anthropic(base_url=server.anthropic_base_url, api_key="test", max_retries=0) as client:
        yield client


@pytest.fixture
async def async_anthropic_client(server: StandInServer) -> AsyncIterator[anthropic.AsyncAnthropic]:
    async with anthropic.AsyncAnthropic(
        base_url=server.anthropic_base_url, api_key="test", max_retries=0
    ) as client:
        yield client
