"""GET /v1/devices/{id}/telemetry with agg: buckets over HTTP, their limits and errors, the pages,
and the answer from rollups equal to the answer from raw chunks after the real hourly job."""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from datetime import datetime
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

import pytest

from chalicelib import wiring
from chalicelib.adapters.aggregates import RollupStore
from chalicelib.domain import aggregation
from chalicelib.domain.aggregation import AGGREGATES, MAX_BUCKETS, MAX_WINDOW_DAYS, NoRollups
from chalicelib.domain.rollups import HOUR_MS
from chalicelib.jobs.archiver import ArchiveJob
from chalicelib.jobs.rollups import RollupsJob
from tests.functional.helpers import body_of, error_of
from tests.functional.stream_kit import Stream
from tests.functional.test_openapi import response_validator

DAY0 = 1_795_564_800_000  # 2026-11-25T00:00:00Z
MINUTE = 60_000
DAY = 24 * HOUR_MS
TELE = "/v1/devices/{device_id}/telemetry"


def ms(iso: str) -> int:
    return int(datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp() * 1000)


def get(api: Any, device: dict[str, Any], token: str | None = None, **params: Any) -> Any:
    return api.request("GET", f"/v1/devices/{device['id']}/telemetry?{urlencode(params)}", token or api.admin)


def answer(api: Any, device: dict[str, Any], **params: Any) -> dict[str, Any]:
    got = get(api, device, **params)
    assert got.status_code == 200, got.body
    return body_of(got)  # type: ignore[no-any-return]


def pages(api: Any, device: dict[str, Any], **params: Any) -> Iterator[dict[str, Any]]:
    """Every page of an aggregated query, following next_cursor."""
    page = answer(api, device, **params)
    yield page
    while page["next_cursor"]:
        page = answer(api, device, **params, cursor=page["next_cursor"])
        yield page


def whole(api: Any, device: dict[str, Any], **params: Any) -> dict[str, Any]:
    """The answer of every page: the first page's members with every page's buckets."""
    found = list(pages(api, device, **params))
    return {**found[0], "buckets": [b for p in found for b in p["buckets"]], "next_cursor": None}


def post(api: Any, device: dict[str, Any], records: list[dict[str, Any]], key: str | None = None) -> None:
    for i in range(0, len(records), 100):
        headers = {"Idempotency-Key": f"{key}-{i}"} if key else None
        got = api.request("POST", "/v1/telemetry", device["token"], records[i : i + 100], headers=headers)
        assert got.status_code == 200, got.body


def post_senml(api: Any, device: dict[str, Any], pack: list[dict[str, Any]]) -> None:
    got = api.request("POST", "/v1/telemetry", device["token"], pack, content_type="application/senml+json")
    assert got.status_code == 200, got.body


@pytest.fixture
def document(api: Any) -> dict[str, Any]:
    got = api.request("GET", "/v1/openapi.json")
    assert got.status_code == 200
    return body_of(got)  # type: ignore[no-any-return]


def documented(document: dict[str, Any], got: Any) -> None:
    """The answer is the one the document describes for its status."""
    validator = response_validator(document, TELE, "GET", got.status_code)
    assert validator is not None
    errors = [e.message[:200] for e in validator.iter_errors(json.loads(got.body))]
    assert errors == [], errors


# --- every agg, interval and points --------------------------------------------------------------

T = DAY0 + 9 * HOUR_MS  # 09:00Z


@pytest.fixture
def minutes(api: Any, device: dict[str, Any]) -> list[dict[str, Any]]:
    """Three hours of one reading a minute: temp numbers (an error string among them), door strings."""
    records = []
    for m in range(180):
        values: dict[str, Any] = {"temp": "err" if m == 61 else m % 7 + (0.5 if m % 2 else 0), "door": "open"}
        if m % 30 == 0:
            values["door"] = "closed"
        records.append({"ts": T + m * MINUTE + 123, "values": values})
    post(api, device, records)
    return records


