"""Reads usage, model, id and finish reasons from what an LLM call returned.

Duck-typed on purpose: the same code reads OpenAI v1 SDK objects (chat
completions, Responses API, streamed chunks and events), Anthropic SDK
messages and stream events, google-genai (Gemini) responses and stream chunks,
plain dicts shaped like any of them, and LangChain ``AIMessage.usage_metadata``
— without importing any of those libraries.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from llm_otel._bounds import TOKEN_COUNT_LIMIT
from llm_otel._memo import Memo
from llm_otel._usage import TokenUsage, UsageProblems, consistent, token_count

_MISSING = object()

# How each payload type is read, decided once per type. Pydantic models (the OpenAI and
# Anthropic SDK objects) keep fields in ``__dict__`` and extras in ``__pydantic_extra__``;
# reading those directly avoids pydantic's ``__getattr__``, which raises (slowly) for every
# absent field. Bounded, so payloads of endlessly new types cannot grow it.
_PLAIN, _MAPPING, _PYDANTIC = 0, 1, 2
_TYPE_KINDS: Memo[type, int] = Memo(512, {dict: _MAPPING})
_CLASS_ATTRS: Memo[tuple[type, str], bool] = Memo(512)


def _kind_of(cls: type) -> int:
    kind = _TYPE_KINDS.data.get(cls)
    if kind is None:
        try:
            if issubclass(cls, Mapping):
                kind = _MAPPING
            elif hasattr(cls, "__pydantic_fields__") and hasattr(cls, "__pydantic_extra__"):
                kind = _PYDANTIC
            else:
                kind = _PLAIN
        except Exception:  # a hostile metaclass
            kind = _PLAIN
        _TYPE_KINDS.admit(cls, kind)
    return kind


def _class_has(cls: type, name: str) -> bool:
    key = (cls, name)
    found = _CLASS_ATTRS.data.get(key)
    if found is None:
        try:
            found = hasattr(cls, name)
        except Exception:
            found = True  # let getattr decide
        _CLASS_ATTRS.admit(key, found)
    return found


def _get(obj: Any, name: str) -> Any:
    cls = type(obj)
    if cls is dict:  # most payloads
        return obj.get(name)
    if obj is None:
        return None
    kind = _TYPE_KINDS.data.get(cls)
    if kind is None:
        kind = _kind_of(cls)
    if kind == _MAPPING:
        try:
            return obj.get(name)
        except Exception:  # a Mapping whose get() is broken
            return None
    try:
        if kind == _PYDANTIC:
            value = obj.__dict__.get(name, _MISSING)
            if value is _MISSING:
                extra = obj.__pydantic_extra__
                value = extra.get(name, _MISSING) if extra else _MISSING
                if value is _MISSING:
                    if not _class_has(cls, name):
                        return None
                    value = getattr(obj, name, None)
        else:
            value = getattr(obj, name, None)
    except Exception:  # properties of half-built SDK objects can raise
        return None
    return None if callable(value) and not isinstance(value, (str, int, float)) else value


def _fields(obj: Any) -> dict[str, Any] | None:
    """A pydantic model's fields and extras as one dict (an SDK response read in one go),
    or None for anything else."""
    cls = type(obj)
    kind = _TYPE_KINDS.data.get(cls)
    if kind is None:
        kind = _kind_of(cls)
    if kind != _PYDANTIC:
        return None
    try:
        fields, extra = obj.__dict__, obj.__pydantic_extra__
    except Exception:  # a half-built model
        return None
    if type(fields) is not dict:
        return None
    return {**fields, **extra} if extra else fields


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


_NO_USAGE = TokenUsage()  # frozen, so one shared "nothing known yet" value serves every call


@dataclass(slots=True)
class ResponseFacts:
    usage: TokenUsage = _NO_USAGE
    response_model: str | None = None
    response_id: str | None = None
    finish_reasons: list[str] = field(default_factory=list)
    provider: str | None = None
    recognised: bool = False
    output_text: list[str] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        """Nothing learnt yet (a first response can then simply replace these facts)."""
        return (
            self.usage is _NO_USAGE and not self.recognised and self.response_model is None
            and self.response_id is None and self.provider is None and not self.finish_reasons
            and not self.output_text
        )

    def absorb(self, newer: ResponseFacts) -> None:
        """Fold in facts from a later stream chunk or event."""
        if newer.usage is not _NO_USAGE:
            self.usage = newer.usage if self.usage is _NO_USAGE else self.usage.merged(newer.usage)
        self.response_model = newer.response_model or self.response_model
        self.response_id = self.response_id or newer.response_id
        for reason in newer.finish_reasons:
            if reason not in self.finish_reasons:
                self.finish_reasons.append(reason)
        self.provider = self.provider or newer.provider
        self.recognised = self.recognised or newer.recognised
        if newer.output_text:
            self.output_text.extend(newer.output_text)


_PROVIDER_BY_MODULE = {"openai": "openai", "anthropic": "anthropic"}


def _provider_of(obj: Any) -> str | None:
    root = type(obj).__module__.partition(".")[0]
    return _PROVIDER_BY_MODULE.get(root)


def _count(value: Any, field: str, problems: UsageProblems) -> int | None:
    """``token_count`` with the two common cases (absent, a plain non-negative int) inline."""
    if value is None:
        return None
    if type(value) is int and 0 <= value < TOKEN_COUNT_LIMIT:
        return value
    return token_count(value, field, problems)


def openai_chat_usage(usage: Any, problems: UsageProblems) -> TokenUsage:
    if type(usage) is not dict:
        usage = _fields(usage) or usage
    if type(usage) is dict:  # read directly: the common payloads (dicts, SDK objects), and a hot path
        prompt, completion = usage.get("prompt_tokens"), usage.get("completion_tokens")
        prompt_details, completion_details = usage.get("prompt_tokens_details"), usage.get("completion_tokens_details")
    else:
        prompt, completion = _get(usage, "prompt_tokens"), _get(usage, "completion_tokens")
        prompt_details = _get(usage, "prompt_tokens_details")
        completion_details = _get(usage, "completion_tokens_details")
    input_tokens = _count(prompt, "input_tokens", problems)
    output_tokens = _count(completion, "output_tokens", problems)
    cache_read = cache_creation = None
    if prompt_details is not None:
        cache_read = _count(_get(prompt_details, "cached_tokens"), "cache_read_tokens", problems)
        cache_creation = _count(_get(prompt_details, "cache_write_tokens"), "cache_creation_tokens", problems)
    reasoning = None
    if completion_details is not None:
        reasoning = _count(_get(completion_details, "reasoning_tokens"), "reasoning_tokens", problems)
    found = TokenUsage(input_tokens, output_tokens, cache_read, cache_creation, reasoning)
    # zero or absent sub-counts can never exceed their totals
    return consistent(found, problems) if cache_read or cache_creation or reasoning else found


def openai_responses_usage(usage: Any, problems: UsageProblems) -> TokenUsage:
    return consistent(
        TokenUsage(
            input_tokens=token_count(_get(usage, "input_tokens"), "input_tokens", problems),
            output_tokens=token_count(_get(usage, "output_tokens"), "output_tokens", problems),
            cache_read_input_tokens=token_count(
                _get(_get(usage, "input_tokens_details"), "cached_tokens"), "cache_read_tokens", problems
            ),
            cache_creation_input_tokens=token_count(
                _get(_get(usage, "input_tokens_details"), "cache_write_tokens"), "cache_creation_tokens", problems
            ),
            reasoning_output_tokens=token_count(
                _get(_get(usage, "output_tokens_details"), "reasoning_tokens"), "reasoning_tokens", problems
            ),
        ),
        problems,
    )


def anthropic_usage(usage: Any, problems: UsageProblems) -> TokenUsage:
    """Anthropic reports cache reads/writes beside ``input_tokens``; the total is their sum."""
    base = token_count(_get(usage, "input_tokens"), "input_tokens", problems)
    cache_read = token_count(_get(usage, "cache_read_input_tokens"), "cache_read_tokens", problems)
    cache_creation = token_count(_get(usage, "cache_creation_input_tokens"), "cache_creation_tokens", problems)
    total_input = None if base is None else base + (cache_read or 0) + (cache_creation or 0)
    if total_input is not None and total_input >= TOKEN_COUNT_LIMIT:
        problems.add("input_tokens:out_of_range")
        total_input = None
    return TokenUsage(
        input_tokens=total_input,
        output_tokens=token_count(_get(usage, "output_tokens"), "output_tokens", problems),
        cache_read_input_tokens=cache_read,
        cache_creation_input_tokens=cache_creation,
    )


def langchain_usage(usage: Any, problems: UsageProblems) -> TokenUsage:
    """LangChain's ``usage_metadata`` already counts cache reads inside ``input_tokens``."""
    input_details = _get(usage, "input_token_details")
    output_details = _get(usage, "output_token_details")
    return consistent(
        TokenUsage(
            input_tokens=token_count(_get(usage, "input_tokens"), "input_tokens", problems),
            output_tokens=token_count(_get(usage, "output_tokens"), "output_tokens", problems),
            cache_read_input_tokens=token_count(_get(input_details, "cache_read"), "cache_read_tokens", problems),
            cache_creation_input_tokens=token_count(
                _get(input_details, "cache_creation"), "cache_creation_tokens", problems
            ),
            reasoning_output_tokens=token_count(_get(output_details, "reasoning"), "reasoning_tokens", problems),
        ),
        problems,
    )


