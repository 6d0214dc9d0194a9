"""The public face of the development stand-in server: :class:`StandInServer`."""

from __future__ import annotations

import threading
from types import TracebackType

from ._faults import FaultPlan
from ._http import POLL_SECONDS, RecordedRequest, StandInHTTPServer, State
from ._latency import LatencyProfile


class StandInServer:
    """A local OpenAI-, Anthropic- and Gemini-compatible HTTP server for development and demos.

    It is a test double for paid LLM APIs, not a model: answers are
    deterministic filler (see :func:`expected_reply`). Point the official SDKs
    at :attr:`openai_base_url` / :attr:`anthropic_base_url` / :attr:`gemini_base_url`. Use as a context
    manager or call :meth:`start` / :meth:`stop`; ``port=0`` picks a free port.
    ``latency`` and ``faults`` may be replaced while the server runs.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        latency: LatencyProfile | None = None,
        faults: FaultPlan | None = None,
        seed: int = 0,
    ) -> None:
        self._address = (host, port)
        self._state = State(latency or LatencyProfile(), faults or FaultPlan(), seed)
        self._httpd: StandInHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # --- lifecycle --------------------------------------------------------

    def start(self) -> StandInServer:
        """Bind and serve in a background thread; returns ``self``."""
        if self._httpd is not None:
            raise RuntimeError("the stand-in server is already running")
        self._state.stopping.clear()
        self._httpd = StandInHTTPServer(self._address, self._state)
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": POLL_SECONDS},
            name="llm-otel-devserver",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Stop serving, cut open connections and join every thread (idempotent)."""
        httpd, thread = self._httpd, self._thread
        if httpd is None or thread is None:
            return
        self._state.stopping.set()
        httpd.shutdown()
        thread.join(timeout)
        self._state.close_connections()
        httpd.join_workers(timeout)
        httpd.server_close()
        self._httpd = self._thread = None

    def __enter__(self) -> StandInServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        return self._httpd is not None

    # --- addresses --------------------------------------------------------

    @property
    def host(self) -> str:
        return self._address[0]

    @property
    def port(self) -> int:
        if self._httpd is None:
            raise RuntimeError("the stand-in server is not running; call start() first")
        return int(self._httpd.server_address[1])

    @property
    def base_url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def openai_base_url(self) -> str:
        """For ``openai.OpenAI(base_url=...)`` / ``OPENAI_BASE_URL`` (ends in ``/v1``)."""
        return f"{self.base_url}/v1"

    @property
    def anthropic_base_url(self) -> str:
        """For ``anthropic.Anthropic(base_url=...)`` / ``ANTHROPIC_BASE_URL`` (the SDK adds ``/v1``)."""
        return self.base_url

    @property
    def gemini_base_url(self) -> str:
        """For ``genai.Client(http_options={"base_url": ...})`` / ``GOOGLE_GEMINI_BASE_URL`` (the SDK
        adds the API version; a Vertex AI express client, ``vertexai=True`` with an API key, works too)."""
        return self.base_url

    # --- behaviour and bookkeeping ------------------------------------------

    @property
    def latency(self) -> LatencyProfile:
        return self._state.latency

    @latency.setter
    def latency(self, value: LatencyProfile) -> None:
        self._state.latency = value

    @property
    def faults(self) -> FaultPlan:
        return self._state.faults

    @faults.setter
    def faults(self, value: FaultPlan) -> None:
        self._state.faults = value

    @property
    def requests(self) -> tuple[RecordedRequest, ...]:
        """Every request received so far, in arrival order of the answer decision."""
        with self._state.lock:
            return tuple(self._state.requests)

    @property
    def request_count(self) -> int:
        with self._state.lock:
            return len(self._state.requests)

    def clear_requests(self) -> None:
        with self._state.lock:
            self._state.requests.clear()
