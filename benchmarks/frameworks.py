"""Framework adapters: the LangChain handler and the ASGI middleware, each against the framework alone.

    python benchmarks/frameworks.py

* LangChain: the handler on ``model.invoke()`` of a fake chat model, against the
  invoke alone, ``@traced_llm`` around it and OpenLLMetry's LangChain
  instrumentation (``langchain_handler.py``).
* ASGI: requests/s of a Starlette app driven in-process (no server, no sockets:
  the ASGI callable is awaited with a prepared scope), with and without
  ``LLMOtelMiddleware``; the endpoint makes no LLM call, so the figure is the
  middleware's own cost per request.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from _timing import Row, fmt_us, sdk_providers

import llm_otel


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


def rows(calls: int, repeat: int, peers_python: list[str] | None = None, instructions: bool = True) -> list[Row]:
    import langchain_handler

    return langchain_handler.rows(calls, repeat, peers_python, instructions) + asgi_rows(calls, repeat)


if __name__ == "__main__":
    for row in rows(20000, 5):
        print(row)
