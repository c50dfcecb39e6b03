"""The Athena path of the hourly job (ROLLUP_ENGINE=athena) on moto S3 + DynamoDB with the devstack DuckDB executor,
and its Athena adapter against boto3's athena client (moto)."""

from __future__ import annotations

import gzip
import json
import random
from pathlib import Path
from typing import Any

import boto3
import pytest

from chalicelib import wiring
from chalicelib.adapters.aggregates import AggregateStore, RollupStore
from chalicelib.adapters.archive import S3Archive
from chalicelib.adapters.athena import AthenaQueries
from chalicelib.domain.mapreduce import INDEX, run_local
from chalicelib.domain.rollups import HOUR_MS, ROLLUP_GRACE_MS, Partial
from chalicelib.jobs.fleet_rollups import (
    FAILED_RETRY_MS,
    FAILED_STAGE,
    LOADED,
    MAX_ATTEMPTS,
    FleetRollupsJob,
    JobState,
)
from chalicelib.jobs.rollups import RollupsJob, oldest_archive_hour
from devstack.athena import DuckDBAthena
from tests.unit.test_rollup_sql import expected

HOUR = 1_764_050_400_000  # 2025-11-25T06:00Z


def _put_archive(s3: Any, bucket: str, hour_ms: int, lines: list[dict[str, Any]], name: str = "b-1") -> None:
    from chalicelib.domain.rollup_sql import partition_of_hour

    body = "".join(json.dumps(x) + "\n" for x in lines).encode()
    s3.put_object(Bucket=bucket, Key=f"archive/{partition_of_hour(hour_ms)}/{name}.jsonl.gz", Body=gzip.compress(body))


