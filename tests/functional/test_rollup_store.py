"""RollupStore over moto: hour pages, compaction into day items, reads across both, re-rolls, the job."""

from __future__ import annotations

import json
import random
from typing import Any

import pytest

from chalicelib import wiring
from chalicelib.adapters.aggregates import DAY_PREFIX, PAGE_PREFIX, RollupStore, day_of
from chalicelib.domain.archive import encode_lines, partition_of
from chalicelib.domain.mapreduce import late_marks
from chalicelib.domain.rollups import HOUR_MS, ROLLUP_GRACE_MS, Partial, SeriesHour, partial_of
from chalicelib.jobs.rollups import RollupsJob
from chalicelib.models import AggregateModel

DAY0 = 1_795_564_800_000  # 2026-11-25T00:00:00Z
rng = random.Random(16)


def hour_rows(hour: int, devices: list[str]) -> dict[str, dict[SeriesHour, Partial]]:
    rows: dict[str, dict[SeriesHour, Partial]] = {}
    for d in devices:
        temp = partial_of([(hour + m * 60_000, round(20 + rng.uniform(-1, 1), 2)) for m in range(60)])
        door = partial_of([(hour + 5, "open"), (hour + 9, True)])
        assert temp is not None and door is not None
        rows[d] = {("temp", "Cel", hour): temp, ("door", "", hour): door}
    return rows


def keys(prefix: str) -> list[tuple[str, str]]:
    return sorted((i.partition, i.sort_key) for i in AggregateModel.scan() if i.partition.startswith(prefix))


def test_hours_go_to_pages_then_a_day_compacts_into_day_items(aws):
    store = RollupStore()
    devices = [f"dev-{n:03d}" for n in range(150)]
    want: dict[str, dict[SeriesHour, Partial]] = {d: {} for d in devices}
    for h in range(24):
        rows = hour_rows(DAY0 + h * HOUR_MS, devices)
        for d, series in rows.items():
            want[d].update(series)
        manifest = store.put_hour(DAY0 + h * HOUR_MS, rows)
        if h == 11:  # half a day: the pages answer
            got = store.hours("dev-007", None, None, DAY0, DAY0 + 24 * HOUR_MS)
            assert got == {k: p for k, p in want["dev-007"].items() if k[2] < DAY0 + 12 * HOUR_MS}
            assert keys(DAY_PREFIX) == []
    assert manifest.shards > 1 and len(manifest.hours) == 24 and not manifest.compacted
    assert store.compact("2026-11-25") == 150
    assert len(keys(DAY_PREFIX)) == 150
    assert RollupStore().manifest("2026-11-25").compacted
    for d in ("dev-000", "dev-149"):
        assert RollupStore().hours(d, None, None, DAY0, DAY0 + 24 * HOUR_MS) == want[d]
    temp_noon = RollupStore().hours("dev-001", "temp", "Cel", DAY0 + 12 * HOUR_MS, DAY0 + 13 * HOUR_MS)
    assert list(temp_noon) == [("temp", "Cel", DAY0 + 12 * HOUR_MS)]


def test_a_day_compacts_shard_by_shard_and_reads_stay_whole_meanwhile(aws):
    store = RollupStore()
    devices = [f"dev-{n:03d}" for n in range(150)]
    want: dict[str, dict[SeriesHour, Partial]] = {d: {} for d in devices}
    for h in range(24):
        rows = hour_rows(DAY0 + h * HOUR_MS, devices)
        for d, series in rows.items():
            want[d].update(series)
        manifest = store.put_hour(DAY0 + h * HOUR_MS, rows)
    steps, shard = [], 0
    while True:
        nxt = store.compact_from("2026-11-25", shard, stop=lambda: True)  # one shard a call
        steps.append(nxt)
        if nxt is None:
            break
        assert not RollupStore().manifest("2026-11-25").compacted  # type: ignore[union-attr]
        for d in ("dev-000", "dev-149"):  # part compacted: the pages still answer, whole
            assert RollupStore().hours(d, None, None, DAY0, DAY0 + 24 * HOUR_MS) == want[d]
        shard = nxt
    assert steps == [*range(1, manifest.shards), None]
    assert len(keys(DAY_PREFIX)) == 150 and RollupStore().manifest("2026-11-25").compacted  # type: ignore[union-attr]
    assert all(RollupStore().hours(d, None, None, DAY0, DAY0 + 24 * HOUR_MS) == want[d] for d in devices)
    assert store.compact_from("2026-11-25", 0, stop=lambda: False) is None  # done: nothing more


