"""The Bedrock runtime instrumentor against real boto3 clients answered by botocore's Stubber."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.response import StreamingBody
from botocore.stub import Stubber

import llm_otel
from llm_otel.testing import CapturedTelemetry

MODEL = "anthropic.claude-3-haiku-20240307-v1:0"
MESSAGES = [{"role": "user", "content": [{"text": "Say hello"}]}]


@pytest.fixture
def bedrock(telemetry: CapturedTelemetry) -> Iterator[Any]:
    llm_otel.instrument("bedrock")
    client = boto3.client("bedrock-runtime", region_name="us-east-1",
                          aws_access_key_id="test", aws_secret_access_key="test")
    try:
        yield client
    finally:
        llm_otel.uninstrument("bedrock")


def test_converse(bedrock: Any, telemetry: CapturedTelemetry) -> None:
    stubber = Stubber(bedrock)
    stubber.add_response("converse", {
        "output": {"message": {"role": "assistant", "content": [{"text": "Hello"}]}},
        "stopReason": "end_turn",
        "usage": {"inputTokens": 12, "outputTokens": 4, "totalTokens": 16},
        "metrics": {"latencyMs": 100},
    }, {"modelId": MODEL, "messages": MESSAGES, "inferenceConfig": {"maxTokens": 64}})
    with stubber:
        response = bedrock.converse(modelId=MODEL, messages=MESSAGES, inferenceConfig={"maxTokens": 64})
    assert response["stopReason"] == "end_turn"
    span, = telemetry.spans()
    assert span.name == f"chat {MODEL}"
    assert span.attributes["gen_ai.provider.name"] == "aws.bedrock"
    assert span.attributes["gen_ai.request.max_tokens"] == 64
    assert span.attributes["gen_ai.usage.input_tokens"] == 12
    assert span.attributes["gen_ai.usage.output_tokens"] == 4
    assert span.attributes["gen_ai.response.finish_reasons"] == ("end_turn",)
    assert telemetry.counter("llm.tokens.input") == 12


def test_invoke_model_body_is_handed_back_unread(bedrock: Any, telemetry: CapturedTelemetry) -> None:
    body = json.dumps({
        "id": "msg_bdrk_1", "type": "message", "role": "assistant", "model": "claude-3-haiku-20240307",
        "content": [{"type": "text", "text": "Hello"}], "stop_reason": "end_turn",
        "usage": {"input_tokens": 9, "output_tokens": 3},
    }).encode()
    request = json.dumps({"anthropic_version": "bedrock-2023-05-31", "max_tokens": 64, "messages": []})
    stubber = Stubber(bedrock)
    stubber.add_response("invoke_model", {"body": StreamingBody(__import__("io").BytesIO(body), len(body)),
                                          "contentType": "application/json"},
                         {"modelId": MODEL, "body": request})
    with stubber:
        response = bedrock.invoke_model(modelId=MODEL, body=request)
    assert json.loads(response["body"].read()) == json.loads(body)
    span, = telemetry.spans()
    assert span.attributes["gen_ai.usage.input_tokens"] == 9
    assert span.attributes["gen_ai.usage.output_tokens"] == 3
    assert span.attributes["gen_ai.response.id"] == "msg_bdrk_1"


def test_errors_and_other_services_pass_through(bedrock: Any, telemetry: CapturedTelemetry) -> None:
    stubber = Stubber(bedrock)
    stubber.add_client_error("converse", service_error_code="ThrottlingException", http_status_code=429)
    seen = []
    with stubber, pytest.raises(bedrock.exceptions.ThrottlingException) as info:
        try:
            bedrock.converse(modelId=MODEL, messages=MESSAGES)
        except Exception as exc:
            seen.append(exc)
            raise
    assert info.value is seen[0]
    span, = telemetry.spans()
    assert span.attributes["error.type"] == "rate_limited"

    s3 = boto3.client("s3", region_name="us-east-1", aws_access_key_id="test", aws_secret_access_key="test")
    with Stubber(s3) as s3_stub:
        s3_stub.add_response("list_buckets", {"Buckets": []})
        s3.list_buckets()
    assert len(telemetry.spans()) == 1  # no span for a call that is not a model call
