"""Framework adapters: the LangChain handler and the ASGI middleware, each against the framework alone.

    python benchmarks/frameworks.py

* LangChain: ``model.invoke()`` of a fake chat model (LangChain's own machinery,
  no network) that reports usage like ChatOpenAI, with ``callbacks=[handler]``
  against the same invoke with no callbacks.
* ASGI: requests/s of a Starlette app driven in-process (no server, no sockets:
  the ASGI callable is awaited with a prepared scope), with and without
  ``LLMOtelMiddleware``; the endpoint makes no LLM call, so the figure is the
  middleware's own cost per request.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from _timing import Row, fmt_us, interleaved, sdk_providers

import llm_otel


def _langchain_model() -> Any:
    from langchain_core.language_models import BaseChatModel
    from langchain_core.messages import AIMessage
    from langchain_core.outputs import ChatGeneration, ChatResult

    class FakeUsageChatModel(BaseChatModel):
        """Replies at once, with usage and response metadata shaped like ChatOpenAI's."""

        model_name: str = "gpt-4o-mini"

        @property
        def _llm_type(self) -> str:
            return "bench-fake-chat"

        def _generate(self, messages: Any, stop: Any = None, run_manager: Any = None, **kwargs: Any) -> ChatResult:
            message = AIMessage(
                content="Paris.",
                usage_metadata={"input_tokens": 120, "output_tokens": 30, "total_tokens": 150},
                response_metadata={"model_name": "gpt-4o-mini-2024-07-18", "finish_reason": "stop",
                                   "model_provider": "openai"},
                id="chatcmpl-bench",
            )
            return ChatResult(generations=[ChatGeneration(message=message)])

    return FakeUsageChatModel()


def langchain_rows(calls: int, repeat: int) -> list[Row]:
    try:
        model = _langchain_model()
        from llm_otel.integrations.langchain import LLMOtelCallbackHandler
    except ImportError as exc:
        return [Row("langchain", "handler on a fake chat model", "-", verdict="skipped", note=str(exc))]
    tracer_provider, meter_provider = sdk_providers("batch")
    llm_otel.configure(tracer_provider=tracer_provider, meter_provider=meter_provider, set_global=False)
    from langchain_core.callbacks import BaseCallbackHandler

    class EmptyHandler(BaseCallbackHandler):
        """Receives every callback and does nothing: LangChain's own cost of having a handler."""

        run_inline = True

    with_handler = {"callbacks": [LLMOtelCallbackHandler()]}
    with_empty = {"callbacks": [EmptyHandler()]}
    best = interleaved({
        "no callbacks": lambda: model.invoke("What is the capital of France?"),
        "empty handler": lambda: model.invoke("What is the capital of France?", config=with_empty),
        "handler": lambda: model.invoke("What is the capital of France?", config=with_handler),
    }, max(calls // 20, 200), repeat)
    llm_otel.shutdown()
    tracer_provider.shutdown()
    meter_provider.shutdown()
    added = best["handler"] - best["no callbacks"]
    ours = best["handler"] - best["empty handler"]
    return [Row("langchain", "handler on a fake chat model", f"+{fmt_us(added)}",
                f"{best['handler'] / best['no callbacks']:.2f}x invoke ({fmt_us(best['no callbacks'])})", "", "",
                f"of which LangChain's callback dispatch {fmt_us(best['empty handler'] - best['no callbacks'])}, "
                f"the handler's own work {fmt_us(ours)}")]


def _starlette_app() -> Any:
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    async def chat(request: Any) -> Any:
        return JSONResponse({"answer": "Paris."})

    return Starlette(routes=[Route("/chat/{session}", chat, methods=["POST"])])


def _requests_per_second(app: Any, requests: int) -> float:
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
        "path": "/chat/42", "raw_path": b"/chat/42", "query_string": b"", "root_path": "",
        "headers": [(b"host", b"bench"), (b"content-type", b"application/json"),
                    (b"traceparent", b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")],
        "client": ("127.0.0.1", 5000), "server": ("bench", 80),
    }
    body = {"type": "http.request", "body": b"{}", "more_body": False}

    async def receive() -> dict[str, Any]:
        return body

    async def send(message: dict[str, Any]) -> None:
        return None

    async def drive() -> float:
        for _ in range(min(requests, 200)):  # warm up
            await app(dict(scope), receive, send)
        start = time.perf_counter()
        for _ in range(requests):
            await app(dict(scope), receive, send)
        return requests / (time.perf_counter() - start)

    return asyncio.run(drive())


def asgi_rows(calls: int, repeat: int) -> list[Row]:
    try:
        app = _starlette_app()
        from llm_otel.integrations.asgi import LLMOtelMiddleware
    except ImportError as exc:
        return [Row("asgi", "LLMOtelMiddleware, Starlette", "-", verdict="skipped", note=str(exc))]
    tracer_provider, meter_provider = sdk_providers("batch")
    llm_otel.configure(tracer_provider=tracer_provider, meter_provider=meter_provider, set_global=False)
    apps = {"plain": app, "middleware": LLMOtelMiddleware(app)}
    try:  # contrib's server-span middleware: the usual way to trace an ASGI app, for scale
        from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware

        apps["contrib"] = OpenTelemetryMiddleware(app, tracer_provider=tracer_provider, meter_provider=meter_provider)
    except ImportError:
        pass
    requests = max(calls // 10, 500)
    best = dict.fromkeys(apps, 0.0)
    for _ in range(repeat):  # interleaved rounds, best of each
        for name, variant in apps.items():
            best[name] = max(best[name], _requests_per_second(variant, requests))
    llm_otel.shutdown()
    tracer_provider.shutdown()
    meter_provider.shutdown()

    def per_request(name: str) -> float:
        return 1e6 / best[name] - 1e6 / best["plain"]

    rows = [Row("asgi", "LLMOtelMiddleware, Starlette", f"{best['middleware']:.0f} req/s",
                f"{best['middleware'] / best['plain']:.2f}x of {best['plain']:.0f} req/s without",
                "", "", f"+{fmt_us(per_request('middleware'))} per request, in-process (no server)")]
    if "contrib" in best:
        rows.append(Row("asgi", "contrib OpenTelemetryMiddleware (reference)", f"{best['contrib']:.0f} req/s",
                        f"{best['contrib'] / best['plain']:.2f}x of plain", "", "",
                        f"+{fmt_us(per_request('contrib'))} per request: a server span and HTTP metrics"))
    return rows


def rows(calls: int, repeat: int) -> list[Row]:
    return langchain_rows(calls, repeat) + asgi_rows(calls, repeat)


if __name__ == "__main__":
    for row in rows(20000, 5):
        print(row)
