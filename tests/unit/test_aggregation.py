"""Aggregation at query time (domain.aggregation): intervals, buckets, the plan, and that
hours from rollups and hours from raw chunks give the same answer, bit for bit."""

from __future__ import annotations

import bisect
import itertools
import math
import random
import zoneinfo
from collections import defaultdict
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from chalicelib.domain import aggregation
from chalicelib.domain.aggregation import (
    DAY_MS,
    LADDER_MS,
    MAX_BUCKETS,
    MAX_WINDOW_DAYS,
    MINUTE_MS,
    YEAR_MS,
    AggCursor,
    AggQuery,
    NoRollups,
    aggregate,
    aggregate_series,
    aggregated_answer,
    bucket_count,
    bucket_edges,
    bucket_value,
    choose_interval,
    choose_interval_for,
    max_buckets,
    parse_interval,
    plan,
    raw_ranges,
)
from chalicelib.domain.chunks import hour_bucket, make_chunks
from chalicelib.domain.mapreduce import version_key
from chalicelib.domain.readings import Reading
from chalicelib.domain.rollups import HOUR_MS, Partial, SeriesHour, Value, combine, partial_of
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

T0 = 1_764_061_200_000  # 2025-11-25T09:00:00Z, an hour start


def ms(iso: str) -> int:
    return int(datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp() * 1000)


# --- a chunk store and a rollup reader in memory, with the adapters' semantics --------------------


@dataclass(frozen=True)
class MemChunk:
    sort_key: str
    data: bytes
    received_at: int

    @property
    def bucket(self) -> str:
        return self.sort_key.split("#", 1)[0]


class MemChunks:
    """ReadingStore.chunks over a list: key order, at most max_items, an hour larger than a page whole."""

    def __init__(self) -> None:
        self.items: dict[str, MemChunk] = {}
        self.queries: list[tuple[str, str]] = []

    def put(self, device_id: str, readings: list[Reading], received_at: int) -> None:
        for chunk in make_chunks(device_id, readings):
            self.items[chunk.sort_key] = MemChunk(chunk.sort_key, chunk.data, received_at)

    def chunks(self, device_id: str, low: str, high: str, max_items: int) -> tuple[list[MemChunk], bool]:
        self.queries.append((low, high))
        found = [self.items[k] for k in sorted(self.items) if low <= k <= high]
        page, more = found[:max_items], len(found) > max_items
        if more and page[0].bucket == page[-1].bucket:
            page = [c for c in found if c.bucket == page[0].bucket]
        return page, more


class DictRollups:
    """A RollupReader over a dict of hourly Partials (built with partial_of, as the job builds them)."""

    def __init__(self, hours: dict[SeriesHour, Partial], covered_until: int) -> None:
        self._hours, self._covered = hours, covered_until
        self.calls = 0

    def covered_until_ms(self, device_id: str | None = None) -> int:
        return self._covered

    def hours(
        self, device_id: str, metric: str | None, unit: str | None, from_hour_ms: int, to_hour_ms: int
    ) -> dict[SeriesHour, Partial]:
        self.calls += 1
        return {
            k: p
            for k, p in self._hours.items()
            if from_hour_ms <= k[2] < to_hour_ms and metric in (None, k[0]) and unit in (None, k[1])
        }


Version = tuple[str, str, int, Value, int]  # metric, unit, ts, value, received_at


def newest(versions: list[Version]) -> dict[tuple[str, str, int], Value]:
    best: dict[tuple[str, str, int], tuple[Any, Value]] = {}
    for m, u, ts, v, rec in versions:
        key = version_key(rec, v)
        if (m, u, ts) not in best or key > best[(m, u, ts)][0]:
            best[(m, u, ts)] = (key, v)
    return {k: v for k, (_, v) in best.items()}


