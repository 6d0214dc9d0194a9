"""Framework adapters for llm-otel, importable as ``llm_otel.integrations.<name>``.

Each adapter imports its framework only when it is imported itself, so
``import llm_otel`` never pulls in a web or LLM framework. Install the matching
extra, e.g. ``pip install 'llm-otel[django]'``.
"""
