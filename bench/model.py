"""Cost per million readings and the capacity model, from measured figures and the dated price table.

Pure arithmetic over bench.measure's output (and the archive benchmark's job CPU); the
prices come from chalicelib/pricing.json through chalicelib.domain.costs. Every
assumption the arithmetic makes is written into the result next to the numbers.
"""

from __future__ import annotations

import json
import math
import random
from decimal import Decimal
from pathlib import Path
from typing import Any

from bench.dynamo_size import item_size, write_units
from chalicelib.adapters.devices import ACTIVE_SHARDS
from chalicelib.domain.costs import (
    SECONDS_PER_MONTH,
    dynamodb_on_demand_usd,
    iot_core_messages,
    lambda_cost,
    prices,
    tiered_cost,
)
from chalicelib.domain.state import FOLD_INTERVAL_MS, LATE_FOLD_MS, MAX_REQUEST_MS
from infra.bootstrap import STREAM_PARALLELIZATION

ROOT = Path(__file__).resolve().parent.parent
MILLION = 1_000_000
STAGE = "dev"
PLATFORM_LOG_BYTES = 270  # Lambda's START, END and REPORT lines of one invocation
APP_LOG_BYTES_ARCHIVER = 200  # the archiver's one info line per invocation
RETENTION_DAYS = 30
IOT_DEVICE = "dev-0123456789abcdef"
IOT_TOPIC = f"iotcloud/{IOT_DEVICE}/telemetry"
ROLLUP_RERUN_FACTOR = 1.0  # hourly job: each closed hour rolled once (late re-rolls are rare and not priced)
EMF_METRICS = 7  # ReadingsIngested, RejectedRequests, BatchSize, IngestLatency, ArchivedReadings, ArchiveLag, Active*

ASSUMPTIONS = [
    "Prices: chalicelib/pricing.json (us-east-1 list prices as known on its as_of date; check before use); "
    "first tier of every price, no free tier, except the capacity model's monthly API Gateway and IoT messages, "
    "which use the tier tables.",
    "Workload: each device sends one record of 5 metrics a minute (5 readings), batched B records a request; "
    "a reading is one metric value.",
    "API Lambda: one invocation per request (no authorizer); duration = mean handler wall time measured in "
    "process against moto, billed rounded up to 1 ms, at the stage's memory size (Chalice config), arm64.",
    "Local timings are not Lambda's: in process they include moto's emulation instead of network round trips "
    "(2-10 ms per DynamoDB call in AWS) and run on a full core (512 MB gets about 0.3 vCPU); the JSON has the "
    "cost with 3x the duration as a sensitivity.",
    "Token lookups: the 5 s cache never hits at one request a minute or less per device: every request reads the "
    "token index (eventually consistent Query) and the device item (consistent GetItem), read units from the items "
    "returned.",
    "DynamoDB writes: chunk and naive items priced from the stored items (1 KB rule); device state where it is "
    "written: on the request path only for a request holding a reading older than LATE_FOLD_MS (none in this "
    "workload), and by the live handler's folds (at most one per device per FOLD_INTERVAL_MS per container, "
    "measured in the replay), each UpdateItem priced from the device item's size; the keys-only active_hour index "
    "costs 2 write units (delete + put) when a device's request falls in a new hour, i.e. with probability "
    "min(1, request interval / 60 min).",
    "State reads: GET /v1/devices/{id}/state is exact (the device item + one Query of the chunks not yet folded, "
    "both eventually consistent) and the fleet page reads the folded items (a GetItem per device); read units "
    "measured with the real routes (measure.state_reads), priced as DynamoDB on-demand reads only.",
    "DynamoDB Streams: GetRecords calls made by Lambda event source mappings are free (DynamoDB pricing page), so "
    "stream reads cost 0 for both consumers (archive_readings, live).",
    "Stream consumers: full batches (archive_readings 1,000 records, live 100), duration = measured ms per record "
    "x batch; live's DynamoDB reads (its device-state folds' GetItem and Query included) and fold writes per "
    "stream record as measured in a replay whose live batches hold one record per device (a large fleet's "
    "shard: 20 devices replayed in batches of 100 would fold five requests at once; no alert rules, no WAMP "
    "subscribers); "
    "archiver S3 PUTs per invocation = the most hour partitions one request's chunks spanned.",
    "Storage: DynamoDB keeps readings 30 days (TTL) at item bytes + 100 bytes overhead per item; S3 Standard "
    "for the first 30 days (then Standard-IA, not counted here).",
    "CloudWatch: EMF log bytes measured per invocation + 270 bytes of Lambda platform lines (+200 for the "
    "archiver's log line), at the logs ingestion price; the ingest function (the Function URL door) writes no "
    "platform lines: its SystemLogLevel is WARN (infra/resources.py HOT_PATH_LOGGING); EMF needs no "
    "PutMetricData calls; custom metrics (7 x $0.30/month) are fixed, counted in the capacity model only.",
    "Function URL door (cost_function_url): the same requests through the ingest function (bench.measure design "
    "'door'): its own DynamoDB calls, read units and EMF bytes; its duration modelled at the ingest function's "
    "memory (measured CPU outside AWS calls x 1,769 MB / memory, + the measured time inside them: bench.door); "
    "no API Gateway charge (a Function URL has none); the stream consumers, storage, rollups as the REST design's "
    "(the same stored items). Custom domains (CloudFront in front) are not priced.",
    "Rollups: the daily job re-reads yesterday (and today's first 15 minutes): job CPU from the archive benchmark "
    "as Lambda duration at 2,048 MB; rollup and index items per reading from the real job on a device-day of "
    "records, 1 write each.",
    "Naive design: same API, same auth and device state, one item per reading; its stream consumers are priced "
    "per stream record as ours at batch 1 (one record per reading instead of per request).",
]


