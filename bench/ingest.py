"""Ingest benchmark: chunked storage against the naive one-item-per-reading design.

Posts 10,000 records of 5 metrics (50,000 readings) in requests of 100 records
through the real app (chalice.test.Client) against moto, then the same readings
through a naive design in the same run, and reports for both: DynamoDB requests
per ingest request, write units and stored bytes per reading (from the stored
items, by DynamoDB's item-size rules), and hot-path CPU time per reading.
"""

from __future__ import annotations

import json
import random
import statistics
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from unittest import mock

from bench.dynamo_size import item_size, write_units
from bench.measure import ADMIN_TOKEN, moto_stage, walk_records

ROOT = Path(__file__).resolve().parent.parent
RECORDS = 10_000
PER_REQUEST = 100
DEVICES = 10
START_MS = 1_764_061_200_000  # 2025-11-25T09:00:00Z


def make_bodies(seed: int = 7) -> list[list[list[dict[str, Any]]]]:
    """Per device, its request bodies: records one second apart with 5 metrics."""
    rng = random.Random(seed)
    per_device = RECORDS // DEVICES
    fleet = []
    for _ in range(DEVICES):
        records = walk_records(rng, per_device, START_MS, 1000)
        fleet.append([records[j : j + PER_REQUEST] for j in range(0, per_device, PER_REQUEST)])
    return fleet


@contextmanager
def counted_dynamodb_calls() -> Iterator[Counter[str]]:
    """Count every DynamoDB API call PynamoDB makes."""
    from pynamodb.connection.base import Connection

    calls: Counter[str] = Counter()
    real = Connection._make_api_call

    def counting(self: Any, operation_name: str, operation_kwargs: Any) -> Any:
        calls[operation_name] += 1
        return real(self, operation_name, operation_kwargs)

    with mock.patch.object(Connection, "_make_api_call", counting):
        yield calls


