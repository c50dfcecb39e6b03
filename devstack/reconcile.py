"""Counting what the stack holds, for the demo's summary and the end-to-end tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from chalicelib.domain.chunks import decode


def _scan(dynamodb: Any, table: str) -> Iterator[dict[str, Any]]:
    # A tool's full read of a local table, never a request path.
    kwargs: dict[str, Any] = {"TableName": table}
    while True:
        page = dynamodb.scan(**kwargs)
        yield from page["Items"]
        if "LastEvaluatedKey" not in page:
            return
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def stored_identities(dynamodb: Any, readings_table: str) -> set[tuple[str, str, str, int]]:
    """Every (device, metric, unit, ts) held in the readings table."""
    out: set[tuple[str, str, str, int]] = set()
    for item in _scan(dynamodb, readings_table):
        device = item["d"]["S"]
        for r in decode(item["b"]["B"]):
            out.add((device, r.metric, r.unit, r.ts_ms))
    return out


def stored_readings(dynamodb: Any, readings_table: str) -> int:
    return len(stored_identities(dynamodb, readings_table))


def download_archive(s3: Any, bucket: str, target: Path, prefix: str = "archive/") -> list[Path]:
    """Mirror the archive objects into a local folder (DuckDB reads them there)."""
    files: list[Path] = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for obj in page.get("Contents", []):
            path = target / obj["Key"]
            if not path.exists() or path.stat().st_size != obj["Size"]:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(s3.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read())
            files.append(path)
    return files


ARCHIVE_VIEW = """
CREATE OR REPLACE VIEW readings AS
SELECT * FROM read_json({files}, format = 'newline_delimited', hive_partitioning = true,
    columns = {{device_id: 'VARCHAR', metric: 'VARCHAR', unit: 'VARCHAR', ts: 'BIGINT', value: 'JSON',
               received_at: 'BIGINT'}})
"""


def archive_database(files: list[Path]) -> Any:
    """A DuckDB connection with a `readings` view over archive files (empty if none)."""
    import duckdb

    db = duckdb.connect()
    if files:
        db.execute(ARCHIVE_VIEW.format(files=[str(f) for f in files]))
    else:
        db.execute(
            "CREATE VIEW readings AS SELECT NULL::VARCHAR AS device_id, NULL::VARCHAR AS metric, "
            "NULL::VARCHAR AS unit, NULL::BIGINT AS ts, NULL::JSON AS value, NULL::BIGINT AS received_at, "
            "NULL::DATE AS dt, NULL::BIGINT AS hour WHERE false"
        )
    return db


def archive_counts(files: list[Path]) -> dict[str, int]:
    """Lines and distinct identities in the archive, counted by DuckDB."""
    db = archive_database(files)
    lines, distinct = db.execute(
        "SELECT count(*), count(DISTINCT (device_id, metric, unit, ts)) FROM readings"
    ).fetchone()
    return {"lines": int(lines), "distinct": int(distinct), "duplicated": int(lines) - int(distinct)}


def archived_identities(files: list[Path]) -> set[tuple[str, str, str, int]]:
    db = archive_database(files)
    return {
        (d, m, u, int(t)) for d, m, u, t in db.execute("SELECT device_id, metric, unit, ts FROM readings").fetchall()
    }
