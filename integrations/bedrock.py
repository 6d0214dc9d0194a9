"""The AWS Bedrock runtime instrumentor (``boto3``/``botocore``): ``converse``, ``converse_stream``,
``invoke_model`` and ``invoke_model_with_response_stream``.

    >>> from llm_otel.integrations.bedrock import BedrockInstrumentor
    >>> BedrockInstrumentor().instrument()     # or llm_otel.instrument("bedrock"), or opentelemetry-instrument

botocore builds client classes at run time, so the wrapper sits on the one method every client
call goes through (``BaseClient._make_api_call``) and returns at once for anything that is not
a ``bedrock-runtime`` model call. Usage is read from the response (``converse``), from the
token-count headers Bedrock sends with every ``invoke_model`` answer and from the model's own
body (docs/integrations/bedrock.md: which families); the body stream is handed back unread.
A stream operation returns the same response dict whose event stream (``stream``, ``body``) is
watched: iterating and ``close()`` behave as botocore's, and the call ends when the stream is
exhausted, closed, dropped or fails.
"""

from __future__ import annotations

import functools
import io
import json
import weakref
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, ClassVar

from llm_otel import LLMCall, adapter
from llm_otel.adapter import names as n
from llm_otel.integrations._bedrock_payloads import (
    read_converse,
    read_converse_event,
    read_invoke_body,
    read_invoke_chunk,
    read_invoke_headers,
)
from llm_otel.integrations._instrumentor import (
    SDKInstrumentor,
    Target,
    TelemetrySource,
    Wrapper,
    request_numbers,
)

PROVIDER = "aws.bedrock"
_SERVICE = "bedrock-runtime"
_INFERENCE_NUMBERS = (
    ("maxTokens", n.GEN_AI_REQUEST_MAX_TOKENS),
    ("temperature", n.GEN_AI_REQUEST_TEMPERATURE),
    ("topP", n.GEN_AI_REQUEST_TOP_P),
)
_EventReader = Callable[[LLMCall, Mapping[str, Any]], None]
# stream operation -> the response key holding its EventStream, and the reader of one event
_STREAMS: dict[str, tuple[str, _EventReader]] = {
    "ConverseStream": ("stream", read_converse_event),
    "InvokeModelWithResponseStream": ("body", read_invoke_chunk),
}
_OPERATIONS = frozenset(("Converse", "InvokeModel", *_STREAMS))
_CONVERSE = frozenset(("Converse", "ConverseStream"))


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
    return request_numbers(config.get, _INFERENCE_NUMBERS)


def _operation(operation: str, model: str | None) -> str:
    # embedding models are called through invoke_model too (Titan, Cohere, Nova embeddings)
    if operation == "InvokeModel" and model is not None and "embed" in model:
        return n.OP_EMBEDDINGS
    return n.OP_CHAT


def _invoke_done(call: LLMCall, response: dict[str, Any], kind: str) -> None:
    headers = (response.get("ResponseMetadata") or {}).get("HTTPHeaders") or {}
    body = response.get("body")
    read = getattr(body, "read", None)
    if read is not None and kind == n.OP_CHAT:  # an embedding's body is long and says nothing more
        data = read()
        response["body"] = _body_like(body, data)  # the caller reads the same bytes
        try:
            parsed = json.loads(data)
        except ValueError:
            parsed = None
        read_invoke_body(call, parsed)
    read_invoke_headers(call, headers)  # model-independent counts: read last, they win


def _body_like(original: Any, data: bytes) -> Any:
    try:
        from botocore.response import StreamingBody

        return StreamingBody(io.BytesIO(data), len(data))
    except Exception:  # an older botocore: a plain file-like object reads the same
        return io.BytesIO(data)


class _EventWatch(adapter.StreamWatch):
    """A call that stays open while its event stream is read; the stream's one finish ends it."""

    def __init__(self, call: LLMCall, read: _EventReader) -> None:
        self.call = call
        self.read = read

    def item(self, item: Any) -> None:
        try:
            if isinstance(item, Mapping):
                self.read(self.call, item)
        except Exception as exc:
            adapter.internal_error("bedrock.stream_event", exc)

    def end(self) -> None:
        self.call.end()

    def fail(self, error: BaseException) -> None:
        self.call.fail(error)  # an error event (throttlingException, ...) is raised by botocore as a ClientError

    def close(self) -> None:
        if not self.call.ended:
            self.call.end(outcome=adapter.CLOSED_EARLY)


