"""The hourly job rolls up the archive; the API serves its outputs (local stack over HTTP)."""

from __future__ import annotations

import datetime as dt

import httpx
import pytest

from devstack.reconcile import archive_database, download_archive
from devstack.stack import LocalStack

pytestmark = pytest.mark.integration


def test_rollups_and_search_come_from_the_job(stack: LocalStack, tmp_path) -> None:
    now = dt.datetime.now(dt.UTC)
    midnight = int(now.replace(hour=0, minute=0, second=0, microsecond=0).timestamp() * 1000)
    # two hours of the day before yesterday: closed, and their day complete (so compacted and indexed)
    base = midnight - 2 * 86_400_000 + 9 * 3_600_000
    admin = {"Authorization": f"Bearer {stack.admin_token}"}
    with httpx.Client(base_url=stack.api_url, timeout=10) as http:
        device = http.post("/v1/devices", json={"name": "freezer"}, headers=admin).json()
        auth = {"Authorization": f"Bearer {device['token']}"}
        batch = [
            {"ts": base + i * 60_000, "values": {"temp": -20 + i % 7, "event": "door open" if i % 10 == 0 else "ok"}}
            for i in range(90)
        ]
        assert http.post("/v1/telemetry", json=batch, headers=auth).status_code == 200
        assert stack.emulator is not None
        stack.emulator.drain(timeout=30)
        outcome = stack.emulator.run_job("rollups")
        assert outcome["days"]
        runs = [outcome]
        while runs[-1]["hours"]:  # a run rolls a bounded number of hours: catch up
            runs.append(stack.emulator.run_job("rollups"))
        assert any(run["compacted"] for run in runs)

        got = http.get(f"/v1/devices/{device['id']}/rollups", params={"metric": "temp", "from": base}, headers=auth)
        assert got.status_code == 200, got.text
        rollups = got.json()["rollups"]
        # The same rollup, computed by DuckDB straight from the archive.
        files = download_archive(stack.client("s3"), stack.connection()["archive_bucket"], tmp_path)
        expected = (
            archive_database(files)
            .execute(
                "SELECT strftime(make_timestamp(ts * 1000), '%Y-%m-%dT%H') AS hour, count(*), "
                "min(value::DOUBLE), max(value::DOUBLE), min(ts), max(ts) "
                "FROM readings WHERE metric = 'temp' GROUP BY 1 ORDER BY 1"
            )
            .fetchall()
        )
        assert len(rollups) == 2  # the two hours of readings, nothing in the empty hours
        assert [(r["hour"], r["count"], r["min"], r["max"], r["first_ts"], r["last_ts"]) for r in rollups] == [
            (h, c, lo, hi, f, la) for h, c, lo, hi, f, la in expected
        ]
        assert sum(r["count"] for r in rollups) == len(batch)

        found = http.get("/v1/search", params={"q": "Door"}, headers=admin)
        assert found.status_code == 200, found.text
        (posting,) = found.json()["results"]
        assert posting["device_id"] == device["id"] and posting["metric"] == "event"
        assert posting["count"] == sum(1 for r in batch if r["values"]["event"] == "door open")
        assert http.get("/v1/search", params={"q": "door"}, headers=auth).status_code == 403
        assert http.get("/v1/search", params={"q": "two words"}, headers=admin).status_code == 400
