"""What one request costs, measured in process: the input of the cost and capacity models.

For each batch size (1, 10 and 100 records of 5 metrics a request: 5, 50 and 500
readings) the real app (chalice.test.Client, moto in process) takes requests from 20
devices that each produce one record a minute (random phase within the hour), sent
round-robin as a fleet would. The token cache is off (TTL 0): at one request a minute
or less per device, a 5-second cache never hits, so every request pays its token
lookup. Measured per request: the handler's wall time (and the part of it spent inside
AWS calls, i.e. in moto), DynamoDB calls, read units from what the reads returned,
write units from the items stored (DynamoDB's 1 KB rule), the EMF log bytes it prints,
and the body size. A request is received (its received_at) half a second after its newest
record, as a device sends when its batch is full. Then the stored chunks are replayed, in
arrival order, as DynamoDB stream INSERT records through the real `archive_readings`
(batches of 1,000, as its event source mapping is configured) and `live` handlers; `live` gets
batches of at most 100 records and at most one record per device, as a shard of a large fleet
delivers them, and since its device-state fold reads the table, the chunks of a batch are put
back into an emptied table just before it (a stream record follows its write), so a fold sees
what it would have seen.

state_reads: the read units of the exact GET /v1/devices/{id}/state of a device sending one
record a minute (the live handler run after each request), and of the fleet page (/dashboard)
listing 50 such devices.

The naive design runs the same requests through the same API with only the storage
swapped (bench.naive: one item per reading, PynamoDB batch_write).
"""

from __future__ import annotations

import base64
import io
import json
import os
import random
import statistics
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager, redirect_stdout
from typing import Any
from unittest import mock

from bench.awscalls import CallLog, recorded_aws_calls
from bench.dynamo_size import item_size, write_units
from bench.naive import NAIVE_TABLE, naive_model, naive_writer