def _watch_stream(call: LLMCall, response: dict[str, Any], operation: str) -> bool:
    """Put the watched event stream in the response dict; False when there is none to watch."""
    key, read = _STREAMS[operation]
    stream = response.get(key)
    if stream is None or not hasattr(stream, "__iter__"):
        adapter.log_once("bedrock:stream-shape", "llm-otel: a Bedrock response without an event stream "
                         "was not observed; its usage is unknown")
        call.note_usage_unknown("usage:stream_not_observed")
        return False
    watch = _EventWatch(call, read)
    if not _watch_in_place(stream, watch):
        response[key] = adapter.WatchedStream(stream, watch)
    return True


def _watch_in_place(stream: Any, watch: _EventWatch) -> bool:
    """Watch botocore's ``EventStream`` itself, so the caller keeps the very object (and type)
    botocore returned: each parsed event (or the error an error event raises) passes through
    the instance's ``_parse_event``, the end is the raw event generator running out, and
    ``close()`` or dropping the stream unread ends the call as closed early. False when the
    stream is not shaped that way (an older or newer botocore): it is then wrapped instead."""
    parse = getattr(stream, "_parse_event", None)
    events: Any = getattr(stream, "_event_generator", None)
    close = getattr(stream, "close", None)
    if not (callable(parse) and callable(close) and hasattr(events, "__next__")):
        return False
    finished = [False]

    def finish(how: Callable[..., None], *args: Any) -> None:
        if not finished[0]:
            finished[0] = True
            how(*args)

    def parse_observed(event: Any) -> Any:
        try:
            parsed = parse(event)
        except BaseException as exc:
            finish(watch.fail, exc)
            raise
        if parsed:
            watch.item(parsed)
        return parsed

    def raw_events() -> Iterator[Any]:
        try:
            yield from events
        except GeneratorExit:
            raise
        except BaseException as exc:  # the connection broke while reading
            finish(watch.fail, exc)
            raise
        finish(watch.end)

    def close_observed() -> None:
        try:
            close()
        finally:
            finish(watch.close)

    stream._parse_event = parse_observed
    stream._event_generator = raw_events()
    stream.close = close_observed
    weakref.finalize(stream, finish, watch.close)
    return True


def _wrapper(
    wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any], telemetry_of: TelemetrySource
) -> Any:
    operation: Any = args[0] if args else kwargs.get("operation_name")
    if not _is_model_call(instance, operation):
        return wrapped(*args, **kwargs)
    params = args[1] if len(args) > 1 else kwargs.get("api_params") or {}
    call = None
    kind = n.OP_CHAT
    try:
        telemetry = telemetry_of()
        if telemetry.enabled:
            model = params.get("modelId") if isinstance(params, Mapping) else None
            model = model if isinstance(model, str) else None
            kind = _operation(operation, model)
            call = adapter.start_call(provider=PROVIDER, model=model, operation=kind,
                                      request_attributes=_attributes(params), activate=True, wire=True,
                                      telemetry=telemetry)
            if call.wants_text and operation in _CONVERSE:
                call.set_input_messages(params.get("messages"))  # Converse's blocks carry "text" as Claude's do
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
            read_converse(call, response)
        elif operation == "InvokeModel":
            _invoke_done(call, response, kind)
        elif _watch_stream(call, response, operation):
            return response  # the call ends with its stream
    except Exception as exc:
        adapter.internal_error("bedrock.finish", exc)
    call.end()
    return response


class BedrockInstrumentor(SDKInstrumentor):
    name: ClassVar[str] = "bedrock"
    instruments: ClassVar[tuple[str, ...]] = ("botocore >= 1.34",)

    def targets(self) -> Sequence[Target]:
        wrapper: Wrapper = functools.partial(_wrapper, telemetry_of=self.telemetry)
        return (Target("botocore.client", "BaseClient", "_make_api_call", wrapper),)


__all__ = ["BedrockInstrumentor"]
