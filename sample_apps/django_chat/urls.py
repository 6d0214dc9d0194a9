from __future__ import annotations

from django.urls import path

from sample_apps.django_chat import views

urlpatterns = [
    path("chat/", views.chat),
    path("health/", views.health),
]