def test_every_agg_over_hour_buckets(api, device, minutes, document):
    temps = [(r["ts"], r["values"]["temp"]) for r in minutes]
    for agg in AGGREGATES:
        got = get(api, device, metric="temp", agg=agg, interval="1h", **{"from": T, "to": T + 3 * HOUR_MS - 1})
        assert got.status_code == 200, got.body
        documented(document, got)
        doc = body_of(got)
        assert (doc["device_id"], doc["metric"], doc["unit"], doc["agg"]) == (device["id"], "temp", "", agg)
        assert doc["interval_ms"] == HOUR_MS and doc["next_cursor"] is None
        assert [b["start"] for b in doc["buckets"]] == [T, T + HOUR_MS, T + 2 * HOUR_MS]
        for bucket in doc["buckets"]:
            inside = [v for ts, v in temps if bucket["start"] <= ts < bucket["start"] + HOUR_MS]
            numbers = [v for v in inside if not isinstance(v, str)]
            want = {
                "avg": sum(numbers) / len(numbers),
                "min": min(numbers),
                "max": max(numbers),
                "sum": sum(numbers),
                "count": len(inside),
                "first": inside[0],
                "last": inside[-1],
            }[agg]
            assert bucket["value"] == pytest.approx(want) if agg == "avg" else bucket["value"] == want
            # numeric aggs count the numbers; count, first and last every reading (the "err" too)
            assert bucket["count"] == (len(numbers) if agg in ("avg", "min", "max", "sum") else len(inside))
    assert any(b["count"] == 59 for b in answer(api, device, metric="temp", agg="sum", interval="1h",
                                                **{"from": T, "to": T + 3 * HOUR_MS - 1})["buckets"])  # fmt: skip


def test_strings_take_count_first_last_and_intervals_parse(api, device, minutes):
    window = {"from": T, "to": T + 3 * HOUR_MS - 1}
    firsts = answer(api, device, metric="door", agg="first", interval="30m", **window)
    assert [b["value"] for b in firsts["buckets"]] == ["closed"] * 6
    assert [b["count"] for b in firsts["buckets"]] == [30] * 6
    for spelled in ("90m", "5400000", "5400s"):
        doc = answer(api, device, metric="door", agg="count", interval=spelled, **window)
        assert doc["interval_ms"] == 90 * MINUTE
        assert [(b["start"] - T, b["value"]) for b in doc["buckets"]] == [(0, 90), (90 * MINUTE, 90)]
    # an empty bucket is left out; buckets align to the epoch, not to from
    sparse = answer(api, device, metric="temp", agg="count", interval="1h", **{"from": T - 5 * HOUR_MS + 7,
                    "to": T + HOUR_MS - 1})  # fmt: skip
    assert [b["start"] for b in sparse["buckets"]] == [T]


def test_points_picks_the_smallest_round_interval_that_fits(api, device, minutes):
    window = {"from": T, "to": T + 3 * HOUR_MS - 1}
    for points, interval in ((1000, 15_000), (180, MINUTE), (179, 2 * MINUTE), (12, 15 * MINUTE), (3, HOUR_MS)):
        doc = answer(api, device, metric="temp", agg="max", points=points, **window)
        assert doc["interval_ms"] == interval, points
        assert len(doc["buckets"]) <= points
    one = answer(api, device, metric="temp", agg="count", points=1, **window)  # 09:00 to 12:00 is one 3h bucket
    assert (one["interval_ms"], [b["value"] for b in one["buckets"]]) == (3 * HOUR_MS, [180])


def test_a_device_reads_its_own_aggregates_and_no_one_elses(api, device, other_device, minutes):
    query = {"metric": "temp", "agg": "count", "interval": "1h", "from": T, "to": T + HOUR_MS - 1}
    assert body_of(get(api, device, device["token"], **query))["buckets"][0]["value"] == 60
    assert get(api, device, other_device["token"], **query).status_code == 403
    assert get(api, {"id": "nope"}, **query).status_code == 404
    assert get(api, {"id": other_device["id"]}, **query).status_code == 200  # no readings: no buckets


