"""The second line of defence: what reaches an exporter is encodable and small enough to be accepted.

The kit bounds its own values before they reach the SDK (``_bounds``), but a provider is
shared with other instrumentations, and one value the OTLP encoder refuses (a lone
surrogate, an integer past int64) fails the whole request, while a request over the
Collector's limit (4 MiB for gRPC by default) is refused whole. So the exporter wrappers
split what they are given into requests under ``REQUEST_TARGET_BYTES`` and, when a request
cannot be encoded, keep every item that can: only the offending spans or data points are
lost, and they are counted.

Costs: spans are measured by a cheap estimate on the export thread (never on the call
path); only a batch estimated near the limit, or one that failed, is encoded here to
find out exactly. Metrics are encoded once per export interval to check.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from opentelemetry.exporter.otlp.proto.common.metrics_encoder import encode_metrics
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.metrics.export import MetricsData
from opentelemetry.sdk.trace import ReadableSpan

COLLECTOR_LIMIT_BYTES = 4 * 1024 * 1024  # the Collector's default gRPC max_recv_msg_size
REQUEST_TARGET_BYTES = 3 * 1024 * 1024  # room for the resource, headers and the estimate's error


def _text_bytes(value: str) -> int:
    return len(value) if value.isascii() else 4 * len(value)  # isascii() is O(1) on str


def _attributes_bytes(attributes: Mapping[str, Any] | None) -> int:
    total = 0
    for key, value in (attributes or {}).items():
        total += _text_bytes(key) + 8
        if isinstance(value, str):
            total += _text_bytes(value)
        elif isinstance(value, (list, tuple)):
            total += sum(_text_bytes(v) + 4 if isinstance(v, str) else 10 for v in value)
        else:
            total += 10
    return total


def span_bytes(span: ReadableSpan) -> int:
    """An upper estimate of the span's encoded size (UTF-8 counted at 4 bytes a char unless ASCII)."""
    total = 96 + _text_bytes(span.name) + _attributes_bytes(span.attributes)
    for event in span.events:
        total += 24 + _text_bytes(event.name) + _attributes_bytes(event.attributes)
    for link in span.links:
        total += 48 + _attributes_bytes(link.attributes)
    if span.status.description:
        total += _text_bytes(span.status.description)
    return total


def encodes(spans: Sequence[ReadableSpan]) -> bool:
    try:
        encode_spans(spans)
    except Exception:
        return False
    return True


def encodable_spans(spans: Sequence[ReadableSpan]) -> tuple[list[ReadableSpan], int]:
    """The spans that encode on their own, and how many do not (bisected: a bad span costs
    ~2 log2(n) encodes of shrinking halves, not one encode per span)."""
    if encodes(spans):
        return list(spans), 0
    if len(spans) == 1:
        return [], 1
    middle = len(spans) // 2
    left, left_bad = encodable_spans(spans[:middle])
    right, right_bad = encodable_spans(spans[middle:])
    return left + right, left_bad + right_bad


def span_requests(spans: Sequence[ReadableSpan], target: int = REQUEST_TARGET_BYTES,
                  limit: int = COLLECTOR_LIMIT_BYTES) -> tuple[list[list[ReadableSpan]], int]:
    """``spans`` cut into requests estimated under ``target`` bytes, and how many spans were too
    large to send at all (a single span over ``limit`` once encoded)."""
    sizes = [span_bytes(span) for span in spans]
    if sum(sizes) <= target:
        return [list(spans)], 0
    requests: list[list[ReadableSpan]] = []
    current: list[ReadableSpan] = []
    used = 0
    too_large = 0
    for span, size in zip(spans, sizes, strict=True):
        if size > target:
            try:
                exact = encode_spans([span]).ByteSize()
            except Exception:
                exact = 0  # unencodable: left to the encode check, which counts it
            if exact > limit - 64 * 1024:
                too_large += 1
                continue
        if current and used + size > target:
            requests.append(current)
            current, used = [], 0
        current.append(span)
        used += size
    if current:
        requests.append(current)
    return requests, too_large


# --------------------------------------------------------------------------- metrics

_Point = tuple[int, int, int, Any]  # resource index, scope index, metric index, data point


def _points(data: MetricsData) -> Iterator[_Point]:
    for r, resource in enumerate(data.resource_metrics):
        for s, scope in enumerate(resource.scope_metrics):
            for m, metric in enumerate(scope.metrics):
                for point in metric.data.data_points:
                    yield r, s, m, point


def point_count(data: MetricsData) -> int:
    """Data points in an export: the unit the dropped counter uses for metrics."""
    return sum(1 for _ in _points(data))


def _subset(data: MetricsData, keep: Sequence[_Point]) -> MetricsData:
    """``data`` with only the data points in ``keep`` (in their order), empty containers left out."""
    chosen: dict[tuple[int, int, int], list[Any]] = {}
    for r, s, m, point in keep:
        chosen.setdefault((r, s, m), []).append(point)
    resources = []
    for r, resource in enumerate(data.resource_metrics):
        scopes = []
        for s, scope in enumerate(resource.scope_metrics):
            metrics = []
            for m, metric in enumerate(scope.metrics):
                points = chosen.get((r, s, m))
                if points:
                    aggregated: Any = metric.data
                    metrics.append(dataclasses.replace(metric, data=dataclasses.replace(aggregated,
                                                                                         data_points=points)))
            if metrics:
                scopes.append(dataclasses.replace(scope, metrics=metrics))
        if scopes:
            resources.append(dataclasses.replace(resource, scope_metrics=scopes))
    return MetricsData(resource_metrics=resources)


def metric_requests(data: MetricsData, target: int = REQUEST_TARGET_BYTES,
                    limit: int = COLLECTOR_LIMIT_BYTES) -> tuple[list[MetricsData], int, int]:
    """``data`` as requests that encode and fit under ``target`` bytes; also how many data points
    could not be encoded and how many were too large alone."""
    try:
        size = encode_metrics(data).ByteSize()
    except Exception:
        size = -1
    if 0 <= size <= target:
        return [data], 0, 0
    points = list(_points(data))
    good: list[tuple[_Point, int]] = []
    bad = too_large = 0
    for point in points:
        try:
            point_size = encode_metrics(_subset(data, [point])).ByteSize()
        except Exception:
            bad += 1
            continue
        if point_size > limit - 64 * 1024:
            too_large += 1
            continue
        good.append((point, point_size))
    requests: list[MetricsData] = []
    current: list[_Point] = []
    used = 0
    for point, point_size in good:
        if current and used + point_size > target:
            requests.append(_subset(data, current))
            current, used = [], 0
        current.append(point)
        used += point_size
    if current:
        requests.append(_subset(data, current))
    return requests, bad, too_large