def rollups_of(versions: list[Version], covered_until: int) -> DictRollups:
    by_hour: dict[SeriesHour, list[tuple[int, Value]]] = defaultdict(list)
    for (m, u, ts), v in newest(versions).items():
        if ts // HOUR_MS * HOUR_MS < covered_until:
            by_hour[(m, u, ts // HOUR_MS * HOUR_MS)].append((ts, v))
    hours = {k: p for k, points in by_hour.items() if (p := partial_of(points)) is not None}
    return DictRollups(hours, covered_until)


def store_of(versions: list[Version]) -> MemChunks:
    store = MemChunks()
    by_request: dict[int, list[Reading]] = defaultdict(list)
    for m, u, ts, v, rec in versions:
        by_request[rec].append(Reading(m, u, ts, v))
    for rec, readings in by_request.items():
        store.put("d", readings, rec)
    return store


def random_versions(rng: random.Random, start: int, hours: int) -> list[Version]:
    """Readings of three series over `hours` hours: numbers, strings and booleans mixed in, ints
    and floats of equal value, late readings (received hours later) and re-sent identities with
    other values and receive times."""
    out: list[Version] = []
    series = [("temp", "Cel"), ("temp", "K"), ("door", "")]
    for _ in range(hours * 25):
        m, u = rng.choice(series)
        ts = start + rng.randrange(hours * HOUR_MS)
        if m == "door":
            v: Value = rng.choice(["open", "shut", True, False, 1])
        else:
            v = rng.choice([rng.uniform(-50, 50), float(rng.randrange(-3, 3)), rng.randrange(-3, 3), 1e16, 0.1])
        received = ts + rng.choice([500, 2_000, 3 * HOUR_MS, 40 * HOUR_MS])  # some late
        out.append((m, u, ts, v, received))
        if rng.random() < 0.15:  # the same identity again, another value, received earlier or later
            out.append((m, u, ts, rng.choice([v, 7, 7.0, "x", -0.0]), received + rng.choice([-1, 0, 1, HOUR_MS])))
    return out


def exact(result: Any) -> str:
    """A representation that tells 1 from 1.0 and -0.0 from 0.0 (bit-identical means identical)."""
    return repr(result)


# --- intervals ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [("30s", 30_000), ("1m", 60_000), ("5m", 300_000), ("1h", HOUR_MS), ("1d", DAY_MS), ("2w", 14 * DAY_MS),
     ("250ms", 250), ("1500", 1500), ("90m", 90 * MINUTE_MS)],
)  # fmt: skip
def test_intervals_are_durations_or_bare_milliseconds(text: str, expected: int) -> None:
    assert parse_interval(text) == expected


@pytest.mark.parametrize("text", ["0", "0m", "", "1x", "-1m", "1.5m", "m", "1 m", "1M", "01m", "12345678901234"])
def test_an_interval_that_is_not_one_is_refused(text: str) -> None:
    with pytest.raises(ValueError):
        parse_interval(text)


def test_points_picks_the_smallest_round_interval_that_fits_any_alignment() -> None:
    assert choose_interval(7 * DAY_MS, 1000) == 15 * MINUTE_MS  # 10m could touch 1,009 buckets
    assert choose_interval(30 * DAY_MS, 1000) == HOUR_MS
    assert choose_interval(DAY_MS, 1000) == 2 * MINUTE_MS
    assert choose_interval(1, 1) == LADDER_MS[0]
    assert choose_interval(100 * 365 * DAY_MS, 10) == 12 * YEAR_MS  # past the ladder: whole years (9 whole + 2 ends)
    for window in (1, 59_999, HOUR_MS, 7 * DAY_MS + 1, 30 * DAY_MS, 10 * YEAR_MS):
        for points in (1, 2, 7, 100, 1000, MAX_BUCKETS):
            chosen = choose_interval(window, points)
            if points == 1:  # no alignment guarantee exists: the shortest interval covering the window
                assert chosen >= window and max_buckets(window, chosen) <= 2
                assert not [ms for ms in LADDER_MS if window <= ms < chosen]
                continue
            assert max_buckets(window, chosen) <= points
            smaller = [ms for ms in LADDER_MS if ms < chosen]
            assert not smaller or max_buckets(window, smaller[-1]) > points


