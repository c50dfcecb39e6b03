"""Aggregation at query time: buckets of a window, each from hourly rollups or raw chunks.

A window [from, to] is cut into buckets aligned to the epoch in UTC (or, with a time zone,
into whole local days aligned to local midnight). A bucket of an hour or more is the
`combine` of its pieces, one per UTC hour it overlaps: a whole hour that the rollup job has
closed (before `RollupReader.covered_until_ms()`) comes from the rollups, every other piece
(the partial hours at the window's ends and at local-midnight edges of zones with non-hour
offsets, the hours not rolled up yet) is `partial_of` the raw readings of that piece. A
sub-hour bucket is `partial_of` its raw readings directly. The rollup job builds an hour
with the same `partial_of` over the same de-duplicated readings (`mapreduce.version_key`),
so an answer is bit for bit the same whichever path produced its hours.

Raw chunks are read in as few Queries as possible: the raw pieces of neighbouring buckets
that touch the same or adjacent hours are read as one contiguous key range.
"""

from __future__ import annotations

import base64
import binascii
import bisect
import hashlib
import json
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time
from typing import Any, Protocol, TypeAlias
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from chalicelib.domain.aggregation_rules import (  # re-exported: the one source of each limit
    AGGREGATES,
    DAY_MS,
    INTERVAL_PATTERN,
    MAX_BUCKETS,
    MAX_RAW_ITEMS,
    MAX_WINDOW_DAYS,
    MIN_QUERY_ITEMS,
    MINUTE_MS,
    NUMERIC_AGGREGATES,
    RAW_QUERY_ITEMS,
    SECOND_MS,
    TZ_PATTERN,
    UNIT_MS,
    YEAR_MS,
    AggQuery,
)
from chalicelib.domain.chunks import bucket_start_ms, decode, hour_bucket
from chalicelib.domain.mapreduce import version_key
from chalicelib.domain.query import MAX_BUCKET, ChunkLike
from chalicelib.domain.rollups import HOUR_MS, Partial, RollupReader, SeriesHour, Value, combine, partial_of
from chalicelib.errors import (
    AmbiguousUnitError,
    CursorMismatchError,
    IntervalNotWholeDaysError,
    InvalidParameterError,
    NotNumericError,
    TooManyBucketsError,
    UnknownTimeZoneError,
    WindowTooLongError,
)

# The round durations `points=N` picks from: the smallest that gives at most N buckets.
# Past the ladder: whole multiples of 365 days.
LADDER_MS: tuple[int, ...] = (
    *(n * SECOND_MS for n in (1, 2, 5, 10, 15, 30)),
    *(n * MINUTE_MS for n in (1, 2, 5, 10, 15, 30)),
    *(n * HOUR_MS for n in (1, 2, 3, 6, 12)),
    *(n * DAY_MS for n in (1, 2, 7, 14, 30, 91, 365)),
)
_EPOCH_DAY = date(1970, 1, 1).toordinal()

Series: TypeAlias = tuple[str, str]  # (metric, unit)


class ChunkSource(Protocol):
    """What the aggregation reads raw chunks from (adapters.readings.ReadingStore)."""

    def chunks(
        self, device_id: str, low_key: str, high_key: str, max_items: int
    ) -> tuple[Sequence[ChunkLike], bool]: ...


@dataclass(frozen=True)
class SeriesBuckets:
    """One series' non-empty buckets in time order: (aligned bucket start, its Partial)."""

    metric: str
    unit: str
    interval_ms: int
    buckets: list[tuple[int, Partial]]


@dataclass(frozen=True)
class Aggregation:
    """What one request computed: the series, and where the next page starts (None: done)."""

    series: list[SeriesBuckets]
    resume_ms: int | None
    raw_items: int  # chunk items read
    raw_queries: int  # Query calls on the readings store
    rollup_reads: int  # RollupReader.hours calls


