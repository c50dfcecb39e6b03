"""The read side (issue 16): what a device chart costs, before (raw pages) and after (aggregates).

One device sends a 5-metric record a minute for 30 days, as 43,200 one-record requests would
store it: one chunk item per request (the chunks are written in bulk, with the items `POST
/v1/telemetry` writes), and the archive the stream would write, one object per hour. The real
hourly rollup job then rolls every closed hour into the rollup store. The charts' requests go
through the real routes (Chalice's test client, moto in process), each with its DynamoDB read
units counted from what the reads returned (bench.awscalls):

- before: every raw reading of the window, paged as the dashboard did (limit 10,000). Measured for
  the 7-day window; the 30-day window's is the 7-day figure x 30/7 (every page, unit and byte grows
  with the readings; moto's Query takes about a second per page over a month of chunks, and the old
  dashboard had no 30-day window: its 200,000-point cap stopped it at 27.8 days);
- after: the API's aggregated query of one metric (`agg=avg`) and the dashboard's one request for
  every series of the window (avg, min and max per bucket), both at the interval the device page
  asks for (`web.device.chart_interval`: at most 1,000 buckets, whole hours past a day).
"""

from __future__ import annotations

import json
import random
import time
from collections import defaultdict
from typing import Any

from bench.awscalls import recorded_aws_calls
from bench.measure import ADMIN_TOKEN, ARRIVAL_DELAY_MS, RECORD_INTERVAL_MS, moto_stage, walk_records

DAY_MS = 86_400_000
HOUR_MS = 3_600_000
HISTORY_DAYS = 30
WINDOWS_DAYS = (7, 30)
RAW_PAGE_LIMIT = 10_000  # what the dashboard asked for per page before


def _store_history(device_id: str, now_ms: int, settings: Any) -> int:
    """A month of one-record requests as chunk items, and their archive; returns the readings stored."""
    import boto3

    from chalicelib import wiring
    from chalicelib.adapters.retry import put_items
    from chalicelib.domain.archive import encode_lines, object_key, partition_of
    from chalicelib.domain.chunks import make_chunks
    from chalicelib.domain.readings import Reading
    from chalicelib.models import ReadingChunkModel

    start = (now_ms - HISTORY_DAYS * DAY_MS) // RECORD_INTERVAL_MS * RECORD_INTERVAL_MS
    records = walk_records(random.Random(16), HISTORY_DAYS * 1440, start, RECORD_INTERVAL_MS)
    store = wiring.readings()
    items = []
    partitions: dict[str, list[dict[str, object]]] = defaultdict(list)
    readings = 0
    for record in records:
        ts = int(record["ts"])
        received_at = ts + ARRIVAL_DELAY_MS
        batch = [Reading(metric, "", ts, value) for metric, value in record["values"].items()]
        readings += len(batch)
        items += [store.item(device_id, chunk, received_at).serialize() for chunk in make_chunks(device_id, batch)]
        for r in batch:
            line = {"device_id": device_id, "metric": r.metric, "unit": "", "ts": ts, "value": r.value}
            partitions[partition_of(ts)].append({**line, "received_at": received_at})
    put_items(ReadingChunkModel, items, wiring.retry_policy())
    s3 = boto3.client("s3", region_name=settings.region)
    for number, (partition, lines) in enumerate(sorted(partitions.items())):
        key = object_key(partition, "bench-charts", str(number), str(number))
        s3.put_object(Bucket=settings.archive_bucket, Key=key, Body=encode_lines(lines))
    return readings