# --- time zones ---------------------------------------------------------------------------------


def test_local_days_across_the_end_of_summer_time(api, device, document):
    paris = ZoneInfo("Europe/Paris")
    start = ms("2026-10-23T22:00:00Z")  # Saturday 24 October, 00:00 in Paris (CEST, UTC+2)
    records = [{"ts": start + h * HOUR_MS + 17, "values": {"temp": h}} for h in range(72)]  # one an hour
    post(api, device, records)
    got = get(api, device, metric="temp", agg="count", interval="1d", tz="Europe/Paris",
              **{"from": start, "to": start + 72 * HOUR_MS - 1})  # fmt: skip
    assert got.status_code == 200, got.body
    documented(document, got)
    buckets = body_of(got)["buckets"]
    midnights = [datetime.fromtimestamp(b["start"] / 1000, paris) for b in buckets]
    assert [(m.day, m.hour, m.minute) for m in midnights] == [(24, 0, 0), (25, 0, 0), (26, 0, 0)]
    assert [b["start"] for b in buckets] == [start, start + 24 * HOUR_MS, start + 49 * HOUR_MS]
    assert [b["value"] for b in buckets] == [24, 25, 23]  # Sunday has 25 hours; the window ends Monday 23:00
    utc = answer(
        api, device, metric="temp", agg="count", interval="1d", **{"from": start, "to": start + 72 * HOUR_MS - 1}
    )
    assert [b["start"] % DAY for b in utc["buckets"]] == [0] * 4  # UTC days without tz
    weekly = answer(api, device, metric="temp", agg="sum", points=1, tz="Europe/Paris",
                    **{"from": start, "to": start + 72 * HOUR_MS - 1})  # fmt: skip
    assert weekly["interval_ms"] % DAY == 0 and sum(b["value"] for b in weekly["buckets"]) == sum(range(72))


# --- limits and errors --------------------------------------------------------------------------


def error_code(got: Any) -> str:
    assert got.status_code == 400, got.body
    return str(error_of(got)["code"])


def test_each_refusal_has_its_code(api, device, minutes, document):
    base = {"metric": "temp", "agg": "avg", "from": T, "to": T + 3 * HOUR_MS - 1}
    post_senml(api, device, [{"n": "volt", "u": "V", "v": 3.3, "t": (T + 5) / 1000},
                             {"n": "volt", "u": "mV", "v": 3300, "t": (T + 6) / 1000}])  # fmt: skip
    cases: list[tuple[dict[str, Any], str]] = [
        ({"interval": "1s", "from": T, "to": T + 3 * HOUR_MS}, "too_many_buckets"),
        ({"points": MAX_BUCKETS + 1}, "invalid_parameter"),
        ({"interval": "1d", "from": T + 3 * HOUR_MS - 1 - MAX_WINDOW_DAYS * DAY}, "window_too_long"),  # 1 ms over
        ({"interval": "1d", "from": None}, "window_too_long"),  # from left out: since 1970
        ({"interval": "1h", "metric": "volt"}, "ambiguous_unit"),
        ({"interval": "1h", "metric": "door"}, "not_numeric"),
        ({"interval": "1d", "tz": "Mars/Olympus_Mons"}, "unknown_time_zone"),
        ({"interval": "1h", "tz": "Europe/Paris"}, "interval_not_whole_days"),
        ({"interval": "36h", "tz": "Europe/Paris"}, "interval_not_whole_days"),
        ({"interval": "1h", "metric": None}, "invalid_parameter"),  # agg needs a metric
        ({}, "invalid_parameter"),  # neither interval nor points
        ({"interval": "1h", "points": 10}, "invalid_parameter"),
        ({"interval": "0"}, "invalid_parameter"),
        ({"interval": "1y"}, "invalid_parameter"),
        ({"interval": "1h", "agg": "median"}, "invalid_parameter"),
        ({"interval": "1h", "limit": 10}, "invalid_parameter"),  # limit pages raw readings only
        ({"interval": "1h", "tz": "../etc/passwd"}, "invalid_parameter"),
        ({"interval": "1h", "cursor": "bm90IGEgY3Vyc29y"}, "invalid_parameter"),
        ({"interval": "1h", "from": T + 1, "to": T}, "invalid_parameter"),
        ({"agg": None, "interval": "1h"}, "invalid_parameter"),  # aggregation parameters without agg
        ({"agg": None, "unit": "Cel"}, "invalid_parameter"),
    ]
    for change, code in cases:
        params = {k: v for k, v in {**base, **change}.items() if v is not None}
        got = get(api, device, **params)
        assert error_code(got) == code, (change, got.body)
        documented(document, got)
        assert error_of(got)["message"]
    assert "at least" in error_of(get(api, device, **{**base, "interval": "1s"}))["message"]  # says what fits
    # the unit settles it (and the empty unit is the unit-less readings')
    volts = answer(api, device, **{**base, "metric": "volt", "unit": "mV", "interval": "1h"})
    assert (volts["unit"], [b["value"] for b in volts["buckets"]]) == ("mV", [3300])
    assert answer(api, device, **{**base, "unit": "", "interval": "1h"})["unit"] == ""
    assert answer(api, device, **{**base, "unit": "K", "interval": "1h"})["buckets"] == []