def lambda_settings(stage: str = STAGE) -> dict[str, dict[str, Any]]:
    """Memory, timeout and architecture of the functions, as Chalice resolves them for the stage."""
    from infra.stages import function_settings

    return {f: function_settings(f, stage) for f in ("api_handler", "ingest", "archive_readings", "live", "rollups")}


def door_platform_log_bytes() -> int:
    """Platform log bytes per ingest-function invocation: none when its system log level is WARN."""
    from infra.resources import HOT_PATH_LOGGING

    return 0 if HOT_PATH_LOGGING["SystemLogLevel"] == "WARN" else PLATFORM_LOG_BYTES


def _bench_lines(device: str, start: int, minutes: int, seed: int) -> list[dict[str, Any]]:
    """One 5-metric record a minute of one device (the bench's device, or one of its fleet)."""
    rng = random.Random(seed)
    lines = []
    for minute in range(minutes):
        ts = start + minute * 60_000
        values: dict[str, Any] = {
            "temp": round(21 + rng.uniform(-1, 1), 2),
            "hum": round(45 + rng.uniform(-2, 2), 1),
            "pres": round(1013 + rng.uniform(-1, 1), 1),
            "volt": round(3.7 - minute * 1e-5, 4),
            "status": "ok" if rng.random() > 0.01 else "warn",
        }
        for metric, value in values.items():
            lines.append({"device_id": device, "metric": metric, "unit": "", "ts": ts, "value": value})
    return lines


ROLLUP_FLEET = 1_000  # devices sharing the hour pages (their fill sets a page's devices)


def _read_units(sizes: list[int]) -> float:
    """Eventually consistent read units of one Query (or GetItem) returning items of these sizes."""
    return 0.5 * max(1, math.ceil(sum(sizes) / 4096))


def job_outputs_per_reading() -> dict[str, float]:
    """Write units the hourly rollup job spends per reading, from the real job, codec and items.

    One device-day of the bench device (its day item, its index items) plus its share of the
    hour pages of a ROLLUP_FLEET-device fleet, of the manifest and of the watermark writes;
    `before_*` prices the daily job's one item per (device, metric, unit, hour) for comparison.
    Also the read units of a 7-day hourly window: 6 day items in one Query, the open day's
    manifest and its 24 pages of the device's shard.
    """
    from chalicelib.adapters.aggregates import Manifest, RollupStore, index_items, rollup_item, shards_for
    from chalicelib.domain.mapreduce import INDEX, ROLLUP, partials_by_device, run_local

    store = RollupStore()
    start = 1_764_028_800_000  # 2025-11-25T00:00Z
    day = "2025-11-25"
    lines = _bench_lines("dev-bench", start, 1440, 5)
    rollups = run_local(ROLLUP, lines)
    index = run_local(INDEX, lines)
    index_wru = sum(write_units(i.serialize()) for row in index for i in index_items(row, day))
    series = partials_by_device(rollups)["dev-bench"]
    day_item = store.day_item("dev-bench", day, series).serialize()
    # one hour of the fleet, each device its own values: the pages that hour writes
    hour_lines = [x for n in range(ROLLUP_FLEET) for x in _bench_lines(f"dev-{n:06d}", start, 60, 1000 + n)]
    fleet_hour = partials_by_device(run_local(ROLLUP, hour_lines))
    shards = shards_for(fleet_hour, start)
    pages = [p.serialize() for p in store.page_items(day, start, shards, fleet_hour)]
    page_wru_per_device_day = 24 * sum(write_units(p) for p in pages) / ROLLUP_FLEET
    manifest = store.manifest_item(day, Manifest(shards, set(range(24)))).serialize()
    # 24 manifest and watermark writes and the compaction's manifest write, shared by the fleet
    shared_wru = (25 * write_units(manifest) + 24 * 1) / ROLLUP_FLEET
    rollup_wru = write_units(day_item) + page_wru_per_device_day + shared_wru
    # The old job wrote numeric series only (its strongest honest form: no item for a string series).
    before = sum(write_units(rollup_item(row).serialize()) for row in rollups if row["numbers"])
    page_sizes = sorted(item_size(p) for p in pages)
    mean_page = sum(page_sizes) / len(page_sizes)
    read_7_days = (
        _read_units([item_size(day_item)] * 6) + _read_units([item_size(manifest)]) + _read_units([int(mean_page)] * 24)
    )
    return {
        "readings": len(lines),
        "rollup_rows": len(rollups),
        "index_items": sum(len(row["postings"]) for row in index),
        "write_units_per_reading": (rollup_wru + index_wru) / len(lines),
        "rollup_write_units_per_million": MILLION * rollup_wru / len(lines),
        "before_rollup_write_units_per_million": MILLION * before / len(lines),
        "day_item_bytes": item_size(day_item),
        "page_shards": shards,
        "page_bytes_mean": mean_page,
        "read_units_7_day_window": read_7_days,
    }


def _profile(measured: dict[str, Any], design: str, batch_one: dict[str, Any]) -> dict[str, Any]:
    """What one request costs, in the units the model needs."""
    m = measured
    rpr = m["readings_per_request"]
    interval_min = m["records_per_request"]  # one record a minute
    stream = m.get("stream") or batch_one["stream"]
    if design == "naive":
        stream_records = rpr  # one stream record per item, i.e. per reading
        archive_puts = 1.0
    else:
        stream_records = stream["records_per_request"]
        archive_puts = float(m["max_chunks_per_request"])
    archive, live = stream["archive"], stream["live"]
    readings_in_run = batch_one["readings"] if design == "naive" else m["readings"]
    return {
        "readings_per_request": rpr,
        "request_interval_min": interval_min,
        "handler_ms": m["handler_ms"]["mean"],
        "read_units_per_request": m["read_units_per_request"],
        "item_write_units_per_request": m["item_write_units_per_request"],
        # The request path's own state updates (late readings; every request in the naive design) ...
        "device_write_units_per_request": m["dynamodb_calls_per_request"].get("UpdateItem", 0)
        * m["device_update_write_units"],
        # ... and the live handler's folds, measured in the stream replay (none for naive: not replayed).
        "fold_write_units_per_request": 0.0 if design == "naive" else live.get("fold_write_units_per_request", 0.0),
        "active_index_write_units_per_request": 2 * min(1.0, interval_min / 60),
        "stream_records_per_request": stream_records,
        "archive_ms_per_record": archive["ms_per_record"],
        "live_ms_per_record": live["ms_per_record"],
        "live_read_units_per_record": live["read_units"] / live["records"],
        "archive_puts_per_invocation": archive_puts,
        "archived_bytes_per_reading": archive["archived_bytes"] / readings_in_run,
        "archive_emf_bytes_per_invocation": archive["emf_log_bytes"] / archive["invocations"],
        "stored_bytes_per_reading": m["stored_bytes_per_reading"],
        "items_per_reading": m["items_per_reading"],
        "emf_bytes_per_request": m["emf_log_bytes_per_request"],
    }


