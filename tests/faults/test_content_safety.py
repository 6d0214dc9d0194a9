"""Content safety, checked on what the real Collector wrote to its files.

Real traffic — the ``openai`` and ``anthropic`` SDKs against the stand-in API,
plain and streamed, decorated and through ``llm_call`` — carries secret markers
in its prompts. With capture off, no marker and no completion text appears
anywhere in the Collector's OTLP JSON output (spans, span events, metrics) or in
the kit's own log output. With capture on, prompts and completions are there,
but the default redactor has masked the e-mail address, the API key and the card
number before export.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import openai
import pytest

import llm_otel
from llm_otel.tools._stack import StackInfo
from llm_otel.tools.devserver import StandInServer

pytestmark = pytest.mark.stack

MARKER = "ZEBRA-CANARY-7Q"  # no model, price or attribute name contains this
EMAIL = "jane.doe@example.org"
API_KEY = "sk-proj-" + "A1b2C3d4E5f6G7h8I9j0K1l2M3n4"
CARD = "4111 1111 1111 1111"  # a Luhn-valid test card number
PROMPT = f"{MARKER}: my e-mail is {EMAIL}, my key is {API_KEY}, card {CARD}. Summarise."
SECRETS = (MARKER, EMAIL, API_KEY, CARD, CARD.replace(" ", ""))


@pytest.fixture(scope="module")
def stand_in() -> Iterator[StandInServer]:
    with StandInServer() as server:
        yield server


def _traffic(server: StandInServer, service: str, capture: bool, endpoint: str) -> list[str]:
    """Real SDK calls with the secret prompt; returns the completion texts the app received."""
    llm_otel.configure(service_name=service, endpoint=endpoint, protocol="grpc", set_global=False,
                       capture_content=capture, metric_export_interval_ms=500, span_schedule_delay_ms=200)
    replies: list[str] = []
    messages = [{"role": "user", "content": PROMPT}]
    try:
        with openai.OpenAI(base_url=server.openai_base_url, api_key="test", max_retries=0) as client, \
                anthropic.Anthropic(base_url=server.anthropic_base_url, api_key="test", max_retries=0) as claude:

            @llm_otel.traced_llm(provider="openai")
            def chat(model: str, messages: list[dict[str, str]]) -> Any:
                return client.chat.completions.create(model=model, messages=messages)

            @llm_otel.traced_llm(provider="openai")
            def stream(model: str, messages: list[dict[str, str]]) -> Any:
                return client.chat.completions.create(model=model, messages=messages, stream=True,
                                                      stream_options={"include_usage": True})

            replies.append(chat("gpt-4o-mini", messages).choices[0].message.content or "")
            replies.append("".join(c.choices[0].delta.content or "" for c in stream("gpt-4o-mini", messages)
                                   if c.choices))
            with llm_otel.llm_call(provider="anthropic", model="claude-haiku-4-5") as call:
                call.set_input_messages(messages)
                message = claude.messages.create(model="claude-haiku-4-5", max_tokens=64, messages=messages)
                call.set_response(message)
            replies.append("".join(block.text for block in message.content if block.type == "text"))
        llm_otel.force_flush()
    finally:
        llm_otel.shutdown()
    return [r for r in replies if r]


def _lines_of(path: Path | None, service: str, kind: str) -> list[str]:
    """The raw JSON lines of the collector file that belong to ``service``."""
    assert path is not None
    found = []
    for line in path.read_text().splitlines() if path.exists() else ():
        for resource in json.loads(line).get(kind, []):
            attrs = {a["key"]: a["value"].get("stringValue") for a in resource["resource"]["attributes"]}
            if attrs.get("service.name") == service:
                found.append(json.dumps(resource))
    return found


def _wait_for_output(info: StackInfo, service: str) -> tuple[str, str]:
    deadline = time.monotonic() + 60
    traces = metrics = ""
    while time.monotonic() < deadline:
        traces = "\n".join(_lines_of(info.traces_file, service, "resourceSpans"))
        metrics = "\n".join(_lines_of(info.metrics_file, service, "resourceMetrics"))
        if traces.count('"name": "chat gpt-4o-mini"') >= 2 and '"claude-haiku-4-5"' in traces and \
                "llm.tokens.input" in metrics:
            return traces, metrics
        time.sleep(0.5)
    raise AssertionError(f"the collector never wrote {service}'s spans and metrics")


def test_capture_off_exports_no_prompt_or_completion_text(
    native_stack: StackInfo, stand_in: StandInServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="llm_otel")
    replies = _traffic(stand_in, "faults-capture-off", False, native_stack.otlp_grpc_endpoint)
    traces, metrics = _wait_for_output(native_stack, "faults-capture-off")
    assert replies and all(len(reply) > 12 for reply in replies)
    logs = "\n".join(record.getMessage() for record in caplog.records)
    for where, text in (("spans", traces), ("metrics", metrics), ("kit logs", logs)):
        for secret in SECRETS:
            assert secret not in text, f"{secret!r} exported in {where}"
        for reply in replies:
            assert reply[:24] not in text, f"completion text exported in {where}"
    assert "gen_ai.input.messages" not in traces and "gen_ai.output.messages" not in traces


def test_capture_on_masks_emails_keys_and_cards_before_export(
    native_stack: StackInfo, stand_in: StandInServer
) -> None:
    replies = _traffic(stand_in, "faults-capture-on", True, native_stack.otlp_grpc_endpoint)
    traces, metrics = _wait_for_output(native_stack, "faults-capture-on")
    assert "gen_ai.input.messages" in traces and MARKER in traces  # content is captured...
    for secret in (EMAIL, API_KEY, CARD, CARD.replace(" ", "")):
        assert secret not in traces, f"{secret!r} exported unmasked"  # ...but masked
    for mask in ("[REDACTED_EMAIL]", "[REDACTED_KEY]", "[REDACTED_CARD]"):
        assert mask in traces, mask
    assert any(reply[:24] in traces for reply in replies)  # completions are captured too
    for secret in SECRETS:
        assert secret not in metrics, f"{secret!r} in a metric"