def test_at_the_limits(api, device, minutes):
    window = {"from": T, "to": T + MAX_BUCKETS * 1000 - 1}
    doc = answer(api, device, metric="temp", agg="count", interval="1s", **window)  # exactly 10,000 buckets
    assert doc["interval_ms"] == 1000 and len(doc["buckets"]) == 167  # the seconds with a reading
    assert answer(api, device, metric="temp", agg="count", points=MAX_BUCKETS, **window)["interval_ms"] == 1000
    longest = {"from": T - MAX_WINDOW_DAYS * DAY + 1, "to": T}  # the longest window (one ms more: too long)
    assert answer(api, device, metric="temp", agg="count", interval="1d", **longest)["buckets"] == []


BAD_VALUES = ["", " ", "-1", "0", "1e3", "1.5h", "NaN", "%00", "\u00e9", "x" * 300, "1" * 40, "Europe/Paris",
              "-", "ms", "1h ", "9999999999999999999999", "null", "[]", "/", "UTC"]  # fmt: skip


def test_nothing_breaks_on_bad_input(api, device, minutes):
    rng = random.Random(16)
    names = ["agg", "interval", "points", "tz", "unit", "metric", "from", "to", "cursor", "limit"]
    good = {"metric": "temp", "agg": "avg", "interval": "1h", "from": T, "to": T + 3 * HOUR_MS - 1}
    seen = set()
    for _ in range(150):
        params = dict(good)
        for name in rng.sample(names, rng.randint(1, 3)):
            params[name] = rng.choice(BAD_VALUES + list(AGGREGATES) + ["1d", "5m", "3", "Asia/Kolkata"])
        got = get(api, device, **params)
        assert got.status_code in (200, 400), (params, got.status_code, got.body)
        seen.add(got.status_code)
        if got.status_code == 400:
            assert error_of(got)["code"] in {"invalid_parameter", "too_many_buckets", "window_too_long",
                                             "not_numeric", "unknown_time_zone", "interval_not_whole_days",
                                             "cursor_mismatch"}  # fmt: skip
    assert seen == {200, 400}


# --- pages --------------------------------------------------------------------------------------


