"""devstack.faults.FaultPlan: what `make reliability` injects, injected as promised and harmless to the data."""

from __future__ import annotations

import gzip
import json
from typing import Any
from unittest import mock

import boto3
import pytest

from chalicelib import wiring
from chalicelib.adapters.readings import ReadingStore
from chalicelib.adapters.retry import RetryPolicy
from chalicelib.domain.ingest import ingest
from chalicelib.domain.readings import Reading
from chalicelib.errors import ArchiveUnavailableError, StorageUnavailableError
from devstack.events import EventEmulator
from devstack.faults import FaultPlan
from infra.bootstrap import bootstrap

HOUR = 3_600_000
T0 = 1_764_061_200_000


class _NoState:
    def record_state(self, *args: Any) -> None:
        pass


@pytest.fixture
def pipeline(aws: None) -> Any:
    from app import app

    settings = wiring.bound_settings()
    bootstrap(settings, lambda service: boto3.client(service, region_name=settings.region))
    emulator = EventEmulator(
        app, lambda service: boto3.client(service, region_name=settings.region), stream_table=settings.readings_table
    )
    return settings, emulator


def _store() -> ReadingStore:
    return ReadingStore(retries=RetryPolicy(max_attempts=30, sleep=lambda _: None))


def _post(device: str, hours: int, per_hour: int = 4) -> int:
    times = [T0 + h * HOUR + i * 1000 for h in range(hours) for i in range(per_hour)]
    readings = [Reading("temp", "Cel", ts, float(n)) for n, ts in enumerate(times)]
    ingest(device, readings, T0 + hours * HOUR, store=_store(), devices=_NoState())
    return len(readings)


def _archived(settings: Any) -> list[tuple[str, str, int]]:
    s3 = boto3.client("s3", region_name=settings.region)
    out: list[tuple[str, str, int]] = []
    for obj in s3.list_objects_v2(Bucket=settings.archive_bucket, Prefix="archive/").get("Contents", []):
        body = gzip.decompress(s3.get_object(Bucket=settings.archive_bucket, Key=obj["Key"])["Body"].read())
        out += [(x["device_id"], x["metric"], x["ts"]) for x in map(json.loads, body.splitlines())]
    return out


def test_batch_writes_are_faulted_at_about_the_rate_and_everything_is_stored(aws: None) -> None:
    plan = FaultPlan(seed=7, batch_write_rate=0.5, update_rate=0, query_rate=0, s3_put_rate=0, crash_handler=None)
    with plan:
        written = sum(_post(f"dev-{d}", hours=30, per_hour=1) for d in range(4))  # 30 chunks a request
    stats = plan.stats
    assert stats.batch_write_throttled and stats.batch_write_unprocessed_all and stats.batch_write_unprocessed_part
    faulted = stats.batch_write_throttled + stats.batch_write_unprocessed_all + stats.batch_write_unprocessed_part
    assert 0.3 < faulted / stats.batch_write_calls < 0.7
    stored = sum(len(list(_store().iter_all(f"dev-{d}"))) for d in range(4))
    assert stored == 120 and written == 120


def test_same_seed_same_faults(aws: None) -> None:
    runs = []
    for _ in range(2):
        plan = FaultPlan(seed=11, update_rate=0, query_rate=0, s3_put_rate=0, crash_handler=None)
        with plan:
            for d in range(3):
                _post(f"dev-{d}", hours=3)
        runs.append(plan.stats.as_dict())
    assert runs[0] == runs[1]


def test_throttled_update_and_query_are_retried_then_reach_the_app_as_storage_unavailable(
    aws: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    policy = RetryPolicy.from_settings(wiring.bound_settings(), sleep=lambda _: None)
    monkeypatch.setattr(wiring, "retry_policy", lambda: policy)
    with FaultPlan(batch_write_rate=0, update_rate=1.0, query_rate=1.0, s3_put_rate=0, crash_handler=None) as plan:
        with pytest.raises(StorageUnavailableError):
            wiring.devices().record_state("dev-1", {("temp", ""): Reading("temp", "", T0, 1.0)}, T0)
        with pytest.raises(StorageUnavailableError):
            wiring.readings().chunks("dev-1", "2025112509", "2025112510", 10)
    # Below botocore's retries (one attempt per call there), so each fault is one app attempt.
    assert plan.stats.update_throttled == plan.stats.query_throttled == policy.max_attempts


def test_faults_stop_with_the_plan(aws: None) -> None:
    plan = FaultPlan(batch_write_rate=1.0, update_rate=1.0, query_rate=1.0, s3_put_rate=1.0, crash_handler=None)
    plan.start()
    plan.stop()
    plan.stop()  # twice is harmless
    _post("dev-1", hours=2)
    assert plan.stats.batch_write_calls == 0


def test_s3_failures_and_one_crash_mid_batch_archive_everything_once(pipeline: Any) -> None:
    settings, emulator = pipeline
    plan = FaultPlan(seed=3, batch_write_rate=0, update_rate=0, query_rate=0, s3_put_rate=0.3)
    posted = sum(_post(f"dev-{d}", hours=3) for d in range(4))  # every stream batch spans three hours
    with plan.start(emulator), mock.patch("devstack.events.time.sleep"):
        emulator.drain(timeout=60)
    stats = plan.stats
    assert stats.crashes == 1 and stats.objects_written_before_crash == 1
    assert stats.s3_failed_before_write + stats.s3_failed_after_write > 0
    archive = next(p for p in emulator.pumps if p.name == "archive_readings")
    assert archive.stats.failures == stats.crashes + stats.s3_failed_before_write + stats.s3_failed_after_write
    lines = _archived(settings)
    assert len(lines) == len(set(lines)) == posted


def test_s3_faults_are_archive_unavailable_errors(aws: None) -> None:
    from chalicelib.adapters.archive import S3Archive

    s3 = boto3.client("s3", region_name="us-east-1")
    s3.create_bucket(Bucket=wiring.bound_settings().archive_bucket)
    archive = S3Archive(s3, wiring.bound_settings().archive_bucket)
    with FaultPlan(s3_put_rate=1.0, crash_handler=None) as plan:
        for i in range(6):
            with pytest.raises(ArchiveUnavailableError):
                archive.put(f"archive/x-{i}.jsonl.gz", b"")
        archive.put("reports/not-faulted.json", b"{}", gzipped=False)  # outside archive/: never faulted
    assert plan.stats.s3_puts == 6 and plan.stats.s3_faults == 6