def _lines(seed: int, hour_ms: int) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    out = []
    for i in range(120):
        ts = hour_ms + rng.randrange(0, HOUR_MS // 1000) * 1000
        value: Any = rng.choice([round(rng.uniform(0, 30), 2), rng.randint(0, 9), True, "open"])
        line = {"device_id": f"d{i % 4}", "metric": rng.choice(["t", "s"]), "unit": "", "ts": ts, "value": value,
                "received_at": ts + 10}  # fmt: skip
        out.append(line)
        if i % 10 == 0:
            out.append({**line, "value": 99.5, "received_at": ts + 20})  # a newer version wins
    return out


@pytest.fixture
def kit(aws: None, tmp_path: Path) -> tuple[FleetRollupsJob, DuckDBAthena, RollupStore, Any, str]:
    settings = wiring.bound_settings()
    bucket = settings.archive_bucket
    s3 = boto3.client("s3", region_name="us-east-1")
    s3.create_bucket(Bucket=bucket)
    engine = DuckDBAthena(s3, bucket, tmp_path / "mirror", polls_before_done=1)
    store = RollupStore()
    store.set_covered_until(HOUR)  # rolled up to 06:00 (the day-close test starts from the first run)
    queries = AthenaQueries(engine, s3, "iotcloud-test", f"s3://{bucket}/athena-results/")
    archive = S3Archive(s3, bucket)
    job = FleetRollupsJob(
        queries,
        JobState(),
        store,
        AggregateStore(),
        bucket,
        oldest_hour=lambda: oldest_archive_hour(archive),
        dialect="duckdb",
        clear_prefix=archive.delete_prefix,
    )  # fmt: skip (as in AWS: UNLOAD's target emptied first)
    return job, engine, store, s3, bucket


def _stored(store: RollupStore, hour_ms: int, devices: list[str]) -> dict[tuple[str, str, str, int], Partial]:
    out = {}
    for device in devices:
        for (m, u, h), p in store.hours(device, None, None, hour_ms, hour_ms + HOUR_MS).items():
            out[(device, m, u, h)] = p
    return out


DEVICES = [f"d{i}" for i in range(4)]


def _agree(
    got: dict[tuple[str, str, str, int], Partial], want: dict[tuple[str, str, str, int], dict[str, Any]]
) -> None:
    assert got.keys() == want.keys()
    for key, w in want.items():
        p = got[key]
        assert (p.count, p.numbers, p.first, p.last, p.first_ts, p.last_ts) == (
            w["count"], w["numbers"], w["first"], w["last"], w["first_ts"], w["last_ts"])  # fmt: skip
        assert (p.min, p.max) == (w["min"], w["max"])
        assert p.sum == pytest.approx(w["sum"], abs=1e-9)


def _ticks(job: FleetRollupsJob, now: int, n: int) -> list[dict[str, Any]]:
    return [job.tick(now) for _ in range(n)]


def test_start_poll_load_and_advance_the_watermark(kit: Any) -> None:
    job, engine, store, s3, bucket = kit
    lines = _lines(1, HOUR)
    _put_archive(s3, bucket, HOUR, lines)
    now = HOUR + HOUR_MS + ROLLUP_GRACE_MS + 1
    answers = _ticks(job, now, 5)
    # tick 1 starts the compaction, 2 sees it RUNNING, 3 starts the rollup, 4 sees it RUNNING, 5 loads
    assert [a["hours"]["2025-11-25T06"] for a in answers] == ["COMPACTING", "COMPACTING", "ROLLING", "ROLLING", LOADED]
    assert answers[3]["covered_until_ms"] == HOUR and answers[4]["covered_until_ms"] == HOUR + HOUR_MS
    assert answers[4]["days"] == ["2025-11-25"]
    assert "COPY (" in engine.started[0] and "FROM compact" in engine.started[1]
    assert s3.list_objects_v2(Bucket=bucket, Prefix="compact/dt=2025-11-25/hour=06/")["KeyCount"] == 1
    _agree(_stored(store, HOUR, DEVICES), expected(lines, HOUR))
    # the store's watermark is the aggregation query's and the in-Lambda job's: engines can be switched
    assert store.covered_until_ms() == HOUR + HOUR_MS
    assert JobState().hour(HOUR) is None  # forgotten once the watermark passed it
    assert job.tick(now)["hours"] == {}  # nothing new to do


def test_both_engines_store_the_same_rollups(kit: Any) -> None:
    job, _engine, store, s3, bucket = kit
    lines = _lines(7, HOUR)
    _put_archive(s3, bucket, HOUR, lines)
    now = HOUR + HOUR_MS + ROLLUP_GRACE_MS + 1
    _ticks(job, now, 5)
    athena = _stored(store, HOUR, DEVICES)
    lam = RollupsJob(S3Archive(s3, bucket), RollupStore(), AggregateStore())
    store.set_covered_until(HOUR)
    lam.clock = lambda: now
    assert lam.run(None)["hours"] == ["2025-11-25T06"]
    in_lambda = _stored(store, HOUR, DEVICES)
    assert athena.keys() == in_lambda.keys()
    for key, p in in_lambda.items():
        q = athena[key]
        assert (q.count, q.numbers, q.min, q.max, q.first, q.first_ts, q.last, q.last_ts) == (
            p.count, p.numbers, p.min, p.max, p.first, p.first_ts, p.last, p.last_ts)  # fmt: skip
        assert q.sum == pytest.approx(p.sum, rel=1e-12, abs=1e-12)


def test_a_failed_query_is_retried_then_reported_and_never_loses_the_hour(kit: Any) -> None:
    job, engine, store, s3, bucket = kit
    _put_archive(s3, bucket, HOUR, _lines(2, HOUR))
    now = HOUR + HOUR_MS + ROLLUP_GRACE_MS + 1
    engine.polls_before_done = 0
    engine.fail_next = 1  # the first compaction fails: retried
    assert job.tick(now)["hours"] == {"2025-11-25T06": "COMPACTING"}
    assert job.tick(now)["hours"] == {"2025-11-25T06": "COMPACTING"}  # the retry started
    assert JobState().hour(HOUR).attempts == 2  # type: ignore[union-attr]
    engine.fail_next = MAX_ATTEMPTS  # the rollup fails every time: reported, watermark held
    assert job.tick(now)["hours"] == {"2025-11-25T06": "ROLLING"}
    answers = _ticks(job, now, MAX_ATTEMPTS)
    assert [a["hours"]["2025-11-25T06"] for a in answers] == ["ROLLING"] * (MAX_ATTEMPTS - 1) + [FAILED_STAGE]
    assert answers[-1]["failed"] and answers[-1]["failed"][0]["hour"] == "2025-11-25T06"
    assert "injected failure" in answers[-1]["failed"][0]["reason"]
    assert answers[-1]["covered_until_ms"] == HOUR and store.covered_until_ms() == HOUR
    assert _stored(store, HOUR, DEVICES) == {}
    assert JobState().hour(HOUR).stage == FAILED_STAGE  # type: ignore[union-attr]
    # a later hour still loads; the watermark waits at the failed one until a retry succeeds
    later = HOUR + HOUR_MS
    _put_archive(s3, bucket, later, _lines(3, later))
    now2 = later + HOUR_MS + ROLLUP_GRACE_MS + 1
    answer = _ticks(job, now2, 3)[-1]
    assert answer["hours"]["2025-11-25T07"] == LOADED and answer["covered_until_ms"] == HOUR
    assert answer["failed"][0]["hour"] == "2025-11-25T06"  # reported every tick
    job.retry(HOUR)
    answer = _ticks(job, now2, 3)[-1]
    assert answer["hours"]["2025-11-25T06"] == LOADED and answer["covered_until_ms"] == later + HOUR_MS
    assert _stored(store, HOUR, DEVICES) and _stored(store, later, DEVICES)


def test_a_failed_hour_starts_again_on_its_own_later(kit: Any) -> None:
    job, engine, store, s3, bucket = kit
    _put_archive(s3, bucket, HOUR, _lines(9, HOUR))
    now = HOUR + HOUR_MS + ROLLUP_GRACE_MS + 1
    engine.polls_before_done = 0
    engine.fail_next = MAX_ATTEMPTS  # the compaction fails every time
    answers = _ticks(job, now, MAX_ATTEMPTS + 1)  # each attempt fails when started; the last tick sees it
    assert answers[-1]["hours"]["2025-11-25T06"] == FAILED_STAGE
    assert job.tick(now + FAILED_RETRY_MS - 1)["failed"]  # still reported until the hour has passed
    answers = _ticks(job, now + FAILED_RETRY_MS, 3)
    assert [a["hours"]["2025-11-25T06"] for a in answers] == ["COMPACTING", "ROLLING", LOADED]
    assert answers[-1]["failed"] == [] and store.covered_until_ms() > HOUR  # (and the empty hours since)
    assert _stored(store, HOUR, DEVICES)


def _with_words(lines: list[dict[str, Any]]) -> list[dict[str, Any]]:
    for i, line in enumerate(lines):
        if isinstance(line["value"], str):
            line["value"] = ["door open", "valve closed", "open"][i % 3]
    return lines


def test_the_day_closes_compacted_and_indexed_from_its_string_readings(kit: Any) -> None:
    job, engine, store, s3, bucket = kit
    store.set_covered_until(0)  # the first run
    last = HOUR + 17 * HOUR_MS  # 2025-11-25T23
    lines = _with_words(_lines(4, last))
    _put_archive(s3, bucket, last, lines)
    engine.polls_before_done = 0
    now = last + HOUR_MS + ROLLUP_GRACE_MS + 1
    answers = _ticks(job, now, 2)  # the first run starts at the archive's first day: 24 hours, 6 a tick
    assert answers[0]["covered_until_ms"] == HOUR - 6 * HOUR_MS  # the day's first hour (00:00)
    answers = _ticks(job, now, 12)  # three ticks per six hours in flight, one more for the index
    closing = next(a for a in answers if a["compacted"])
    assert closing["compacted"] == ["2025-11-25"] and closing["covered_until_ms"] == last + HOUR_MS
    assert store.manifest("2025-11-25").compacted  # type: ignore[union-attr]
    assert "kind = 2" in engine.started[-1]  # the index reads only the day's strings
    assert any(a["indexed"] == ["2025-11-25"] for a in answers)
    _agree(_stored(store, last, DEVICES), expected(lines, last))  # read from the day items now

    def by_series(postings: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return sorted(postings, key=lambda p: (p["device_id"], p["metric"]))

    want = {row["word"]: by_series(row["postings"]) for row in run_local(INDEX, lines)}  # the in-Lambda index
    index = AggregateStore()
    assert want and {w: by_series(index.postings(w)) for w in want} == want
    assert JobState().indexing() == {}


def test_late_readings_re_roll_their_hour_for_the_marked_devices(kit: Any) -> None:
    job, engine, store, s3, bucket = kit
    lines = _lines(5, HOUR)
    _put_archive(s3, bucket, HOUR, lines)
    engine.polls_before_done = 0
    now = HOUR + HOUR_MS + ROLLUP_GRACE_MS + 1
    _ticks(job, now, 3)
    assert store.covered_until_ms() == HOUR + HOUR_MS
    late = [
        {"device_id": "d1", "metric": "t", "unit": "", "ts": HOUR + 5, "value": 1000.0, "received_at": now},
        {"device_id": "d9", "metric": "t", "unit": "", "ts": HOUR + 7, "value": -3.0, "received_at": now},
    ]
    _put_archive(s3, bucket, HOUR, late, name="b-late")
    store.mark_dirty([(HOUR, "d1"), (HOUR, "d9")], "v1")
    stale = "compact/dt=2025-11-25/hour=06/part-stale.parquet"  # what an earlier UNLOAD might have left
    s3.put_object(Bucket=bucket, Key=stale, Body=b"PAR1")
    answers = _ticks(job, now + 60_000, 3)
    assert [a["hours"].get("2025-11-25T06") for a in answers] == ["COMPACTING", "ROLLING", LOADED]
    assert answers[-1]["rerolled"] == [{"hour": HOUR, "device_id": "d1"}, {"hour": HOUR, "device_id": "d9"}]
    assert "device_id IN ('d1', 'd9')" in engine.started[-1]
    _agree(_stored(store, HOUR, [*DEVICES, "d9"]), expected(lines + late, HOUR))
    assert store.dirty() == []
    listed = s3.list_objects_v2(Bucket=bucket, Prefix="compact/dt=2025-11-25/hour=06/")["Contents"]
    assert [o["Key"] for o in listed] == ["compact/dt=2025-11-25/hour=06/part-00000.parquet"]  # emptied first
    assert job.tick(now + 120_000)["rerolled"] == []


def test_the_stage_setting_picks_the_engine_and_its_schedule(aws: None, tmp_path: Path, monkeypatch: Any) -> None:
    monkeypatch.setenv("ROLLUP_ENGINE", "athena")
    wiring.reset()
    settings = wiring.bound_settings()
    s3 = boto3.client("s3", region_name="us-east-1")
    s3.create_bucket(Bucket=settings.archive_bucket)
    _put_archive(s3, settings.archive_bucket, HOUR, _lines(6, HOUR))
    wiring.athena_stand_in = DuckDBAthena(s3, settings.archive_bucket, tmp_path)
    job = wiring.rollups_job()
    assert isinstance(job, FleetRollupsJob)
    answer = job.run("2025-11-25T07:15:00Z")
    assert answer["hours"]["2025-11-25T00"] == "COMPACTING"
    monkeypatch.setenv("ROLLUP_ENGINE", "lambda")
    wiring.reset()
    assert isinstance(wiring.rollups_job(), RollupsJob)
    monkeypatch.setenv("ROLLUP_ENGINE", "emr")
    wiring.reset()
    with pytest.raises(ValueError, match="ROLLUP_ENGINE='emr'"):
        wiring.bound_settings()


def test_the_athena_adapter_speaks_boto3s_athena(aws: None) -> None:
    """Start and look over boto3's athena client (moto: queries succeed at once); rows from the result CSV in S3.

    moto's Athena writes no result file: the test puts the one Athena would (every value quoted, NULL empty)."""
    from infra.bootstrap import ensure_workgroup

    settings = wiring.bound_settings()
    client = boto3.client("athena", region_name="us-east-1")
    s3 = boto3.client("s3", region_name="us-east-1")
    s3.create_bucket(Bucket=settings.archive_bucket)
    ensure_workgroup(client, settings)  # Athena refuses queries in a workgroup that does not exist
    queries = AthenaQueries(client, s3, settings.athena_workgroup, settings.athena_output, settings.athena_database)
    execution = queries.start("SELECT 1 AS one", token="t" * 32)
    state = queries.state(execution)
    assert state.done and state.state == "SUCCEEDED"
    assert state.output_location == f"{settings.athena_output}{execution}.csv"
    body = '"device_id","text"\n"d1","say ""hi""\nthere"\n"d2",\n'
    key = state.output_location.removeprefix(f"s3://{settings.archive_bucket}/")
    s3.put_object(Bucket=settings.archive_bucket, Key=key, Body=body.encode())
    want = [{"device_id": "d1", "text": 'say "hi"\nthere'}, {"device_id": "d2", "text": ""}]
    assert list(queries.rows(execution)) == want


def test_bootstrap_makes_the_athena_tables_on_that_engine(aws: None, monkeypatch: Any) -> None:
    from infra.bootstrap import ensure_athena_tables, plan

    monkeypatch.setenv("ROLLUP_ENGINE", "athena")
    wiring.reset()
    settings = wiring.bound_settings()
    assert any(step.startswith("Athena: Glue database iotcloud_test") for step in plan(settings))
    athena = boto3.client("athena", region_name="us-east-1")
    executions = ensure_athena_tables(athena, settings, wait_s=5)
    group = athena.get_work_group(WorkGroup="iotcloud-test")["WorkGroup"]
    assert (
        group["Configuration"]["ResultConfiguration"]["OutputLocation"] == "s3://iotcloud-test-archive/athena-results/"
    )
    assert ensure_athena_tables(athena, settings, wait_s=5)  # again: nothing to make, no error
    sql = [athena.get_query_execution(QueryExecutionId=e)["QueryExecution"]["Query"] for e in executions]
    assert sql[0] == "CREATE DATABASE IF NOT EXISTS iotcloud_test"
    assert "CREATE EXTERNAL TABLE IF NOT EXISTS iotcloud_archive_lines" in sql[1]
    assert "CREATE EXTERNAL TABLE IF NOT EXISTS iotcloud_compact" in sql[2]


def test_a_tick_stops_at_its_budget_and_the_next_goes_on(kit: Any) -> None:
    """A tick loads one hour and compacts one shard past its budget; the rest waits for the next ticks."""
    job, engine, store, s3, bucket = kit
    store.set_covered_until(0)
    last = HOUR + 17 * HOUR_MS  # 2025-11-25T23
    for hour_ms in (HOUR, last):
        _put_archive(s3, bucket, hour_ms, _lines(8, hour_ms))
    engine.polls_before_done = 0
    job.budget_s = -1.0  # always over budget: the least a tick does
    now = last + HOUR_MS + ROLLUP_GRACE_MS + 1
    loaded_per_tick = []
    for _ in range(80):
        answer = job.tick(now)
        loaded_per_tick.append(sum(1 for stage in answer["hours"].values() if stage == LOADED))
        if answer["indexed"]:
            break
    assert answer["indexed"] == ["2025-11-25"]
    assert max(loaded_per_tick) == 1  # one hour's load a tick
    assert store.manifest("2025-11-25").compacted  # type: ignore[union-attr]
    _agree(_stored(store, last, DEVICES), expected(_lines(8, last), last))
