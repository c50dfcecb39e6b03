"""Raw load samples -> utilization % per aligned period (the statistics an alarm reads)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from chalicelib.domain.scaling.config import Statistic


@dataclass(frozen=True)
class PeriodStats:
    """Utilization % of one period starting at ``start_ms``; None where the period has no data."""

    start_ms: int
    samples: int
    mean: float | None
    p95: float | None
    maximum: float | None

    def value(self, statistic: Statistic) -> float | None:
        """The alarm statistic of this period."""
        if statistic == "Average":
            return self.mean
        if statistic == "Maximum":
            return self.maximum
        return self.p95

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form: every field, in order."""
        return asdict(self)


def period_start(ts_ms: int, period_s: int) -> int:
    """The start of the period holding ``ts_ms`` (periods are aligned to multiples of the period)."""
    period_ms = period_s * 1000
    return ts_ms // period_ms * period_ms


def nearest_rank(values: Sequence[float], pct: float) -> float:
    """The nearest-rank percentile (``pct`` in (0, 100]) of non-empty ``values``."""
    if not values:
        raise ValueError("no values")
    ordered = sorted(values)
    rank = max(1, math.ceil(pct / 100 * len(ordered)))
    return ordered[rank - 1]


def period_stats(
    points: Sequence[tuple[int, float]], start_ms: int, end_ms: int, period_s: int, capacity: float
) -> list[PeriodStats]:
    """Raw ``(ts_ms, load)`` samples -> utilization % (load / capacity * 100) per period.

    Periods are aligned to multiples of ``period_s`` (as CloudWatch aligns them): the first
    is the one holding ``start_ms``, the last the one holding ``end_ms - 1`` (``end_ms`` is
    exclusive, so the last period may be partial). Samples outside, and non-finite
    values, are dropped. A period without samples has ``samples=0`` and None statistics.
    """
    if period_s <= 0:
        raise ValueError("period_s must be positive")
    if not (math.isfinite(capacity) and capacity > 0):
        raise ValueError("capacity must be a positive number")
    if end_ms <= start_ms:
        return []
    period_ms = period_s * 1000
    first = period_start(start_ms, period_s)
    buckets: dict[int, list[float]] = {}
    for ts, value in points:
        if not (first <= ts < end_ms) or not math.isfinite(value):
            continue
        buckets.setdefault(period_start(ts, period_s), []).append(value / capacity * 100.0)
    out = []
    for start in range(first, end_ms, period_ms):
        values = buckets.get(start)
        if not values:
            out.append(PeriodStats(start, 0, None, None, None))
        else:
            out.append(
                PeriodStats(start, len(values), math.fsum(values) / len(values), nearest_rank(values, 95), max(values))
            )
    return out
