"""``python -m sample_apps.django_chat [runserver options]``: the chat sample on http://127.0.0.1:8001."""

from __future__ import annotations

import os
import sys

from sample_apps import common


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "sample_apps.django_chat.settings")
    from django.core.management import execute_from_command_line

    import llm_otel

    common.setup_telemetry("django-chat-sample")  # once per process, before serving
    args = list(sys.argv[1:] if argv is None else argv) or ["127.0.0.1:8001"]
    try:
        # --noreload: the autoreloader would run the app in a child process without this setup.
        execute_from_command_line(["django_chat", "runserver", "--noreload", *args])
    finally:
        llm_otel.shutdown()
    return 0


raise SystemExit(main())