def per_million(
    profile: dict[str, Any], functions: dict[str, dict[str, Any]], job: dict[str, Any], *, door: bool = False
) -> dict[str, Any]:
    """Units and USD per million readings of one design at one batch size (`door`: through the
    Function URL: the ingest function, no API Gateway, its platform log level)."""
    n = _counts_per_million(profile, job, door_platform_log_bytes() if door else PLATFORM_LOG_BYTES)
    requests, records, wru, rru = n["requests"], n["records"], n["wru"], n["rru"]
    api_fn, archive_fn, live_fn, rollup_fn = (
        functions[f] for f in ("ingest" if door else "api_handler", "archive_readings", "live", "rollups")
    )
    api = lambda_cost(requests, profile["handler_ms"], api_fn["memory_mb"], api_fn["architecture"])
    api_x3 = lambda_cost(requests, 3 * profile["handler_ms"], api_fn["memory_mb"], api_fn["architecture"])
    archive_ms = 1000 * profile["archive_ms_per_record"]
    archiver = lambda_cost(n["archive_invocations"], archive_ms, archive_fn["memory_mb"], archive_fn["architecture"])
    live_ms = 100 * profile["live_ms_per_record"]
    live = lambda_cost(n["live_invocations"], live_ms, live_fn["memory_mb"], live_fn["architecture"])
    rollup_lambda = lambda_cost(1, n["job_seconds"] * 1000, rollup_fn["memory_mb"], rollup_fn["architecture"])
    usd = _usd_per_million(n, api, archiver, live, rollup_lambda, gateway=not door)
    total = sum(usd.values())
    request_path = (
        usd["api_gateway_requests"]
        + usd["lambda_api"]
        + dynamodb_on_demand_usd(wru["readings_items"] + wru["device_state"], rru["token_lookup"])
    )
    return {
        "readings_per_request": profile["readings_per_request"],
        "usd_total": total,
        "usd_ingest_and_store": request_path + usd["dynamodb_storage_30_days"],
        "usd": usd,
        "usd_total_with_3x_lambda_duration": total - api["compute_usd"] + api_x3["compute_usd"],
        "units": {
            # The request path writes its chunks, and the device item only for a late request; the
            # active_hour index moves with the folds (the live handler's), like the rest of the state.
            "request_path_write_units_per_reading": (wru["readings_items"] + wru["device_state"]) / MILLION,
            "api_requests": requests,
            "lambda_api_invocations": requests,
            "lambda_api_duration_ms": profile["handler_ms"],
            "lambda_api_gb_seconds": api["gb_seconds"],
            "dynamodb_write_units": wru,
            "dynamodb_read_units": rru,
            "stream_records": records,
            "archiver_invocations": n["archive_invocations"],
            "live_invocations": n["live_invocations"],
            "stream_consumer_gb_seconds": archiver["gb_seconds"] + live["gb_seconds"],
            "s3_puts": n["puts"],
            "s3_gb_stored": n["s3_gb"],
            "dynamodb_gb_stored": n["ddb_gb"],
            "log_bytes": n["log_bytes"],
            "rollup_job_gb_seconds": rollup_lambda["gb_seconds"],
        },
    }


def _counts_per_million(profile: dict[str, Any], job: dict[str, Any], request_platform_bytes: int) -> dict[str, Any]:
    """What a million readings make: requests, stream records and invocations, units, bytes, job seconds."""
    requests = MILLION / profile["readings_per_request"]
    records = requests * profile["stream_records_per_request"]
    archive_invocations = records / 1000
    live_invocations = records / 100
    archive_log = profile["archive_emf_bytes_per_invocation"] + PLATFORM_LOG_BYTES + APP_LOG_BYTES_ARCHIVER
    return {
        "requests": requests,
        "records": records,
        "archive_invocations": archive_invocations,
        "live_invocations": live_invocations,
        "wru": {
            "readings_items": requests * profile["item_write_units_per_request"],
            "device_state": requests * profile["device_write_units_per_request"],
            "device_state_folds": requests * profile["fold_write_units_per_request"],
            "active_hour_index": requests * profile["active_index_write_units_per_request"],
            "rollup_and_index_items": MILLION * job["write_units_per_reading"] * ROLLUP_RERUN_FACTOR,
        },
        "rru": {
            "token_lookup": requests * profile["read_units_per_request"],
            "live_handler": records * profile["live_read_units_per_record"],
        },
        "puts": archive_invocations * profile["archive_puts_per_invocation"],
        "s3_gb": MILLION * profile["archived_bytes_per_reading"] / 1e9,
        "ddb_gb": MILLION * (profile["stored_bytes_per_reading"] + 100 * profile["items_per_reading"]) / 1e9,
        "log_bytes": (
            requests * (profile["emf_bytes_per_request"] + request_platform_bytes)
            + archive_invocations * archive_log
            + live_invocations * PLATFORM_LOG_BYTES
        ),
        "job_seconds": job["cpu_s_per_million_readings"] * ROLLUP_RERUN_FACTOR,
    }