# --- intervals ---------------------------------------------------------------------------------


def parse_interval(text: str) -> int:
    """`30s`, `1m`, `5m`, `1h`, `1d`, `1w`, `250ms`, or bare milliseconds -> milliseconds (ValueError if not)."""
    if not INTERVAL_PATTERN.match(text):
        raise ValueError(f"not an interval: {text!r}")
    for unit in ("ms", "s", "m", "h", "d", "w"):
        if text.endswith(unit) and text[: -len(unit)].isdigit():
            return int(text[: -len(unit)]) * UNIT_MS[unit]
    return int(text)


def format_interval(ms: int) -> str:
    """The shortest spelling of an interval (`5m`, `1d`, `1500ms`): for messages."""
    for unit in ("w", "d", "h", "m", "s"):
        if ms % UNIT_MS[unit] == 0:
            return f"{ms // UNIT_MS[unit]}{unit}"
    return f"{ms}ms"


def max_buckets(window_ms: int, interval_ms: int) -> int:
    """The most epoch-aligned buckets a window of `window_ms` (half-open, >= 1 ms) can touch."""
    return -(-(max(window_ms, 1) - 1) // interval_ms) + 1


def _ladder(whole_days: bool) -> Iterable[int]:
    yield from (ms for ms in LADDER_MS if not whole_days or ms % DAY_MS == 0)
    k = 2
    while True:  # past the ladder: multiples of a year (a window of 8,000 years fits 10,000 buckets)
        yield k * YEAR_MS
        k += 1


def choose_interval(window_ms: int, points: int) -> int:
    """The smallest ladder interval whose buckets are at most `points` for any window this long.

    (For points=1: the smallest interval at least as long as the window, at most 2 buckets.)
    """
    if points < 1:
        raise ValueError("points must be at least 1")
    if points == 1:  # no interval keeps every alignment of a window of 2+ ms in one bucket
        return next(ms for ms in _ladder(False) if ms >= window_ms)
    return next(ms for ms in _ladder(False) if max_buckets(window_ms, ms) <= points)


def choose_interval_for(from_ms: int, to_ms: int, points: int, tz: str | None = None) -> int:
    """The smallest ladder interval giving at most `points` buckets for this window [from, to] (exact).

    With a time zone, only whole days (local days are 23, 24 or 25 hours long).
    """
    if points < 1:
        raise ValueError("points must be at least 1")
    return next(ms for ms in _ladder(tz is not None) if bucket_count(from_ms, to_ms, ms, tz) <= points)


# --- buckets -----------------------------------------------------------------------------------


def zone(tz: str) -> ZoneInfo:
    """The IANA zone of that name (ValueError when there is none)."""
    if not TZ_PATTERN.match(tz):
        raise ValueError(f"not a time zone name: {tz!r}")
    try:
        return ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError, OSError) as e:
        raise ValueError(f"unknown time zone {tz!r}") from e


def _local_day(ms: int, tz: ZoneInfo) -> int:
    """Days since 1970-01-01 of the local date at `ms`."""
    return datetime.fromtimestamp(ms / 1000, tz).date().toordinal() - _EPOCH_DAY


def _local_midnight_ms(day: int, tz: ZoneInfo) -> int:
    """The first instant of a local date (days since 1970-01-01), in ms since the epoch.

    A midnight a DST change skips (clocks jump 00:00 -> 01:00) resolves, with fold=0, to the
    instant the day begins; one that happens twice, to its first occurrence.
    """
    moment = datetime.combine(date.fromordinal(day + _EPOCH_DAY), time(0), tz)
    return round(moment.timestamp()) * 1000  # zone offsets are whole seconds


def bucket_count(from_ms: int, to_ms: int, interval_ms: int, tz: str | None = None) -> int:
    """How many buckets the window [from, to] (inclusive) touches."""
    if tz is None:
        return to_ms // interval_ms - from_ms // interval_ms + 1
    z, days = zone(tz), interval_ms // DAY_MS
    return _local_day(to_ms, z) // days - _local_day(from_ms, z) // days + 1