def test_reads_span_compacted_and_open_days_and_put_hour_is_idempotent(aws):
    store = RollupStore()
    devices = ["a", "b", "c"]
    want: dict[SeriesHour, Partial] = {}
    for h in range(30):  # a whole day and 6 hours of the next
        rows = hour_rows(DAY0 + h * HOUR_MS, devices)
        want.update(rows["b"])
        manifest = store.put_hour(DAY0 + h * HOUR_MS, rows)
        if len(manifest.hours) == 24:
            store.compact(day_of(DAY0 + h * HOUR_MS))
    before = keys(PAGE_PREFIX)
    again = hour_rows(DAY0 + 29 * HOUR_MS, devices)
    store.put_hour(DAY0 + 29 * HOUR_MS, again)
    store.put_hour(DAY0 + 29 * HOUR_MS, again)  # a retry: same items
    want.update(again["b"])
    assert keys(PAGE_PREFIX) == before
    assert store.hours("b", None, None, DAY0, DAY0 + 48 * HOUR_MS) == want
    assert store.hours("zzz", None, None, DAY0, DAY0 + 48 * HOUR_MS) == {}


def test_replace_hours_in_pages_and_in_a_compacted_day(aws):
    store = RollupStore()
    for h in range(26):
        manifest = store.put_hour(DAY0 + h * HOUR_MS, hour_rows(DAY0 + h * HOUR_MS, ["a", "b"]))
        if len(manifest.hours) == 24:
            store.compact("2026-11-25")
    late = partial_of([(DAY0 + 3 * HOUR_MS + 1, 99)])
    open_hour = DAY0 + 25 * HOUR_MS
    late_open = partial_of([(open_hour + 1, -0.0)])
    assert late is not None and late_open is not None
    b_before = store.hours("b", None, None, DAY0, DAY0 + 26 * HOUR_MS)
    store.replace_hours("a", {("temp", "Cel", DAY0 + 3 * HOUR_MS): late}, {DAY0 + 3 * HOUR_MS})
    store.replace_hours("a", {("volt", "V", open_hour): late_open}, {open_hour})
    got = store.hours("a", None, None, DAY0 + 3 * HOUR_MS, DAY0 + 4 * HOUR_MS)
    assert got == {("temp", "Cel", DAY0 + 3 * HOUR_MS): late}  # the hour's door series is gone too
    assert store.hours("a", None, None, open_hour, open_hour + HOUR_MS) == {("volt", "V", open_hour): late_open}
    assert store.hours("b", None, None, DAY0, DAY0 + 26 * HOUR_MS) == b_before  # the neighbour is untouched


def test_watermark_and_dirty_marks_keep_a_newer_mark(aws):
    store = RollupStore()
    assert store.covered_until_ms() == 0
    store.set_covered_until(DAY0 + HOUR_MS)
    assert store.covered_until_ms() == DAY0 + HOUR_MS
    store.mark_dirty([(DAY0, "a"), (DAY0, "b")], "v1")
    store.mark_dirty([(DAY0, "b")], "v2")  # a later late batch while the job re-rolls
    assert sorted(store.dirty()) == [(DAY0, "a", "v1"), (DAY0, "b", "v2")]
    # a device's dirty hour is not covered for it (the aggregation reads it raw), other devices' are
    assert store.covered_until_ms("a") == store.covered_until_ms("b") == DAY0
    assert store.covered_until_ms("c") == DAY0 + HOUR_MS
    assert store.clear_dirty(DAY0, "a", "v1") is True
    assert store.clear_dirty(DAY0, "b", "v1") is False
    assert store.dirty() == [(DAY0, "b", "v2")]
    assert store.covered_until_ms("a") == DAY0 + HOUR_MS and store.covered_until_ms("b") == DAY0
    assert store.clear_dirty(DAY0, "b", "v2") is True
    assert store.covered_until_ms("b") == DAY0 + HOUR_MS


def test_late_marks_rule():
    lines = [{"device_id": "a", "ts": DAY0 + 5}, {"device_id": "b", "ts": DAY0 + HOUR_MS + 5}]
    due = DAY0 + HOUR_MS + ROLLUP_GRACE_MS
    assert late_marks(lines, due - 1) == set()
    assert late_marks(lines, due) == {(DAY0, "a")}
    assert late_marks(lines, due + HOUR_MS) == {(DAY0, "a"), (DAY0 + HOUR_MS, "b")}


def put_archive(lines: list[dict[str, Any]], name: str) -> None:
    parts: dict[str, list[dict[str, Any]]] = {}
    for line in lines:
        parts.setdefault(partition_of(line["ts"]), []).append(line)
    for partition, chunk in parts.items():
        wiring.archive().put(f"archive/{partition}/{name}.jsonl.gz", encode_lines(chunk))


def reading(device: str, ts: int, value: Any, metric: str = "temp") -> dict[str, Any]:
    return {"device_id": device, "metric": metric, "unit": "", "ts": ts, "value": value, "received_at": ts + 1}


