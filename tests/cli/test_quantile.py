"""The quantile-from-buckets helper behind the demo's p50/p95 columns."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from llm_otel._names import DURATION_BUCKETS
from llm_otel.tools._demo import _Histogram, bucket_quantile


def test_no_observations_has_no_quantile() -> None:
    assert bucket_quantile(0.5, [1, 2], [0, 0, 0]) is None
    assert bucket_quantile(0.5, [], [0]) is None


def test_interpolates_linearly_inside_the_bucket() -> None:
    # 10 observations in (1, 2]: the median is half way through that bucket.
    assert bucket_quantile(0.5, [1, 2, 4], [0, 10, 0, 0]) == pytest.approx(1.5)
    assert bucket_quantile(0.9, [1, 2, 4], [0, 10, 0, 0]) == pytest.approx(1.9)
    # 4 in (0, 10] and 4 in (10, 20]: p75 is the middle of the second bucket.
    assert bucket_quantile(0.75, [10, 20], [4, 4, 0]) == pytest.approx(15.0)


def test_first_bucket_starts_at_zero_or_is_its_bound_when_not_positive() -> None:
    assert bucket_quantile(0.5, [10], [4, 0]) == pytest.approx(5.0)
    assert bucket_quantile(0.5, [-1, 5], [3, 0, 0]) == -1


def test_rank_in_the_overflow_bucket_gives_the_highest_finite_bound() -> None:
    assert bucket_quantile(0.99, [1, 2], [1, 0, 99]) == 2


def test_extreme_quantiles_pick_the_first_and_last_non_empty_buckets() -> None:
    counts = [0, 3, 0, 5, 0]  # (1,2] and (4,8]
    assert bucket_quantile(0.0, [1, 2, 4, 8], counts) == pytest.approx(1.0)
    assert bucket_quantile(1.0, [1, 2, 4, 8], counts) == pytest.approx(8.0)


def test_bad_arguments_raise() -> None:
    with pytest.raises(ValueError):
        bucket_quantile(1.5, [1], [1, 0])
    with pytest.raises(ValueError):
        bucket_quantile(0.5, [1, 2], [1, 0])


def _layout(samples: list[float], bounds: tuple[float, ...]) -> list[int]:
    counts = [0] * (len(bounds) + 1)
    for value in samples:
        counts[next((i for i, b in enumerate(bounds) if value <= b), len(bounds))] += 1
    return counts


@given(
    samples=st.lists(st.floats(min_value=0.001, max_value=60.0), min_size=1, max_size=200),
    q=st.floats(min_value=0.0, max_value=1.0),
)
def test_estimate_lies_in_the_bucket_of_the_true_quantile(samples: list[float], q: float) -> None:
    bounds = DURATION_BUCKETS
    estimate = bucket_quantile(q, bounds, _layout(samples, bounds))
    ordered = sorted(samples)
    true_value = ordered[max(0, math.ceil(q * len(ordered)) - 1)]
    index = next((i for i, b in enumerate(bounds) if true_value <= b), len(bounds))
    assert estimate is not None
    if index == len(bounds):
        assert estimate == bounds[-1]
    else:
        lower = bounds[index - 1] if index else 0.0
        assert lower - 1e-12 <= estimate <= bounds[index] + 1e-12


def test_merged_sdk_points_are_clamped_to_the_observed_range() -> None:
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    histogram = provider.get_meter("t").create_histogram(
        "d", unit="s", explicit_bucket_boundaries_advisory=list(DURATION_BUCKETS)
    )
    for value in (0.30, 0.31, 0.33):
        histogram.record(value, {"model": "a"})
    histogram.record(0.35, {"model": "b"})
    data = reader.get_metrics_data()
    provider.shutdown()
    merged = _Histogram()
    for point in data.resource_metrics[0].scope_metrics[0].metrics[0].data.data_points:
        merged.add(point)

    assert merged.count == 4
    assert merged.total == pytest.approx(1.29)
    # All four fall in (0.32, 0.64] or (0.16, 0.32]; the estimate never leaves [min, max].
    for q in (0.0, 0.5, 0.95, 1.0):
        value = merged.quantile(q)
        assert value is not None and 0.30 <= value <= 0.35