def _usd_per_million(
    n: dict[str, Any],
    api: dict[str, float],
    archiver: dict[str, float],
    live: dict[str, float],
    rollup_lambda: dict[str, float],
    *,
    gateway: bool = True,
) -> dict[str, float]:
    """USD per item of the cost table, from the counts and the four functions' Lambda costs
    (`gateway`: the requests come through API Gateway's REST API)."""
    p = prices()
    wru, rru, puts = n["wru"], n["rru"], n["puts"]
    month = RETENTION_DAYS * 86400 / SECONDS_PER_MONTH
    return {
        "api_gateway_requests": n["requests"] / MILLION * p["api_gateway"]["rest_requests_per_million"] * gateway,
        "lambda_api": api["requests_usd"] + api["compute_usd"],
        "dynamodb_writes": dynamodb_on_demand_usd(sum(wru.values()) - wru["rollup_and_index_items"], 0),
        "dynamodb_writes_rollup_items": dynamodb_on_demand_usd(wru["rollup_and_index_items"], 0),
        "dynamodb_reads": dynamodb_on_demand_usd(0, sum(rru.values())),
        "dynamodb_stream_reads": n["records"] / 100_000 * p["dynamodb"]["streams_read_by_lambda_trigger_per_100k"],
        "lambda_stream_consumers": archiver["requests_usd"]
        + archiver["compute_usd"]
        + live["requests_usd"]
        + live["compute_usd"],
        "s3_puts": puts / 1000 * p["s3"]["put_per_1000"],
        "s3_storage_30_days": n["s3_gb"] * p["s3"]["standard_gb_month"] * month,
        "dynamodb_storage_30_days": n["ddb_gb"] * p["dynamodb"]["storage_gb_month"] * month,
        "cloudwatch_logs": n["log_bytes"] / 1e9 * p["cloudwatch"]["logs_ingest_gb"],
        "rollup_job_lambda_and_s3_gets": rollup_lambda["compute_usd"] + 2 * puts / 1000 * p["s3"]["get_per_1000"],
    }


def iot_core_message_item(batch: int) -> dict[str, Any]:
    """The item a DynamoDBv2 action writes for one publish of `batch` records (the bench's own records).

    The device publishes one JSON object: the record itself at batch 1, `{"records": [...]}` above;
    the rule `SELECT *, topic(2) AS device_id, timestamp() AS ts` adds the table's keys.
    """
    from boto3.dynamodb.types import TypeSerializer

    from bench.measure import RECORD_INTERVAL_MS, START_MS, walk_records

    records = walk_records(random.Random(5), batch, START_MS, RECORD_INTERVAL_MS)
    message: dict[str, Any] = records[0] if batch == 1 else {"records": records}
    payload = json.dumps(message, separators=(",", ":"))
    # Numbers go to DynamoDB as Decimal (the action stores JSON numbers as N).
    document = json.loads(payload, parse_float=Decimal)
    document.update({"device_id": IOT_DEVICE, "ts": START_MS})
    serialize = TypeSerializer().serialize
    item = {k: serialize(v) for k, v in document.items()}
    return {"payload_bytes": len(payload.encode()), "item_bytes": item_size(item), "write_units": write_units(item)}


def iot_core_per_million(measured: dict[str, Any], *, basic_ingest: bool) -> dict[str, Any]:
    """The AWS IoT Core path at the same batch size: publish -> rule -> DynamoDBv2 action, one item per message.

    `basic_ingest`: the device publishes to `$aws/rules/<rule>`, which AWS meters no messaging for.
    """
    p = prices()["iot_core"]
    rpr = measured["readings_per_request"]
    records = measured["records_per_request"]
    publishes = MILLION / rpr
    item = iot_core_message_item(records)
    per_publish = 0 if basic_ingest else iot_core_messages(item["payload_bytes"], len(IOT_TOPIC))
    messages = publishes * per_publish
    # The cheaper of staying connected (a minute per record) and connecting to publish (AWS meters a
    # connection in 1-minute increments): a batching device need not hold its connection.
    connection_minutes = min(MILLION / 5, publishes)
    write_units_total = publishes * item["write_units"]
    month = RETENTION_DAYS * 86400 / SECONDS_PER_MONTH
    ddb_gb = publishes * (item["item_bytes"] + 100) / 1e9
    usd = {
        "connectivity": connection_minutes / MILLION * p["connectivity_per_million_minutes"],
        "messaging": messages / MILLION * p["messages_per_million"],
        "rules_triggered": publishes / MILLION * p["rules_triggered_per_million"],
        "actions_executed": publishes / MILLION * p["actions_per_million"],
        "dynamodb_writes": dynamodb_on_demand_usd(write_units_total, 0),
        "dynamodb_storage_30_days": ddb_gb * prices()["dynamodb"]["storage_gb_month"] * month,
    }
    total = sum(usd.values())
    return {
        "readings_per_request": rpr,
        "usd_total": total,
        "usd_ingest_and_store": total,  # the path stores and nothing else: both figures are the same
        "usd": usd,
        "units": {
            "publishes": publishes,
            "payload_bytes_per_publish": item["payload_bytes"],
            "item_bytes_per_publish": item["item_bytes"],
            "write_units_per_publish": item["write_units"],
            "messages_per_publish": per_publish,
            "messages": messages,
            "connection_minutes": connection_minutes,
            "rules_triggered": publishes,
            "actions_executed": publishes,
            "dynamodb_write_units": write_units_total,
        },
    }


