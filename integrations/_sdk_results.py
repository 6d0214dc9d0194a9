"""What a Stainless-generated SDK (``openai``, ``anthropic``) hands back, and how its call ends.

Plain responses end the call at once. Streams are watched in place (the caller keeps the
SDK's own object). Raw responses (``with_raw_response``) are parsed the way the caller would
(the SDK caches the result, so the caller's own ``parse()`` returns the same object);
streamed raw responses (``with_streaming_response``) are recorded when the caller parses
them, or end with usage unknown when closed unparsed.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any

from llm_otel import LLMCall
from llm_otel.adapter import CLOSED_EARLY, log_once
from llm_otel.integrations._instrumentor import (
    AsyncFinish,
    Finish,
    Request,
    observe_async_stream,
    observe_stream,
)

_MODULES: dict[str, ModuleType] = {}


def _sdk(name: str) -> ModuleType:
    module = _MODULES.get(name)
    if module is None:
        module = _MODULES[name] = importlib.import_module(name)
        importlib.import_module(f"{name}._response")
    return module


def _legacy(sdk: ModuleType) -> Any:
    """The SDK's LegacyAPIResponse class (openai's ``with_raw_response``), or a class nothing is."""
    legacy = getattr(sdk, "_legacy_response", None)
    return getattr(legacy, "LegacyAPIResponse", _Never)


class _Never:
    pass


def _body_read(response: Any) -> bool:
    """A raw response whose body is already in memory (``with_raw_response`` of anthropic)."""
    return getattr(getattr(response, "http_response", None), "is_stream_consumed", False) is True


def sdk_result_handlers(name: str) -> tuple[Finish, AsyncFinish]:
    """The sync and async result handlers for the SDK importable as ``name``."""

    def _finish(call: LLMCall, result: Any, request: Request) -> Any:
        sdk = _sdk(name)

        if isinstance(result, sdk.Stream):
            if not observe_stream(result, call, request):
                _unobservable(call, name)
            return result
        if isinstance(result, _legacy(sdk)):  # with_raw_response
            _finish(call, result.parse(), request)  # the body is read already; parse() caches its result
            return result
        if isinstance(result, sdk._response.APIResponse):  # with_streaming_response
            if request.stream and not _body_read(result):
                _finish(call, result.parse(), request)  # builds the stream without reading it
                _end_stream_on_close(result, call)
            elif _body_read(result):
                _finish(call, result.parse(), request)
            else:
                _finish_on_parse(result, call)
            return result
        call.set_response(result)
        call.end()
        return result

    async def _finish_async(call: LLMCall, result: Any, request: Request) -> Any:
        sdk = _sdk(name)

        if isinstance(result, sdk.AsyncStream):
            if not observe_async_stream(result, call, request):
                _unobservable(call, name)
            return result
        if isinstance(result, _legacy(sdk)):
            await _finish_async(call, result.parse(), request)
            return result
        if isinstance(result, sdk._response.AsyncAPIResponse):
            if request.stream and not _body_read(result):
                await _finish_async(call, await result.parse(), request)
                _end_stream_on_close_async(result, call)
            elif _body_read(result):
                await _finish_async(call, await result.parse(), request)
            else:
                _finish_on_parse_async(result, call)
            return result
        call.set_response(result)
        call.end()
        return result

    return _finish, _finish_async


def _unobservable(call: LLMCall, name: str) -> None:
    log_once(f"{name}:stream-shape", "llm-otel: a stream of an unknown shape was not observed; "
             "its usage is unknown")
    call.note_usage_unknown("usage:stream_not_observed")
    call.end()


def _finish_on_parse(response: Any, call: LLMCall) -> None:
    """A streamed raw response whose body is read later: record when the caller parses it,
    or when it is closed unparsed (usage then unknown)."""
    parse, close = response.parse, response.close

    def parse_observed(*args: Any, **kwargs: Any) -> Any:
        parsed = parse(*args, **kwargs)
        if not call.ended:
            try:
                call.set_response(parsed)
            finally:
                call.end()
        return parsed

    def close_observed() -> None:
        try:
            close()
        finally:
            if not call.ended:
                call.note_usage_unknown("usage:response_not_parsed")
                call.end()

    response.parse, response.close = parse_observed, close_observed


def _finish_on_parse_async(response: Any, call: LLMCall) -> None:
    parse, close = response.parse, response.close

    async def parse_observed(*args: Any, **kwargs: Any) -> Any:
        parsed = await parse(*args, **kwargs)
        if not call.ended:
            try:
                call.set_response(parsed)
            finally:
                call.end()
        return parsed

    async def close_observed() -> None:
        try:
            await close()
        finally:
            if not call.ended:
                call.note_usage_unknown("usage:response_not_parsed")
                call.end()

    response.parse, response.close = parse_observed, close_observed


def _end_stream_on_close(response: Any, call: LLMCall) -> None:
    """A streamed raw response of a stream request: the caller reads it parsed (the SDK stream,
    watched like any other) or raw (``iter_lines``/``iter_bytes``, which the kit does not read).
    Closing the response (the end of its ``with`` block) ends a call still open: as closed early
    when the parsed stream was left unfinished, with usage unknown when the body was read raw."""
    parse, close = response.parse, response.close
    parsed = [False]

    def parse_observed(*args: Any, **kwargs: Any) -> Any:
        parsed[0] = True
        return parse(*args, **kwargs)

    def close_observed() -> None:
        try:
            close()
        finally:
            _end_unfinished(call, parsed[0])

    response.parse, response.close = parse_observed, close_observed


def _end_stream_on_close_async(response: Any, call: LLMCall) -> None:
    parse, close = response.parse, response.close
    parsed = [False]

    async def parse_observed(*args: Any, **kwargs: Any) -> Any:
        parsed[0] = True
        return await parse(*args, **kwargs)

    async def close_observed() -> None:
        try:
            await close()
        finally:
            _end_unfinished(call, parsed[0])

    response.parse, response.close = parse_observed, close_observed


def _end_unfinished(call: LLMCall, parsed: bool) -> None:
    if call.ended:
        return
    if parsed:
        call.end(outcome=CLOSED_EARLY)
    else:
        call.note_usage_unknown("usage:response_not_parsed")
        call.end()