def _sum_counts(first: int | None, second: int | None, field: str, problems: UsageProblems) -> int | None:
    if first is None and second is None:
        return None
    total = (first or 0) + (second or 0)
    if total >= TOKEN_COUNT_LIMIT:
        problems.add(f"{field}:out_of_range")
        return None
    return total


def _is_gemini_usage(usage: Any) -> bool:
    return usage is not None and (
        _get(usage, "prompt_token_count") is not None or _get(usage, "candidates_token_count") is not None
    )


def gemini_usage(usage: Any, problems: UsageProblems) -> TokenUsage:
    """Gemini's ``usage_metadata``: the prompt count already includes cached content; tool-use
    prompts are input too, and thoughts are counted apart from the candidates (the kit's output
    includes reasoning), as Google bills them."""
    prompt = token_count(_get(usage, "prompt_token_count"), "input_tokens", problems)
    tool_prompt = token_count(_get(usage, "tool_use_prompt_token_count"), "input_tokens", problems)
    candidates = _get(usage, "candidates_token_count")
    if candidates is None:  # embeddings and some newer responses name it so
        candidates = _get(usage, "response_token_count")
    answer = token_count(candidates, "output_tokens", problems)
    thoughts = token_count(_get(usage, "thoughts_token_count"), "reasoning_tokens", problems)
    return consistent(
        TokenUsage(
            input_tokens=_sum_counts(prompt, tool_prompt, "input_tokens", problems),
            output_tokens=_sum_counts(answer, thoughts, "output_tokens", problems),
            cache_read_input_tokens=token_count(
                _get(usage, "cached_content_token_count"), "cache_read_tokens", problems
            ),
            reasoning_output_tokens=thoughts,
        ),
        problems,
    )