IOT_ASSUMPTIONS = [
    "Pricing pages: 'AWS IoT Core pricing' (Connectivity, Messaging, Rules Engine) and its 'Additional metering "
    "details' (a publish is metered on payload + topic bytes in 5 KB increments; publishes to the Basic Ingest "
    "topic $aws/rules/<rule> are not metered as messages), 'Amazon DynamoDB pricing' (on-demand write request "
    "units, storage).",
    "A device publishes the same records it would POST, as one JSON object (the record itself at batch 1, "
    '{"records": [...]} above) on the topic iotcloud/<device>/telemetry; one rule on the topic: one rule '
    "triggered and one action executed per publish.",
    "The rule's DynamoDBv2 action writes each message as one item (SELECT *, topic(2) AS device_id, timestamp() "
    "AS ts): its size is the message's attributes as DynamoDB stores them (the developer guide's size rules), "
    "its write units ceil(size / 1 KB), its storage size + 100 bytes for 30 days.",
    "First tier of every price, no free tier, as for iotcloud. Connectivity: the cheaper of staying connected "
    "(a connection-minute per record) and connecting only to publish (one minute, the metering increment, per "
    "publish): at batch B a device connects for one minute every B minutes.",
    "What IoT Core gives that iotcloud's HTTPS path does not: persistent MQTT connections (the broker pushes to "
    "devices with no polling), QoS 1 delivery, retained messages, the device gateway's own throttling and "
    "X.509 authentication.",
    "What iotcloud's 'everything' total includes that this path does not: the device state (latest values, "
    "last_seen), the S3 archive (Athena, DuckDB), alert evaluation, live events to WAMP subscribers, logs and "
    "metrics, daily rollups. Both columns 'ingest + store' compare storing readings durably and queryable "
    "by device and time, nothing more.",
]


def costs(measured: dict[str, Any], job: dict[str, Any]) -> dict[str, Any]:
    """The `cost`, `naive` and `iot_core` sections."""
    functions = lambda_settings()
    by_batch = measured["by_batch"]
    batch_one = by_batch["1"]["chunked"]
    chunked, door, naive, iot, basic = {}, {}, {}, {}, {}
    for batch, designs in by_batch.items():
        ours = designs["chunked"]
        chunked[batch] = per_million(_profile(ours, "chunked", batch_one), functions, job)
        # The door stores the same items: its stream and archive figures are the REST design's.
        through_door = door_design(designs)
        door[batch] = per_million(_profile(through_door, "chunked", batch_one), functions, job, door=True)
        door[batch]["measured"] = {
            "dynamodb_requests_per_request": through_door["dynamodb_calls_per_request"],
            "handler_ms": designs["door"]["handler_ms"],
            "lambda_duration_ms_modelled": through_door["handler_ms"]["mean"],
            "in_aws_calls_ms_mean": through_door["in_aws_calls_ms_mean"],
            "app_ms_mean": through_door["app_ms_mean"],
            "chunk_write_units_per_request": through_door["item_write_units_per_request"],
            "read_units_per_request": through_door["read_units_per_request"],
            "emf_log_bytes_per_request": through_door["emf_log_bytes_per_request"],
        }
        chunked[batch]["measured"] = {
            "dynamodb_requests_per_request": ours["dynamodb_calls_per_request"],
            "handler_ms": ours["handler_ms"],
            "in_aws_calls_ms_mean": ours["in_aws_calls_ms_mean"],
            "chunk_items_per_request": ours["items_per_request"],
            "chunk_write_units_per_request": ours["item_write_units_per_request"],
            "device_update_write_units": ours["device_update_write_units"],
            "device_state_folds_per_request": ours["stream"]["live"]["device_state_folds_per_request"],
            "fold_write_units_per_request": ours["stream"]["live"]["fold_write_units_per_request"],
            "read_units_per_request": ours["read_units_per_request"],
            "stream_records_per_request": ours["stream"]["records_per_request"],
            "archive_s3_puts_per_invocation_modelled": ours["max_chunks_per_request"],
            "body_bytes_per_request": ours["body_bytes_per_request"],
        }
        naive[batch] = per_million(_profile(designs["naive"], "naive", batch_one), functions, job)
        iot[batch] = iot_core_per_million(ours, basic_ingest=False)
        basic[batch] = iot_core_per_million(ours, basic_ingest=True)
    as_of = prices()["as_of"]
    return {
        "state_reads": state_read_costs(measured["state_reads"]),
        "waiting_device": waiting_device_month(functions),
        "cost": {
            "unit": "USD per million readings (a reading = one metric value)",
            "prices_as_of": as_of,
            "prices_note": f"list prices as known on {as_of}, check before use",
            "lambda_functions": functions,
            "stage": STAGE,
            "job_outputs": job,
            "by_batch": chunked,
            "target": {"batch": 100, "usd_per_million_below": 0.10},
            "assumptions": ASSUMPTIONS,
        },
        "cost_function_url": {
            "unit": "USD per million readings (a reading = one metric value)",
            "prices_as_of": as_of,
            "door": "the ingest function behind a Lambda Function URL (chalicelib/api/function_url.py)",
            "by_batch": door,
            "memory": _door_memory(by_batch["1"]["door"]),
        },
        "naive": {"unit": "USD per million readings", "prices_as_of": as_of, "by_batch": naive},
        "iot_core": {
            "unit": "USD per million readings",
            "prices_as_of": as_of,
            "by_batch": iot,
            "assumptions": IOT_ASSUMPTIONS,
        },
        "iot_core_basic_ingest": {
            "unit": "USD per million readings",
            "prices_as_of": as_of,
            "by_batch": basic,
            "assumptions": IOT_ASSUMPTIONS,
        },
    }


def door_design(designs: dict[str, Any]) -> dict[str, Any]:
    """The Function URL design's measurement as the models read it: its stream and archive are the
    REST design's (the same stored items), and its Lambda duration is modelled at the ingest
    function's memory (bench.door: the CPU at that memory's vCPU share, plus the AWS calls' time),
    not the in-process wall time on a whole core, which would flatter a 256 MB function."""
    from bench.door import modelled_duration_ms

    door, chunked = designs["door"], designs["chunked"]
    memory = lambda_settings()["ingest"]["memory_mb"]
    duration = modelled_duration_ms(door["app_ms_mean"], door["in_aws_calls_ms_mean"], memory)
    return {
        **door,
        "stream": chunked["stream"],
        "max_chunks_per_request": chunked["max_chunks_per_request"],
        "handler_ms": {**door["handler_ms"], "mean": duration},
    }