def test_max_buckets_is_the_worst_alignment() -> None:
    rng = random.Random(3)
    for _ in range(2000):
        interval, window = rng.choice([7, 10, 60]), rng.randrange(1, 200)
        worst = max((start + window - 1) // interval - start // interval + 1 for start in range(interval))
        assert max_buckets(window, interval) == worst


def test_points_for_a_known_window_counts_its_buckets_exactly() -> None:
    week = ms("2025-11-17T00:00:00Z")
    assert choose_interval_for(week, week + 7 * DAY_MS - 1, 7) == DAY_MS
    assert choose_interval_for(week, week + 7 * DAY_MS, 7) == 2 * DAY_MS  # one ms into an 8th day
    # With a zone, whole days only, counted in local days.
    assert choose_interval_for(week, week + HOUR_MS, 1000, "Europe/Paris") == DAY_MS


# --- buckets --------------------------------------------------------------------------------------


def test_buckets_are_aligned_to_the_epoch_in_utc() -> None:
    start = T0 + 17 * MINUTE_MS
    edges = bucket_edges(start, start + 2 * HOUR_MS, HOUR_MS)
    assert edges == [T0, T0 + HOUR_MS, T0 + 2 * HOUR_MS, T0 + 3 * HOUR_MS]
    assert bucket_count(start, start + 2 * HOUR_MS, HOUR_MS) == 3
    assert bucket_edges(0, 2 * DAY_MS - 1, 2 * DAY_MS) == [0, 2 * DAY_MS]


def test_local_days_follow_daylight_saving_time() -> None:
    # Europe/Berlin: 2025-03-30 has 23 hours, 2025-10-26 has 25.
    spring = bucket_edges(ms("2025-03-29T12:00:00Z"), ms("2025-03-31T12:00:00Z"), DAY_MS, "Europe/Berlin")
    assert spring == [ms("2025-03-28T23:00:00Z"), ms("2025-03-29T23:00:00Z"), ms("2025-03-30T22:00:00Z"),
                      ms("2025-03-31T22:00:00Z")]  # fmt: skip
    assert [b - a for a, b in zip(spring, spring[1:], strict=False)] == [DAY_MS, 23 * HOUR_MS, DAY_MS]
    autumn = bucket_edges(ms("2025-10-26T12:00:00Z"), ms("2025-10-26T12:00:00Z"), DAY_MS, "Europe/Berlin")
    assert autumn == [ms("2025-10-25T22:00:00Z"), ms("2025-10-26T23:00:00Z")]
    assert autumn[1] - autumn[0] == 25 * HOUR_MS


def test_a_half_hour_zone_starts_its_days_at_half_past() -> None:
    edges = bucket_edges(ms("2025-11-25T00:00:00Z"), ms("2025-11-25T23:59:59Z"), DAY_MS, "Asia/Kolkata")
    assert edges == [ms("2025-11-24T18:30:00Z"), ms("2025-11-25T18:30:00Z"), ms("2025-11-26T18:30:00Z")]
    assert bucket_count(ms("2025-11-25T00:00:00Z"), ms("2025-11-25T23:59:59Z"), DAY_MS, "Asia/Kolkata") == 2


def test_a_midnight_that_dst_skips_starts_the_day_when_it_begins() -> None:
    # America/Havana skipped 2025-03-09 00:00 (clocks went from 00:00 to 01:00, UTC-5 to UTC-4).
    edges = bucket_edges(ms("2025-03-09T12:00:00Z"), ms("2025-03-09T12:00:00Z"), DAY_MS, "America/Havana")
    assert edges == [ms("2025-03-09T05:00:00Z"), ms("2025-03-10T04:00:00Z")]


# --- the plan -------------------------------------------------------------------------------------


def test_the_plan_takes_whole_rolled_up_hours_from_rollups_and_the_rest_raw() -> None:
    start, end = T0 + 30 * MINUTE_MS, T0 + 4 * HOUR_MS + 15 * MINUTE_MS
    plans = plan(start, end - 1, HOUR_MS, covered_until_ms=T0 + 3 * HOUR_MS)
    assert [(p.start, p.rollup, p.raw) for p in plans] == [
        (T0, (T0 + HOUR_MS, T0 + HOUR_MS), [(start, T0 + HOUR_MS)]),  # the partial first hour
        (T0 + HOUR_MS, (T0 + HOUR_MS, T0 + 2 * HOUR_MS), []),
        (T0 + 2 * HOUR_MS, (T0 + 2 * HOUR_MS, T0 + 3 * HOUR_MS), []),
        (T0 + 3 * HOUR_MS, (T0 + 3 * HOUR_MS, T0 + 3 * HOUR_MS), [(T0 + 3 * HOUR_MS, T0 + 4 * HOUR_MS)]),  # not rolled
        (T0 + 4 * HOUR_MS, (T0 + 4 * HOUR_MS, T0 + 4 * HOUR_MS), [(T0 + 4 * HOUR_MS, end)]),  # the partial last hour
    ]  # fmt: skip
    # Two Queries: the first hour, and the last two together.
    assert raw_ranges(plans) == [(T0, T0 + HOUR_MS), (T0 + 3 * HOUR_MS, T0 + 5 * HOUR_MS)]


def test_a_day_reads_rollups_for_its_hours_and_raw_for_the_hours_not_rolled_up() -> None:
    day = ms("2025-11-25T00:00:00Z")
    plans = plan(day, day + DAY_MS - 1, DAY_MS, covered_until_ms=day + 20 * HOUR_MS + 7)
    assert [(p.rollup, p.raw) for p in plans] == [((day, day + 20 * HOUR_MS), [(day + 20 * HOUR_MS, day + DAY_MS)])]


def test_kolkata_days_read_the_hours_their_midnights_split_raw() -> None:
    frm, to = ms("2025-11-24T18:30:00Z"), ms("2025-11-27T18:29:59.999Z")
    plans = plan(frm, to, DAY_MS, covered_until_ms=ms("2025-12-01T00:00:00Z"), tz="Asia/Kolkata")
    assert len(plans) == 3
    for p in plans:
        assert p.raw == [(p.lo, p.lo + 30 * MINUTE_MS), (p.hi - 30 * MINUTE_MS, p.hi)]
        assert p.rollup == (p.lo + 30 * MINUTE_MS, p.hi - 30 * MINUTE_MS)
    # A split hour is one Query for both its halves (one per local midnight, plus the window's ends).
    assert raw_ranges(plans) == [
        (ms("2025-11-24T18:00:00Z"), ms("2025-11-24T19:00:00Z")),
        (ms("2025-11-25T18:00:00Z"), ms("2025-11-25T19:00:00Z")),
        (ms("2025-11-26T18:00:00Z"), ms("2025-11-26T19:00:00Z")),
        (ms("2025-11-27T18:00:00Z"), ms("2025-11-27T19:00:00Z")),
    ]


def test_sub_hour_buckets_are_raw_and_one_range() -> None:
    plans = plan(T0, T0 + 3 * HOUR_MS - 1, 5 * MINUTE_MS, covered_until_ms=T0 + 10 * HOUR_MS)
    assert len(plans) == 36 and all(p.rollup[0] == p.rollup[1] and p.raw == [(p.lo, p.hi)] for p in plans)
    assert raw_ranges(plans) == [(T0, T0 + 3 * HOUR_MS)]


# --- the answer: rollups and raw agree ------------------------------------------------------------


def reference(versions: list[Version], frm: int, to: int, interval: int, tz: str | None) -> dict[Any, Any]:
    """The answer computed the slow way: de-duplicate everything, then each bucket from its
    pieces (bucket x UTC hour; the whole bucket below an hour), in time order."""
    edges = bucket_edges(frm, to, interval, tz)
    points = sorted((ts, m, u, v) for (m, u, ts), v in newest(versions).items() if frm <= ts <= to)
    pieces: dict[tuple[str, str], dict[int, dict[int, list[tuple[int, Value]]]]] = defaultdict(
        lambda: defaultdict(lambda: defaultdict(list))
    )
    for ts, m, u, v in points:
        start = edges[bisect.bisect_right(edges, ts) - 1]
        piece = start if (tz is None and interval < HOUR_MS) else max(start, ts // HOUR_MS * HOUR_MS)
        pieces[(m, u)][start][piece].append((ts, v))
    out: dict[Any, Any] = {}
    for series, buckets in sorted(pieces.items()):
        rows = []
        for start in sorted(buckets):
            parts = [partial_of(buckets[start][p]) for p in sorted(buckets[start])]
            rows.append((start, combine([p for p in parts if p is not None])))
        out[series] = rows
    return out


def as_dict(result: list[Any]) -> dict[Any, Any]:
    return {(s.metric, s.unit): s.buckets for s in result}


CASES = [
    # interval, tz, window start offset, window length, covered_until offset (all from T0)
    (HOUR_MS, None, 13 * MINUTE_MS, 30 * HOUR_MS + 7 * MINUTE_MS, 20 * HOUR_MS),
    (2 * HOUR_MS, None, 0, 30 * HOUR_MS, 100 * HOUR_MS),
    (90 * MINUTE_MS, None, 5 * MINUTE_MS, 29 * HOUR_MS, 12 * HOUR_MS),
    (DAY_MS, None, 3 * HOUR_MS + 1, 40 * HOUR_MS, 30 * HOUR_MS),
    (DAY_MS, "Asia/Kolkata", 0, 46 * HOUR_MS, 44 * HOUR_MS),
    (2 * DAY_MS, "America/New_York", HOUR_MS // 2, 47 * HOUR_MS, 45 * HOUR_MS),
    (15 * MINUTE_MS, None, 7 * MINUTE_MS, 10 * HOUR_MS, 8 * HOUR_MS),
    (7 * MINUTE_MS, None, 0, 6 * HOUR_MS, 6 * HOUR_MS),
    (WEEK := 7 * DAY_MS, None, 0, 48 * HOUR_MS, 0),
]


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize(("interval", "tz", "start", "length", "covered"), CASES)
def test_rollups_and_raw_chunks_give_the_same_answer(
    seed: int, interval: int, tz: str | None, start: int, length: int, covered: int
) -> None:
    rng = random.Random(seed * 7919 + interval)
    versions = random_versions(rng, T0 - 2 * HOUR_MS, 52)
    frm, to = T0 + start, T0 + start + length - 1
    store = store_of(versions)
    rolled = rollups_of(versions, T0 + covered)
    for metric, unit in ((None, None), ("temp", None), ("temp", "K"), ("door", "")):
        with_rollups = aggregate_series("d", frm, to, interval, chunks=store, rollups=rolled, tz=tz, metric=metric,
                                        unit=unit)  # fmt: skip
        all_raw = aggregate_series("d", frm, to, interval, chunks=store, rollups=NoRollups(), tz=tz, metric=metric,
                                   unit=unit)  # fmt: skip
        assert exact(with_rollups) == exact(all_raw)
        expected = {
            k: v
            for k, v in reference(versions, frm, to, interval, tz).items()
            if metric in (None, k[0]) and unit in (None, k[1])
        }
        assert exact(as_dict(with_rollups)) == exact(expected)
        assert all(s.interval_ms == interval for s in with_rollups)
    if covered > start + HOUR_MS and interval >= HOUR_MS:
        assert rolled.calls > 0  # the rollups were used, not just agreed with


def test_late_readings_and_resent_identities_resolve_as_the_rollup_job_does() -> None:
    hour = T0
    versions: list[Version] = [
        ("temp", "Cel", hour + 1000, 10, hour + 2000),
        ("temp", "Cel", hour + 1000, 99, hour + 3000),  # received later: wins
        ("temp", "Cel", hour + 5000, 4.0, hour + 6000),
        ("temp", "Cel", hour + 5000, "broken", hour + 6000),  # same receive time: a string outranks a number
        ("temp", "Cel", hour + 9000, 2, hour + 40 * HOUR_MS),  # late
    ]
    store = store_of(versions)
    for rollups in (NoRollups(), rollups_of(versions, hour + HOUR_MS)):
        (series,) = aggregate_series("d", hour, hour + HOUR_MS - 1, HOUR_MS, chunks=store, rollups=rollups)
        ((start, p),) = series.buckets
        assert start == hour
        assert (p.count, p.numbers, p.sum, p.min, p.max, p.first, p.last) == (3, 2, 101.0, 2, 99, 99, 2)
        assert bucket_value("avg", p) == (2, 50.5)
        assert bucket_value("count", p) == (3, 3)
        assert bucket_value("first", p) == (3, 99)


def test_numeric_aggregates_leave_out_buckets_without_numbers() -> None:
    p = partial_of([(1, "open"), (2, True)])
    assert p is not None
    for agg in ("avg", "min", "max", "sum"):
        assert bucket_value(agg, p) is None
    assert bucket_value("count", p) == (2, 2)
    assert bucket_value("first", p) == (2, "open")
    assert bucket_value("last", p) == (2, True)
    q = partial_of([(1, 3), (2, "x"), (3, 1.5)])
    assert q is not None
    assert [bucket_value(a, q) for a in ("avg", "min", "max", "sum")] == [(2, 2.25), (2, 1.5), (2, 3), (2, 4.5)]


def test_a_sum_is_exactly_rounded_whatever_the_order() -> None:
    values = [1e16, 1.0, -1e16, 0.1] * 50
    rng = random.Random(1)
    versions: list[Version] = []
    for i, v in enumerate(values):
        versions.append(("x", "", T0 + rng.randrange(6 * HOUR_MS) // 1000 * 1000 + i, v, T0 + 7 * HOUR_MS))
    store = store_of(versions)
    (s,) = aggregate_series("d", T0, T0 + 6 * HOUR_MS - 1, 6 * HOUR_MS, chunks=store,
                            rollups=rollups_of(versions, T0 + 6 * HOUR_MS))  # fmt: skip
    # Each hour's sum is exactly rounded (math.fsum) and so is the sum of the hours' sums: the
    # answer is the same bit for bit on both paths (not fsum of all values: that is not mergeable).
    points = newest(versions)
    hours = [partial_of([(ts, v) for (_, _, ts), v in points.items() if h <= ts < h + HOUR_MS])
             for h in range(T0, T0 + 6 * HOUR_MS, HOUR_MS)]  # fmt: skip
    assert T0 % (6 * HOUR_MS) != 0 and len(s.buckets) == 2  # 09:00 to 15:00: two 6-hour buckets
    for start, part in s.buckets:
        inside = [p.sum for h, p in zip(range(T0, T0 + 6 * HOUR_MS, HOUR_MS), hours, strict=True)
                  if p is not None and start <= h < start + 6 * HOUR_MS]  # fmt: skip
        assert part.sum == math.fsum(inside)
    assert math.fsum(p.sum for _, p in s.buckets) != 0.0  # the 1e16s did not swallow the small values
    (raw,) = aggregate_series("d", T0, T0 + 6 * HOUR_MS - 1, 6 * HOUR_MS, chunks=store, rollups=NoRollups())
    assert exact(raw.buckets) == exact(s.buckets)


def test_raw_reading_is_paged_at_bucket_edges_and_the_pages_add_up() -> None:
    rng = random.Random(5)
    store = MemChunks()
    for minute in range(12 * 60):  # one request a minute for 12 hours: 60 items an hour
        ts = T0 + minute * MINUTE_MS
        store.put("d", [Reading("temp", "Cel", ts, rng.uniform(0, 30))], ts + 500)
    whole = aggregate("d", T0, T0 + 12 * HOUR_MS - 1, HOUR_MS, chunks=store, rollups=NoRollups())
    assert whole.resume_ms is None and whole.raw_items == 720
    pages, frm = [], T0
    while True:
        page = aggregate("d", frm, T0 + 12 * HOUR_MS - 1, HOUR_MS, chunks=store, rollups=NoRollups(),
                         max_raw_items=100)  # fmt: skip
        pages.append(page)
        assert page.raw_items <= 100 + 60 + RAW_PAGE_SLACK
        if page.resume_ms is None:
            break
        assert page.resume_ms > frm
        frm = page.resume_ms
    assert len(pages) > 3
    assert exact([b for p in pages for s in p.series for b in s.buckets]) == exact(whole.series[0].buckets)


RAW_PAGE_SLACK = 60  # an hour re-read when a Query page ends inside it


def test_a_page_always_completes_its_first_bucket() -> None:
    store = MemChunks()
    for minute in range(6 * 60):
        ts = T0 + minute * MINUTE_MS
        store.put("d", [Reading("temp", "", ts, minute)], ts + 1)
    assert T0 % (3 * HOUR_MS) == 0
    page = aggregate("d", T0, T0 + 6 * HOUR_MS - 1, 3 * HOUR_MS, chunks=store, rollups=NoRollups(), max_raw_items=10)
    assert [b[0] for b in page.series[0].buckets] == [T0]
    assert page.series[0].buckets[0][1].count == 180
    assert page.resume_ms == T0 + 3 * HOUR_MS
    assert page.raw_items < 6 * 60  # it stopped reading


def test_rollups_mean_fewer_raw_items_and_one_rollup_read() -> None:
    versions: list[Version] = [("t", "", T0 + m * MINUTE_MS, m, T0 + m * MINUTE_MS + 1) for m in range(48 * 60)]
    store = store_of(versions)
    rolled = rollups_of(versions, T0 + 47 * HOUR_MS)
    frm, to = T0 + 10 * MINUTE_MS, T0 + 48 * HOUR_MS - 1
    fast = aggregate("d", frm, to, DAY_MS, chunks=store, rollups=rolled)
    slow = aggregate("d", frm, to, DAY_MS, chunks=store, rollups=NoRollups())
    assert exact(fast.series) == exact(slow.series)
    assert (fast.raw_items, fast.rollup_reads, fast.raw_queries) == (60 + 60, 1, 2)  # first and last hour
    assert slow.raw_items >= 48 * 60  # every chunk, and the hours a 1,000-item page cut read again


def test_no_readings_no_series() -> None:
    assert aggregate_series("d", T0, T0 + DAY_MS, HOUR_MS, chunks=MemChunks(), rollups=NoRollups()) == []


def test_the_cursor_round_trips_and_refuses_what_it_did_not_issue() -> None:
    cursor = AggCursor(T0, T0 + DAY_MS, "abc")
    assert AggCursor.decode(cursor.encode()) == cursor
    # {"x":1}, {"s":true,"t":1,"q":"a"}, {"s":1,"q":"a"} (no window end)
    for bad in ("", "!!", "eyJ4IjoxfQ", "eyJzIjp0cnVlLCJ0IjoxLCJxIjoiYSJ9", "eyJzIjoxLCJxIjoiYSJ9"):
        with pytest.raises(ValueError):
            AggCursor.decode(bad)


def test_hour_keys_of_a_query_cover_whole_hours() -> None:
    store = MemChunks()
    aggregate_series("d", T0 + 1, T0 + 2 * HOUR_MS, HOUR_MS, chunks=store, rollups=NoRollups())
    assert store.queries == [(hour_bucket(T0), hour_bucket(T0 + 2 * HOUR_MS) + "~")]


# --- the aggregated query (aggregated_answer) ----------------------------------------------------


def query_of(**changes: Any) -> AggQuery:
    base = AggQuery("d", "avg", "temp", None, T0, T0 + 3 * HOUR_MS - 1, True, interval="1h")
    return replace(base, **changes)


def three_hours() -> MemChunks:
    versions: list[Version] = [("temp", "Cel", T0 + m * MINUTE_MS, m % 5, T0 + m * MINUTE_MS + 9) for m in range(180)]
    versions += [("temp", "Cel", T0 + 61 * MINUTE_MS + 1, "err", T0 + 62 * MINUTE_MS)]
    versions += [("door", "", T0 + m * MINUTE_MS, m // 10 % 2 == 0, T0 + m * MINUTE_MS + 9) for m in range(0, 180, 10)]
    versions += [("volt", "V", T0 + 5, 3.3, T0 + 9), ("volt", "mV", T0 + 6, 3300, T0 + 9)]
    return store_of(versions)


def test_the_answer_shape_and_counts() -> None:
    store = three_hours()
    doc = aggregated_answer(query_of(), None, chunks=store, rollups=NoRollups())
    assert {k: doc[k] for k in ("device_id", "metric", "unit", "agg", "interval_ms", "next_cursor")} == {
        "device_id": "d", "metric": "temp", "unit": "Cel", "agg": "avg", "interval_ms": HOUR_MS, "next_cursor": None,
    }  # fmt: skip
    assert [b["count"] for b in doc["buckets"]] == [60, 60, 60]  # numbers: the "err" is not one
    count = aggregated_answer(query_of(agg="count"), None, chunks=store, rollups=NoRollups())
    assert [b["value"] for b in count["buckets"]] == [60, 61, 60]  # every reading
    door = aggregated_answer(query_of(agg="last", metric="door"), None, chunks=store, rollups=NoRollups())
    assert [b["value"] for b in door["buckets"]] == [False, False, False] and door["unit"] == ""
    none = aggregated_answer(query_of(metric="nothing"), None, chunks=store, rollups=NoRollups())
    assert (none["unit"], none["buckets"]) == (None, [])


@pytest.mark.parametrize(
    ("changes", "error"),
    [
        ({"metric": "volt"}, AmbiguousUnitError),
        ({"metric": "door"}, NotNumericError),
        ({"metric": None}, InvalidParameterError),
        ({"interval": None}, InvalidParameterError),
        ({"points": 10}, InvalidParameterError),
        ({"agg": "median"}, InvalidParameterError),
        ({"interval": "1m", "to_ms": T0 + 10_001 * MINUTE_MS}, TooManyBucketsError),
        ({"interval": "1d", "from_ms": T0 + 3 * HOUR_MS - 1 - MAX_WINDOW_DAYS * DAY_MS}, WindowTooLongError),
        ({"interval": "1d", "tz": "Nowhere/Atlantis"}, UnknownTimeZoneError),
        ({"interval": "12h", "tz": "Europe/Paris"}, IntervalNotWholeDaysError),
        ({"from_ms": T0 + 3 * HOUR_MS}, InvalidParameterError),
    ],
)
def test_refusals(changes: dict[str, Any], error: type[Exception]) -> None:
    with pytest.raises(error):
        aggregated_answer(query_of(**changes), None, chunks=three_hours(), rollups=NoRollups())


def test_a_unit_settles_an_ambiguous_metric() -> None:
    doc = aggregated_answer(query_of(metric="volt", unit="mV"), None, chunks=three_hours(), rollups=NoRollups())
    assert [(b["count"], b["value"]) for b in doc["buckets"]] == [(1, 3300)]


def test_pages_add_up_and_a_cursor_answers_only_its_query(monkeypatch: pytest.MonkeyPatch) -> None:
    store = store_of([("t", "", T0 + m * MINUTE_MS, m * 0.5, T0 + m * MINUTE_MS) for m in range(6 * 60)])
    q = query_of(metric="t", agg="sum", interval="30m", to_ms=T0 + 6 * HOUR_MS - 1, to_given=False)
    one = aggregated_answer(q, None, chunks=store, rollups=NoRollups())
    monkeypatch.setattr(aggregation, "MAX_RAW_ITEMS", 1)
    monkeypatch.setattr(aggregation, "MIN_QUERY_ITEMS", 1)
    monkeypatch.setattr(aggregation, "RAW_QUERY_ITEMS", 60)
    found, cursor = [], None
    later = replace(q, to_ms=q.to_ms + DAY_MS)  # `to` left out: "now" moved on, the cursor keeps the first
    while True:
        page = aggregated_answer(q if cursor is None else later, cursor, chunks=store, rollups=NoRollups())
        found.append(page)
        if not (cursor := page["next_cursor"]):
            break
    assert len(found) > 2
    assert exact([b for p in found for b in p["buckets"]]) == exact(one["buckets"])
    first = found[0]["next_cursor"]
    for other in (replace(q, agg="max"), replace(q, interval="1800000", agg="min"), replace(q, device_id="e")):
        with pytest.raises(CursorMismatchError):
            aggregated_answer(other, first, chunks=store, rollups=NoRollups())
    same = replace(q, interval="1800000")  # the same interval spelled otherwise: the same query
    assert aggregated_answer(same, first, chunks=store, rollups=NoRollups())["buckets"] == found[1]["buckets"]
    with pytest.raises(CursorMismatchError):  # an explicit `to` is part of the query
        aggregated_answer(replace(later, to_given=True), first, chunks=store, rollups=NoRollups())
    with pytest.raises(InvalidParameterError, match="not one this API issued"):
        aggregated_answer(q, "bm90IGEgY3Vyc29y", chunks=store, rollups=NoRollups())


def test_zones_resolve_from_the_tzdata_package_alone() -> None:
    """Lambda has no /usr/share/zoneinfo: zoneinfo falls back to the locked tzdata package."""
    import tzdata  # noqa: F401  (requirements.in: zoneinfo loads it, the code never imports it)

    zoneinfo.reset_tzpath(to=[])  # no system database, as on Lambda
    ZoneInfo.clear_cache()
    try:
        edges = bucket_edges(ms("2026-10-23T22:00:00Z"), ms("2026-10-26T22:00:00Z"), DAY_MS, "Europe/Paris")
        assert [(b - a) // HOUR_MS for a, b in itertools.pairwise(edges)] == [24, 25, 24]  # summer time ends
    finally:
        zoneinfo.reset_tzpath()
        ZoneInfo.clear_cache()