def bucket_edges(from_ms: int, to_ms: int, interval_ms: int, tz: str | None = None) -> list[int]:
    """Aligned starts of the buckets the window [from, to] touches, then the end of the last one."""
    if tz is None:
        first = from_ms // interval_ms
        return [k * interval_ms for k in range(first, to_ms // interval_ms + 2)]
    z, days = zone(tz), interval_ms // DAY_MS
    first, last = _local_day(from_ms, z) // days, _local_day(to_ms, z) // days
    return [_local_midnight_ms(k * days, z) for k in range(first, last + 2)]


# --- the plan ----------------------------------------------------------------------------------


@dataclass
class BucketPlan:
    """One bucket clipped to the window: [lo, hi), the whole hours from rollups, the raw spans."""

    start: int  # the aligned start (what the answer shows)
    lo: int
    hi: int
    rollup: tuple[int, int]  # hour starts [a, b) read from rollups (a == b: none)
    raw: list[tuple[int, int]] = field(default_factory=list)  # [a, b) spans read from chunks, in order


def _floor_hour(ms: int) -> int:
    return ms // HOUR_MS * HOUR_MS


def _ceil_hour(ms: int) -> int:
    return -(-ms // HOUR_MS) * HOUR_MS


def _add_span(spans: list[tuple[int, int]], a: int, b: int) -> None:
    if a >= b:
        return
    if spans and spans[-1][1] == a:
        spans[-1] = (spans[-1][0], b)
    else:
        spans.append((a, b))


def plan(from_ms: int, to_ms: int, interval_ms: int, covered_until_ms: int, tz: str | None = None) -> list[BucketPlan]:
    """Each bucket of the window [from, to] (inclusive), and which of its parts come from where.

    Sub-hour buckets (without a time zone) are all raw. Otherwise a bucket's whole UTC hours
    before `covered_until_ms` are rollups' and the rest raw.
    """
    edges = bucket_edges(from_ms, to_ms, interval_ms, tz)
    covered = _floor_hour(covered_until_ms)
    end = to_ms + 1  # half-open from here on
    sub_hour = tz is None and interval_ms < HOUR_MS
    plans: list[BucketPlan] = []
    for start, stop in zip(edges, edges[1:], strict=False):
        lo, hi = max(start, from_ms), min(stop, end)
        if lo >= hi:
            continue
        h0, h1 = _ceil_hour(lo), _floor_hour(hi)
        if sub_hour or h0 >= h1:
            plans.append(BucketPlan(start, lo, hi, (h0, h0), [(lo, hi)]))
            continue
        r1 = min(h1, max(h0, covered))
        bucket = BucketPlan(start, lo, hi, (h0, r1))
        _add_span(bucket.raw, lo, h0)
        _add_span(bucket.raw, r1, hi)
        plans.append(bucket)
    return plans


def raw_ranges(plans: Sequence[BucketPlan]) -> list[tuple[int, int]]:
    """The raw spans of all buckets as hour-aligned ranges [a, b): spans in the same or adjacent
    hours share one range (one Query, paged only past its size)."""
    ranges: list[tuple[int, int]] = []
    for bucket in plans:
        for a, b in bucket.raw:
            ha, hb = _floor_hour(a), _ceil_hour(b)
            if ranges and ranges[-1][1] >= ha:
                ranges[-1] = (ranges[-1][0], max(ranges[-1][1], hb))
            else:
                ranges.append((ha, hb))
    return ranges


# --- raw readings ------------------------------------------------------------------------------

Point: TypeAlias = tuple[int, Value]


@dataclass
class _RawHours:
    """De-duplicated readings by UTC hour start: the greatest version of an identity wins."""

    metric: str | None
    unit: str | None
    newest: dict[int, dict[tuple[str, str, int], tuple[tuple[object, ...], Value]]] = field(
        default_factory=lambda: defaultdict(dict)
    )
    _sorted: dict[int, tuple[list[int], list[tuple[str, str, int, Value]]]] = field(default_factory=dict)

    def add(self, chunk: ChunkLike) -> None:
        hour = bucket_start_ms(chunk.bucket)
        self._sorted.pop(hour, None)
        seen = self.newest[hour]
        for r in decode(chunk.data):
            if (self.metric is not None and r.metric != self.metric) or (self.unit is not None and r.unit != self.unit):
                continue
            version = version_key(chunk.received_at, r.value)
            key = (r.metric, r.unit, r.ts_ms)
            best = seen.get(key)
            if best is None or version > best[0]:
                seen[key] = (version, r.value)

    def _hour(self, hour: int) -> tuple[list[int], list[tuple[str, str, int, Value]]]:
        if hour not in self._sorted:
            rows = sorted((ts, m, u, v) for (m, u, ts), (_, v) in self.newest.get(hour, {}).items())
            self._sorted[hour] = ([r[0] for r in rows], [(m, u, ts, v) for ts, m, u, v in rows])
        return self._sorted[hour]

    def points(self, a: int, b: int) -> dict[Series, list[Point]]:
        """Every series' points with a <= ts < b, in time order."""
        out: dict[Series, list[Point]] = defaultdict(list)
        for hour in range(_floor_hour(a), b, HOUR_MS):
            times, rows = self._hour(hour)
            for m, u, ts, v in rows[bisect.bisect_left(times, a) : bisect.bisect_left(times, b)]:
                out[(m, u)].append((ts, v))
        return out


@dataclass
class _RawReader:
    """Reads the raw ranges in order, within a budget of chunk items; knows how far it has read whole."""

    device_id: str
    source: ChunkSource
    hours: _RawHours
    budget: int | None
    items: int = 0
    queries: int = 0

    def read(self, ranges: Sequence[tuple[int, int]], must_read_until: Callable[[], int]) -> int:
        """Read ranges until done or the budget is spent past `must_read_until()`; the time up to
        which every range has been read whole (the end of the last range when all are read)."""
        complete = ranges[-1][1] if ranges else 0
        for a, b in ranges:
            position = a
            while position < b:
                if self.budget is None:
                    position = self._page(position, b, RAW_QUERY_ITEMS)
                elif self.items < self.budget:  # ask no more than the budget left (a floor: no tiny Queries)
                    left = max(self.budget - self.items, MIN_QUERY_ITEMS)
                    position = self._page(position, b, min(RAW_QUERY_ITEMS, left))
                else:  # spent: read only what the first bucket still needs
                    needed = _ceil_hour(must_read_until())
                    if position >= needed:
                        return position
                    position = self._page(position, min(b, needed), RAW_QUERY_ITEMS)
        return complete

    def _page(self, a: int, b: int, max_items: int) -> int:
        """One Query page from hour `a` on; the hour from which the range is not read yet."""
        low, high = hour_bucket(a), hour_bucket(b - 1) + MAX_BUCKET
        chunks, more = self.source.chunks(self.device_id, low, high, max_items)
        self.queries += 1
        self.items += len(chunks)
        if not more or not chunks:
            for c in chunks:
                self.hours.add(c)
            return b
        hours = sorted({c.bucket for c in chunks})
        if len(hours) == 1:  # the store read that hour whole (ReadingStore.chunks)
            keep, resume = chunks, bucket_start_ms(hours[0]) + HOUR_MS
        else:  # the last hour may be cut: read it again from its start
            keep, resume = [c for c in chunks if c.bucket != hours[-1]], bucket_start_ms(hours[-1])
        for c in keep:
            self.hours.add(c)
        return resume


# --- the aggregation ---------------------------------------------------------------------------


def _pieces(raw: _RawHours, a: int, b: int, whole: bool) -> dict[Series, list[tuple[int, Partial]]]:
    """Partials of the span [a, b): one per series (`whole`), or one per series and UTC hour overlapped."""
    out: dict[Series, list[tuple[int, Partial]]] = defaultdict(list)
    if whole:
        for series, points in raw.points(a, b).items():
            if (p := partial_of(points)) is not None:
                out[series].append((a, p))
        return out
    for hour in range(_floor_hour(a), b, HOUR_MS):
        lo, hi = max(a, hour), min(b, hour + HOUR_MS)
        for series, points in raw.points(lo, hi).items():
            if (p := partial_of(points)) is not None:
                out[series].append((lo, p))
    return out


def aggregate(
    device_id: str,
    from_ms: int,
    to_ms: int,
    interval_ms: int,
    *,
    chunks: ChunkSource,
    rollups: RollupReader,
    tz: str | None = None,
    metric: str | None = None,
    unit: str | None = None,
    max_raw_items: int | None = None,
) -> Aggregation:
    """The buckets of the window [from, to] (inclusive) for every series (or one metric, one unit).

    With `max_raw_items`, stops at the first bucket edge after that many raw chunk items and
    says where to resume (`resume_ms`: the next bucket's aligned start); the first bucket is
    always completed.
    """
    plans = plan(from_ms, to_ms, interval_ms, rollups.covered_until_ms(device_id), tz)
    sub_hour = tz is None and interval_ms < HOUR_MS
    hours = _RawHours(metric, unit)
    reader = _RawReader(device_id, chunks, hours, max_raw_items)
    first_needs = max((b for _, b in plans[0].raw), default=0) if plans else 0
    complete = reader.read(raw_ranges(plans), lambda: first_needs)

    answered = plans
    resume_ms: int | None = None
    for i, bucket in enumerate(plans):
        if bucket.raw and bucket.raw[-1][1] > complete:
            answered, resume_ms = plans[:i], bucket.start
            break

    rolled: dict[SeriesHour, Partial] = {}
    rollup_reads = 0
    spans = [b.rollup for b in answered if b.rollup[0] < b.rollup[1]]
    if spans:
        rolled = rollups.hours(device_id, metric, unit, spans[0][0], spans[-1][1])
        rollup_reads = 1
    starts = [b.lo for b in answered]
    by_bucket: list[dict[Series, list[tuple[int, Partial]]]] = [defaultdict(list) for _ in answered]
    for (m, u, hour), partial in rolled.items():
        i = bisect.bisect_right(starts, hour) - 1
        # Only the hours the plan gives the rollups: not the hours a local-midnight edge splits.
        planned = i >= 0 and answered[i].rollup[0] <= hour < answered[i].rollup[1]
        if planned and (metric is None or m == metric) and (unit is None or u == unit):
            by_bucket[i][(m, u)].append((hour, partial))
    for i, bucket in enumerate(answered):
        for a, b in bucket.raw:
            for series, parts in _pieces(hours, a, b, sub_hour).items():
                by_bucket[i][series].extend(parts)

    out: dict[Series, list[tuple[int, Partial]]] = defaultdict(list)
    for bucket, pieces in zip(answered, by_bucket, strict=True):
        for key, parts in pieces.items():
            parts.sort(key=lambda p: p[0])  # the same order on both paths (min/max of 1 and 1.0)
            out[key].append((bucket.start, combine([p for _, p in parts])))
    found = [SeriesBuckets(m, u, interval_ms, out[(m, u)]) for m, u in sorted(out)]
    return Aggregation(found, resume_ms, reader.items, reader.queries, rollup_reads)


def aggregate_series(
    device_id: str,
    from_ms: int,
    to_ms: int,
    interval_ms: int,
    *,
    chunks: ChunkSource,
    rollups: RollupReader,
    tz: str | None = None,
    metric: str | None = None,
    unit: str | None = None,
) -> list[SeriesBuckets]:
    """Every series' (or one metric's, one unit's) non-empty buckets of the window [from, to], whole."""
    return aggregate(
        device_id, from_ms, to_ms, interval_ms, chunks=chunks, rollups=rollups, tz=tz, metric=metric, unit=unit
    ).series


class NoRollups:
    """A RollupReader with nothing rolled up: every bucket from raw chunks (the all-raw path)."""

    def covered_until_ms(self, device_id: str | None = None) -> int:
        return 0

    def hours(
        self, device_id: str, metric: str | None, unit: str | None, from_hour_ms: int, to_hour_ms: int
    ) -> dict[SeriesHour, Partial]:
        return {}


# --- answers -----------------------------------------------------------------------------------


def bucket_value(agg: str, partial: Partial) -> tuple[int, Value] | None:
    """(count, value) of a bucket for `agg`; None when it has nothing to answer (no numbers for avg...)."""
    if agg in NUMERIC_AGGREGATES:
        if not partial.numbers:
            return None
        value: Value | None = {"avg": partial.mean, "min": partial.min, "max": partial.max, "sum": partial.sum}[agg]
        assert value is not None
        return partial.numbers, value
    return partial.count, {"count": partial.count, "first": partial.first, "last": partial.last}[agg]


@dataclass(frozen=True)
class AggCursor:
    """Where the next page of an aggregated query starts, bound to the query that issued it.

    `to_ms` is the window's end as the first page resolved it (a `to` left out means "now"),
    so every page answers the same window with the same buckets.
    """

    start_ms: int
    to_ms: int
    query: str  # a digest of the query's parameters: a cursor answers only the query it came from

    def encode(self) -> str:
        doc = json.dumps({"s": self.start_ms, "t": self.to_ms, "q": self.query}, separators=(",", ":"))
        return base64.urlsafe_b64encode(doc.encode()).decode().rstrip("=")

    @staticmethod
    def decode(text: str) -> AggCursor:
        """The cursor, or ValueError if this is not one."""
        try:
            doc = json.loads(base64.urlsafe_b64decode((text + "=" * (-len(text) % 4)).encode()))
            start, to, query = doc["s"], doc["t"], doc["q"]
        except (ValueError, KeyError, TypeError, binascii.Error, UnicodeDecodeError) as e:
            raise ValueError("not an aggregation cursor") from e
        if not (_is_int(start) and _is_int(to) and isinstance(query, str)):
            raise ValueError("not an aggregation cursor")
        return AggCursor(start, to, query)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def query_digest(*parts: object) -> str:
    """A short digest of a query's parameters (what a cursor is bound to)."""
    return hashlib.sha256(json.dumps(parts, separators=(",", ":")).encode()).hexdigest()[:12]


def utc_iso(ms: int) -> str:
    """An instant as ISO 8601 UTC (for messages)."""
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat().replace("+00:00", "Z")


# --- the aggregated query ----------------------------------------------------------------------


def interval_of(q: AggQuery) -> int:
    """The query's bucket length in ms, once its window and interval are within the limits (400s if not)."""
    if q.metric is None:
        raise InvalidParameterError("agg needs metric: one metric is aggregated at a time")
    if (q.interval is None) == (q.points is None):
        raise InvalidParameterError("agg needs exactly one of interval (a bucket length) or points (at most N buckets)")
    if q.from_ms > q.to_ms:
        raise InvalidParameterError("from must not be after to")
    if q.tz is not None:
        try:
            zone(q.tz)
        except ValueError as e:
            raise UnknownTimeZoneError(f"tz: no IANA time zone {q.tz!r} (for example Europe/Paris, UTC)") from e
    if q.to_ms - q.from_ms >= MAX_WINDOW_DAYS * DAY_MS:
        raise WindowTooLongError(
            f"an aggregated window spans at most {MAX_WINDOW_DAYS} days: "
            f"this one is {utc_iso(q.from_ms)} to {utc_iso(q.to_ms)} (give from)"
        )
    if q.points is not None:
        return choose_interval_for(q.from_ms, q.to_ms, q.points, q.tz)
    assert q.interval is not None
    try:
        interval = parse_interval(q.interval)
    except ValueError as e:
        raise InvalidParameterError("interval: a duration such as 1m, 5m, 1h, 1d, or milliseconds") from e
    if q.tz is not None and interval % DAY_MS:
        raise IntervalNotWholeDaysError(
            f"tz buckets are local days: interval must be whole days (1d, 7d...), not {format_interval(interval)}"
        )
    count = bucket_count(q.from_ms, q.to_ms, interval, q.tz)
    if count > MAX_BUCKETS:
        fits = format_interval(choose_interval_for(q.from_ms, q.to_ms, MAX_BUCKETS, q.tz))
        raise TooManyBucketsError(
            f"interval {format_interval(interval)} cuts this window into {count:,} buckets, more than "
            f"{MAX_BUCKETS:,}: use an interval of at least {fits}, or points"
        )
    return interval


def _resume_point(q: AggQuery, cursor: str | None) -> tuple[AggQuery, int]:
    """The query a page answers (a cursor's window end) and where its buckets start."""
    if cursor is None:
        return q, q.from_ms
    try:
        position = AggCursor.decode(cursor)
    except ValueError as e:
        raise InvalidParameterError("cursor is not one this API issued") from e
    if not q.to_given:
        q = replace(q, to_ms=position.to_ms)
    if position.query != q.digest():
        raise CursorMismatchError("this cursor belongs to another query: give it with the parameters of its first page")
    if not q.from_ms <= position.start_ms <= q.to_ms:
        raise InvalidParameterError("cursor is not one this API issued")
    return q, position.start_ms


def aggregated_answer(q: AggQuery, cursor: str | None, *, chunks: ChunkSource, rollups: RollupReader) -> dict[str, Any]:
    """One page of an aggregated query: its non-empty buckets, and next_cursor while the raw budget
    (MAX_RAW_ITEMS chunk items a page) cuts the window short."""
    if q.agg not in AGGREGATES:
        raise InvalidParameterError(f"agg must be one of {', '.join(AGGREGATES)}")
    q, start = _resume_point(q, cursor)
    interval = interval_of(q)
    found = aggregate(
        q.device_id, start, q.to_ms, interval, chunks=chunks, rollups=rollups, tz=q.tz, metric=q.metric,
        unit=q.unit, max_raw_items=MAX_RAW_ITEMS,
    )  # fmt: skip
    if len(found.series) > 1:
        units = ", ".join(repr(s.unit) for s in found.series)
        raise AmbiguousUnitError(f"metric {q.metric!r} has several units ({units}): give unit")
    series = found.series[0] if found.series else None
    buckets: list[dict[str, Any]] = []
    if series is not None:
        if q.agg in NUMERIC_AGGREGATES and not any(p.numbers for _, p in series.buckets):
            raise NotNumericError(
                f"metric {q.metric!r} has no numbers here (strings or booleans): {q.agg} needs numbers; "
                "count, first and last take every reading"
            )
        for bucket_start, partial in series.buckets:
            answer = bucket_value(q.agg, partial)
            if answer is not None:  # a bucket of strings alone has no avg: left out like an empty one
                buckets.append({"start": bucket_start, "count": answer[0], "value": answer[1]})
    cursor_out = AggCursor(found.resume_ms, q.to_ms, q.digest()) if found.resume_ms is not None else None
    return {
        "device_id": q.device_id,
        "metric": q.metric,
        "unit": series.unit if series is not None else q.unit,
        "agg": q.agg,
        "interval_ms": interval,
        "buckets": buckets,
        "next_cursor": cursor_out.encode() if cursor_out else None,
    }
