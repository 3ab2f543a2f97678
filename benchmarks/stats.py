"""Pure arithmetic of the report: medians, percentiles, ratios."""

from __future__ import annotations

import math
from collections.abc import Sequence

__all__ = ["median", "ops_per_second", "percentile", "ratio"]


def median(samples: Sequence[float]) -> float:
    """The median of ``samples`` (the mean of the middle two for an even count)."""
    if not samples:
        raise ValueError("median of no samples")
    ordered = sorted(samples)
    mid = len(ordered) // 2
    if len(ordered) % 2:
        return ordered[mid]
    return (ordered[mid - 1] + ordered[mid]) / 2


def percentile(samples: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0-100) by the nearest-rank method."""
    if not samples:
        raise ValueError("percentile of no samples")
    if not 0 <= q <= 100:
        raise ValueError(f"percentile {q} is outside 0-100")
    ordered = sorted(samples)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def ops_per_second(ops: int, seconds: float) -> float:
    """Throughput of ``ops`` operations done in ``seconds``."""
    if seconds <= 0:
        raise ValueError(f"a duration must be positive, not {seconds}")
    return ops / seconds


def ratio(value: float | None, reference: float | None) -> float | None:
    """``value / reference``, or None when either is unknown or the reference is zero."""
    if value is None or reference is None or reference == 0:
        return None
    return value / reference
