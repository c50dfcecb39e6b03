"""The aggregated query's vocabulary and limits, apart from the query itself.

The request layer (parameters, the OpenAPI document) reads these at import; the aggregation
(`domain.aggregation`, which re-exports them) loads with the first aggregated request only,
so the API function's cold start does not pay for it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from chalicelib.domain.chunks import HOUR_MS  # (chunks is loaded with every request already)

SECOND_MS = 1000
MINUTE_MS = 60 * SECOND_MS
DAY_MS = 24 * HOUR_MS
WEEK_MS = 7 * DAY_MS
YEAR_MS = 365 * DAY_MS

AGGREGATES = ("avg", "min", "max", "sum", "count", "first", "last")
NUMERIC_AGGREGATES = frozenset({"avg", "min", "max", "sum"})  # over numbers only; the others over every reading
MAX_BUCKETS = 10_000  # buckets a request may ask for (interval, or points)
# The longest window one aggregated request spans: a year of days with room (or 9,600 hours).
# What bounds it is the rollup store's read, whose cost grows with the days of the window.
MAX_WINDOW_DAYS = 400
# Raw chunk items one request reads before it stops at a bucket edge and hands out next_cursor.
# Soft by one bucket: a page always completes its first bucket (whose raw part is normally only
# the window's edge hours and the hours not rolled up yet; at most the retention's chunks).
MAX_RAW_ITEMS = 5_000
RAW_QUERY_ITEMS = 1_000  # chunk items asked of one Query page (DynamoDB's 1 MB cap may cut it shorter)
MIN_QUERY_ITEMS = 100  # the smallest page asked near the end of the budget

UNIT_MS = {"ms": 1, "s": SECOND_MS, "m": MINUTE_MS, "h": HOUR_MS, "d": DAY_MS, "w": WEEK_MS}
# A duration with a unit, or bare milliseconds: every string this matches parses (no 0, bounded digits).
INTERVAL_PATTERN = re.compile(r"^(?:[1-9][0-9]{0,12}|[1-9][0-9]{0,8}(?:ms|s|m|h|d|w))$")
# What an IANA zone name looks like ("UTC", "Europe/Paris", "America/Argentina/Buenos_Aires", "Etc/GMT+5").
TZ_PATTERN = re.compile(r"^[A-Za-z][A-Za-z0-9_+-]{0,30}(?:/[A-Za-z0-9_+-]{1,30}){0,2}$")
MAX_TZ_CHARS = 64


@dataclass(frozen=True)
class AggQuery:
    """An aggregated telemetry query as read from the request (types checked, combinations not yet)."""

    device_id: str
    agg: str
    metric: str | None
    unit: str | None
    from_ms: int
    to_ms: int
    to_given: bool  # False: `to` was "now" (a cursor's page keeps the first page's)
    interval: str | None = None
    points: int | None = None
    tz: str | None = None

    def digest(self) -> str:
        """What a cursor of this query is bound to (the window's end included)."""
        from chalicelib.domain.aggregation import parse_interval, query_digest  # the query's own module

        interval = parse_interval(self.interval) if self.interval is not None else None
        return query_digest(
            self.device_id, self.agg, self.metric, self.unit, self.from_ms, self.to_ms, interval, self.points, self.tz
        )
