"""Runs the Django chat sample in a fresh interpreter (Django settings are process-wide, and the
integration tests configure their own) and prints what the in-memory telemetry saw, as JSON.

    python -m tests.samples._django_probe '<request json>' ...   (ANTHROPIC_BASE_URL set by the caller)
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any


def main(bodies: list[str]) -> None:
    os.environ["DJANGO_SETTINGS_MODULE"] = "sample_apps.django_chat.settings"
    import django

    django.setup()
    from django.test import Client

    from llm_otel.testing import capture

    with capture() as telemetry:
        client = Client()
        responses = []
        for body in bodies:
            response = client.post("/chat/", data=body, content_type="application/json")
            responses.append({"status": response.status_code, "json": response.json()})
        health = client.get("/health/").status_code
        spans: list[dict[str, Any]] = [
            {
                "name": span.name,
                "kind": span.kind.name,
                "trace_id": span.context.trace_id if span.context else None,
                "attributes": {k: list(v) if isinstance(v, tuple) else v for k, v in (span.attributes or {}).items()},
            }
            for span in telemetry.spans()
        ]
        result = {
            "responses": responses,
            "health": health,
            "tree": telemetry.tree(),
            "traces": len(telemetry.traces()),
            "spans": spans,
            "input_tokens": telemetry.counter("llm.tokens.input"),
            "output_tokens": telemetry.counter("llm.tokens.output"),
            "cost": telemetry.histogram_sum("llm.cost.usd"),
            "cost_by_prompt": telemetry.histogram_sum("llm.cost.usd", {"llm.prompt.name": "support-chat"}),
            "rate_limited": telemetry.counter("llm.rate_limited"),
        }
    print(json.dumps(result))


if __name__ == "__main__":
    main(sys.argv[1:])
