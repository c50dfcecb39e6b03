"""Readings posted over HTTP reach the S3 archive exactly once, through the emulated stream."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import httpx
import pytest

from devstack.reconcile import archive_counts, archived_identities, download_archive, stored_identities
from devstack.stack import LocalStack

pytestmark = pytest.mark.integration


def test_archive_holds_exactly_the_stored_readings(stack: LocalStack, tmp_path: Path) -> None:
    admin = {"Authorization": f"Bearer {stack.admin_token}"}
    with httpx.Client(base_url=stack.api_url, timeout=10) as http:
        devices = [http.post("/v1/devices", json={"name": f"a{i}"}, headers=admin).json() for i in range(3)]
        for n, device in enumerate(devices):
            auth = {"Authorization": f"Bearer {device['token']}"}
            for b in range(4):
                start = 1764061200000 + (b * 40 + n) * 60_000  # spans several hours
                batch = [
                    {"ts": start + i * 1000, "values": {"temp": 20 + i / 10, "state": "door open"}} for i in range(30)
                ]
                headers = {**auth, "Idempotency-Key": f"{device['id']}-{b}"}
                assert http.post("/v1/telemetry", json=batch, headers=headers).status_code == 200
                # Retries: with the same key, and the same body without a key.
                assert http.post("/v1/telemetry", json=batch, headers=headers).status_code == 200
            plain = [{"ts": 1764070000000, "values": {"temp": 1}}]
            assert http.post("/v1/telemetry", json=plain, headers=auth).status_code == 200
            assert http.post("/v1/telemetry", json=plain, headers=auth).status_code == 200
    assert stack.emulator is not None
    assert stack.emulator.drain(timeout=30) > 0
    conn = stack.connection()
    files = download_archive(stack.client("s3"), conn["archive_bucket"], tmp_path)
    stored = stored_identities(stack.client("dynamodb"), conn["readings_table"])
    assert len(stored) == 3 * (4 * 30 * 2 + 1)
    assert archived_identities(files) == stored
    assert archive_counts(files) == {"lines": len(stored), "distinct": len(stored), "duplicated": 0}
    # Partitioned Hive style by the reading's hour, gzip JSON Lines, one reading a line.
    assert all("/dt=2025-11-25/hour=" in str(f) for f in files if "1764070000000" not in str(f))
    line = json.loads(gzip.decompress(files[0].read_bytes()).splitlines()[0])
    assert set(line) == {"device_id", "metric", "unit", "ts", "value", "received_at"}
    head = stack.client("s3").head_object(Bucket=conn["archive_bucket"], Key=str(files[0].relative_to(tmp_path)))
    assert head["ServerSideEncryption"] == "AES256"
