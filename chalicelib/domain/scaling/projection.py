"""Least-squares trend of the load, and when utilization would cross a threshold."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from chalicelib.domain.scaling.config import Trend
from chalicelib.domain.scaling.formatting import iso_utc

_HOUR_MS = 3_600_000


@dataclass(frozen=True)
class Projection:
    """Least-squares trend of the load and when utilization would cross a threshold.

    ``slope_per_hour`` is in load units per hour, ``slope_pct_per_hour`` in utilization
    points per hour. ``crosses_at_ms`` is None when the trend never gets there (flat,
    falling, too little data) or utilization is already at or above it (``already_above``).
    """

    samples: int
    slope_per_hour: float
    slope_pct_per_hour: float
    fitted_now: float | None
    utilization_now_pct: float | None
    threshold_pct: float
    crosses_at_ms: int | None
    already_above: bool
    trend: Trend

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form: every field, in order, with ``crosses_at`` (ISO) right after ``crosses_at_ms``."""
        form: dict[str, Any] = {}
        for name, value in asdict(self).items():
            form[name] = value
            if name == "crosses_at_ms":
                form["crosses_at"] = None if value is None else iso_utc(value)
        return form


def projection(points: Sequence[tuple[int, float]], capacity: float, threshold_pct: float, now_ms: int) -> Projection:
    """Fit ``load = a + b * t`` to ``(ts_ms, load)`` and extrapolate to ``now_ms`` and beyond.

    ``capacity`` is the load that is 100 % (``Target.total_capacity``). A slope whose
    change over the window is below 1e-9 of the mean load counts as flat.
    """
    if not (math.isfinite(capacity) and capacity > 0):
        raise ValueError("capacity must be a positive number")
    pts = [(t, v) for t, v in points if math.isfinite(v)]
    threshold_value = threshold_pct / 100 * capacity
    if not pts:
        return Projection(0, 0.0, 0.0, None, None, threshold_pct, None, False, "insufficient_data")
    n = len(pts)
    t_mean = math.fsum(t for t, _ in pts) / n
    v_mean = math.fsum(v for _, v in pts) / n
    sxx = math.fsum((t - t_mean) ** 2 for t, _ in pts)
    slope_ms = 0.0
    trend: Trend = "insufficient_data"
    if n >= 2 and sxx > 0:
        slope_ms = math.fsum((t - t_mean) * (v - v_mean) for t, v in pts) / sxx
        span = max(t for t, _ in pts) - min(t for t, _ in pts)
        if abs(slope_ms * span) <= 1e-9 * max(1.0, abs(v_mean)):
            slope_ms = 0.0
        trend = "rising" if slope_ms > 0 else "falling" if slope_ms < 0 else "flat"
    fitted_now = v_mean + slope_ms * (now_ms - t_mean)
    already_above = fitted_now >= threshold_value
    crosses = None
    if not already_above and slope_ms > 0:
        crosses = now_ms + round((threshold_value - fitted_now) / slope_ms)
    slope_h = slope_ms * _HOUR_MS
    return Projection(
        n,
        slope_h,
        slope_h / capacity * 100,
        fitted_now,
        fitted_now / capacity * 100,
        threshold_pct,
        crosses,
        already_above,
        trend,
    )