BATCH_SIZES = (1, 10, 100)
REQUESTS = {1: 400, 10: 300, 100: 60}
DEVICES = 20
METRICS = 5
RECORD_INTERVAL_MS = 60_000  # one record a minute per device
DAY_MS = 86_400_000
# Yesterday 00:00 UTC: readings must be recent (within retention, and not older than their
# request's received_at minus the fold bound, or each request would fold itself: domain.state).
START_MS = (time.time_ns() // 1_000_000 // DAY_MS - 1) * DAY_MS
ARRIVAL_DELAY_MS = 500  # a request is received this long after its newest record
STATE_READ_MINUTES = 120  # the state-read device's history: two hours, one record a minute
STATE_READS_FROM_MINUTE = 60  # its GET state is measured after each request of the second hour
FLEET_PAGE_DEVICES = 50
ARCHIVE_BATCH = 1000  # the event source mappings in app.py
LIVE_BATCH = 100
ADMIN_TOKEN = "iota_bench-admin-token"
STREAM_ARN = "arn:aws:dynamodb:us-east-1:123456789012:table/iotcloud-test-readings/stream/2025-11-25T00:00:00.000"


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return 0.0
    position = (len(ordered) - 1) * q
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def summary_ms(seconds: list[float]) -> dict[str, float]:
    ms = [s * 1000 for s in seconds]
    return {
        "mean": statistics.fmean(ms),
        "p50": percentile(ms, 0.5),
        "p95": percentile(ms, 0.95),
        "max": max(ms),
    }


def walk_records(rng: random.Random, count: int, start_ms: int, step_ms: int) -> list[dict[str, Any]]:
    """`count` records `step_ms` apart from `start_ms`, 5 metrics each: a random walk of
    temperature, humidity and pressure, a slowly draining battery, now and then a warning."""
    temp, hum, pres, volt = 21.0, 45.0, 1013.0, 3.7
    records: list[dict[str, Any]] = []
    for i in range(count):
        temp = round(min(40, max(-10, temp + rng.uniform(-0.2, 0.2))), 2)
        hum = round(min(100, max(0, hum + rng.uniform(-0.5, 0.5))), 1)
        pres = round(pres + rng.uniform(-0.3, 0.3), 1)
        volt = round(max(3.0, volt - rng.uniform(0, 0.0005)), 3)
        status = "ok" if rng.random() > 0.01 else "warn"
        values = {"temp": temp, "hum": hum, "pres": pres, "volt": volt, "status": status}
        records.append({"ts": start_ms + i * step_ms, "values": values})
    return records


def fleet_requests(batch: int, requests: int, seed: int = 11) -> list[tuple[int, list[dict[str, Any]]]]:
    """(device index, records) in arrival order: each device one record a minute, 5 metrics."""
    rng = random.Random(seed)
    per_device = requests // DEVICES
    streams = []
    for _ in range(DEVICES):
        start = START_MS + rng.randrange(0, 3_600_000, 1000)
        records = walk_records(rng, per_device * batch, start, RECORD_INTERVAL_MS)
        streams.append([records[j : j + batch] for j in range(0, len(records), batch)])
    # A device sends when its batch is full: order requests by their newest record.
    ordered = [(d, body) for d, bodies in enumerate(streams) for body in bodies]
    ordered.sort(key=lambda pair: int(pair[1][-1]["ts"]))
    return ordered


@contextmanager
def moto_stage(**overrides: str) -> Iterator[Any]:
    """The test stage against moto in process: tables, bucket, settings; the environment restored after."""
    import boto3
    from moto import mock_aws

    from chalicelib import wiring
    from chalicelib.domain.tokens import hash_token
    from infra.bootstrap import ensure_tables
    from infra.stages import stage_environment

    saved = dict(os.environ)
    os.environ.update(
        {
            **stage_environment("test"),
            "ADMIN_TOKEN_HASHES": hash_token(ADMIN_TOKEN),
            "AWS_ACCESS_KEY_ID": "bench",
            "AWS_SECRET_ACCESS_KEY": "bench",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_REGION": "us-east-1",
            "AWS_ACCOUNT_ID_ENDPOINT_MODE": "disabled",
            **overrides,
        }
    )
    os.environ.pop("AWS_ENDPOINT_URL", None)
    try:
        with mock_aws():
            wiring.reset()
            settings = wiring.bound_settings()
            ensure_tables(settings)
            boto3.client("s3", region_name=settings.region).create_bucket(Bucket=settings.archive_bucket)
            yield settings
    finally:
        os.environ.clear()
        os.environ.update(saved)
        wiring.reset()


def scan(table: str, region: str, limit: int | None = None) -> list[dict[str, Any]]:
    """The table's items (the first `limit` or more of them, if given)."""
    import boto3

    client = boto3.client("dynamodb", region_name=region)
    items: list[dict[str, Any]] = []
    kwargs: dict[str, Any] = {"TableName": table}
    while True:
        page = client.scan(**kwargs)
        items.extend(page["Items"])
        if "LastEvaluatedKey" not in page or (limit is not None and len(items) >= limit):
            return items
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def item_count(table: str, region: str) -> int:
    import boto3

    # moto counts the items on every DescribeTable (AWS refreshes ItemCount every ~6 hours).
    return int(boto3.client("dynamodb", region_name=region).describe_table(TableName=table)["Table"]["ItemCount"])


@contextmanager
def arriving_at(received_at_ms: int) -> Iterator[None]:
    """The telemetry route's clock reads `received_at_ms`: the request arrives when the workload says."""
    with mock.patch("chalicelib.api.telemetry.now_ms", lambda: received_at_ms):
        yield


def _register(client: Any, devices: int) -> list[str]:
    return [token for _, token in _register_devices(client, devices)]


def _register_devices(client: Any, devices: int) -> list[tuple[str, str]]:
    """(device id, token) of `devices` new devices, registered (created_at) an hour before the workload
    starts: a device's state is read from its registration on until its first fold (domain.state)."""
    out = []
    registered_at = START_MS - 3_600_000
    for n in range(devices):
        with mock.patch("chalicelib.api.devices.now_ms", lambda: registered_at):
            answer = client.http.post(
                "/v1/devices",
                headers={"Authorization": f"Bearer {ADMIN_TOKEN}", "Content-Type": "application/json"},
                body=json.dumps({"name": f"bench-{n}", "type": "sensor"}),
            )
        created = json.loads(answer.body)
        out.append((created["id"], created["token"]))
    return out


def _door_post(token: str, body: bytes) -> tuple[int, bytes]:
    """POST /v1/telemetry through the Function URL door: the `ingest` function given the URL's
    event (payload format 2.0) and a Lambda context with its configured timeout."""
    from chalice.local import LambdaContext

    from app import app
    from chalicelib.api.function_url import FUNCTION_NAME
    from devstack.function_url import function_url_event
    from infra.stages import function_settings

    settings = function_settings(FUNCTION_NAME, "test")
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    event = function_url_event("POST", "/v1/telemetry", "", headers, body)
    context = LambdaContext(FUNCTION_NAME, settings["memory_mb"], max_runtime_ms=settings["timeout_s"] * 1000)
    answer = app.handler_map[FUNCTION_NAME](event, context)
    return int(answer["statusCode"]), str(answer["body"]).encode()


def _api_post(client: Any, token: str, body: bytes) -> tuple[int, bytes]:
    """POST /v1/telemetry through the REST API (chalice.test.Client: API Gateway's proxy event)."""
    answer = client.http.post(
        "/v1/telemetry", headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"}, body=body
    )
    return int(answer.status_code), bytes(answer.body)


def _post_all(
    client: Any, tokens: list[str], requests: list[tuple[int, list[dict[str, Any]]]], log: CallLog, door: bool = False
) -> dict[str, Any]:
    walls: list[float] = []
    in_aws: list[float] = []
    emf = 0
    body_bytes = 0
    accepted = 0
    for device, records in requests:
        body = json.dumps(records, separators=(",", ":")).encode()
        body_bytes += len(body)
        printed = io.StringIO()
        before = log.seconds
        started = time.perf_counter()
        with redirect_stdout(printed), arriving_at(int(records[-1]["ts"]) + ARRIVAL_DELAY_MS):
            status, answer = _door_post(tokens[device], body) if door else _api_post(client, tokens[device], body)
        walls.append(time.perf_counter() - started)
        in_aws.append(log.seconds - before)
        assert status == 200, answer
        accepted += json.loads(answer)["accepted"]
        emf += len(printed.getvalue().encode())
    n = len(requests)
    return {
        "requests": n,
        "readings": accepted,
        "handler_ms": summary_ms(walls),
        "in_aws_calls_ms_mean": statistics.fmean(in_aws) * 1000,
        "app_ms_mean": statistics.fmean(w - a for w, a in zip(walls, in_aws, strict=True)) * 1000,
        "dynamodb_calls_per_request": {k.split(".", 1)[1]: v / n for k, v in sorted(log.calls.items())},
        "read_units_per_request": log.read_units / n,
        "emf_log_bytes_per_request": emf / n,
        "body_bytes_per_request": body_bytes / n,
    }


def _stream_record(item: dict[str, Any], sequence: int) -> dict[str, Any]:
    image = {
        name: ({"B": base64.b64encode(value["B"]).decode()} if "B" in value else value) for name, value in item.items()
    }
    return {
        "eventID": f"bench-{sequence}",
        "eventName": "INSERT",
        "eventVersion": "1.1",
        "eventSource": "aws:dynamodb",
        "awsRegion": "us-east-1",
        "eventSourceARN": STREAM_ARN,
        "dynamodb": {
            "ApproximateCreationDateTime": int(item["r"]["N"]) // 1000,
            "Keys": {"d": image["d"], "k": image["k"]},
            "NewImage": image,
            "SequenceNumber": str(10**20 + sequence),
            "SizeBytes": item_size(item),
            "StreamViewType": "NEW_AND_OLD_IMAGES",
        },
    }


def _invoke_all(
    client: Any,
    function: str,
    batches: list[list[dict[str, Any]]],
    log: CallLog,
    before_each: Callable[[list[dict[str, Any]]], None] | None = None,
) -> dict[str, Any]:
    """Invoke `function` once per batch; calls and read units are those of the invocations only
    (not of `before_each`, which runs first for every batch)."""
    walls: list[float] = []
    printed = io.StringIO()
    calls: Counter[str] = Counter()
    targets: Counter[str] = Counter()
    table_units: dict[str, float] = {}
    units = 0.0
    for batch in batches:
        if before_each is not None:
            before_each(batch)
        log.reset()
        started = time.perf_counter()
        with redirect_stdout(printed):
            client.lambda_.invoke(function, {"Records": batch})
        walls.append(time.perf_counter() - started)
        calls.update(log.calls)
        targets.update(log.targets)
        for table, read in log.table_read_units.items():
            table_units[table] = table_units.get(table, 0.0) + read
        units += log.read_units
    records = sum(len(b) for b in batches)
    devices = sum(len({r["dynamodb"]["Keys"]["d"]["S"] for r in b}) for b in batches)
    return {
        "invocations": len(batches),
        "records": records,
        "distinct_devices_summed_over_batches": devices,
        "wall_s": sum(walls),
        "ms_per_record": sum(walls) * 1000 / records,
        "ms_per_device_in_batch": sum(walls) * 1000 / devices,
        "calls": dict(sorted(calls.items())),
        "dynamodb_targets": dict(sorted(targets.items())),
        "read_units": units,
        "read_units_by_table": dict(sorted(table_units.items())),
        "emf_log_bytes": len(printed.getvalue().encode()),
    }


def _write_items(table: str, region: str, items: list[dict[str, Any]], delete: bool = False) -> None:
    """Put (or delete) items with plain BatchWriteItem calls: the replay's stand-in for the requests' writes."""
    import boto3

    client = boto3.client("dynamodb", region_name=region)
    for start in range(0, len(items), 25):
        requests = [
            {"DeleteRequest": {"Key": {"d": i["d"], "k": i["k"]}}} if delete else {"PutRequest": {"Item": i}}
            for i in items[start : start + 25]
        ]
        pending: dict[str, Any] = {table: requests}
        while pending:
            pending = client.batch_write_item(RequestItems=pending).get("UnprocessedItems") or {}


def _live_replay(client: Any, settings: Any, ordered: list[dict[str, Any]], log: CallLog) -> dict[str, Any]:
    """The live handler over the chunks' stream records, each batch's chunks written just before it."""
    table, region = settings.readings_table, settings.region
    records = [_stream_record(item, n) for n, item in enumerate(ordered)]
    by_key = {(i["d"]["S"], i["k"]["S"]): i for i in ordered}
    _write_items(table, region, ordered, delete=True)

    def commit(batch: list[dict[str, Any]]) -> None:
        keys = [(r["dynamodb"]["Keys"]["d"]["S"], r["dynamodb"]["Keys"]["k"]["S"]) for r in batch]
        _write_items(table, region, [by_key[k] for k in keys])

    return _invoke_all(client, "live", _device_batches(records, LIVE_BATCH), log, before_each=commit)


def _device_batches(records: list[dict[str, Any]], size: int) -> list[list[dict[str, Any]]]:
    """Batches of at most `size` records in order, each holding at most one record per device.

    A large fleet's shard delivers a batch of 100 records from about 100 devices; 20 devices replayed in
    full batches would put five requests of each device in one batch, and fold it once for all five
    (flattering the fold count). Cut a batch where a device comes again instead.
    """
    batches: list[list[dict[str, Any]]] = []
    current: list[dict[str, Any]] = []
    seen: set[str] = set()
    for record in records:
        device = record["dynamodb"]["Keys"]["d"]["S"]
        if len(current) == size or device in seen:
            batches.append(current)
            current, seen = [], set()
        current.append(record)
        seen.add(device)
    if current:
        batches.append(current)
    return batches


def run_design(design: str, batch: int) -> dict[str, Any]:
    """Requests of `batch` records with `design`: "chunked" (the REST API), "door" (the same storage
    through the Function URL door; its stream is chunked's: the same items) or "naive" (REST, one
    item per reading)."""
    from chalice.test import Client

    from app import app
    from chalicelib.api import telemetry

    requests = fleet_requests(batch, REQUESTS[batch])
    with moto_stage(AUTH_CACHE_TTL_SECONDS="0", METRICS_SINK="emf") as settings:
        patches = []
        if design == "naive":
            model = naive_model(settings.region)
            model.create_table(wait=True)
            patches.append(mock.patch.object(telemetry, "ingest", naive_writer(model)))
        with Client(app, stage_name="test") as client:
            tokens = _register(client, DEVICES)
            for patch in patches:
                patch.start()
            try:
                with recorded_aws_calls() as log:
                    result = _post_all(client, tokens, requests, log, door=design == "door")
            finally:
                for patch in patches:
                    patch.stop()
            table = NAIVE_TABLE if design == "naive" else settings.readings_table
            # The naive items are all alike: size a sample of them (scanning tens of thousands is slow in moto).
            items = scan(table, settings.region, limit=2000 if design == "naive" else None)
            count = item_count(table, settings.region)
            devices = scan(settings.devices_table, settings.region)  # as the requests left them
            n = result["requests"]
            readings = result["readings"]
            mean_wcu = statistics.fmean(write_units(i) for i in items)
            mean_bytes = statistics.fmean(item_size(i) for i in items)
            result.update(
                {
                    "design": design,
                    "records_per_request": batch,
                    "readings_per_request": readings / n,
                    "items": count,
                    "items_sized": len(items),
                    "items_per_request": count / n,
                    "item_write_units_per_request": mean_wcu * count / n,
                    "device_item_bytes_mean": statistics.fmean(item_size(d) for d in devices),
                    "device_update_write_units": statistics.fmean(write_units(d) for d in devices),
                    "stored_bytes_per_reading": mean_bytes * count / readings,
                    "items_per_reading": count / readings,
                }
            )
            if design == "chunked":
                per_request = Counter((i["d"]["S"], i["r"]["N"]) for i in items)
                result["max_chunks_per_request"] = max(per_request.values())
                ordered = sorted(items, key=lambda i: (int(i["r"]["N"]), i["k"]["S"]))
                records = [_stream_record(item, n) for n, item in enumerate(ordered)]
                with recorded_aws_calls() as log:
                    archive = _invoke_all(client, "archive_readings", _batches(records, ARCHIVE_BATCH), log)
                    archive["s3_puts"] = archive["calls"].get("s3.PutObject", 0)
                    archive["archived_bytes"] = _archived_bytes(settings)
                    live = _live_replay(client, settings, ordered, log)
                folded = scan(settings.devices_table, settings.region)
                updates = live["dynamodb_targets"].get(f"UpdateItem {settings.devices_table}", 0)
                live["device_state_folds_per_request"] = updates / n
                # A fold's UpdateItem is priced from the device item it leaves (1 KB rule), as the request's was.
                live["device_item_write_units_after_folds"] = statistics.fmean(write_units(d) for d in folded)
                live["fold_write_units_per_request"] = updates / n * live["device_item_write_units_after_folds"]
                result["stream"] = {"records_per_request": len(records) / n, "archive": archive, "live": live}
    return result


def _batches(records: list[dict[str, Any]], size: int) -> list[list[dict[str, Any]]]:
    return [records[i : i + size] for i in range(0, len(records), size)]


def _archived_bytes(settings: Any) -> int:
    import boto3

    s3 = boto3.client("s3", region_name=settings.region)
    total = 0
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=settings.archive_bucket, Prefix="archive/"):
        total += sum(obj["Size"] for obj in page.get("Contents", []))
    return total


