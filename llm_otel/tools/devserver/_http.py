"""HTTP handling of the development stand-in server (standard library only).

One daemon thread per connection (HTTP/1.1 keep-alive, chunked server-sent
events). Stopping wakes every sleeping request, shuts down every open
connection and joins every thread, so tests end with no leaked threads or
sockets.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
import random
import socket
import socketserver
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any, cast
from urllib.parse import urlsplit

from . import _anthropic, _gemini, _openai, _responses
from ._faults import FAULT_HEADER, Fault, FaultPlan, parse_fault
from ._latency import LatencyProfile
from ._wire import Answer, ApiFamily, Endpoint, RequestError, dumps

logger = logging.getLogger("llm_otel.tools.devserver")

_MAX_BODY_BYTES = 64 * 1024 * 1024
POLL_SECONDS = 0.05

_ROUTES: dict[str, dict[str, tuple[ApiFamily, Endpoint]]] = {
    "/v1/chat/completions": {"POST": (_openai.OPENAI, _openai.chat_completions)},
    "/v1/responses": {"POST": (_openai.OPENAI, _responses.responses)},
    "/v1/embeddings": {"POST": (_openai.OPENAI, _openai.embeddings)},
    "/v1/messages": {"POST": (_anthropic.ANTHROPIC, _anthropic.messages)},
}


@dataclass(frozen=True)
class RecordedRequest:
    """One request the stand-in received, with what it decided to answer."""

    method: str
    path: str
    headers: Mapping[str, str]
    body: Any
    api: str
    status: int
    fault: str | None = None

    @property
    def stream(self) -> bool:
        if self.path.endswith(":streamGenerateContent"):  # Gemini names a stream in its path
            return True
        return isinstance(self.body, Mapping) and self.body.get("stream") is True


class State:
    """Settings and bookkeeping shared by the handler threads (all mutation under ``lock``)."""

    def __init__(self, latency: LatencyProfile, faults: FaultPlan, seed: int) -> None:
        self.latency = latency
        self.faults = faults
        self.seed = seed
        self.lock = threading.Lock()
        self.rng = random.Random(seed)
        self.stopping = threading.Event()
        self.requests: list[RecordedRequest] = []
        self.connections: set[socket.socket] = set()
        self._ids = 0

    def new_id(self, prefix: str) -> str:
        with self.lock:
            self._ids += 1
            number = self._ids
        return prefix + hashlib.sha256(f"{self.seed}:{number}".encode()).hexdigest()[:24]

    def now(self) -> int:
        return int(time.time())

    def draw_fault(self) -> Fault | None:
        with self.lock:
            return self.faults.draw(self.rng)

    def draw_first_chunk_seconds(self) -> float:
        with self.lock:
            return self.latency.first_chunk_seconds(self.rng)

    def record(self, request: RecordedRequest) -> None:
        with self.lock:
            self.requests.append(request)

    def track(self, connection: socket.socket) -> None:
        with self.lock:
            if not self.stopping.is_set():
                self.connections.add(connection)
                return
        _shutdown(connection)

    def untrack(self, connection: socket.socket) -> None:
        with self.lock:
            self.connections.discard(connection)

    def close_connections(self) -> None:
        with self.lock:
            self.stopping.set()
            connections = list(self.connections)
        for connection in connections:
            _shutdown(connection)


def _shutdown(connection: socket.socket) -> None:
    with contextlib.suppress(OSError):  # already closed by the peer
        connection.shutdown(socket.SHUT_RDWR)


class StandInHTTPServer(HTTPServer):
    """An ``HTTPServer`` with one daemon thread per connection, joined by :meth:`join_workers`."""

    request_queue_size = 128  # bursts of concurrent clients (load generators) must not be refused

    def __init__(self, address: tuple[str, int], state: State) -> None:
        self.state = state
        self.workers: set[threading.Thread] = set()
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, _Handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind resolves the host's FQDN, which can stall for seconds; skip it.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name, self.server_port = str(host), int(port)

    def process_request(self, request: Any, client_address: Any) -> None:
        worker = threading.Thread(
            target=self._work, args=(request, client_address), name="llm-otel-devserver-conn", daemon=True
        )
        with self.state.lock:
            self.workers = {thread for thread in self.workers if thread.is_alive()}
            self.workers.add(worker)
        worker.start()

    def _work(self, request: Any, client_address: Any) -> None:
        try:
            self.finish_request(request, client_address)
        except Exception:
            self.handle_error(request, client_address)
        finally:
            self.shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        logger.debug("stand-in connection from %s ended with an error", client_address, exc_info=True)

    def join_workers(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        with self.state.lock:
            workers = list(self.workers)
        for worker in workers:
            worker.join(max(0.0, deadline - time.monotonic()))


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "llm-otel-devserver"
    sys_version = ""
    timeout = 60  # idle keep-alive connections; stop() closes them right away

    @property
    def state(self) -> State:
        return cast(StandInHTTPServer, self.server).state

    def setup(self) -> None:
        super().setup()
        # Headers, body and every stream chunk are separate writes; Nagle + delayed ACK would add ~40 ms.
        with contextlib.suppress(OSError):
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.state.track(self.connection)

    def finish(self) -> None:
        try:
            super().finish()
        except OSError:
            pass  # the client went away before we flushed
        finally:
            self.state.untrack(self.connection)

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("%s " + format, self.address_string(), *args)

    def do_GET(self) -> None:
        self._dispatch()

    do_POST = do_PUT = do_PATCH = do_DELETE = do_GET

    # --- request handling -------------------------------------------------

    def _dispatch(self) -> None:
        try:
            self._handle()
        except (ConnectionError, TimeoutError):
            self.close_connection = True  # the client hung up; nothing left to tell it

    def _handle(self) -> None:
        path = urlsplit(self.path).path.rstrip("/") or "/"
        headers = {key.lower(): value for key, value in self.headers.items()}
        family: ApiFamily = _anthropic.ANTHROPIC if "anthropic-version" in headers else _openai.OPENAI
        if _gemini.PATH.match(path):
            family = _gemini.GEMINI
        body: Any = None
        try:
            if self.command == "POST":
                body = self._read_json()
            family, endpoint, body = self._route(path, headers, family, body)
            answer = endpoint(body, self.state)
            fault = self._choose_fault(headers, answer)
        except RequestError as error:
            self._record(path, headers, body, family, error.status)
            self._send_error(family, error.status, error.message)
            return
        except Exception:
            logger.exception("the stand-in server failed to answer %s %s", self.command, path)
            self._record(path, headers, body, family, 500)
            self._send_error(family, 500, "The stand-in server failed to build an answer.")
            return
        status = fault.status if fault is not None and fault.kind == "status" else 200
        self._record(path, headers, body, family, status, fault)
        self._answer(family, answer, fault)

    def _choose_fault(self, headers: Mapping[str, str], answer: Answer) -> Fault | None:
        """The request header wins over a prompt marker, which wins over the random rates."""
        spec = headers.get(FAULT_HEADER, answer.markers.get("fault"))
        if spec is None:
            return self.state.draw_fault()
        try:
            return parse_fault(spec)
        except ValueError as error:
            raise RequestError(400, str(error)) from None

    def _route(
        self, path: str, headers: Mapping[str, str], family: ApiFamily, body: Any
    ) -> tuple[ApiFamily, Endpoint, Any]:
        anthropic = family is _anthropic.ANTHROPIC
        if path == "/v1/models" and self.command == "GET":
            return family, _anthropic.list_models if anthropic else _openai.list_models, {}
        if path.startswith("/v1/models/") and self.command == "GET":
            retrieve = _anthropic.retrieve_model if anthropic else _openai.retrieve_model
            return family, retrieve, {"model": path.removeprefix("/v1/models/")}
        if family is _gemini.GEMINI:
            if self.command != "POST":
                raise RequestError(405, f"Method {self.command} is not allowed on {path}.")
            endpoint = _gemini.endpoint(path)
            if endpoint is None:
                raise RequestError(404, f"Unknown request URL: {self.command} {path}.")
            return family, endpoint, body
        methods = _ROUTES.get(path)
        if methods is None:
            raise RequestError(404, f"Unknown request URL: {self.command} {path}.")
        if self.command not in methods:
            raise RequestError(405, f"Method {self.command} is not allowed on {path}.")
        family, endpoint = methods[self.command]
        return family, endpoint, body

    def _read_json(self) -> Any:
        length = self.headers.get("content-length")
        if length is None or not length.isdigit():
            self.close_connection = True  # the unread body would corrupt the next request
            raise RequestError(400, "A JSON body with a Content-Length header is required.")
        if int(length) > _MAX_BODY_BYTES:
            self.close_connection = True
            raise RequestError(413, "The request body is too large.")
        raw = self.rfile.read(int(length))
        try:
            body = json.loads(raw)
        except ValueError:
            raise RequestError(400, "We could not parse the JSON body of your request.") from None
        if not isinstance(body, dict):
            raise RequestError(400, "The request body must be a JSON object.")
        return body

    def _record(
        self,
        path: str,
        headers: dict[str, str],
        body: Any,
        family: ApiFamily,
        status: int,
        fault: Fault | None = None,
    ) -> None:
        label = fault.label if fault is not None else None
        self.state.record(RecordedRequest(self.command, path, headers, body, family.name, status, label))

    def _answer(self, family: ApiFamily, answer: Answer, fault: Fault | None) -> None:
        state = self.state
        if fault is not None and fault.kind == "timeout" and not self._pause(state.faults.timeout_hold_s):
            return self._abort()
        if fault is not None and fault.kind == "status":
            return self._send_error(family, fault.status, _fault_message(fault.status), injected=True)
        if not self._pause(state.draw_first_chunk_seconds()):
            return self._abort()
        truncate = fault is not None and fault.kind == "truncate"
        if answer.frames is None:
            if not self._pause(state.latency.per_chunk_seconds * answer.output_tokens):
                return self._abort()
            return self._send_json(family, 200, answer.body, truncate=truncate)
        self._start_response(
            family,
            200,
            {
                "Content-Type": "text/event-stream; charset=utf-8",
                "Cache-Control": "no-cache",
                "Transfer-Encoding": "chunked",
            },
        )
        thinking = answer.reasoning_tokens
        for index, frame in enumerate(answer.frames):
            if truncate and index >= state.faults.truncate_after_events:
                return self._abort()
            if frame.tokens:
                if not self._pause(state.latency.per_chunk_seconds * (frame.tokens + thinking)):
                    return self._abort()
                thinking = 0
            self.wfile.write(b"%X\r\n%s\r\n" % (len(frame.data), frame.data))
        if truncate:
            return self._abort()
        self.wfile.write(b"0\r\n\r\n")

    def _abort(self) -> None:
        """Drop the connection without finishing the response (the client sees a cut body)."""
        self.close_connection = True

    def _pause(self, seconds: float) -> bool:
        """Sleep; False when the server is stopping or the client has hung up."""
        deadline = time.monotonic() + seconds
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return not self.state.stopping.is_set()
            if self.state.stopping.wait(min(remaining, POLL_SECONDS)) or self._client_gone():
                return False

    def _client_gone(self) -> bool:
        """True when the peer closed its side (a non-blocking peek reads end-of-file)."""
        connection = self.connection
        timeout = connection.gettimeout()
        try:
            connection.setblocking(False)
            peeked: bytes = connection.recv(1, socket.MSG_PEEK)
            return peeked == b""
        except BlockingIOError:
            return False  # nothing to read: still connected
        except OSError:
            return True
        finally:
            with contextlib.suppress(OSError):
                connection.settimeout(timeout)

    # --- writing ----------------------------------------------------------

    def _start_response(
        self, family: ApiFamily, status: int, headers: Mapping[str, str], request_id: str | None = None
    ) -> None:
        self.send_response(status)
        self.send_header(family.request_id_header, request_id or self.state.new_id("req_"))
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()

    def _send_json(
        self,
        family: ApiFamily,
        status: int,
        body: object,
        *,
        truncate: bool = False,
        extra: Mapping[str, str] | None = None,
        request_id: str | None = None,
    ) -> None:
        payload = dumps(body)
        headers = {"Content-Type": "application/json", "Content-Length": str(len(payload)), **(extra or {})}
        self._start_response(family, status, headers, request_id)
        if truncate:
            self.wfile.write(payload[: len(payload) // 2])
            return self._abort()
        self.wfile.write(payload)

    def _send_error(self, family: ApiFamily, status: int, message: str, *, injected: bool = False) -> None:
        extra: dict[str, str] = {}
        if status == 429:
            retry_after = self.state.faults.retry_after_s
            extra = {
                "retry-after": str(math.ceil(retry_after)),
                "retry-after-ms": str(round(retry_after * 1000)),
            }
        if injected:
            extra["x-standin-fault"] = str(status)
        request_id = self.state.new_id("req_")
        body = family.error_body(status, message, request_id)
        self._send_json(family, status, body, extra=extra, request_id=request_id)


def _fault_message(status: int) -> str:
    if status == 429:
        return "Rate limit reached (injected by the llm-otel stand-in server)."
    return f"Injected {status} error from the llm-otel stand-in server."
