"""Settings of the Django chat sample (no database: the view only talks to an LLM)."""

from __future__ import annotations

import os

SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "sample-only-not-a-secret")
DEBUG = os.environ.get("DJANGO_DEBUG", "").lower() in {"1", "true", "yes"}
ALLOWED_HOSTS = ["127.0.0.1", "localhost", "[::1]", "testserver"]

INSTALLED_APPS: list[str] = []
DATABASES: dict[str, dict[str, str]] = {}
USE_TZ = True
ROOT_URLCONF = "sample_apps.django_chat.urls"

MIDDLEWARE = [
    # First, so the server span covers the whole request (and every LLM call inside it).
    "llm_otel.integrations.django.LLMOtelMiddleware",
    "django.middleware.common.CommonMiddleware",
]

# Options of the llm-otel middleware (see docs/integrations/django.md).
LLM_OTEL = {
    "EXCLUDED_PATHS": ["/health/"],
}