def _door_memory(measured_batch_one: dict[str, Any]) -> dict[str, Any]:
    """The ingest function's memory, chosen from the batch-1 measurement (bench.door), beside the configured one."""
    from bench.door import memory_choice

    p = prices()["lambda"]
    choice = memory_choice(
        measured_batch_one["app_ms_mean"], measured_batch_one["in_aws_calls_ms_mean"], p["gb_second_arm"]
    )
    return {**choice, "configured_mb": lambda_settings()["ingest"]["memory_mb"]}


def state_read_costs(measured: dict[str, Any]) -> dict[str, Any]:
    """Read units and DynamoDB USD of an exact state read and of a fleet page (measure.state_reads)."""
    per_read, per_page = measured["rru_per_state_read"], measured["rru_per_fleet_page"]
    return {
        "rru_per_state_read": per_read,
        "rru_per_state_read_max": measured["rru_per_state_read_max"],
        "rru_per_dashboard_page": per_page,
        "dashboard_page_devices": measured["fleet_page_devices"],
        "dynamodb_usd_per_million_state_reads": dynamodb_on_demand_usd(0, per_read * MILLION),
        "dynamodb_usd_per_million_dashboard_pages": dynamodb_on_demand_usd(0, per_page * MILLION),
        "fold": {
            "late_fold_ms": LATE_FOLD_MS,
            "fold_interval_ms": FOLD_INTERVAL_MS,
            "max_request_ms": MAX_REQUEST_MS,
        },
        "measured": measured,
    }


LONG_POLL_WAIT_S = 20  # GET /v1/commands?wait=20, asked again as soon as it answers
WEBSOCKET_KEEPALIVE_S = 540  # a ping every 9 minutes: API Gateway closes a WebSocket idle for 10
KEEPALIVE_HANDLER_MS = 10  # the router's invocation for one ping


