"""The end-to-end pipeline with OTEL_SEMCONV_STABILITY_OPT_IN=gen_ai_latest_experimental.

Every test of test_pipeline.py runs again, on a stack of its own: the dashboard and alert
queries must find data under the newer GenAI names as well.
"""

from __future__ import annotations

from llm_otel import _names as n

from .test_pipeline import *  # noqa: F403  (the same tests and module fixtures, collected here again)

SEMCONV = n.SEMCONV_LATEST