def _roll_up_everything(now_ms: int) -> dict[str, Any]:
    """Run the hourly job until it has rolled every closed hour; its CPU seconds and runs."""
    from datetime import UTC, datetime

    from chalicelib import wiring

    event_time = datetime.fromtimestamp(now_ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    runs, cpu = 0, 0.0
    while True:
        started = time.process_time()
        outcome = wiring.rollups_job().run(event_time)
        cpu += time.process_time() - started
        runs += 1
        if not outcome.get("hours") or runs > 100:
            return {"runs": runs, "cpu_s": cpu, "covered_until_ms": wiring.rollup_store().covered_until_ms()}


def _get(client: Any, path: str, headers: dict[str, str]) -> tuple[dict[str, Any], float, float, int]:
    """One GET: its answer, read units, wall ms and answer bytes."""
    with recorded_aws_calls() as log:
        started = time.perf_counter()
        answer = client.http.get(path, headers=headers)
        wall = (time.perf_counter() - started) * 1000
    assert answer.status_code == 200, answer.body[:300]
    return json.loads(answer.body), log.read_units, wall, len(answer.body)


def _raw_pages(client: Any, device_id: str, from_ms: int, to_ms: int) -> dict[str, Any]:
    admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    units = wall = 0.0
    points = requests = size = 0
    cursor: str | None = None
    while True:
        query = f"from={from_ms}&to={to_ms}&limit={RAW_PAGE_LIMIT}" + (f"&cursor={cursor}" if cursor else "")
        doc, u, w, n = _get(client, f"/v1/devices/{device_id}/telemetry?{query}", admin)
        units, wall, size, requests = units + u, wall + w, size + n, requests + 1
        points += len(doc["readings"])
        cursor = doc["next_cursor"]
        if not cursor:
            break
    return {"requests": requests, "read_units": units, "wall_ms": wall, "points": points, "answer_bytes": size}


def _interval(from_ms: int, to_ms: int) -> int:
    """The interval the dashboard's device page asks for this window (whole hours past a day)."""
    from chalicelib.web.device import chart_interval

    return chart_interval(to_ms - from_ms)


def _aggregated(client: Any, device_id: str, from_ms: int, to_ms: int) -> dict[str, Any]:
    admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    interval = _interval(from_ms, to_ms)
    # From the first bucket's start, as the dashboard asks: whole hours come from the rollups.
    query = f"from={from_ms - from_ms % interval}&to={to_ms}&agg=avg&metric=temp&interval={interval}"
    doc, units, wall, size = _get(client, f"/v1/devices/{device_id}/telemetry?{query}", admin)
    assert doc["next_cursor"] is None
    return {"requests": 1, "read_units": units, "wall_ms": wall, "points": len(doc["buckets"]), "answer_bytes": size}


def _dashboard(client: Any, device_id: str, from_ms: int, to_ms: int) -> dict[str, Any]:
    from chalicelib.web import session as sessions

    _, cookie = sessions.new_session(sessions.secret(), int(time.time() * 1000), 3600)
    headers = {"Cookie": f"{sessions.SESSION_COOKIE}={cookie}"}
    path = (
        f"/dashboard/data/devices/{device_id}/aggregates?from={from_ms}&to={to_ms}&interval={_interval(from_ms, to_ms)}"
    )
    doc, units, wall, size = _get(client, path, headers)
    points = max((len(s["buckets"]) for s in doc["series"]), default=0)
    return {
        "requests": 1,
        "read_units": units,
        "wall_ms": wall,
        "series": len(doc["series"]),
        "points_per_series": points,
        "answer_bytes": size,
    }


def run() -> dict[str, Any]:
    """The chart figures: for each window, raw pages vs the aggregated answers."""
    from chalice.test import Client

    from app import app
    from bench.measure import _register_devices

    with moto_stage(AUTH_CACHE_TTL_SECONDS="0", METRICS_SINK="off") as settings:
        # The charts end at minute 30 of an hour: the hours before the last closed one are rolled
        # up, the rest (half an hour of readings, on average what a chart meets) comes from raw chunks.
        now = int(time.time() * 1000) // HOUR_MS * HOUR_MS - HOUR_MS // 2
        with Client(app, stage_name="test") as client:
            device_id, _ = _register_devices(client, 1)[0]
            readings = _store_history(device_id, now, settings)
            job = _roll_up_everything(now)
            windows = {}
            raw_measured: dict[str, Any] = {}
            for days in WINDOWS_DAYS:
                from_ms, to_ms = now - days * DAY_MS, now
                if not raw_measured:
                    raw_measured = {**_raw_pages(client, device_id, from_ms, to_ms), "measured_days": days}
                    before = raw_measured
                else:  # pages, units and bytes grow with the window's readings: the first window's, scaled
                    factor = days / raw_measured["measured_days"]
                    before = {k: v * factor for k, v in raw_measured.items() if k != "measured_days"}
                    before["scaled_from_days"] = raw_measured["measured_days"]
                windows[f"{days}d"] = {
                    "before_raw_pages": before,
                    "after_api_one_metric": _aggregated(client, device_id, from_ms, to_ms),
                    "after_dashboard_all_series": _dashboard(client, device_id, from_ms, to_ms),
                }
    return {
        "workload": f"one device, a 5-metric record a minute for {HISTORY_DAYS} days ({readings:,} readings), "
        "one chunk item per one-record request; the charts end at minute 30 of an hour",
        "readings": readings,
        "rollup_job": job,
        "windows": windows,
        "targets": {"7d_points_max": 1000, "7d_read_units_max": 5},
    }