def waiting_device_month(functions: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """What one device costs a month to be reachable for commands: a long poll vs a WebSocket (WAMP)."""
    p = prices()["api_gateway"]
    fn = functions["api_handler"]
    polls = SECONDS_PER_MONTH / LONG_POLL_WAIT_S
    poll_lambda = lambda_cost(polls, LONG_POLL_WAIT_S * 1000, fn["memory_mb"], fn["architecture"])
    pings = SECONDS_PER_MONTH / WEBSOCKET_KEEPALIVE_S
    ping_lambda = lambda_cost(pings, KEEPALIVE_HANDLER_MS, fn["memory_mb"], fn["architecture"])
    minutes = SECONDS_PER_MONTH / 60
    long_poll = {
        "api_gateway_rest_requests": polls / MILLION * p["rest_requests_per_million"],
        "lambda_waiting": poll_lambda["requests_usd"] + poll_lambda["compute_usd"],
    }
    websocket = {
        "api_gateway_connection_minutes": minutes / MILLION * p["websocket_connection_minutes_per_million"],
        "api_gateway_messages": 2 * pings / MILLION * p["websocket_messages_per_million"],  # ping and pong
        "lambda_router": ping_lambda["requests_usd"] + ping_lambda["compute_usd"],
    }
    return {
        "unit": "USD per device per month, idle (no command sent; a command costs about the same either way)",
        "long_poll": {"usd": long_poll, "usd_total": sum(long_poll.values()), "requests": polls},
        "websocket": {"usd": websocket, "usd_total": sum(websocket.values()), "messages": 2 * pings},
        "assumptions": [
            f"long poll: GET /v1/commands?wait={LONG_POLL_WAIT_S} through API Gateway REST, asked again at once; "
            f"the api_handler ({fn['memory_mb']} MB) runs for the whole wait, billed as Lambda duration",
            f"WebSocket: one connection all month, a WAMP ping every {WEBSOCKET_KEEPALIVE_S} s (API Gateway "
            f"closes idle connections after 10 minutes), each a {KEEPALIVE_HANDLER_MS} ms router invocation",
        ],
    }


# --- capacity -------------------------------------------------------------------------------------

DEVICES = 1_000_000
RECORDS_PER_DEVICE_PER_MINUTE = 1
METRICS_PER_RECORD = 5

QUOTAS = {
    "api_gateway_rps": ("API Gateway: account throttle, requests/s per region (REST, HTTP and WebSocket)", 10_000),
    "lambda_concurrency": ("Lambda: concurrent executions per region (default)", 1_000),
    "dynamodb_table_wru": ("DynamoDB on-demand: write request units/s per table (default)", 40_000),
    "dynamodb_table_rru": ("DynamoDB on-demand: read request units/s per table (default)", 40_000),
    "dynamodb_partition_wcu": ("DynamoDB: write units/s per partition (one partition key value)", 1_000),
    "dynamodb_stream_readers": ("DynamoDB Streams: simultaneous readers per shard", 2),
    "s3_put_rps_per_prefix": ("S3: PUT requests/s per partitioned prefix", 3_500),
    "lambda_timeout_s": ("Lambda: function timeout, seconds (hard limit; the daily rollup job)", 900),
    "ses_sending": ("SES: sending quota (sandbox 200/day; production from 50,000/day, 14/s)", None),
    "cloudwatch_put_metric_data_tps": ("CloudWatch: PutMetricData requests/s", 500),
}


PARTITION_GB = 10  # DynamoDB splits a partition at 10 GB
RECORDS_PER_S = DEVICES * RECORDS_PER_DEVICE_PER_MINUTE / 60
READINGS_PER_S = RECORDS_PER_S * METRICS_PER_RECORD
READINGS_PER_MONTH = READINGS_PER_S * SECONDS_PER_MONTH
READINGS_PER_DAY = READINGS_PER_S * 86400
# The quotas a request meets on its way in (the rest are met by the stream and the jobs).
REQUEST_PATH_QUOTAS = (
    "api_gateway_rps",
    "lambda_concurrency",
    "dynamodb_table_wru",
    "dynamodb_table_rru",
    "dynamodb_partition_wcu",
)
CAPACITY_NOTE_ON_UNITS = (
    "if 'one reading a minute' means one metric value a minute (16,667 readings/s), every reading-driven "
    "figure below is 5x smaller; request rates at a given batch size are unchanged"
)
CAPACITY_METHOD = [
    "usage from the measured figures at each batch size (bench.measure, the cost section's units) scaled to "
    "the scenario; headroom = quota / usage; the quota with the least headroom is the first one hit",
    "Lambda concurrency = requests/s x the mean handler duration measured in process (stated per batch; "
    "the JSON has 3x as a sensitivity) + each stream consumer's mean concurrency, its busy invocations "
    "(records/s x measured s per record, at most STREAM_PARALLELIZATION per shard); the JSON also has the "
    "peak when every shard's poller invokes at once (2 x shards: raise the concurrency quota above it); the "
    "Function URL door's table has no API Gateway (its usage 0), the REST API door's does",
    "stream shards: one per partition of the readings table, at least one per 1,000 write units/s (a "
    "partition's limit) and per 10 GB stored (30 days of chunks: DynamoDB splits partitions at 10 GB); "
    "the live handler and the archiver take STREAM_PARALLELIZATION (infra.bootstrap, 10) batches at a time "
    "per shard (ParallelizationFactor; per-device order kept)",
    "active_hour index: every device moves to the new hour's key at its first request of the hour, so "
    "the hour's keys take devices / request interval puts per second, spread over the index's "
    f"{ACTIVE_SHARDS} shard values (adapters.devices.ACTIVE_SHARDS; 1,000 WCU/s per partition); throttled index "
    "writes throttle "
    "the table writes that caused them",
    "rollup job: its CPU per million readings (archive benchmark) x one day's readings against the "
    "function's timeout (Chalice config); readings per month = 30 days",
]


def capacity(
    measured: dict[str, Any], cost: dict[str, Any], job: dict[str, Any], *, door: bool = False
) -> dict[str, Any]:
    """1 M devices, one record of 5 metrics a minute: rates, concurrency, units, objects, cost and quotas.

    `door`: the devices post through the Function URL (`cost` is then the cost_function_url section)."""
    rollup_timeout_s = lambda_settings()["rollups"]["timeout_s"]
    by_batch = {}
    for batch, designs in measured["by_batch"].items():
        m = door_design(designs) if door else designs["chunked"]
        by_batch[batch] = _capacity_at(int(batch), m, cost["by_batch"][batch], job, rollup_timeout_s, door=door)
    where = "through the Function URL" if door else "through the REST API"
    return {
        "scenario": f"{DEVICES:,} devices x 1 record of {METRICS_PER_RECORD} metrics a minute, {where}",
        "door": "function-url" if door else "api",
        "records_per_s": RECORDS_PER_S,
        "readings_per_s": READINGS_PER_S,
        "readings_per_month": READINGS_PER_MONTH,
        "note_on_units": CAPACITY_NOTE_ON_UNITS,
        "by_batch": by_batch,
        "quotas": {k: {"name": name, "value": value} for k, (name, value) in QUOTAS.items()},
        "method": list(CAPACITY_METHOD),
    }


def _capacity_at(
    b: int, m: dict[str, Any], c: dict[str, Any], job: dict[str, Any], rollup_timeout_s: int, *, door: bool
) -> dict[str, Any]:
    """The scenario at `b` records per request: m the measured design (`door`: the Function URL's), c its costs."""
    requests_per_s = RECORDS_PER_S / b
    duration_s = m["handler_ms"]["mean"] / 1000
    api_concurrency = requests_per_s * duration_s
    units = c["units"]
    scale = READINGS_PER_S / MILLION  # per-million figures -> per second
    dynamodb = _dynamodb_at(b, m, c)
    readings_wru = dynamodb["readings_table_wru_per_s"]
    stream_records_per_s = units["stream_records"] * scale
    # A table has at least one partition per 1,000 WCU/s of writes and per 10 GB it holds (30 days
    # of chunks here); its stream has a shard per partition.
    table_gb = units["dynamodb_gb_stored"] * READINGS_PER_MONTH / MILLION
    shards = max(1, math.ceil(readings_wru / 1000), math.ceil(table_gb / PARTITION_GB))
    # Records/s a shard's consumer takes: STREAM_PARALLELIZATION batches at once, each one invocation.
    live_ms, archive_ms = m["stream"]["live"]["ms_per_record"], m["stream"]["archive"]["ms_per_record"]
    live_per_shard = STREAM_PARALLELIZATION * 1000 / live_ms
    archive_per_shard = STREAM_PARALLELIZATION * 1000 / archive_ms
    # Each consumer's mean concurrency: its busy invocations (records/s x seconds a record), at most
    # STREAM_PARALLELIZATION per shard. Its peak: every shard's poller invoking at the same moment.
    consumer_concurrency = sum(
        min(STREAM_PARALLELIZATION * shards, stream_records_per_s * ms / 1000) for ms in (live_ms, archive_ms)
    )
    consumer_concurrency_peak = 2 * shards
    s3_puts_per_s = units["s3_puts"] * scale
    rollup_cpu_s = job["cpu_s_per_million_readings"] * READINGS_PER_DAY / MILLION * ROLLUP_RERUN_FACTOR
    usage = {
        "api_gateway_rps": 0 if door else requests_per_s,
        "lambda_concurrency": api_concurrency + consumer_concurrency,
        "dynamodb_table_wru": max(readings_wru, dynamodb["devices_table_wru_per_s"]),
        "dynamodb_table_rru": max(dynamodb["table_rru_per_s"].values()),
        "dynamodb_partition_wcu": max(
            dynamodb["active_hour_key_wcu_per_s_at_top_of_hour"], dynamodb["one_device_wcu_per_s"]
        ),
        "dynamodb_stream_readers": 2,
        "s3_put_rps_per_prefix": s3_puts_per_s,
        "lambda_timeout_s": rollup_cpu_s,
        "ses_sending": None,
        "cloudwatch_put_metric_data_tps": 0,
    }
    usd_month, usd_month_first_tier = _monthly_usd(c, 0 if door else requests_per_s)
    return {
        "records_per_request": b,
        "requests_per_s": requests_per_s,
        "lambda_duration_ms_used": duration_s * 1000,
        "lambda_api_concurrency": api_concurrency,
        "lambda_api_concurrency_at_3x_duration": 3 * api_concurrency,
        "stream_consumer_concurrency": consumer_concurrency,
        "stream_consumer_concurrency_peak_all_shards_at_once": consumer_concurrency_peak,
        "dynamodb": dynamodb,
        "stream": {
            "records_per_s": stream_records_per_s,
            "shards_lower_bound": shards,
            "readings_table_gb": table_gb,
            "live_records_per_s_per_shard_max": live_per_shard,
            "archiver_records_per_s_per_shard_max": archive_per_shard,
        },
        "s3_objects_per_month": s3_puts_per_s * SECONDS_PER_MONTH,
        "rollup_job_cpu_s_per_daily_run": rollup_cpu_s,
        "usd_month": usd_month,
        "usd_month_first_tier_prices": usd_month_first_tier,
        "usage": usage,
        **_quota_ranking(usage, rollup_timeout_s),
        "throughput_risks_headroom": {
            "live_handler_records_per_s_per_shard": live_per_shard / (stream_records_per_s / shards),
            "archiver_records_per_s_per_shard": archive_per_shard / (stream_records_per_s / shards),
        },
    }


def _dynamodb_at(b: int, m: dict[str, Any], c: dict[str, Any]) -> dict[str, Any]:
    """DynamoDB at `b` records per request: units per second per table and on the hottest keys, USD a month."""
    scale = READINGS_PER_S / MILLION  # per-million figures -> per second
    writes, reads = c["units"]["dynamodb_write_units"], c["units"]["dynamodb_read_units"]
    live = m["stream"]["live"]
    records_per_s = c["units"]["stream_records"] * scale
    # The live handler's reads by table (its folds read the devices and readings tables, its
    # alert rules and WAMP subscribers theirs): each table has its own read quota.
    by_table = {t: u / live["records"] * records_per_s for t, u in live.get("read_units_by_table", {}).items()}
    devices_table = next((t for t in by_table if t.endswith("-devices")), "devices")
    by_table[devices_table] = by_table.get(devices_table, 0.0) + reads["token_lookup"] * scale
    return {
        "table_rru_per_s": by_table,
        "readings_table_wru_per_s": writes["readings_items"] * scale,
        "devices_table_wru_per_s": (writes["device_state"] + writes["device_state_folds"] + writes["active_hour_index"])
        * scale,
        "devices_table_rru_per_s": by_table[devices_table],
        "live_handler_rru_per_s": reads["live_handler"] * scale,
        "rollup_items_wru_per_s_mean": writes["rollup_and_index_items"] * scale,
        # Every device moves to the new hour's key within its first request interval (b minutes) of the
        # hour, over the index's ACTIVE_SHARDS key values (adapters.devices.active_key).
        "active_hour_key_wcu_per_s_at_top_of_hour": DEVICES / (60 * b) / ACTIVE_SHARDS,
        "one_device_wcu_per_s": (1 / (60 * b)) * (m["item_write_units_per_request"] + 1),
        "on_demand_usd_month": (
            c["usd"]["dynamodb_writes"] + c["usd"]["dynamodb_writes_rollup_items"] + c["usd"]["dynamodb_reads"]
        )
        * READINGS_PER_MONTH
        / MILLION,
    }


def _monthly_usd(c: dict[str, Any], requests_per_s: float) -> tuple[float, float]:
    """A month's cost with API Gateway's tiered request prices, and at first-tier prices."""
    p = prices()
    monthly_requests_m = requests_per_s * SECONDS_PER_MONTH / MILLION
    api_tiered = tiered_cost(monthly_requests_m, p["api_gateway"]["rest_requests_tiers"])
    monthly = c["usd_total"] * READINGS_PER_MONTH / MILLION
    monthly_tiered = (
        monthly
        - c["usd"]["api_gateway_requests"] * READINGS_PER_MONTH / MILLION
        + api_tiered
        + EMF_METRICS * p["cloudwatch"]["custom_metric_month"]
    )
    return monthly_tiered, monthly + EMF_METRICS * p["cloudwatch"]["custom_metric_month"]


def _quota_ranking(usage: dict[str, Any], rollup_timeout_s: int) -> dict[str, Any]:
    """Headroom per quota (quota / usage), the quotas ranked by it, which are exceeded and hit first."""
    limits = {k: value for k, (_, value) in QUOTAS.items()}
    limits["lambda_timeout_s"] = rollup_timeout_s
    headroom = {
        k: (limits[k] / v if v else None)
        for k, v in usage.items()
        if limits[k] is not None and k != "dynamodb_stream_readers"
    }
    ranked = sorted((v, k) for k, v in headroom.items() if v is not None)
    return {
        "headroom": headroom,
        "exceeded": [k for v, k in ranked if v < 1],
        "first_quota_hit": ranked[0][1],
        "first_quota_hit_on_request_path": min(REQUEST_PATH_QUOTAS, key=lambda k: headroom[k] or math.inf),
        "ranked": [k for _, k in ranked],
    }
