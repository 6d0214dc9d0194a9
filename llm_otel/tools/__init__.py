"""The command-line tools: the ``llm-otel`` command (demo, stack, doctor) and the stand-in LLM server.

They are built on the kit; the kit never imports them (tests/cli/test_import_rules.py).

- ``llm-otel demo | stack up/down/status | doctor``: ``llm_otel.tools.cli``
- ``python -m llm_otel.tools.devserver``: an OpenAI/Anthropic-compatible stand-in server for tests and demos
"""
