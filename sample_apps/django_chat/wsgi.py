"""WSGI entry point for a real server: ``gunicorn sample_apps.django_chat.wsgi``."""

from __future__ import annotations

import os

from django.core.wsgi import get_wsgi_application

from sample_apps import common

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "sample_apps.django_chat.settings")
common.setup_telemetry("django-chat-sample")
application = get_wsgi_application()