def _scan_items(client: Any, table: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    kwargs: dict[str, Any] = {"TableName": table}
    while True:
        page = client.scan(**kwargs)
        items.extend(page["Items"])
        if "LastEvaluatedKey" not in page:
            return items
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def _cpu_per_reading(fn: Any, bodies: list[bytes], readings: int, repeats: int = 5) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.process_time()
        for body in bodies:
            fn(body)
        best = min(best, time.process_time() - start)
    return best / readings * 1e6


def run_chunked(fleet: list[list[list[dict[str, Any]]]]) -> dict[str, Any]:
    import boto3
    from chalice.test import Client

    from app import app
    from chalicelib import wiring
    from chalicelib.domain.chunks import deduplicate, make_chunks
    from chalicelib.domain.parsing import parse_payload

    settings = wiring.bound_settings()
    dynamodb = boto3.client("dynamodb", region_name=settings.region)
    with Client(app, stage_name="test") as client:
        tokens = []
        for n in range(DEVICES):
            answer = client.http.post(
                "/v1/devices",
                headers={"Authorization": f"Bearer {ADMIN_TOKEN}", "Content-Type": "application/json"},
                body=json.dumps({"name": f"bench-{n}"}),
            )
            tokens.append(json.loads(answer.body)["token"])
        # Warm the token cache and the table descriptions, as a warm Lambda would be.
        for token in tokens:
            client.http.post("/v1/telemetry", headers={"Authorization": f"Bearer {token}"}, body=b"{}")
        requests = 0
        accepted = 0
        start = time.perf_counter()
        with counted_dynamodb_calls() as calls:
            for token, bodies in zip(tokens, fleet, strict=True):
                for records in bodies:
                    answer = client.http.post(
                        "/v1/telemetry",
                        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
                        body=json.dumps(records).encode(),
                    )
                    assert answer.status_code == 200, answer.body
                    accepted += json.loads(answer.body)["accepted"]
                    requests += 1
        wall = time.perf_counter() - start
    items = _scan_items(dynamodb, settings.readings_table)
    devices = _scan_items(dynamodb, settings.devices_table)
    readings = accepted
    # Every ingest request also updates its device's item once.
    device_item_wcu = statistics.mean(write_units(d) for d in devices)
    encoded = [json.dumps(records).encode() for device in fleet for records in device]

    def hot_path(body: bytes) -> None:
        parsed = parse_payload(body, "application/json", START_MS + 3_600_000 * 3, settings.limits)
        make_chunks("bench-device", deduplicate(parsed.readings))

    cpu_us = _cpu_per_reading(hot_path, encoded, readings)
    return _figures("chunked (iotcloud)", items, calls, requests, readings, device_item_wcu * requests, cpu_us, wall)


def run_naive(fleet: list[list[list[dict[str, Any]]]]) -> dict[str, Any]:
    """The textbook design: one DynamoDB item per reading, written with batch_write."""
    import boto3

    from bench.naive import NAIVE_TABLE, naive_items, naive_model
    from chalicelib import wiring
    from chalicelib.domain.parsing import parse_payload

    settings = wiring.bound_settings()
    model = naive_model(settings.region)
    model.create_table(wait=True)
    dynamodb = boto3.client("dynamodb", region_name=settings.region)
    now = START_MS + 3_600_000 * 3

    def items_of(device_id: str, body: bytes) -> list[Any]:
        return naive_items(model, device_id, parse_payload(body, "application/json", now, settings.limits).readings)

    requests = 0
    readings = 0
    start = time.perf_counter()
    with counted_dynamodb_calls() as calls:
        for n, bodies in enumerate(fleet):
            for records in bodies:
                items = items_of(f"bench-{n}", json.dumps(records).encode())
                with model.batch_write() as batch:
                    for item in items:
                        batch.save(item)
                requests += 1
                readings += len(items)
    wall = time.perf_counter() - start
    stored = _scan_items(dynamodb, NAIVE_TABLE)
    encoded = [json.dumps(records).encode() for device in fleet for records in device]
    cpu_us = _cpu_per_reading(lambda body: [i.serialize() for i in items_of("bench-device", body)], encoded, readings)
    return _figures("naive (one item per reading)", stored, calls, requests, readings, 0, cpu_us, wall)


def _figures(
    design: str,
    items: list[dict[str, Any]],
    calls: Counter[str],
    requests: int,
    readings: int,
    state_wcu: float,
    cpu_us: float,
    wall: float,
) -> dict[str, Any]:
    """A design's figures from its stored items and calls; `state_wcu`: the write units of the
    device-state updates, beyond the readings' own items (0 for a design without them)."""
    wcu = sum(write_units(i) for i in items)
    return {
        "design": design,
        "requests": requests,
        "readings": readings,
        "items": len(items),
        "dynamodb_requests_per_ingest_request": sum(calls.values()) / requests,
        "dynamodb_calls": dict(calls),
        "write_units_per_reading": wcu / readings,
        "write_units_per_reading_with_state": (wcu + state_wcu) / readings,
        "stored_bytes_per_reading": sum(item_size(i) for i in items) / readings,
        "hot_path_cpu_us_per_reading": cpu_us,
        "wall_s_in_process": wall,
    }


def import_seconds(statement: str, runs: int = 5) -> float:
    """Median wall time of a fresh interpreter importing `statement`'s modules."""
    code = f"import time; t = time.perf_counter(); {statement}; print(time.perf_counter() - t)"
    times = []
    for _ in range(runs):
        out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
        times.append(float(out.stdout.strip()))
    return statistics.median(times)


def run(measure_imports: bool = True) -> dict[str, Any]:
    fleet = make_bodies()
    imports: dict[str, Any] = {}
    with moto_stage():
        chunked = run_chunked(fleet)
        naive = run_naive(fleet)
        if measure_imports:  # in the stage's environment, as before it is restored
            app_import = import_seconds("import app")
            bare_import = import_seconds("import boto3, chalice, pynamodb.models")
            imports = {
                "import_app_s": app_import,
                "import_bare_boto3_chalice_pynamodb_s": bare_import,
                "import_ratio": app_import / bare_import,
            }
    return {
        "benchmark": "ingest",
        "records": RECORDS,
        "metrics_per_record": 5,
        "records_per_request": PER_REQUEST,
        "chunked": chunked,
        "naive": naive,
        **imports,
        "targets": {
            "dynamodb_requests_per_ingest_request": 2,
            "write_units_per_reading": 0.01,
            "hot_path_cpu_us_per_reading": 20,
        },
    }
