"""What every sample shares: where the LLM API is, and how telemetry is set up.

The samples talk to a real LLM API through the official SDKs. When
``OPENAI_BASE_URL`` / ``ANTHROPIC_BASE_URL`` are not set, they start the local
stand-in API (``llm_otel.tools.devserver``, a development tool with deterministic
answers and no bill) in the background, so every sample runs without an API key.
Set the variables (and ``OPENAI_API_KEY`` / ``ANTHROPIC_API_KEY``) to use a real
provider or your own gateway instead.
"""

from __future__ import annotations

import atexit
import os
import socket
import threading
import urllib.parse
from typing import Any

import llm_otel

_lock = threading.Lock()
_stand_in: Any = None


def _start_stand_in() -> Any:
    """The process-wide stand-in server, started on first use and stopped at exit."""
    global _stand_in
    with _lock:
        if _stand_in is None:
            from llm_otel.tools.devserver import LatencyProfile, StandInServer

            server = StandInServer(latency=LatencyProfile.lognormal(120, 600, per_chunk_ms=2), seed=1)
            server.start()
            atexit.register(server.stop)
            print(f"[sample] no LLM base URL set: using the local stand-in API at {server.base_url}")
            _stand_in = server
        return _stand_in


def openai_base_url() -> str:
    """``OPENAI_BASE_URL``, or the URL of a local stand-in started for this process."""
    return os.environ.get("OPENAI_BASE_URL") or str(_start_stand_in().openai_base_url)


def anthropic_base_url() -> str:
    """``ANTHROPIC_BASE_URL``, or the URL of a local stand-in started for this process."""
    return os.environ.get("ANTHROPIC_BASE_URL") or str(_start_stand_in().anthropic_base_url)


def openai_api_key() -> str:
    # The stand-in accepts any key; a real provider needs OPENAI_API_KEY.
    return os.environ.get("OPENAI_API_KEY") or "stand-in"


def anthropic_api_key() -> str:
    return os.environ.get("ANTHROPIC_API_KEY") or "stand-in"


def setup_telemetry(service_name: str) -> llm_otel.Telemetry:
    """Call once at startup: OTLP to the local collector (``llm-otel stack up``) unless OTEL_* says otherwise."""
    telemetry = llm_otel.configure(service_name=service_name)
    _warn_without_collector()
    return telemetry


def _warn_without_collector() -> None:
    """A hint instead of a wall of exporter errors when nothing listens on the OTLP endpoint."""
    exporters = {os.environ.get("OTEL_TRACES_EXPORTER", "otlp"), os.environ.get("OTEL_METRICS_EXPORTER", "otlp")}
    if "otlp" not in exporters:
        return
    default = "http://localhost:4318" if os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL", "").startswith("http") \
        else "http://localhost:4317"
    endpoint = os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") or default
    parts = urllib.parse.urlsplit(endpoint if "://" in endpoint else f"http://{endpoint}")
    try:
        with socket.create_connection((parts.hostname or "localhost", parts.port or 4317), timeout=1):
            return
    except OSError:
        print(f"[sample] no collector answers at {endpoint}: telemetry will be dropped (and the OTLP exporter "
              "will log about it). Start the stack with `llm-otel stack up`, or set "
              "OTEL_TRACES_EXPORTER=none OTEL_METRICS_EXPORTER=none to run without one.")