def usage_from_mapping(usage: Any, problems: UsageProblems) -> TokenUsage:
    """Any usage-shaped object, told apart by the keys each provider uses."""
    if _get(usage, "prompt_tokens") is not None or _get(usage, "completion_tokens") is not None:
        return openai_chat_usage(usage, problems)
    if _is_gemini_usage(usage):
        return gemini_usage(usage, problems)
    if _get(usage, "input_tokens_details") is not None or _get(usage, "output_tokens_details") is not None:
        return openai_responses_usage(usage, problems)
    if _get(usage, "cache_read_input_tokens") is not None or _get(usage, "cache_creation_input_tokens") is not None:
        return anthropic_usage(usage, problems)
    if _get(usage, "input_token_details") is not None or _get(usage, "output_token_details") is not None:
        return langchain_usage(usage, problems)
    return openai_responses_usage(usage, problems)


def _texts(content: Any) -> list[str]:
    if isinstance(content, str):
        return [content]
    if isinstance(content, Sequence):
        return [text for block in content if isinstance(text := _get(block, "text"), str)]
    return []


def _chat_facts(obj: Any, facts: ResponseFacts, problems: UsageProblems, want_text: bool) -> None:
    usage = _get(obj, "usage")
    if usage is not None:
        facts.usage = openai_chat_usage(usage, problems)
    choices = _get(obj, "choices")
    if not isinstance(choices, (list, tuple)):
        choices = () if choices is None or isinstance(choices, (str, bytes, Mapping)) else _as_list(choices)
    for choice in choices:
        reason = _str(_get(choice, "finish_reason"))
        if reason and reason not in facts.finish_reasons:
            facts.finish_reasons.append(reason)
        if want_text:
            message = _get(choice, "message") or _get(choice, "delta")
            facts.output_text.extend(_texts(_get(message, "content")))