def test_a_tiny_raw_budget_pages_to_the_same_answer(api, device, monkeypatch):
    for m in range(0, 180, 6):  # a request every 6 minutes: 10 chunk items an hour
        post(api, device, [{"ts": T + (m + k) * MINUTE + 5, "values": {"temp": (m + k) * 0.1}} for k in range(6)])
    query = {"metric": "temp", "agg": "sum", "interval": "20m", "from": T + 7 * MINUTE, "to": T + 3 * HOUR_MS - 1}
    one = answer(api, device, **query)
    assert one["next_cursor"] is None and len(one["buckets"]) == 9
    monkeypatch.setattr(aggregation, "MAX_RAW_ITEMS", 3)
    monkeypatch.setattr(aggregation, "MIN_QUERY_ITEMS", 2)
    found = list(pages(api, device, **query))
    assert len(found) > 2 and all(p["buckets"] for p in found)
    assert {**found[0], "buckets": [b for p in found for b in p["buckets"]], "next_cursor": None} == one
    # a cursor answers only its query (a `to` left out is the first page's "now": still the same query)
    cursor = found[0]["next_cursor"]
    for other in ({"agg": "max"}, {"interval": "10m"}, {"from": T}, {"metric": "door", "agg": "count"}):
        assert error_code(get(api, device, **{**query, **other}, cursor=cursor)) == "cursor_mismatch"
    open_ended = {k: v for k, v in query.items() if k != "to"}
    first = answer(api, device, **open_ended)
    assert answer(api, device, **open_ended, cursor=first["next_cursor"])["buckets"] == found[1]["buckets"]


# --- the agreement: rollups and raw chunks answer alike ---------------------------------------------

