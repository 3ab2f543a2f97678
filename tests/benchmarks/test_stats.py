"""The arithmetic of the benchmark report."""

from __future__ import annotations

import pytest

from benchmarks.stats import median, ops_per_second, percentile, ratio


def test_median_of_odd_and_even_counts() -> None:
    assert median([3.0, 1.0, 2.0]) == 2.0
    assert median([4.0, 1.0, 3.0, 2.0]) == 2.5
    assert median([7.0]) == 7.0


def test_median_of_nothing_is_an_error() -> None:
    with pytest.raises(ValueError, match="no samples"):
        median([])


def test_percentile_by_nearest_rank() -> None:
    samples = list(range(1, 101))  # 1..100
    assert percentile(samples, 50) == 50
    assert percentile(samples, 99) == 99
    assert percentile(samples, 100) == 100
    assert percentile(samples, 0) == 1
    assert percentile([5, 1, 3], 50) == 3


def test_percentile_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="outside"):
        percentile([1], 101)
    with pytest.raises(ValueError, match="no samples"):
        percentile([], 50)


def test_ops_per_second() -> None:
    assert ops_per_second(1000, 0.5) == 2000
    with pytest.raises(ValueError, match="positive"):
        ops_per_second(1, 0)


def test_ratio_is_none_when_unknown() -> None:
    assert ratio(50.0, 200.0) == 0.25
    assert ratio(None, 1.0) is None
    assert ratio(1.0, None) is None
    assert ratio(1.0, 0.0) is None