def _as_list(value: Any) -> list[Any]:
    try:
        return list(value)
    except Exception:  # not iterable after all
        return []


_RESPONSE_STATUS_REASON = {"completed": "stop", "failed": "error", "cancelled": "cancelled"}


def _responses_facts(obj: Any, facts: ResponseFacts, problems: UsageProblems, want_text: bool) -> None:
    usage = _get(obj, "usage")
    if usage is not None:
        facts.usage = openai_responses_usage(usage, problems)
    status = _str(_get(obj, "status"))
    reason = _str(_get(_get(obj, "incomplete_details"), "reason")) if status == "incomplete" else None
    reason = reason or (_RESPONSE_STATUS_REASON.get(status) if status else None)
    if reason:
        facts.finish_reasons = [reason]
    if want_text:
        for item in _get(obj, "output") or ():
            facts.output_text.extend(_texts(_get(item, "content")))


def _anthropic_message_facts(obj: Any, facts: ResponseFacts, problems: UsageProblems, want_text: bool) -> None:
    usage = _get(obj, "usage")
    if usage is not None:
        facts.usage = anthropic_usage(usage, problems)
    reason = _str(_get(obj, "stop_reason"))
    if reason:
        facts.finish_reasons = [reason]
    if want_text:
        facts.output_text.extend(_texts(_get(obj, "content")))


def _gemini_reason(value: Any) -> str | None:
    """A candidate's finish reason (the SDK's ``FinishReason`` enum, or its name) in lower case,
    like the other providers' reasons (``STOP`` -> ``stop``, ``MAX_TOKENS`` -> ``max_tokens``)."""
    if isinstance(value, Enum):
        value = value.value
    text = _str(value)
    return text.lower() if text else None


def _gemini_facts(obj: Any, facts: ResponseFacts, problems: UsageProblems, want_text: bool) -> None:
    """A google-genai ``GenerateContentResponse`` (or one stream chunk of it) or
    ``EmbedContentResponse``; each stream chunk carries the running usage, the last one the totals."""
    usage = _get(obj, "usage_metadata")
    if usage is not None:
        facts.usage = gemini_usage(usage, problems)
    for candidate in _as_list(_get(obj, "candidates") or ()):
        reason = _gemini_reason(_get(candidate, "finish_reason"))
        if reason and reason not in facts.finish_reasons:
            facts.finish_reasons.append(reason)
        if want_text:
            parts = _get(_get(candidate, "content"), "parts") or ()
            facts.output_text.extend(
                text for part in _as_list(parts)
                if isinstance(text := _get(part, "text"), str) and _get(part, "thought") is not True
            )
    facts.response_model = _str(_get(obj, "model_version"))
    facts.response_id = _str(_get(obj, "response_id"))


def _langchain_facts(obj: Any, facts: ResponseFacts, problems: UsageProblems, want_text: bool) -> None:
    usage = _get(obj, "usage_metadata")
    if usage is not None:
        facts.usage = langchain_usage(usage, problems)
    metadata = _get(obj, "response_metadata") or {}
    facts.response_model = _str(_get(metadata, "model_name")) or _str(_get(metadata, "model"))
    facts.provider = _str(_get(metadata, "model_provider"))
    # the provider's own response id; the message id is often LangChain's run id
    facts.response_id = _str(_get(metadata, "id"))
    reason = _str(_get(metadata, "finish_reason")) or _str(_get(metadata, "stop_reason"))
    if reason:
        facts.finish_reasons = [reason]
    if want_text:
        facts.output_text.extend(_texts(_get(obj, "content")))


