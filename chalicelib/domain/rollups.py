"""Hourly rollups: the mergeable summary of one series in one hour, and how summaries combine.

A `Partial` summarises readings of one series (device, metric, unit) over a span of time:
every reading counts in `count`, `first` and `last` (any type), numbers alone in `numbers`,
`min`, `max` and `sum`. The hourly job stores one Partial per series and closed hour; the
aggregation query builds the same Partials from raw chunks for the hours rollups do not
cover, then combines them. Both paths compute an hour with `partial_of` and a longer bucket
with `combine` (sums of hours added with math.fsum), so a bucket's answer is bit for bit the
same whichever path produced its hours.

Booleans are not numbers here (as in `domain.mapreduce`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol, TypeAlias, TypeGuard

HOUR_MS = 3_600_000
# An hour is rolled up this long after it closes, so readings still in flight (stream,
# archive batching) are in; later ones mark the hour for a re-roll.
ROLLUP_GRACE_MS = 10 * 60_000

Value: TypeAlias = bool | int | float | str
Number: TypeAlias = int | float
SeriesHour: TypeAlias = tuple[str, str, int]  # (metric, unit, hour start in ms)


def is_number(value: object) -> TypeGuard[Number]:
    """True for int and float values; bool is not a number."""
    return isinstance(value, int | float) and not isinstance(value, bool)


@dataclass(frozen=True, slots=True)
class Partial:
    """Summary of one series over a span: all readings (count, first, last), numbers (the rest)."""

    count: int
    first_ts: int
    first: Value
    last_ts: int
    last: Value
    numbers: int = 0
    min: Number | None = None
    max: Number | None = None
    sum: float = 0.0  # math.fsum of the numeric values; 0.0 when there are none

    @property
    def mean(self) -> float | None:
        return self.sum / self.numbers if self.numbers else None


def partial_of(points: Iterable[tuple[int, Value]]) -> Partial | None:
    """The Partial of (ts, value) points with distinct ts (already de-duplicated); None if empty."""
    ordered = sorted(points, key=lambda p: p[0])
    if not ordered:
        return None
    numbers = [v for _, v in ordered if is_number(v)]
    return Partial(
        count=len(ordered),
        first_ts=ordered[0][0],
        first=ordered[0][1],
        last_ts=ordered[-1][0],
        last=ordered[-1][1],
        numbers=len(numbers),
        min=min(numbers) if numbers else None,
        max=max(numbers) if numbers else None,
        sum=math.fsum(numbers) if numbers else 0.0,
    )


def combine(parts: Sequence[Partial]) -> Partial:
    """One Partial of several over disjoint spans (an hour's partials into a day, say)."""
    if not parts:
        raise ValueError("nothing to combine")
    if len(parts) == 1:
        return parts[0]
    first = min(parts, key=lambda p: p.first_ts)
    last = max(parts, key=lambda p: p.last_ts)
    mins = [p.min for p in parts if p.min is not None]
    maxes = [p.max for p in parts if p.max is not None]
    numbers = sum(p.numbers for p in parts)
    return Partial(
        count=sum(p.count for p in parts),
        first_ts=first.first_ts,
        first=first.first,
        last_ts=last.last_ts,
        last=last.last,
        numbers=numbers,
        min=min(mins) if mins else None,
        max=max(maxes) if maxes else None,
        sum=math.fsum(p.sum for p in parts if p.numbers) if numbers else 0.0,
    )


class RollupReader(Protocol):
    """What the aggregation query needs from the rollup store (adapters.aggregates.RollupStore)."""

    def covered_until_ms(self, device_id: str | None = None) -> int:
        """Start of the first hour the job has not rolled up: every earlier hour is in rollups.

        With `device_id`: no later than the first hour of that device's readings that arrived
        after their hour was rolled up (late readings, not re-rolled yet), so those hours come
        from raw chunks until the next run has rolled them again.
        """
        ...

    def hours(
        self, device_id: str, metric: str | None, unit: str | None, from_hour_ms: int, to_hour_ms: int
    ) -> dict[SeriesHour, Partial]:
        """The device's hourly Partials for hour starts in [from_hour_ms, to_hour_ms), all series
        or one metric (and unit); an hour without readings of a series has no entry."""
        ...
