from __future__ import annotations

import json

import pytest

import llm_otel
from llm_otel import default_redactor
from llm_otel.testing import CapturedTelemetry, capture

from .conftest import chat_response

SECRET_PROMPT = "my email is jane.doe@example.com, key sk-proj-ABCDEFGHIJKLMNOPQRSTUV, card 4111 1111 1111 1111"


def _ask() -> None:
    @llm_otel.traced_llm(provider="openai", model="gpt-4o-mini")
    def ask(messages: list[dict[str, str]], model: str = "gpt-4o-mini") -> dict[str, object]:
        return chat_response()

    ask([{"role": "user", "content": SECRET_PROMPT}])


def test_content_is_not_captured_by_default(telemetry: CapturedTelemetry) -> None:
    _ask()
    dumped = json.dumps([dict(s.attributes or {}) for s in telemetry.spans()], default=str)
    assert "jane.doe" not in dumped and "gen_ai.input.messages" not in dumped
    assert "gen_ai.output.messages" not in dumped


def test_capture_via_environment_redacts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "true")
    with capture() as telemetry:
        _ask()
        attrs = telemetry.span("chat gpt-4o-mini").attributes or {}
    captured = json.loads(str(attrs["gen_ai.input.messages"]))
    text = captured[0]["parts"][0]["content"]
    assert captured[0]["role"] == "user"
    assert "jane.doe@example.com" not in text and "[REDACTED_EMAIL]" in text
    assert "sk-proj-" not in text and "[REDACTED_KEY]" in text
    assert "4111" not in text and "[REDACTED_CARD]" in text
    output = json.loads(str(attrs["gen_ai.output.messages"]))
    assert output[0]["parts"][0]["content"] == "ok"


def test_custom_redactor() -> None:
    with capture(capture_content=True, redactor=lambda text: "<hidden>") as telemetry:
        _ask()
        attrs = telemetry.span("chat gpt-4o-mini").attributes or {}
    assert "<hidden>" in str(attrs["gen_ai.input.messages"])


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("write to a.b@c.io", "write to [REDACTED_EMAIL]"),
        ("AKIAABCDEFGHIJKLMNOP is aws", "[REDACTED_KEY] is aws"),
        ("Authorization: Bearer abcdefghijklmnopqrstuvwxyz", "Authorization: Bearer [REDACTED_KEY]"),
        ("order 1234 5678 9012 3456 ok", "order 1234 5678 9012 3456 ok"),  # fails Luhn: not a card
        ("pay 5500-0000-0000-0004", "pay [REDACTED_CARD]"),
    ],
)
def test_default_redactor(text: str, expected: str) -> None:
    assert default_redactor(text) == expected
