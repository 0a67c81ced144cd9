"""Summaries of timing samples, shared by the jobs and the harness."""

from __future__ import annotations

import math
from collections.abc import Sequence


def percentile(ordered: Sequence[float], fraction: float) -> float:
    """Return the nearest-rank percentile of an ascending sequence (nan if empty)."""
    if not ordered:
        return math.nan
    rank = math.ceil(fraction * len(ordered))
    return float(ordered[min(max(rank, 1), len(ordered)) - 1])


def summarize(samples: Sequence[float]) -> dict[str, float]:
    """Return count, median, p99, mean and max of ``samples``."""
    ordered = sorted(samples)
    count = len(ordered)
    return {
        "count": count,
        "median": percentile(ordered, 0.5),
        "p99": percentile(ordered, 0.99),
        "mean": sum(ordered) / count if count else math.nan,
        "max": float(ordered[-1]) if count else math.nan,
    }
