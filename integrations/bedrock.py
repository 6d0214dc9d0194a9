"""The AWS Bedrock runtime instrumentor (``boto3``/``botocore``): ``converse`` and ``invoke_model``.

    >>> from llm_otel.integrations.bedrock import BedrockInstrumentor
    >>> BedrockInstrumentor().instrument()     # or llm_otel.instrument("bedrock"), or opentelemetry-instrument

botocore builds client classes at run time, so the wrapper sits on the one method every client
call goes through (``BaseClient._make_api_call``) and returns at once for anything that is not
a ``bedrock-runtime`` model call. Usage is read from the response (``converse``) or from the
token-count headers Bedrock sends with every ``invoke_model`` answer, else from the model's
own body (Anthropic-shaped bodies); the body stream is handed back unread.
``converse_stream`` and ``invoke_model_with_response_stream`` are not instrumented yet.
"""

from __future__ import annotations

import io
import json
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from llm_otel import LLMCall, adapter
from llm_otel.adapter import names as n
from llm_otel.integrations._instrumentor import SDKInstrumentor, Target

PROVIDER = "aws.bedrock"
_SERVICE = "bedrock-runtime"
_OPERATIONS = frozenset(("Converse", "InvokeModel"))
_INFERENCE_NUMBERS = (
    ("maxTokens", n.GEN_AI_REQUEST_MAX_TOKENS),
    ("temperature", n.GEN_AI_REQUEST_TEMPERATURE),
    ("topP", n.GEN_AI_REQUEST_TOP_P),
)
_INPUT_HEADER = "x-amzn-bedrock-input-token-count"
_OUTPUT_HEADER = "x-amzn-bedrock-output-token-count"


def _is_model_call(client: Any, operation: Any) -> bool:
    if operation not in _OPERATIONS:
        return False
    try:
        return bool(client.meta.service_model.service_name == _SERVICE)
    except Exception:  # not a botocore client shaped as expected
        return False


def _attributes(params: Mapping[str, Any]) -> dict[str, Any] | None:
    config = params.get("inferenceConfig")
    if not isinstance(config, Mapping):
        return None
    found = {key: config[name] for name, key in _INFERENCE_NUMBERS
             if isinstance(config.get(name), (int, float)) and not isinstance(config.get(name), bool)}
    return found or None


def _int(value: Any) -> int | None:
    try:
        return int(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def _converse_done(call: LLMCall, response: Mapping[str, Any]) -> None:
    usage = response.get("usage")
    if isinstance(usage, Mapping):
        base = _int(usage.get("inputTokens"))
        cache_read = _int(usage.get("cacheReadInputTokens"))
        cache_write = _int(usage.get("cacheWriteInputTokens"))
        call.set_usage(  # input counts cached tokens too, as everywhere in the kit
            input_tokens=None if base is None else base + (cache_read or 0) + (cache_write or 0),
            output_tokens=usage.get("outputTokens"),
            cache_read_input_tokens=cache_read,
            cache_creation_input_tokens=cache_write,
        )
    reason = response.get("stopReason")
    if isinstance(reason, str):
        call.set_finish_reasons([reason])


def _invoke_done(call: LLMCall, response: dict[str, Any]) -> None:
    headers = (response.get("ResponseMetadata") or {}).get("HTTPHeaders") or {}
    if _INPUT_HEADER in headers or _OUTPUT_HEADER in headers:
        call.set_usage(input_tokens=_int(headers.get(_INPUT_HEADER)), output_tokens=_int(headers.get(_OUTPUT_HEADER)))
    body = response.get("body")
    read = getattr(body, "read", None)
    if read is None:
        return
    data = read()
    response["body"] = _body_like(body, data)  # the caller reads the same bytes
    if call.usage_known:
        return
    try:
        parsed = json.loads(data)
    except ValueError:
        return
    call.set_response(parsed)  # Anthropic-shaped bodies carry usage, stop reason, id and model


def _body_like(original: Any, data: bytes) -> Any:
    try:
        from botocore.response import StreamingBody

        return StreamingBody(io.BytesIO(data), len(data))
    except Exception:  # an older botocore: a plain file-like object reads the same
        return io.BytesIO(data)


def _wrapper(wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    operation = args[0] if args else kwargs.get("operation_name")
    if not _is_model_call(instance, operation):
        return wrapped(*args, **kwargs)
    params = args[1] if len(args) > 1 else kwargs.get("api_params") or {}
    call = None
    try:
        if adapter.current().enabled:
            model = params.get("modelId") if isinstance(params, Mapping) else None
            call = adapter.start_call(provider=PROVIDER, model=model if isinstance(model, str) else None,
                                      operation=n.OP_CHAT, request_attributes=_attributes(params),
                                      activate=True, wire=True)
    except Exception as exc:
        adapter.internal_error("bedrock.start", exc)
    if call is None:
        return wrapped(*args, **kwargs)
    try:
        response = wrapped(*args, **kwargs)
    except BaseException as exc:
        call.fail(exc)
        raise
    try:
        call.deactivate()
        if operation == "Converse":
            _converse_done(call, response)
        else:
            _invoke_done(call, response)
    except Exception as exc:
        adapter.internal_error("bedrock.finish", exc)
    call.end()
    return response


class BedrockInstrumentor(SDKInstrumentor):
    name: ClassVar[str] = "bedrock"
    instruments: ClassVar[tuple[str, ...]] = ("botocore >= 1.34",)

    def targets(self) -> Sequence[Target]:
        return (Target("botocore.client", "BaseClient", "_make_api_call", _wrapper),)


__all__ = ["BedrockInstrumentor"]
