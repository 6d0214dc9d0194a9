"""Django chat sample: a JSON chat view behind llm-otel's Django middleware.

Run it (from the repository root)::

    python -m sample_apps.django_chat                 # http://127.0.0.1:8001, stand-in LLM API
    curl -s localhost:8001/chat/ -H 'content-type: application/json' \\
         -d '{"message": "Do you ship to Norway?"}'

Every request is one trace::

    POST /chat/                     SERVER  http.*, llm.calls, llm.usage.*, llm.cost.usd_total
    └── chat claude-haiku-4-5       CLIENT  gen_ai.provider.name=anthropic, tokens, llm.cost.usd,
                                            llm.prompt.name=support-chat

Environment: ``ANTHROPIC_BASE_URL`` (default: a local stand-in API is started),
``OTEL_EXPORTER_OTLP_ENDPOINT`` (default: the local collector).
"""

from __future__ import annotations

import json
from typing import Any

import anthropic
from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST

from sample_apps.django_chat.llm import ask_claude

MAX_HISTORY = 10


@csrf_exempt  # a JSON API for the sample; keep CSRF protection for browser forms
@require_POST
def chat(request: HttpRequest) -> JsonResponse:
    try:
        payload: Any = json.loads(request.body or b"{}")
    except ValueError:
        return JsonResponse({"error": "the body must be JSON"}, status=400)
    message = payload.get("message") if isinstance(payload, dict) else None
    if not isinstance(message, str) or not message.strip():
        return JsonResponse({"error": "'message' (a non-empty string) is required"}, status=400)
    history = payload.get("history") if isinstance(payload.get("history"), list) else []
    messages = [*history[-MAX_HISTORY:], {"role": "user", "content": message}]
    try:
        reply = ask_claude(messages)
    except anthropic.RateLimitError:
        return JsonResponse({"error": "the model is busy, retry in a moment"}, status=503)
    text = "".join(block.text for block in reply.content if block.type == "text")
    return JsonResponse({"reply": text, "model": reply.model})


@require_GET
def health(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"status": "ok"})