WINDOW = (ms("2026-11-25T09:23:17.250Z"), ms("2026-11-28T07:41:09.999Z"))
WINDOW_HOURS = (WINDOW[0] // 3_600_000 * 3_600_000, WINDOW[1] // 3_600_000 * 3_600_000 + 3_600_000)
JOB_NOW = ms("2026-11-28T05:15:00Z")  # the hourly job has rolled up to 05:00: the window's end is raw


def random_records(rng: random.Random, n: int) -> list[dict[str, Any]]:
    lo, hi = WINDOW[0] - 2 * HOUR_MS, WINDOW[1] + HOUR_MS  # readings outside the window too
    out = []
    for _ in range(n):
        values: dict[str, Any] = {}
        kind = rng.random()
        values["temp"] = (
            rng.randint(-40, 40) if kind < 0.3 else 1e15 + rng.random() if kind < 0.35 else "err" if kind < 0.38
            else round(rng.uniform(-30, 40), rng.randint(0, 6))
        )  # fmt: skip
        if rng.random() < 0.4:
            values["door"] = rng.choice(["open", "closed", True, False])
        out.append({"ts": rng.randrange(lo, hi), "values": values})
    return out


def archive(now: int) -> None:
    """The stream's new records into the archive, as the archiver handler does (late hours marked)."""
    job = ArchiveJob(wiring.archive(), wiring.metrics(), clock=lambda: now, marks=RollupStore())
    stream = AGREEMENT_STREAM[0]
    job.handle(stream.read())


AGREEMENT_STREAM: list[Stream] = []


def roll(now: int) -> list[dict[str, Any]]:
    runs = [RollupsJob(wiring.archive(), RollupStore(), wiring.aggregates(), clock=lambda: now).run(None)]
    while runs[-1]["hours"]:
        runs.append(RollupsJob(wiring.archive(), RollupStore(), wiring.aggregates(), clock=lambda: now).run(None))
    return runs


QUERIES: list[dict[str, Any]] = [
    {"interval": "1h"},
    {"interval": "3h"},
    {"interval": "1d"},
    {"interval": "17m"},
    {"points": 40},
    {"interval": "1d", "tz": "Europe/Paris"},
    {"interval": "1d", "tz": "Asia/Kolkata"},  # local midnight at :30 splits an hour
    {"interval": "2d", "tz": "America/St_Johns"},
]


def test_rollups_and_raw_chunks_give_the_same_buckets(api, device, monkeypatch):
    from infra.bootstrap import ensure_bucket

    ensure_bucket(wiring.aws_client("s3"), wiring.bound_settings())
    AGREEMENT_STREAM[:] = [Stream()]
    rng = random.Random(1616)
    records = random_records(rng, 1400)
    # in time order, as devices send (few chunk items: the raw path reads them all, on every query)
    records[:1200] = sorted(records[:1200], key=lambda r: r["ts"])
    post(api, device, records[:1200], key="first")
    post(api, device, records[:1200], key="first")  # an idempotent retry: nothing stored twice
    archive(JOB_NOW)
    runs = roll(JOB_NOW)
    assert RollupStore().covered_until_ms() == ms("2026-11-28T05:00:00Z")
    assert any(r["compacted"] for r in runs)
    # late readings for hours already rolled up, duplicates (same values) and corrections (new values)
    late = records[1200:]  # in no order: one chunk item for nearly every reading
    again = rng.sample(records[:1200], 60)
    corrected = [{"ts": r["ts"], "values": {"temp": rng.uniform(-5, 5)}} for r in rng.sample(records[:1200], 40)]
    post(api, device, late + again + corrected)
    archive(JOB_NOW + 5 * MINUTE)
    window = {"from": WINDOW[0], "to": WINDOW[1]}
    hours_read: list[int] = []  # the rollup hours each aggregated request of the rollup path read
    hours = RollupStore.hours

    def counted(self: RollupStore, *args: Any) -> Any:
        found = hours(self, *args)
        hours_read.append(len(found))
        return found

    monkeypatch.setattr(RollupStore, "hours", counted)

    def both(**query: Any) -> tuple[dict[str, Any], dict[str, Any]]:
        with_rollups = whole(api, device, **window, **query)
        with monkeypatch.context() as raw_only:
            raw_only.setattr(wiring, "rollup_store", NoRollups)
            from_raw = whole(api, device, **window, **query)
        return with_rollups, from_raw

    stale_rollups = RollupStore().hours(device["id"], "temp", None, *WINDOW_HOURS)
    before, fresh = both(metric="temp", agg="sum", interval="1h")
    # before the re-roll the rollups miss the late readings, yet the answer already has them: the
    # device's dirty hours come from raw chunks until the job has rolled them again
    assert before == fresh
    rerun = roll(JOB_NOW + 10 * MINUTE)
    assert RollupStore().hours(device["id"], "temp", None, *WINDOW_HOURS) != stale_rollups  # the test can tell
    assert rerun[0]["rerolled"] and RollupStore().dirty() == []

    compared = 0
    for query in QUERIES:
        for agg in AGGREGATES:
            for metric in ("temp", "door") if agg in ("count", "first", "last") else ("temp",):
                hours_read.clear()
                with_rollups, from_raw = both(metric=metric, agg=agg, **query)
                assert with_rollups == from_raw, (metric, agg, query)  # exact: floats compared as sent
                assert with_rollups["buckets"], (metric, agg, query)
                assert sum(hours_read) > 0 or query.get("interval") == "17m", query  # the rollups were used
                compared += len(with_rollups["buckets"])
    assert compared > 1000
    # and the answer is what the readings say (newest version of each reading, every hour)
    total = answer(api, device, **window, metric="temp", agg="count", interval="1d")
    assert sum(b["value"] for b in total["buckets"]) == len(
        {r["ts"] for r in records + corrected if WINDOW[0] <= r["ts"] <= WINDOW[1]}
    )
    # paged by a small raw budget, on both paths, the pages add up to the same answer
    one_page = whole(api, device, **window, metric="temp", agg="avg", interval="2h")
    monkeypatch.setattr(aggregation, "MAX_RAW_ITEMS", 1)  # the rollups' hours need none: the edges do
    monkeypatch.setattr(aggregation, "MIN_QUERY_ITEMS", 1)
    paged = list(pages(api, device, **window, metric="temp", agg="avg", interval="2h"))
    assert len(paged) > 1 and len(paged[0]["buckets"]) > 30
    assert {**paged[0], "buckets": [b for p in paged for b in p["buckets"]], "next_cursor": None} == one_page
    assert whole(api, device, **window, metric="temp", agg="avg", interval="2h") == one_page
