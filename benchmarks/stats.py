"""Percentiles and rates over measured samples."""

from __future__ import annotations

import math
from collections.abc import Sequence


def percentile(ordered: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (0 < q <= 100) of an ascending sequence; NaN when empty."""
    if not ordered:
        return math.nan
    rank = max(1, math.ceil(q / 100.0 * len(ordered)))
    return float(ordered[min(rank, len(ordered)) - 1])


def distribution(values: Sequence[float]) -> dict[str, float]:
    """n, min, p50, p90, p99, max, mean; rounded to 0.1."""
    ordered = sorted(values)
    if not ordered:
        return {"n": 0}
    return {
        "n": len(ordered),
        "min": round(ordered[0], 1),
        "p50": round(percentile(ordered, 50), 1),
        "p90": round(percentile(ordered, 90), 1),
        "p99": round(percentile(ordered, 99), 1),
        "max": round(ordered[-1], 1),
        "mean": round(sum(ordered) / len(ordered), 1),
    }


def per_second(count: float, millis: float) -> float:
    """`count` events over `millis` ms, per second; 0 when the span is not positive."""
    return round(count * 1000.0 / millis, 1) if millis > 0 else 0.0