@pytest.mark.parametrize("max_hours", [48, 7])
def test_the_job_rolls_closed_hours_compacts_and_rerolls_late_readings(aws, max_hours):
    from infra.bootstrap import ensure_bucket

    ensure_bucket(wiring.aws_client("s3"), wiring.bound_settings())
    lines = [reading(d, DAY0 + m * 60_000, m % 13 + 0.1) for d in ("a", "b") for m in range(0, 26 * 60, 7)]
    lines += [reading("a", DAY0 + 3 * HOUR_MS + 7, "door open", metric="event")]
    put_archive(lines, "batch-1")
    now = DAY0 + 26 * HOUR_MS + ROLLUP_GRACE_MS + 1  # 26 hours due
    outcome: dict[str, Any] = {"hours": [None]}
    runs = []
    while outcome["hours"]:
        job = RollupsJob(wiring.archive(), RollupStore(), wiring.aggregates(), max_hours=max_hours, clock=lambda: now)
        outcome = job.run(None)
        runs.append(outcome)
    assert sum(len(r["hours"]) for r in runs) == 26 and runs[0]["days"]
    assert [d for r in runs for d in r["compacted"]] == ["2026-11-25"]
    store = RollupStore()
    assert store.covered_until_ms() == DAY0 + 26 * HOUR_MS
    expected = {
        ("temp", "", h * HOUR_MS + DAY0): partial_of(
            [(x["ts"], x["value"]) for x in lines if x["device_id"] == "a" and x["metric"] == "temp"
             and DAY0 + h * HOUR_MS <= x["ts"] < DAY0 + (h + 1) * HOUR_MS]
        )
        for h in range(26)
    }  # fmt: skip
    got = store.hours("a", "temp", "", DAY0, DAY0 + 26 * HOUR_MS)
    assert got == expected
    assert wiring.aggregates().postings("door")[0]["device_id"] == "a"

    # late readings for a compacted hour and for an open day's hour, marked by the archiver's rule
    late = [reading("b", DAY0 + 2 * HOUR_MS + 1, 1000), reading("b", DAY0 + 25 * HOUR_MS + 2, -5)]
    put_archive(late, "batch-2")
    store.mark_dirty(late_marks(late, now), "v1")
    outcome = RollupsJob(wiring.archive(), RollupStore(), wiring.aggregates(), clock=lambda: now).run(None)
    assert outcome["days"] and outcome["hours"] == [] and len(outcome["rerolled"]) == 2
    assert RollupStore().dirty() == []
    b = RollupStore().hours("b", "temp", "", DAY0, DAY0 + 26 * HOUR_MS)
    assert b[("temp", "", DAY0 + 2 * HOUR_MS)].max == 1000
    assert b[("temp", "", DAY0 + 25 * HOUR_MS)].min == -5
    assert b[("temp", "", DAY0 + 2 * HOUR_MS)].count == 1 + sum(
        1 for x in lines if x["device_id"] == "b" and DAY0 + 2 * HOUR_MS <= x["ts"] < DAY0 + 3 * HOUR_MS
    )


def test_the_design_meets_its_write_and_read_targets():
    from bench.model import job_outputs_per_reading

    job = job_outputs_per_reading()
    assert job["rollup_write_units_per_million"] <= 13_753 / 10  # a tenth of the daily job's items
    assert job["rollup_write_units_per_million"] <= job["before_rollup_write_units_per_million"] / 10
    assert job["read_units_7_day_window"] <= 5
    assert job["page_bytes_mean"] < 1024  # one write unit a page


def test_the_rollups_route_serves_the_store(api, device):
    store = RollupStore()
    hour = DAY0 + 9 * HOUR_MS
    rows = hour_rows(hour, [device["id"], "other"])
    store.put_hour(hour, rows)
    store.put_hour(hour + HOUR_MS, hour_rows(hour + HOUR_MS, [device["id"]]))
    answer = api.request("GET", f"/v1/devices/{device['id']}/rollups?from={hour + 5}&to={hour + HOUR_MS}", api.admin)
    assert answer.status_code == 200, answer.body
    got = json.loads(answer.body)["rollups"]
    assert [(r["hour"], r["metric"]) for r in got] == [
        ("2026-11-25T09", "door"),
        ("2026-11-25T09", "temp"),
        ("2026-11-25T10", "door"),
        ("2026-11-25T10", "temp"),
    ]
    door = got[0]
    assert (door["count"], door["numbers"], door["min"], door["mean"], door["first"], door["last"]) == (
        2, 0, None, None, "open", True,
    )  # fmt: skip
    temp = rows[device["id"]][("temp", "Cel", hour)]
    assert (got[1]["sum"], got[1]["min"], got[1]["first_ts"]) == (temp.sum, temp.min, temp.first_ts)
    only = api.request("GET", f"/v1/devices/{device['id']}/rollups?from={hour}&to={hour}&metric=temp", api.admin)
    assert [r["metric"] for r in json.loads(only.body)["rollups"]] == ["temp"]
