"""Helpers shared by the stand-in server tests."""

from __future__ import annotations

import threading


def devserver_threads() -> list[threading.Thread]:
    """Threads the stand-in server started and has not joined."""
    return [thread for thread in threading.enumerate() if thread.name.startswith("llm-otel-devserver")]
