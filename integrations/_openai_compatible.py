"""Which provider serves an OpenAI-compatible client, told by the client's base URL.

Many providers speak the OpenAI API; the ``openai`` SDK pointed at them is the same
code with another ``base_url``. Prices and dashboards need the provider that served
the call, so the instrumentor reads it from the host (a table documented in
docs/integrations/openai.md). Unknown hosts report ``openai`` (the API spoken);
``instrument(provider_by_host={...})`` names self-hosted servers (vLLM, LM Studio, ...).
"""

from __future__ import annotations

import contextlib
import weakref
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

# values follow gen_ai.provider.name where the conventions list one
PROVIDER_BY_HOST: Mapping[str, str] = {
    "api.openai.com": "openai",
    "api.groq.com": "groq",
    "openrouter.ai": "openrouter",
    "api.together.xyz": "together_ai",
    "api.together.ai": "together_ai",
    "api.deepseek.com": "deepseek",
    "api.mistral.ai": "mistral_ai",
    "api.x.ai": "x_ai",
    "api.fireworks.ai": "fireworks_ai",
    "api.perplexity.ai": "perplexity",
    "generativelanguage.googleapis.com": "gcp.gemini",
    "api.cerebras.ai": "cerebras",
}
# host suffixes: Azure OpenAI resources and Azure AI Foundry endpoints
PROVIDER_BY_HOST_SUFFIX: tuple[tuple[str, str], ...] = (
    (".openai.azure.com", "azure.ai.openai"),
    (".services.ai.azure.com", "azure.ai.openai"),
    (".cognitiveservices.azure.com", "azure.ai.openai"),
)
# well-known local ports of OpenAI-compatible servers
PROVIDER_BY_PORT: Mapping[int, str] = {11434: "ollama"}

DEFAULT_PROVIDER = "openai"
_CACHE_MAX = 256  # one entry per distinct base URL; a process has a handful


class ProviderResolver:
    """Base URL → provider name, cached per URL string."""

    def __init__(self, by_host: Mapping[str, str] | None = None) -> None:
        self._by_host = {str(k).lower(): str(v) for k, v in (by_host or {}).items()}
        self._cache: dict[str, str] = {}
        # per client, with the URL object it had (a client's base_url can be replaced)
        self._by_client: weakref.WeakKeyDictionary[Any, tuple[Any, str]] = weakref.WeakKeyDictionary()

    def provider_of(self, client: Any) -> str:
        if type(client).__name__.startswith(("AzureOpenAI", "AsyncAzureOpenAI")):
            return "azure.ai.openai"
        # the SDK's base_url property and rendering the URL cost more than the rest of the call's
        # bookkeeping: a client is looked up by the URL object it holds (it may be replaced)
        try:
            url = vars(client).get("_base_url")
            known = self._by_client.get(client)
        except TypeError:  # no instance dict, or not weak-referenceable
            url, known = None, None
        if url is not None and known is not None and known[0] is url:
            return known[1]
        if url is None:
            url = getattr(client, "base_url", None)
        base_url = str(url or "")
        found = self._cache.get(base_url)
        if found is None:
            found = self._resolve(base_url)
            if len(self._cache) < _CACHE_MAX:
                self._cache[base_url] = found
        with contextlib.suppress(TypeError):
            self._by_client[client] = (url, found)
        return found

    def _resolve(self, base_url: str) -> str:
        try:
            parts = urlsplit(base_url)
            host = (parts.hostname or "").lower()
            port = parts.port
        except ValueError:
            return DEFAULT_PROVIDER
        if port is not None and f"{host}:{port}" in self._by_host:
            return self._by_host[f"{host}:{port}"]
        if host in self._by_host:
            return self._by_host[host]
        if host in PROVIDER_BY_HOST:
            return PROVIDER_BY_HOST[host]
        for suffix, provider in PROVIDER_BY_HOST_SUFFIX:
            if host.endswith(suffix):
                return provider
        if port is not None and port in PROVIDER_BY_PORT:
            return PROVIDER_BY_PORT[port]
        return DEFAULT_PROVIDER
