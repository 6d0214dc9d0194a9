"""Sentence embeddings from the ``wordllama`` wheel (the ``eval`` extra), loaded offline.

The wheel ships its 256-dimension weights and tokenizer inside the package, so the
model is loaded from the package directory with downloads disabled: nothing is
fetched at run time, and a missing file is an error, never a download. The model
is loaded once, lazily, by the background evaluator thread (never on import or on
the request path).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from llm_otel._log import log_once

_lock = threading.Lock()
_model: Any = None
_failed = False


def available() -> bool:
    """Whether the ``eval`` extra is installed (checked without importing it)."""
    import importlib.util

    return importlib.util.find_spec("wordllama") is not None


def _import_quietly() -> Any:
    """Import wordllama without its import-time ``logging.basicConfig`` touching the host's root logger."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    try:
        import wordllama
    finally:
        for handler in root.handlers[:]:
            if handler not in handlers:
                root.removeHandler(handler)
        root.setLevel(level)
    return wordllama


def model() -> Any:
    """The loaded model, or None when the extra is missing or loading failed (logged once)."""
    global _model, _failed
    if _model is not None or _failed:
        return _model
    with _lock:
        if _model is None and not _failed:
            try:
                wordllama = _import_quietly()
                package_dir = Path(wordllama.__file__).parent
                _model = wordllama.WordLlama.load(
                    config="l2_supercat", dim=256, cache_dir=package_dir, disable_download=True
                )
            except Exception as exc:
                _failed = True
                log_once("embedding:load", "llm-otel: embedding model unavailable (%r); groundedness uses the "
                         "lexical check only (pip install 'llm-otel[eval]')", exc)
    return _model


def embed(texts: Sequence[str]) -> Any:
    """Unit-length embeddings, one row per text (a numpy array), or None without a model."""
    loaded = model()
    if loaded is None:
        return None
    return loaded.embed(list(texts), norm=True)
