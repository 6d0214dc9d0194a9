"""Multi-model router sample: ``python -m sample_apps.router`` (see app.py)."""

from sample_apps.router.app import (
    ROUTES,
    SAMPLE_PROMPTS,
    Answer,
    Route,
    Router,
    choose_task,
    complete,
    main,
    make_client,
)

__all__ = ["ROUTES", "SAMPLE_PROMPTS", "Answer", "Route", "Router", "choose_task", "complete", "main", "make_client"]
