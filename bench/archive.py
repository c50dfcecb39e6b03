"""Archive benchmark: the archiver's S3 PUTs and bytes per reading, against one object per reading.

100,000 readings (10 devices, one record of 5 metrics a second each, 100 records a
request) are chunked exactly as the API stores them, delivered as DynamoDB stream
records (batches of 1,000, as the event source mapping is configured) to the real
archiver writing to moto's S3, and compared in the same run with a baseline that
writes one S3 object per reading.
"""

from __future__ import annotations

import base64
import gzip
import json
import time
from typing import Any

from chalicelib.domain.chunks import make_chunks
from chalicelib.domain.readings import Reading

READINGS = 100_000
DEVICES = 10
METRICS = ("temp", "hum", "pres", "volt", "status")
START_MS = 1_764_061_200_000
STREAM_BATCH = 1000
BASELINE_SAMPLE = 2_000
STREAM_ARN = "arn:aws:dynamodb:us-east-1:123456789012:table/bench-readings/stream/2025-11-25T00:00:00.000"


def stream_records() -> tuple[list[dict[str, Any]], int]:
    """INSERT records of the chunks the API would store for the benchmark fleet."""
    import random

    rng = random.Random(3)
    records: list[dict[str, Any]] = []
    total = 0
    per_device = READINGS // DEVICES // len(METRICS)
    sequence = 10**20
    for d in range(DEVICES):
        device = f"dev-bench-{d:02d}"
        temp = 21.0
        for start in range(0, per_device, 100):
            readings = []
            for i in range(start, min(start + 100, per_device)):
                ts = START_MS + i * 1000 + d * 37
                temp = round(temp + rng.uniform(-0.2, 0.2), 2)
                readings += [
                    Reading("temp", "Cel", ts, temp),
                    Reading("hum", "%RH", ts, round(45 + rng.uniform(-2, 2), 1)),
                    Reading("pres", "hPa", ts, round(1013 + rng.uniform(-1, 1), 1)),
                    Reading("volt", "V", ts, round(3.7 - i * 0.00001, 4)),
                    Reading("status", "", ts, "ok" if rng.random() > 0.02 else "door open"),
                ]
            for chunk in make_chunks(device, readings):
                sequence += 1
                total += chunk.count
                image = {
                    "d": {"S": device},
                    "k": {"S": chunk.sort_key},
                    "b": {"B": base64.b64encode(chunk.data).decode()},
                    "n": {"N": str(chunk.count)},
                    "r": {"N": str(chunk.ts_max + 500)},
                }
                records.append(
                    {
                        "eventName": "INSERT",
                        "eventSourceARN": STREAM_ARN,
                        "dynamodb": {
                            "Keys": {"d": image["d"], "k": image["k"]},
                            "NewImage": image,
                            "SequenceNumber": str(sequence),
                        },
                    }
                )
    return records, total


class CountingArchive:
    """An S3Archive stand-in for measuring the archiver's own CPU."""

    def __init__(self) -> None:
        self.puts = 0
        self.bytes = 0

    def put(self, key: str, body: bytes, content_type: str = "") -> None:
        self.puts += 1
        self.bytes += len(body)


def run() -> dict[str, Any]:
    import boto3
    from moto import mock_aws

    from chalicelib.adapters.archive import S3Archive
    from chalicelib.domain.archive import archive_lines
    from chalicelib.jobs.archiver import archive_batch, change_of

    records, readings = stream_records()
    batches = [records[i : i + STREAM_BATCH] for i in range(0, len(records), STREAM_BATCH)]

    cpu = _archiver_cpu(batches)

    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket="bench-archive")
        archive = S3Archive(s3, "bench-archive")
        puts = {"n": 0}
        s3.meta.events.register("before-call.s3.PutObject", lambda **_: puts.__setitem__("n", puts["n"] + 1))
        start = time.perf_counter()
        for batch in batches:
            archive_batch(batch, archive)
        chunked_wall = time.perf_counter() - start
        stored, archived = _read_archive(s3)
        lines = len(archived)
        job_cpu = _rollup_and_index_cpu(archived)

        # Baseline: one object per reading (a sample, scaled: its cost is linear).
        sample = [line for _, group in archive_lines(change_of(r) for r in records[:40]).items() for line in group]
        sample = sample[:BASELINE_SAMPLE]
        baseline_puts_before = puts["n"]
        start = time.perf_counter()
        baseline_bytes = _put_one_object_each(s3, sample)
        baseline_wall = (time.perf_counter() - start) * readings / len(sample)
        baseline_puts = (puts["n"] - baseline_puts_before) * readings // len(sample)

    return {
        "benchmark": "archive",
        "readings": readings,
        "stream_records": len(records),
        "stream_batches": len(batches),
        "archived_lines": lines,
        "chunked": {
            "s3_put_requests": puts["n"] - (baseline_puts * len(sample) // readings),
            "archived_bytes_per_reading": stored / readings,
            "archiver_cpu_us_per_reading": cpu / readings * 1e6,
            "wall_s_with_moto": chunked_wall,
            "rollup_and_index_job_cpu_s_per_million_readings": job_cpu * 1_000_000 / lines,
        },
        "baseline_one_object_per_reading": {
            "s3_put_requests": baseline_puts,
            "archived_bytes_per_reading": baseline_bytes / len(sample),
            "wall_s_with_moto_scaled": baseline_wall,
            "measured_sample": len(sample),
        },
        "targets": {"s3_put_requests": 10, "archived_bytes_per_reading": 12},
    }


def _archiver_cpu(batches: list[list[dict[str, Any]]]) -> float:
    """The archiver's CPU seconds over every batch, into a counting archive: the best of three runs."""
    from chalicelib.jobs.archiver import archive_batch

    cpu = float("inf")
    for _ in range(3):
        counting = CountingArchive()
        start = time.process_time()
        for batch in batches:
            archive_batch(batch, counting)  # type: ignore[arg-type]
        cpu = min(cpu, time.process_time() - start)
    return cpu


def _rollup_and_index_cpu(archived: list[dict[str, Any]]) -> float:
    """The daily job's CPU seconds (rollups and index, run locally) over the archived lines."""
    from chalicelib.domain.mapreduce import INDEX, ROLLUP, run_local

    start = time.process_time()
    run_local(ROLLUP, archived)
    run_local(INDEX, archived)
    return time.process_time() - start


def _read_archive(s3: Any) -> tuple[int, list[dict[str, Any]]]:
    """The archive's stored bytes and every line it holds."""
    stored = 0
    archived: list[dict[str, Any]] = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket="bench-archive", Prefix="archive/"):
        for obj in page.get("Contents", []):
            stored += obj["Size"]
            body = s3.get_object(Bucket="bench-archive", Key=obj["Key"])["Body"].read()
            archived += [json.loads(x) for x in gzip.decompress(body).splitlines()]
    return stored, archived


def _put_one_object_each(s3: Any, sample: list[dict[str, Any]]) -> int:
    """The baseline's writes, one object per reading; the bytes written."""
    written = 0
    for n, line in enumerate(sample):
        body = json.dumps(line, separators=(",", ":")).encode()
        written += len(body)
        s3.put_object(Bucket="bench-archive", Key=f"naive/{line['device_id']}/{line['ts']}-{n}.json", Body=body)
    return written


if __name__ == "__main__":
    print(json.dumps(run(), indent=2))
