"""llm-otel: OpenTelemetry-native monitoring for Python LLM applications.

>>> import llm_otel
>>> llm_otel.configure(service_name="chatbot")       # OTLP to localhost:4317 by default
>>> @llm_otel.traced_llm(provider="openai")
... def ask(prompt: str, model: str = "gpt-4o-mini"):
...     return client.chat.completions.create(model=model, messages=[{"role": "user", "content": prompt}])
"""

from llm_otel._call import CallSpec, LLMCall, llm_call, start_call
from llm_otel._content import default_redactor
from llm_otel._context import RequestRollup, labels, request_rollup
from llm_otel._decorator import traced_llm
from llm_otel._instrument import instrument, uninstrument
from llm_otel._judge import LLMJudge
from llm_otel._pricing import Price
from llm_otel._quality import EvaluationSample, record_quality
from llm_otel._retrieved import add_retrieved_context
from llm_otel._route import route
from llm_otel._runtime import Telemetry, configure, current, force_flush, shutdown
from llm_otel._usage import TokenUsage
from llm_otel._version import VERSION as __version__

__all__ = [
    "CallSpec",
    "EvaluationSample",
    "LLMCall",
    "LLMJudge",
    "Price",
    "RequestRollup",
    "Telemetry",
    "TokenUsage",
    "__version__",
    "add_retrieved_context",
    "configure",
    "current",
    "default_redactor",
    "force_flush",
    "instrument",
    "labels",
    "llm_call",
    "record_quality",
    "request_rollup",
    "route",
    "shutdown",
    "start_call",
    "traced_llm",
    "uninstrument",
]