def uneventful_chunk(chunk: Any) -> bool:
    """A chat completion chunk with no usage and no finish reason: past the first chunk of a
    stream it adds nothing but text, so a call that does not keep text can skip reading it."""
    if type(chunk) is dict:
        if chunk.get("object") != "chat.completion.chunk" or chunk.get("usage") is not None:
            return False
        choices = chunk.get("choices")
    else:
        if _get(chunk, "object") != "chat.completion.chunk" or _get(chunk, "usage") is not None:
            return False
        choices = _get(chunk, "choices")
    if type(choices) is not list:
        return False
    return all(_get(choice, "finish_reason") is None for choice in choices)


_CHAT_SHAPES = frozenset(("chat.completion", "chat.completion.chunk"))


def facts_from(obj: Any, problems: UsageProblems, *, want_text: bool = False) -> ResponseFacts:
    """Everything we can learn from one response, chunk or event; unrecognised input gives empty facts."""
    if type(obj) is dict:
        facts = ResponseFacts()
        kind, shape = obj.get("type"), obj.get("object")
    else:
        facts = ResponseFacts(provider=_provider_of(obj))
        if obj is None or isinstance(obj, (str, bytes, int, float, bool)):
            return facts
        fields = _fields(obj)
        if fields is not None and type(shape := fields.get("object")) is str and shape in _CHAT_SHAPES:
            obj = fields  # an SDK chat completion: its fields are all there is to read
        kind, shape = _get(obj, "type"), _get(obj, "object")
    kind = kind if type(kind) is str else ""
    shape = shape if type(shape) is str else ""
    facts.recognised = True
    if shape in _CHAT_SHAPES:  # the common case first
        _chat_facts(obj, facts, problems, want_text)
    elif _get(obj, "candidates") is not None or _is_gemini_usage(_get(obj, "usage_metadata")):
        _gemini_facts(obj, facts, problems, want_text)
    elif _get(obj, "usage_metadata") is not None or _get(obj, "response_metadata") is not None:
        _langchain_facts(obj, facts, problems, want_text)
    elif kind == "message":
        _anthropic_message_facts(obj, facts, problems, want_text)
        facts.provider = facts.provider or "anthropic"
    elif kind == "message_start":
        facts.absorb(facts_from(_get(obj, "message"), problems, want_text=want_text))
        facts.provider = facts.provider or "anthropic"
        return facts
    elif kind == "message_delta":
        usage = _get(obj, "usage")
        if usage is not None:
            facts.usage = anthropic_usage(usage, problems)
        reason = _str(_get(_get(obj, "delta"), "stop_reason"))
        facts.finish_reasons = [reason] if reason else []
        return facts
    elif kind == "content_block_delta" or kind == "response.output_text.delta":
        delta = _get(obj, "delta")
        if want_text:
            facts.output_text.extend([delta] if isinstance(delta, str) else _texts([delta]))
        return facts
    elif kind.startswith("response.") and _get(obj, "response") is not None:
        inner = facts_from(_get(obj, "response"), problems, want_text=want_text and kind != "response.completed")
        facts.absorb(inner)
        return facts
    elif _get(obj, "choices") is not None:
        _chat_facts(obj, facts, problems, want_text)
    elif shape == "response" or _get(obj, "output") is not None:
        _responses_facts(obj, facts, problems, want_text)
    elif _get(obj, "usage") is not None:
        facts.usage = usage_from_mapping(_get(obj, "usage"), problems)
    elif _get(obj, "input_tokens") is not None or _get(obj, "prompt_tokens") is not None:
        facts.usage = usage_from_mapping(obj, problems)
    else:
        facts.recognised = False
        return facts
    facts.response_model = facts.response_model or _str(_get(obj, "model"))
    facts.response_id = facts.response_id or _str(_get(obj, "id"))
    return facts
