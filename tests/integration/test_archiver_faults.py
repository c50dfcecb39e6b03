"""S3 failures while archiving lose nothing: the stream batch is retried and keys are stable."""

from __future__ import annotations

import gzip
import json
from typing import Any
from unittest import mock

import boto3
import pytest
from botocore.exceptions import ClientError

from chalicelib import wiring
from chalicelib.adapters.archive import S3Archive
from chalicelib.domain.ingest import ingest
from chalicelib.domain.readings import Reading
from chalicelib.errors import ArchiveUnavailableError
from devstack.events import EventEmulator
from infra.bootstrap import bootstrap


def _all_lines(s3: Any, bucket: str) -> list[dict[str, Any]]:
    lines: list[dict[str, Any]] = []
    for obj in s3.list_objects_v2(Bucket=bucket, Prefix="archive/").get("Contents", []):
        body = s3.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read()
        lines += [json.loads(x) for x in gzip.decompress(body).splitlines()]
    return lines


@pytest.fixture
def pipeline(aws: None) -> Any:
    from app import app

    settings = wiring.bound_settings()
    s3 = boto3.client("s3", region_name=settings.region)
    bootstrap(settings, lambda service: boto3.client(service, region_name=settings.region))
    emulator = EventEmulator(
        app, lambda service: boto3.client(service, region_name=settings.region), stream_table=settings.readings_table
    )
    return settings, s3, emulator


def _post(device: str, n: int, start: int, key: str | None = None) -> None:
    readings = [Reading("temp", "Cel", start + i * 1000, 20.0 + i) for i in range(n)]
    ingest(device, readings, start + n * 1000, store=wiring.readings(), devices=_NoState(), idempotency_key=key)


class _NoState:
    def record_state(self, *args: Any) -> None:
        pass


def test_s3_errors_are_retried_and_nothing_is_lost_or_doubled(pipeline: Any) -> None:
    settings, s3, emulator = pipeline
    for d in range(3):
        _post(f"dev-{d}", 50, 1764061200000 + d * 7_200_000)
    real_put = S3Archive.put
    failures = {"left": 2}

    def flaky_put(self: S3Archive, key: str, body: bytes, content_type: str = "application/x-ndjson") -> None:
        if failures["left"] > 0:
            failures["left"] -= 1
            real_put(self, key, body, content_type)  # a write that "succeeded" before the batch failed
            error = ClientError({"Error": {"Code": "SlowDown", "Message": "injected"}}, "PutObject")
            raise ArchiveUnavailableError(f"could not write {key}") from error
        real_put(self, key, body, content_type)

    with mock.patch.object(S3Archive, "put", flaky_put), mock.patch("devstack.events.time.sleep"):
        emulator.drain(timeout=30)
    assert failures["left"] == 0
    assert emulator.pumps[0].stats.failures == 2
    lines = _all_lines(s3, settings.archive_bucket)
    identities = [(x["device_id"], x["metric"], x["unit"], x["ts"]) for x in lines]
    assert len(identities) == 150
    assert len(set(identities)) == 150


def test_rewritten_chunk_is_archived_once_and_remove_is_ignored(pipeline: Any) -> None:
    settings, s3, emulator = pipeline
    _post("dev-x", 10, 1764061200000, key="k1")
    _post("dev-x", 10, 1764061200000, key="k1")  # a retry: MODIFY of the same item
    emulator.drain(timeout=30)
    assert len(_all_lines(s3, settings.archive_bucket)) == 10
    # TTL expiry arrives as REMOVE: the archive keeps what it has and adds nothing.
    dynamodb = boto3.client("dynamodb", region_name=settings.region)
    for item in dynamodb.scan(TableName=settings.readings_table)["Items"]:
        dynamodb.delete_item(TableName=settings.readings_table, Key={"d": item["d"], "k": item["k"]})
    emulator.drain(timeout=30)
    assert len(_all_lines(s3, settings.archive_bucket)) == 10
