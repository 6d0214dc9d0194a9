"""A deterministic local embedding: hashed bag of words, no model download, no API call.

Good enough to retrieve the right Markdown file from a small corpus; swap in a real
embedding model (``llama_index.embeddings.openai.OpenAIEmbedding``, ...) for real data.
"""

from __future__ import annotations

import hashlib
import math
import re

from llama_index.core.base.embeddings.base import BaseEmbedding

_WORD = re.compile(r"[a-z0-9]+")
_STOP_WORDS = frozenset(
    {"a", "an", "the", "is", "are", "of", "to", "and", "or", "in", "on", "for", "be", "it", "do", "how", "what",
     "my", "i", "we", "can", "does", "at", "by", "with"}
)

MODEL_NAME = "hashing-embedding-256"


class HashingEmbedding(BaseEmbedding):
    """Each word adds +-1 to one of ``dimensions`` buckets (chosen by a stable hash); unit length."""

    model_name: str = MODEL_NAME
    dimensions: int = 256

    @classmethod
    def class_name(cls) -> str:
        return "HashingEmbedding"

    def _vector(self, text: str) -> list[float]:
        vector = [0.0] * self.dimensions
        for word in _WORD.findall(text.lower()):
            if word in _STOP_WORDS:
                continue
            digest = hashlib.blake2b(word.encode(), digest_size=8).digest()
            bucket = int.from_bytes(digest[:4], "big") % self.dimensions
            vector[bucket] += 1.0 if digest[4] & 1 else -1.0
        norm = math.sqrt(sum(v * v for v in vector)) or 1.0
        return [v / norm for v in vector]

    def _get_query_embedding(self, query: str) -> list[float]:
        return self._vector(query)

    def _get_text_embedding(self, text: str) -> list[float]:
        return self._vector(text)

    async def _aget_query_embedding(self, query: str) -> list[float]:
        return self._vector(query)
