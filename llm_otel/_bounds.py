"""Bounds on every value the kit hands to the OpenTelemetry SDK.

One bad value may cost one field of one call, never a batch or the pipeline:
the OTLP encoders reject a whole request for a single string that is not valid
UTF-8 (a lone surrogate) or a single integer outside int64, and the Collector
rejects a whole request over its size limit (4 MiB for gRPC by default). So
strings that become metric labels, span names or span attributes are made valid
UTF-8, stripped of control characters and capped here, and token counts are
kept within [0, 2**53) (exact as a float, far below int64 even when summed).

Every check starts with a fast path for the common, already clean value (an
ASCII printable string within the cap) so the hot path pays a few comparisons.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Mapping
from typing import Any

TOKEN_COUNT_LIMIT = 2**53  # exclusive: counts are exact as floats (histogram sums, exemplars)
INT64_MAX = 2**63 - 1  # what an OTLP integer data point can carry
LABEL_MAX_CHARS = 128  # metric label values, and the identifiers that also name spans (models, providers)
LABEL_KEY_MAX_CHARS = 128
SPAN_NAME_MAX_CHARS = 2 * LABEL_MAX_CHARS + 32
LABELS_MAX = 32  # user labels per call: each one is repeated on every data point of the call
DEFAULT_ATTRIBUTE_MAX_CHARS = 4096
REPLACEMENT = "\ufffd"
TRUNCATION_MARK = "\u2026"  # appended to a capped text so a reader sees it was cut

# Lone surrogates cannot be encoded as UTF-8; C0/C1 controls break log lines and label syntax.
_LABEL_BAD = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
_TEXT_BAD = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff]")  # keeps tab, CR, LF


def _digest(value: str) -> str:
    return f"{zlib.crc32(value.encode('utf-8', 'surrogatepass')):08x}"


def label(value: str, cap: int = LABEL_MAX_CHARS) -> str:
    """A metric label value or identifier: valid UTF-8, no control characters, at most ``cap`` chars.

    A value over the cap keeps its head and a digest of the whole, so distinct long values
    stay distinct series (and still count against the cardinality cap one by one).
    """
    if len(value) <= cap and value.isascii() and value.isprintable():
        return value
    long = len(value) > cap
    head = value[: cap - 10] if long else value
    head = _LABEL_BAD.sub(REPLACEMENT, head)
    return f"{head}~{_digest(value)}{TRUNCATION_MARK}" if long else head


def text(value: str, cap: int) -> str:
    """Free text for a span attribute or status: valid UTF-8, controls other than tab/CR/LF
    replaced, at most ``cap`` chars (the cut marked with an ellipsis)."""
    if len(value) <= cap and value.isascii() and (value.isprintable() or not _TEXT_BAD.search(value)):
        return value
    long = len(value) > cap
    head = _TEXT_BAD.sub(REPLACEMENT, value[: cap - 1] if long else value)
    return head + TRUNCATION_MARK if long else head


def is_clean_label(value: object) -> bool:
    """A string that ``label`` would return unchanged (anything else is not)."""
    return type(value) is str and len(value) <= LABEL_MAX_CHARS and value.isascii() and value.isprintable()


def labels(values: Mapping[Any, Any]) -> dict[str, str]:
    """User labels as metric attributes: string keys and values, cleaned and capped, at most
    ``LABELS_MAX`` of them (the first ones given)."""
    out: dict[str, str] = {}
    for key, value in values.items():
        if not isinstance(key, str) or not key or value is None:
            continue  # an empty or odd key is no label
        if len(out) >= LABELS_MAX:
            from llm_otel._log import log_once

            log_once("labels:too-many", "llm-otel: more than %d labels on one call; the rest are ignored",
                     LABELS_MAX)
            break
        if not isinstance(value, str):
            try:
                value = str(value)
            except Exception:
                continue
        out[label(key, LABEL_KEY_MAX_CHARS)] = label(value)
    return out


def span_name(value: str) -> str:
    return label(value, SPAN_NAME_MAX_CHARS)


_SCALARS = (bool, int, float)


def attribute(value: Any, cap: int) -> Any:
    """A span attribute value made safe to encode, or None when it cannot be one."""
    kind = type(value)
    if kind is str:
        return text(value, cap)
    if kind is int:
        return value if -INT64_MAX - 1 <= value <= INT64_MAX else None
    if kind in _SCALARS:
        return value
    if kind in (list, tuple):
        items = [attribute(item, cap) for item in value[:LABELS_MAX * 4]]
        kinds = {type(item) for item in items}
        if None in items or len(kinds) > 1:
            return None  # OTLP arrays are homogeneous; a mixed one is dropped by the SDK anyway
        return items
    return None


def attributes(values: Mapping[Any, Any], cap: int) -> dict[str, Any]:
    """Attributes from outside the kit (request parameters, framework metadata), each bounded."""
    out: dict[str, Any] = {}
    for key, value in values.items():
        if not isinstance(key, str) or not key:
            continue
        cleaned = attribute(value, cap)
        if cleaned is not None:
            out[label(key, LABEL_KEY_MAX_CHARS)] = cleaned
    return out
