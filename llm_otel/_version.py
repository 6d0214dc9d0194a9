# The one place the version is written; pyproject.toml reads it from here (tool.setuptools.dynamic).
# A literal, not importlib.metadata: looking the installed distribution up costs ~10 ms at import.
VERSION = "0.1.0"
