"""Captured content is bounded before it is redacted and exported; exception messages are always
redacted and capped; the redactor knows the common secret formats."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

import llm_otel
from llm_otel import default_redactor
from llm_otel._log import forget_logged_causes
from llm_otel.testing import CapturedTelemetry, capture
from tests.core.conftest import chat_response

KEY = "sk-proj-" + "A1b2C3d4E5f6G7h8I9j0K1l2M3n4"


class CountingRedactor:
    """The default redactor, remembering the longest text it was handed."""

    def __init__(self) -> None:
        self.longest = 0

    def __call__(self, text: str) -> str:
        self.longest = max(self.longest, len(text))
        return default_redactor(text)


@pytest.fixture
def redactor() -> CountingRedactor:
    return CountingRedactor()


@pytest.fixture
def captured(redactor: CountingRedactor) -> Iterator[CapturedTelemetry]:
    forget_logged_causes()
    with capture(capture_content=True, redactor=redactor, content_max_message_chars=1000,
                 content_max_call_chars=2500, attribute_max_length=300) as telemetry:
        yield telemetry


def _ask(messages: Any, response: Any) -> Any:
    @llm_otel.traced_llm(provider="openai", model="gpt-4o-mini")
    def ask(messages: Any) -> Any:
        return response

    return ask(messages)


def test_a_five_megabyte_prompt_is_cut_before_redaction(captured: CapturedTelemetry,
                                                        redactor: CountingRedactor) -> None:
    prompt = ("lorem ipsum " * 500_000)[:5_000_000]
    _ask([{"role": "user", "content": prompt}], chat_response())
    attributes = captured.span("chat gpt-4o-mini").attributes
    parts = json.loads(attributes["gen_ai.input.messages"])[0]["parts"]
    assert len(parts[0]["content"]) == 1001 and parts[0]["content"].endswith("\u2026")
    assert attributes["llm.content.truncated"] is True
    assert redactor.longest <= 1000 + 256  # redaction never sees the 5 MB


def test_the_per_call_budget_spans_messages_and_completion(captured: CapturedTelemetry) -> None:
    messages = [{"role": "user", "content": "x" * 900} for _ in range(5)]
    response = chat_response()
    response["choices"][0]["message"]["content"] = "y" * 5000  # type: ignore[index]
    _ask(messages, response)
    attributes = captured.span("chat gpt-4o-mini").attributes
    inputs = json.loads(attributes["gen_ai.input.messages"])
    outputs = json.loads(attributes["gen_ai.output.messages"])
    kept = sum(len(p["content"]) for m in inputs + outputs for p in m["parts"])
    assert kept <= 2500 + 10  # one ellipsis per cut message
    assert attributes["llm.content.truncated"] is True


def test_small_content_is_untouched_and_not_marked(captured: CapturedTelemetry) -> None:
    _ask([{"role": "user", "content": "hello"}], chat_response())
    attributes = captured.span("chat gpt-4o-mini").attributes
    assert json.loads(attributes["gen_ai.input.messages"])[0]["parts"][0]["content"] == "hello"
    assert "llm.content.truncated" not in attributes


def test_a_lone_surrogate_in_content_is_replaced(captured: CapturedTelemetry) -> None:
    _ask([{"role": "user", "content": "bad \ud83d half"}], chat_response())
    text = captured.span("chat gpt-4o-mini").attributes["gen_ai.input.messages"]
    assert isinstance(text, str)
    text.encode("utf-8")  # would raise on a surrogate


class LeakyError(Exception):
    pass


@pytest.mark.parametrize("capture_content", [False, True])
def test_exception_messages_are_redacted_and_capped_in_both_modes(capture_content: bool) -> None:
    forget_logged_causes()
    message = f"1 validation error: input {'p' * 5000} api_key={KEY} owner jane.doe@example.org"
    with capture(capture_content=capture_content, attribute_max_length=300) as telemetry:

        @llm_otel.traced_llm(provider="openai", model="gpt-4o-mini")
        def ask() -> Any:
            raise LeakyError(f"{KEY} {message}")

        with pytest.raises(LeakyError):
            ask()
        with pytest.raises(LeakyError), llm_otel.route(task_type="t"):
            raise LeakyError(message)
        for span in telemetry.spans():
            description = span.status.description or ""
            (event,) = span.events
            texts = [description, str(event.attributes["exception.message"]),
                     str(event.attributes["exception.stacktrace"])]
            for text in texts:
                assert KEY not in text and "jane.doe@example.org" not in text
            assert len(description) <= 300 and len(str(event.attributes["exception.message"])) <= 300
            assert len(str(event.attributes["exception.stacktrace"])) <= 4 * 300
            assert event.attributes["exception.type"] == f"{__name__}.LeakyError"
            assert description.startswith("[REDACTED_KEY]") or "validation error" in description


def test_an_exception_whose_str_raises_still_records_the_failure() -> None:
    class Broken(Exception):
        def __str__(self) -> str:
            raise RuntimeError("no")

    with capture() as telemetry:

        @llm_otel.traced_llm(provider="openai", model="m")
        def ask() -> Any:
            raise Broken()

        with pytest.raises(Broken):
            ask()
        (span,) = telemetry.spans()
        expected = f"{__name__.split('.')[0]}.{Broken.__qualname__}"
        assert span.status.description == expected and span.events[0].attributes["exception.message"] == expected


@pytest.mark.parametrize(
    ("secret", "kept"),
    [
        ("sk_live_" + "4eC39HqLyjWDarjtT1zdp7dc", ""),
        ("rk_test_" + "4eC39HqLyjWDarjtT1zdp7dc", ""),
        ("github_pat_" + "11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyzABCDEFGH", ""),
        ("eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U", ""),
        ("wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", ""),
        ("password=hunter2!", "password="),
        ('"api_key": "abc123def"', '"api_key": "'),
        ("4111-1111-1111-1111", ""),
        ("4111 1111 1111 1111", ""),
        ("4111.1111.1111.1111", ""),
        ("4111  1111  1111  1111", ""),
        ("3782 822463 10005", ""),
    ],
)
def test_the_default_redactor_masks_common_secret_formats(secret: str, kept: str) -> None:
    masked = default_redactor(f"before {secret} after")
    assert secret not in masked and masked.startswith("before ") and masked.endswith(" after")
    assert kept in masked and "[REDACTED" in masked


@pytest.mark.parametrize(
    "harmless",
    [
        "commit 2fe45d9aa3c1f09b7de4c5b6a7f8e9d0c1b2a3f4",  # a hex digest is no AWS secret
        "order 4111 1111 1111 1112",  # fails the Luhn check
        "version 1.2.3.4.5.6.7.8.9.10.11.12.13",
        "a password is needed",
    ],
)
def test_the_default_redactor_leaves_look_alikes(harmless: str) -> None:
    assert default_redactor(harmless) == harmless


def test_web_and_framework_spans_redact_exception_messages() -> None:
    import asyncio
    import uuid

    from llm_otel.integrations.asgi import LLMOtelMiddleware
    from llm_otel.integrations.langchain import LLMOtelCallbackHandler

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        raise LeakyError(f"upstream said: bad key {KEY}")

    async def request() -> None:
        scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET",
                 "scheme": "http", "path": "/x", "raw_path": b"/x", "query_string": b"", "headers": [],
                 "server": ("127.0.0.1", 80), "client": ("127.0.0.1", 1)}

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: dict[str, Any]) -> None:
            return None

        with pytest.raises(LeakyError):
            await LLMOtelMiddleware(app)(scope, receive, send)

    with capture() as telemetry:
        asyncio.run(request())
        handler = LLMOtelCallbackHandler()
        run = uuid.uuid4()
        handler.on_chain_start({"name": "chain"}, {"input": "x"}, run_id=run)
        handler.on_chain_error(LeakyError(f"password={KEY}"), run_id=run)
        spans = telemetry.spans()
        assert len(spans) == 2
        for span in spans:
            texts = [span.status.description or ""] + [str(v) for e in span.events for v in e.attributes.values()]
            assert any("REDACTED" in text for text in texts)
            assert not any(KEY in text for text in texts), texts
