"""The telemetry contract: every instrument, unit, bucket layout and attribute key.

Nothing else in the package spells these strings. The observability files
(dashboards, alert rules) and the docs are checked against this module, so a
rename here fails those tests instead of silently breaking a panel.

``prometheus`` is the series name each instrument gets after the Collector's
``prometheus`` exporter with its default translation (dots to ``_``, unit
suffix unless the unit is ``1`` or an ``{annotation}``, ``_total`` on counters,
no namespace).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

InstrumentKind = Literal["counter", "histogram", "gauge"]

# --- span and metric attribute keys (GenAI semantic conventions v1.41.0) ---
GEN_AI_OPERATION_NAME = "gen_ai.operation.name"
GEN_AI_PROVIDER_NAME = "gen_ai.provider.name"
GEN_AI_NAMESPACE = "gen_ai."  # every GenAI convention attribute starts with it
GEN_AI_REQUEST_MODEL = "gen_ai.request.model"
GEN_AI_REQUEST_MAX_TOKENS = "gen_ai.request.max_tokens"
GEN_AI_REQUEST_TEMPERATURE = "gen_ai.request.temperature"
GEN_AI_REQUEST_TOP_P = "gen_ai.request.top_p"
GEN_AI_RESPONSE_MODEL = "gen_ai.response.model"
GEN_AI_RESPONSE_ID = "gen_ai.response.id"
GEN_AI_RESPONSE_FINISH_REASONS = "gen_ai.response.finish_reasons"
GEN_AI_USAGE_INPUT_TOKENS = "gen_ai.usage.input_tokens"
GEN_AI_USAGE_OUTPUT_TOKENS = "gen_ai.usage.output_tokens"
GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS = "gen_ai.usage.cache_read.input_tokens"
GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS = "gen_ai.usage.cache_creation.input_tokens"
GEN_AI_USAGE_REASONING_OUTPUT_TOKENS = "gen_ai.usage.reasoning.output_tokens"
GEN_AI_TOKEN_TYPE = "gen_ai.token.type"
GEN_AI_INPUT_MESSAGES = "gen_ai.input.messages"
GEN_AI_OUTPUT_MESSAGES = "gen_ai.output.messages"
GEN_AI_EVALUATION_NAME = "gen_ai.evaluation.name"
GEN_AI_EVALUATION_SCORE_VALUE = "gen_ai.evaluation.score.value"
GEN_AI_EVALUATION_SCORE_LABEL = "gen_ai.evaluation.score.label"
GEN_AI_EVALUATION_EXPLANATION = "gen_ai.evaluation.explanation"
GEN_AI_EVALUATION_RESULT_EVENT = "gen_ai.evaluation.result"
GEN_AI_TOOL_NAME = "gen_ai.tool.name"
GEN_AI_TOOL_DESCRIPTION = "gen_ai.tool.description"
GEN_AI_TOOL_TYPE = "gen_ai.tool.type"
GEN_AI_TOOL_CALL_ID = "gen_ai.tool.call.id"
GEN_AI_TOOL_CALL_ARGUMENTS = "gen_ai.tool.call.arguments"
GEN_AI_TOOL_CALL_RESULT = "gen_ai.tool.call.result"
GEN_AI_WORKFLOW_NAME = "gen_ai.workflow.name"
GEN_AI_AGENT_NAME = "gen_ai.agent.name"
GEN_AI_RETRIEVAL_QUERY_TEXT = "gen_ai.retrieval.query.text"
GEN_AI_REQUEST_STREAM = "gen_ai.request.stream"
GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK = "gen_ai.response.time_to_first_chunk"
ERROR_TYPE = "error.type"
SERVER_ADDRESS = "server.address"
SERVER_PORT = "server.port"

# The exception event (a log record with this event name, severity WARN) and its attributes.
GEN_AI_CLIENT_OPERATION_EXCEPTION = "gen_ai.client.operation.exception"
EXCEPTION_TYPE = "exception.type"
EXCEPTION_MESSAGE = "exception.message"
EXCEPTION_STACKTRACE = "exception.stacktrace"

# gen_ai.operation.name values
OP_CHAT = "chat"
OP_TEXT_COMPLETION = "text_completion"
OP_EMBEDDINGS = "embeddings"
OP_EXECUTE_TOOL = "execute_tool"
OP_RETRIEVAL = "retrieval"
OP_INVOKE_AGENT = "invoke_agent"
OP_INVOKE_WORKFLOW = "invoke_workflow"
OP_GENERATE_CONTENT = "generate_content"

# --- product extras ---
LLM_TASK_TYPE = "llm.task_type"
LLM_ROUTED_MODEL = "llm.routed_model"
LLM_ROUTE_REASON = "llm.route.reason"
LLM_PROMPT_NAME = "llm.prompt.name"
LLM_PROMPT_VERSION = "llm.prompt.version"
LLM_COST_USD = "llm.cost.usd"
LLM_COST_SOURCE = "llm.cost.source"
LLM_COST_UNPRICED_REASON = "llm.cost.unpriced_reason"
LLM_STREAM_CHUNKS = "llm.stream.chunks"
LLM_STREAM_OUTCOME = "llm.stream.outcome"  # how a call ended that did not run to completion
LLM_RETRIEVAL_DOCUMENT_COUNT = "llm.retrieval.document_count"
LLM_USAGE_UNKNOWN = "llm.usage.unknown_reason"
# on an outer call whose API call is recorded by an inner one (docs/instrumentation.md, "One record per API call")
LLM_RECORD_DEFERRED = "llm.record.deferred"
LLM_CONTENT_TRUNCATED = "llm.content.truncated"  # captured prompt/completion text was cut to the caps
LLM_ROLLUP_CALLS = "llm.calls"
LLM_ROLLUP_INPUT_TOKENS = "llm.usage.input_tokens"
LLM_ROLLUP_OUTPUT_TOKENS = "llm.usage.output_tokens"
LLM_ROLLUP_COST_USD = "llm.cost.usd_total"
LLM_ROLLUP_ERRORS = "llm.calls.errors"
LLM_ROLLUP_UNPRICED = "llm.calls.unpriced"

ROUTE_SPAN_NAME = "llm.route"
SERVICE_NAME = "service.name"  # resource attributes
SERVICE_INSTANCE_ID = "service.instance.id"

# Attribute keys of the kit's own health counters (llm_otel.input.unknown, llm_otel.telemetry.dropped).
SOURCE = "source"
REASON = "reason"
SIGNAL = "signal"
OVERFLOW_VALUE = "_other"
UNKNOWN_VALUE = "unknown"
RATE_LIMIT_ERROR_TYPE = "rate_limited"

# llm.stream.outcome values (a closed set: it is a metric label). Neither is an error.
STREAM_CLOSED_EARLY = "closed_early"  # the consumer stopped reading (GeneratorExit, close(), never iterated)
STREAM_CANCELLED = "cancelled"  # the caller was cancelled or interrupted (asyncio.CancelledError, Ctrl-C)
STREAM_OUTCOMES: frozenset[str] = frozenset({STREAM_CLOSED_EARLY, STREAM_CANCELLED})

# --- OTEL_SEMCONV_STABILITY_OPT_IN ---
# Default: the GenAI conventions as released in semantic-conventions v1.41.0. With
# gen_ai_latest_experimental in the variable (a comma-separated list, as the official
# instrumentations read it) the newer names of the semantic-conventions-genai repository.
SEMCONV_OPT_IN_ENV = "OTEL_SEMCONV_STABILITY_OPT_IN"
SEMCONV_DEFAULT = "default"
SEMCONV_LATEST = "gen_ai_latest_experimental"
SCHEMA_URL_V1_41 = "https://opentelemetry.io/schemas/1.41.0"

# Span attribute keys that only the latest mode uses (the default mode keeps the v1.41 names:
# gen_ai.usage.cache_creation.input_tokens, llm.prompt.name, llm.prompt.version).
GEN_AI_USAGE_CACHE_WRITE_INPUT_TOKENS = "gen_ai.usage.cache_write.input_tokens"
GEN_AI_PROMPT_NAME = "gen_ai.prompt.name"
GEN_AI_PROMPT_VERSION = "gen_ai.prompt.version"
GEN_AI_TOKEN_MODALITY = "gen_ai.token.modality"
TOKEN_MODALITY_UNKNOWN = "unknown"  # providers report no per-modality split the kit reads
# Operations the latest conventions call inference (gen_ai.client.inference.* metrics).
INFERENCE_OPERATIONS: frozenset[str] = frozenset({OP_CHAT, OP_TEXT_COMPLETION, OP_GENERATE_CONTENT})
# Span attribute renames the latest mode applies to the call site's labels (metric labels keep
# the kit's llm.prompt.* keys in both modes: the conventions define no prompt labels on metrics).
LATEST_SPAN_KEYS: dict[str, str] = {
    LLM_PROMPT_NAME: GEN_AI_PROMPT_NAME,
    LLM_PROMPT_VERSION: GEN_AI_PROMPT_VERSION,
}

# Attribute keys allowed on metrics (bounded by the cardinality guard).
METRIC_ATTRIBUTE_KEYS: tuple[str, ...] = (
    GEN_AI_OPERATION_NAME,
    GEN_AI_PROVIDER_NAME,
    GEN_AI_REQUEST_MODEL,
    GEN_AI_RESPONSE_MODEL,
    SERVER_ADDRESS,
    SERVER_PORT,
    LLM_TASK_TYPE,
    LLM_ROUTED_MODEL,
    LLM_PROMPT_NAME,
    LLM_PROMPT_VERSION,
    ERROR_TYPE,
    LLM_STREAM_OUTCOME,
)
# The streaming timing histograms carry no error.type in the conventions (they describe chunks received).
CHUNK_ATTRIBUTE_KEYS: tuple[str, ...] = tuple(k for k in METRIC_ATTRIBUTE_KEYS if k != ERROR_TYPE)

# --- bucket boundaries (semantic-convention advisory values) ---
TOKEN_BUCKETS: tuple[float, ...] = (
    1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864,
)
DURATION_BUCKETS: tuple[float, ...] = (
    0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92,
)
# Per-call cost in USD: from a tenth of a micro-dollar to a few dollars.
COST_BUCKETS: tuple[float, ...] = (
    1e-6, 5e-6, 1e-5, 5e-5, 1e-4, 5e-4, 1e-3, 5e-3, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0,
)
UTILIZATION_BUCKETS: tuple[float, ...] = (0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 1.0)


@dataclass(frozen=True)
class Instrument:
    name: str
    kind: InstrumentKind
    unit: str
    description: str
    prometheus: str
    buckets: tuple[float, ...] | None = None
    labels: tuple[str, ...] = METRIC_ATTRIBUTE_KEYS


TOKENS_INPUT = Instrument(
    "llm.tokens.input", "counter", "{token}",
    "Input (prompt) tokens billed, including cached input tokens.",
    "llm_tokens_input_total",
)
TOKENS_OUTPUT = Instrument(
    "llm.tokens.output", "counter", "{token}",
    "Output (completion) tokens billed, including reasoning tokens.",
    "llm_tokens_output_total",
)
COST = Instrument(
    "llm.cost.usd", "histogram", "{USD}",
    "Cost of one LLM call in US dollars.",
    "llm_cost_usd", COST_BUCKETS,
)
COST_UNPRICED = Instrument(
    "llm.cost.unpriced", "counter", "{call}",
    "LLM calls whose price is unknown (no cost recorded for them).",
    "llm_cost_unpriced_total",
)
TOKEN_USAGE = Instrument(
    "gen_ai.client.token.usage", "histogram", "{token}",
    "Number of input and output tokens used per call.",
    "gen_ai_client_token_usage", TOKEN_BUCKETS,
    (*METRIC_ATTRIBUTE_KEYS, GEN_AI_TOKEN_TYPE),
)
OPERATION_DURATION = Instrument(
    "gen_ai.client.operation.duration", "histogram", "s",
    "GenAI operation duration.",
    "gen_ai_client_operation_duration_seconds", DURATION_BUCKETS,
)
TIME_TO_FIRST_CHUNK = Instrument(
    "gen_ai.client.operation.time_to_first_chunk", "histogram", "s",
    "Time to receive the first chunk, measured from when the client issues the generation request "
    "to when the first chunk is received in the response stream.",
    "gen_ai_client_operation_time_to_first_chunk_seconds", DURATION_BUCKETS,
    CHUNK_ATTRIBUTE_KEYS,
)
TIME_PER_OUTPUT_CHUNK = Instrument(
    "gen_ai.client.operation.time_per_output_chunk", "histogram", "s",
    "Time per output chunk, recorded for each chunk received after the first one, measured as the "
    "time elapsed from the end of the previous chunk to the end of the current chunk.",
    "gen_ai_client_operation_time_per_output_chunk_seconds", DURATION_BUCKETS,
    CHUNK_ATTRIBUTE_KEYS,
)
ERRORS = Instrument(
    "llm.errors", "counter", "{error}",
    "LLM calls that ended in an error, by error.type.",
    "llm_errors_total",
)
RATE_LIMITED = Instrument(
    "llm.rate_limited", "counter", "{call}",
    "LLM calls rejected by the provider's rate limit (HTTP 429).",
    "llm_rate_limited_total",
)
QUALITY_ATTRIBUTE_KEYS: tuple[str, ...] = (
    GEN_AI_OPERATION_NAME,
    GEN_AI_PROVIDER_NAME,
    GEN_AI_REQUEST_MODEL,
    LLM_TASK_TYPE,
    LLM_ROUTED_MODEL,
    LLM_PROMPT_NAME,
    LLM_PROMPT_VERSION,
)
HALLUCINATION = Instrument(
    "llm.hallucination.score", "gauge", "{score}",
    "Latest hallucination score from an evaluator (0 = grounded, 1 = likely hallucination).",
    "llm_hallucination_score",
    labels=QUALITY_ATTRIBUTE_KEYS,
)
EVALUATION_SCORE_BUCKETS: tuple[float, ...] = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
EVALUATION_SCORE = Instrument(
    "llm.evaluation.score", "histogram", "{score}",
    "Evaluator scores (0..1) by evaluation name; for hallucination 0 = grounded, 1 = unsupported.",
    "llm_evaluation_score", EVALUATION_SCORE_BUCKETS,
    (*QUALITY_ATTRIBUTE_KEYS, GEN_AI_EVALUATION_NAME),
)
# drift signal label values: what moved away from the baseline window
LLM_DRIFT_SIGNAL = "llm.drift.signal"
DRIFT_PROMPT_EMBEDDING = "prompt_embedding"
DRIFT_ANSWER_EMBEDDING = "answer_embedding"
DRIFT_ANSWER_LENGTH = "answer_length"
DRIFT_REFUSAL_RATE = "refusal_rate"
DRIFT = Instrument(
    "llm.drift.score", "gauge", "{score}",
    "Distance of the recent window of sampled calls from the baseline window, per task type and signal "
    "(embedding signals: 1 - cosine of the centroids; answer length: relative change of the mean, capped at 1; "
    "refusal rate: absolute change).",
    "llm_drift_score",
    labels=(LLM_TASK_TYPE, LLM_DRIFT_SIGNAL),
)
CONTEXT_UTILIZATION = Instrument(
    "llm.context.utilization", "histogram", "1",
    "Input tokens divided by the model's context window, where the window is known.",
    "llm_context_utilization", UTILIZATION_BUCKETS,
)
TELEMETRY_DROPPED = Instrument(
    "llm_otel.telemetry.dropped", "counter", "{item}",
    "Spans or metric data points the kit could not deliver (queue full, export failed).",
    "llm_otel_telemetry_dropped_total",
    labels=("signal", "reason"),
)
INPUT_ANOMALIES = Instrument(
    "llm_otel.input.unknown", "counter", "{event}",
    "Bad or missing input the kit recorded as unknown (usage payloads, headers, callbacks).",
    "llm_otel_input_unknown_total",
    labels=("source", "reason"),
)

INSTRUMENTS: tuple[Instrument, ...] = (
    TOKENS_INPUT,
    TOKENS_OUTPUT,
    COST,
    COST_UNPRICED,
    TOKEN_USAGE,
    OPERATION_DURATION,
    TIME_TO_FIRST_CHUNK,
    TIME_PER_OUTPUT_CHUNK,
    ERRORS,
    RATE_LIMITED,
    HALLUCINATION,
    EVALUATION_SCORE,
    DRIFT,
    CONTEXT_UTILIZATION,
    TELEMETRY_DROPPED,
    INPUT_ANOMALIES,
)

# --- instruments of the latest mode (OTEL_SEMCONV_STABILITY_OPT_IN=gen_ai_latest_experimental) ---
# They replace gen_ai.client.token.usage, and for inference operations the duration and chunk
# histograms above; gen_ai.client.operation.duration stays for the other operations (embeddings,
# retrieval, tools). The kit's own llm.* instruments are the same in both modes.
USAGE_ATTRIBUTE_KEYS: tuple[str, ...] = (*CHUNK_ATTRIBUTE_KEYS, GEN_AI_TOKEN_MODALITY)
INFERENCE_DURATION = Instrument(
    "gen_ai.client.inference.duration", "histogram", "s",
    "Duration of a GenAI inference operation.",
    "gen_ai_client_inference_duration_seconds", DURATION_BUCKETS,
)
INFERENCE_TIME_TO_FIRST_CHUNK = Instrument(
    "gen_ai.client.inference.time_to_first_chunk", "histogram", "s",
    TIME_TO_FIRST_CHUNK.description,
    "gen_ai_client_inference_time_to_first_chunk_seconds", DURATION_BUCKETS,
    CHUNK_ATTRIBUTE_KEYS,
)
INFERENCE_TIME_PER_OUTPUT_CHUNK = Instrument(
    "gen_ai.client.inference.time_per_output_chunk", "histogram", "s",
    TIME_PER_OUTPUT_CHUNK.description,
    "gen_ai_client_inference_time_per_output_chunk_seconds", DURATION_BUCKETS,
    CHUNK_ATTRIBUTE_KEYS,
)
INFERENCE_OPERATION_INPUT_TOKENS = Instrument(
    "gen_ai.client.inference.operation.input_tokens", "histogram", "{token}",
    "The number of input (prompt) tokens used per inference operation.",
    "gen_ai_client_inference_operation_input_tokens", TOKEN_BUCKETS,
)
INFERENCE_OPERATION_OUTPUT_TOKENS = Instrument(
    "gen_ai.client.inference.operation.output_tokens", "histogram", "{token}",
    "The number of output (completion) tokens used per inference operation.",
    "gen_ai_client_inference_operation_output_tokens", TOKEN_BUCKETS,
)
USAGE_INPUT_TOKENS = Instrument(
    "gen_ai.client.inference.usage.input_tokens", "counter", "{token}",
    "The number of input (prompt) tokens used, including cached tokens.",
    "gen_ai_client_inference_usage_input_tokens_total", labels=USAGE_ATTRIBUTE_KEYS,
)
USAGE_OUTPUT_TOKENS = Instrument(
    "gen_ai.client.inference.usage.output_tokens", "counter", "{token}",
    "The number of output (completion) tokens used, including reasoning tokens.",
    "gen_ai_client_inference_usage_output_tokens_total", labels=USAGE_ATTRIBUTE_KEYS,
)
USAGE_CACHE_READ_INPUT_TOKENS = Instrument(
    "gen_ai.client.inference.usage.cache_read.input_tokens", "counter", "{token}",
    "The number of input tokens served from a provider-managed cache.",
    "gen_ai_client_inference_usage_cache_read_input_tokens_total", labels=USAGE_ATTRIBUTE_KEYS,
)
USAGE_CACHE_WRITE_INPUT_TOKENS = Instrument(
    "gen_ai.client.inference.usage.cache_write.input_tokens", "counter", "{token}",
    "The number of input tokens written to a provider-managed cache.",
    "gen_ai_client_inference_usage_cache_write_input_tokens_total", labels=USAGE_ATTRIBUTE_KEYS,
)
USAGE_REASONING_OUTPUT_TOKENS = Instrument(
    "gen_ai.client.inference.usage.reasoning.output_tokens", "counter", "{token}",
    "The number of output tokens used for reasoning (e.g. chain-of-thought, extended thinking).",
    "gen_ai_client_inference_usage_reasoning_output_tokens_total", labels=USAGE_ATTRIBUTE_KEYS,
)

LATEST_INSTRUMENTS: tuple[Instrument, ...] = (
    INFERENCE_DURATION,
    INFERENCE_TIME_TO_FIRST_CHUNK,
    INFERENCE_TIME_PER_OUTPUT_CHUNK,
    INFERENCE_OPERATION_INPUT_TOKENS,
    INFERENCE_OPERATION_OUTPUT_TOKENS,
    USAGE_INPUT_TOKENS,
    USAGE_OUTPUT_TOKENS,
    USAGE_CACHE_READ_INPUT_TOKENS,
    USAGE_CACHE_WRITE_INPUT_TOKENS,
    USAGE_REASONING_OUTPUT_TOKENS,
)
# Default-mode instruments the latest mode does not create (replaced by the ones above).
REPLACED_IN_LATEST: tuple[Instrument, ...] = (TOKEN_USAGE, TIME_TO_FIRST_CHUNK, TIME_PER_OUTPUT_CHUNK)


def prometheus_label(attribute_key: str) -> str:
    """The Prometheus label a metric attribute key becomes (dots to underscores)."""
    return attribute_key.replace(".", "_")
