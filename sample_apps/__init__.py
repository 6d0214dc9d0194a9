"""Runnable sample applications instrumented with llm-otel (see sample_apps/README.md).

Run each from the repository root with ``python -m sample_apps.<name>``.
"""
