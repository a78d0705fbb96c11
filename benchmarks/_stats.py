"""The summary statistics every benchmark reports, computed one way."""

from __future__ import annotations


def percentile(values: list[float], fraction: float) -> float:
    """The nearest-rank percentile (``fraction`` 0.5 = median, 0.95 = p95) of a non-empty list; no interpolation,
    so a reported p95 is a time some request really took."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]
