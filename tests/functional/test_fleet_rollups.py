"""The Athena path of the hourly job on moto S3 + DynamoDB with the devstack DuckDB executor."""

from __future__ import annotations

import gzip
import json
import random
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import boto3
import pytest

from chalicelib import wiring
from chalicelib.adapters.athena import AthenaQueries
from chalicelib.domain.rollups import HOUR_MS, ROLLUP_GRACE_MS, Partial, SeriesHour
from chalicelib.jobs.fleet_rollups import FAILED_STAGE, LOADED, MAX_ATTEMPTS, FleetRollupsJob, JobState
from devstack.athena import DuckDBAthena
from tests.unit.test_rollup_sql import expected

HOUR = 1_764_050_400_000  # 2025-11-25T06:00Z


class RecordingSink:
    """Collects put_hour calls (RollupStore's put_hour, which helper A's branch provides)."""

    def __init__(self) -> None:
        self.hours: dict[int, Mapping[str, Mapping[SeriesHour, Partial]]] = {}

    def put_hour(self, hour_ms: int, rows: Mapping[str, Mapping[SeriesHour, Partial]]) -> None:
        self.hours[hour_ms] = rows


def _put_archive(s3: Any, bucket: str, hour_ms: int, lines: list[dict[str, Any]]) -> None:
    from chalicelib.domain.rollup_sql import partition_of_hour

    body = "".join(json.dumps(x) + "\n" for x in lines).encode()
    s3.put_object(Bucket=bucket, Key=f"archive/{partition_of_hour(hour_ms)}/b-1.jsonl.gz", Body=gzip.compress(body))


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
def kit(aws: None, tmp_path: Path) -> tuple[FleetRollupsJob, DuckDBAthena, RecordingSink, Any, str]:
    settings = wiring.bound_settings()
    bucket = settings.archive_bucket
    s3 = boto3.client("s3", region_name="us-east-1")
    s3.create_bucket(Bucket=bucket)
    engine = DuckDBAthena(s3, bucket, tmp_path / "mirror", polls_before_done=1)
    sink = RecordingSink()
    job = FleetRollupsJob(AthenaQueries(engine, "primary", f"s3://{bucket}/athena/"), JobState(), sink, bucket,
                          dialect="duckdb")  # fmt: skip
    return job, engine, sink, s3, bucket


def _as_rows(rows: Mapping[str, Mapping[SeriesHour, Partial]]) -> dict[tuple[str, str, str, int], Partial]:
    return {(d, m, u, h): p for d, series in rows.items() for (m, u, h), p in series.items()}


def test_start_poll_load_and_advance_the_watermark(kit: Any) -> None:
    job, engine, sink, s3, bucket = kit
    lines = _lines(1, HOUR)
    _put_archive(s3, bucket, HOUR, lines)
    now = HOUR + HOUR_MS + ROLLUP_GRACE_MS + 1
    answers = [job.tick(now) for _ in range(5)]
    # tick 1 starts the compaction, 2 sees it RUNNING, 3 starts the rollup, 4 sees it RUNNING, 5 loads
    assert [a["hours"]["2025-11-25T06"] for a in answers] == ["COMPACTING", "COMPACTING", "ROLLING", "ROLLING", LOADED]
    assert answers[3]["covered_until_ms"] == HOUR and answers[4]["covered_until_ms"] == HOUR + HOUR_MS
    assert "COPY (" in engine.started[0] and "FROM compact" in engine.started[1]
    assert s3.list_objects_v2(Bucket=bucket, Prefix="compact/dt=2025-11-25/hour=06/")["KeyCount"] == 1
    want = expected(lines, HOUR)
    got = _as_rows(sink.hours[HOUR])
    assert got.keys() == want.keys()
    for key, w in want.items():
        p = got[key]
        assert (p.count, p.numbers, p.first, p.last, p.first_ts, p.last_ts) == (
            w["count"], w["numbers"], w["first"], w["last"], w["first_ts"], w["last_ts"])  # fmt: skip
        assert p.sum == pytest.approx(w["sum"], abs=1e-9)
    assert JobState().watermark() == HOUR + HOUR_MS
    # the next tick has nothing new to do
    assert job.tick(now)["hours"] == {}


def test_a_failed_query_is_retried_then_reported_and_never_loses_the_hour(kit: Any) -> None:
    job, engine, sink, s3, bucket = kit
    _put_archive(s3, bucket, HOUR, _lines(2, HOUR))
    now = HOUR + HOUR_MS + ROLLUP_GRACE_MS + 1
    engine.polls_before_done = 0
    engine.fail_next = 1  # the first compaction fails: retried
    assert job.tick(now)["hours"] == {"2025-11-25T06": "COMPACTING"}
    assert job.tick(now)["hours"] == {"2025-11-25T06": "COMPACTING"}  # the retry started
    assert JobState().hour(HOUR).attempts == 2  # type: ignore[union-attr]
    engine.fail_next = MAX_ATTEMPTS  # the rollup fails every time: reported, watermark held
    assert job.tick(now)["hours"] == {"2025-11-25T06": "ROLLING"}
    answers = [job.tick(now) for _ in range(MAX_ATTEMPTS)]
    assert [a["hours"]["2025-11-25T06"] for a in answers] == ["ROLLING"] * (MAX_ATTEMPTS - 1) + [FAILED_STAGE]
    assert answers[-1]["failed"] and answers[-1]["failed"][0]["hour"] == "2025-11-25T06"
    assert "injected failure" in answers[-1]["failed"][0]["reason"]
    assert answers[-1]["covered_until_ms"] == HOUR and JobState().watermark() == HOUR
    assert HOUR not in sink.hours
    assert JobState().hour(HOUR).stage == FAILED_STAGE  # type: ignore[union-attr]
    # a later hour still loads; the watermark waits at the failed one until a retry succeeds
    later = HOUR + HOUR_MS
    _put_archive(s3, bucket, later, _lines(3, later))
    now2 = later + HOUR_MS + ROLLUP_GRACE_MS + 1
    for _ in range(3):
        answer = job.tick(now2)
    assert answer["hours"]["2025-11-25T07"] == LOADED and answer["covered_until_ms"] == HOUR
    job.retry(HOUR)
    for _ in range(3):
        answer = job.tick(now2)
    assert answer["hours"]["2025-11-25T06"] == LOADED and answer["covered_until_ms"] == later + HOUR_MS
    assert HOUR in sink.hours and later in sink.hours