def _new_records(streams: Any, iterators: dict[str, str]) -> list[dict[str, Any]]:
    """The readings stream's records since the last read (moto's stream), in Lambda's shape."""
    records: list[dict[str, Any]] = []
    for shard, iterator in iterators.items():
        answer = streams.get_records(ShardIterator=iterator, Limit=1000)
        records += answer["Records"]
        iterators[shard] = answer["NextShardIterator"]
    return records


def state_reads() -> dict[str, Any]:
    """Read units of an exact GET state (a device at one record a minute) and of a 50-device fleet page."""
    import boto3
    from chalice.test import Client

    from app import app
    from chalicelib.web import session as sessions
    from devstack.events import stream_event

    with moto_stage(AUTH_CACHE_TTL_SECONDS="0", METRICS_SINK="off") as settings:
        region = settings.region
        arn = boto3.client("dynamodb", region_name=region).describe_table(TableName=settings.readings_table)
        stream_arn = arn["Table"]["LatestStreamArn"]
        streams = boto3.client("dynamodbstreams", region_name=region)
        shards = streams.describe_stream(StreamArn=stream_arn)["StreamDescription"]["Shards"]
        iterators = {
            s["ShardId"]: streams.get_shard_iterator(
                StreamArn=stream_arn, ShardId=s["ShardId"], ShardIteratorType="LATEST"
            )["ShardIterator"]
            for s in shards
        }
        rng = random.Random(7)
        with Client(app, stage_name="test") as client:
            registered = _register_devices(client, FLEET_PAGE_DEVICES)
            first = START_MS + rng.randrange(0, 3_600_000, 1000)
            reads: list[float] = []
            calls: Counter[str] = Counter()
            printed = io.StringIO()

            def post(token: str, record: dict[str, Any]) -> None:
                with arriving_at(int(record["ts"]) + ARRIVAL_DELAY_MS):
                    answer = client.http.post(
                        "/v1/telemetry",
                        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
                        body=json.dumps([record]).encode(),
                    )
                assert answer.status_code == 200, answer.body

            def stream_to_live() -> None:
                event = stream_event(_new_records(streams, iterators), stream_arn, region)
                client.lambda_.invoke("live", {"Records": event["Records"]})

            with recorded_aws_calls() as log, redirect_stdout(printed):
                # The others of the fleet page: heard from once each, folded.
                for _, token in registered[1:]:
                    post(token, walk_records(rng, 1, first, RECORD_INTERVAL_MS)[0])
                stream_to_live()
                # The state-read device: a record a minute, each request's stream record to the live handler
                # (a quiet stream: one record a batch), its exact state read after each request of the second hour.
                device_id, token = registered[0]
                for minute, record in enumerate(walk_records(rng, STATE_READ_MINUTES, first, RECORD_INTERVAL_MS)):
                    post(token, record)
                    stream_to_live()
                    if minute >= STATE_READS_FROM_MINUTE:
                        log.reset()
                        answer = client.http.get(
                            f"/v1/devices/{device_id}/state", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}
                        )
                        assert answer.status_code == 200, answer.body
                        reads.append(log.read_units)
                        calls.update(log.calls)
                secret = sessions.secret()
                _, cookie = sessions.new_session(secret, int(time.time() * 1000), 3600)
                log.reset()
                page = client.http.get(
                    f"/dashboard?limit={FLEET_PAGE_DEVICES}", headers={"Cookie": f"{sessions.SESSION_COOKIE}={cookie}"}
                )
                assert page.status_code == 200, page.body
                assert page.body.count(b"data-device=") >= FLEET_PAGE_DEVICES, "the page lists every device"
                fleet_units, fleet_calls = log.read_units, dict(sorted(log.calls.items()))
    return {
        "method": (
            f"one device sending a record of 5 metrics a minute for {STATE_READ_MINUTES} minutes, the live handler "
            "run on each request's stream record; its GET /v1/devices/{id}/state (admin) after each request from "
            f"minute {STATE_READS_FROM_MINUTE}; then one /dashboard page of {FLEET_PAGE_DEVICES} devices (the others "
            "heard from once, folded)"
        ),
        "rru_per_state_read": statistics.fmean(reads),
        "rru_per_state_read_max": max(reads),
        "dynamodb_calls_per_state_read": {k: v / len(reads) for k, v in sorted(calls.items())},
        "rru_per_fleet_page": fleet_units,
        "fleet_page_devices": FLEET_PAGE_DEVICES,
        "dynamodb_calls_per_fleet_page": fleet_calls,
    }


def run() -> dict[str, Any]:
    started = time.perf_counter()
    out: dict[str, Any] = {
        "load_average_1m_at_start": os.getloadavg()[0],
        "method": (
            "real app in process (chalice.test.Client) against moto in process; 20 devices, one record of 5 "
            "metrics a minute each, random phase; token cache off (TTL 0); naive = same API, storage swapped; "
            "means over all requests, first ones included"
        ),
        "devices": DEVICES,
        "record_interval_s": RECORD_INTERVAL_MS / 1000,
        "metrics_per_record": METRICS,
        "by_batch": {},
    }
    for batch in BATCH_SIZES:
        out["by_batch"][str(batch)] = {design: run_design(design, batch) for design in ("chunked", "door", "naive")}
    out["state_reads"] = state_reads()
    out["wall_s"] = time.perf_counter() - started
    return out


if __name__ == "__main__":
    print(json.dumps(run(), indent=2))
