"""The hourly rollup as SQL: one definition, two dialects (Trino/Athena and DuckDB).

The fleet-scale path of the hourly job (`chalicelib.jobs.fleet_rollups`) runs the rollup of
`domain.mapreduce.ROLLUP` on an engine instead of in the Lambda: Athena in AWS, DuckDB
locally and in the tests. Every statement is built here from the same pieces:

- a *typed source*: one row per archive line with the typed columns
  (device_id, metric, unit, ts, received_at, kind, number, text), where kind is
  0 bool, 1 number, 2 string; a boolean is also in `number` (0 or 1) so the version
  order below needs no third column; `text` holds strings only;
- *resolution*: one row per identity (device_id, metric, unit, ts), the version
  `mapreduce.version_key` ranks greatest (received_at, missing oldest; then
  bool < number < string; then the value);
- the *compaction* (`compact_statement`): the resolved rows of one hour as Parquet (ZSTD),
  Athena UNLOAD or DuckDB COPY: later queries of the hour read a few typed columns
  instead of whole gzip JSON objects, and need no resolution (a re-roll re-compacts);
- the *rollup* (`rollup_query`): per series, the Partial's fields; `rollup_row` turns a
  result record into the ROLLUP row (first/last come as (kind, number, text), since
  an SQL column has one type).

Sums. `run_local` adds with math.fsum (exactly rounded). DuckDB's `fsum` is a compensated
(Kahan) sum; Trino has only the plain `sum(double)`, whose error is at most
(n - 1) * 2**-53 * sum(|x|) for n numbers, that is below 4e-13 * sum(|x|) for 3,600
readings (one a second for an hour). The tests hold DuckDB to SUM_REL_TOLERANCE.
Numbers are doubles in SQL: an integer reading comes back as the equal float (integers
beyond 2**53 lose precision, as in any JSON reader that uses doubles).

Athena and the type of `value`. The OpenX JSON SerDe hands 21.5 and "21.5" over as the same
string. The JSON source here reads each archive line as one string (`ARCHIVE_LINES_DDL`: a
TEXTFILE table of one column, gzip read natively) and takes the type from the JSON text
of the value (json_format of json_extract), so numbers, booleans and strings stay apart.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from chalicelib.domain.mapreduce import hour_of
from chalicelib.domain.rollups import HOUR_MS, Partial, Value

BOOL, NUMBER, STRING = 0, 1, 2
# DuckDB's fsum against math.fsum (see the module docstring); the tests assert it.
SUM_REL_TOLERANCE = 1e-12
# Trino's plain sum of n doubles: relative to sum(|x|), at most (n - 1) * 2**-53.
TRINO_SUM_REL_BOUND_PER_READING = 2.0**-53

ARCHIVE_LINES_TABLE = "iotcloud_archive_lines"
COMPACT_TABLE = "iotcloud_compact"
ARCHIVE_PREFIX = "archive"
COMPACT_PREFIX = "compact"
# The typed columns of the compaction, in order (the Parquet schema).
TYPED_COLUMNS = ("device_id", "metric", "unit", "ts", "received_at", "kind", "number", "text")
# What the rollup reads of a compacted hour (received_at is not needed once resolved).
ROLLUP_COLUMNS = ("device_id", "metric", "unit", "ts", "kind", "number", "text")

_SAFE = re.compile(r"^[A-Za-z0-9_.:/=*+-]+$")  # no quotes, spaces or backslashes


@dataclass(frozen=True)
class Dialect:
    """What differs between the engines, nothing else."""

    name: str
    sum: str  # the most accurate sum of doubles the engine has
    min_by: str
    max_by: str
    int_div: str  # integer division of BIGINTs


TRINO = Dialect("trino", sum="sum", min_by="min_by", max_by="max_by", int_div="/")
DUCKDB = Dialect("duckdb", sum="fsum", min_by="arg_min", max_by="arg_max", int_div="//")
DIALECTS = {d.name: d for d in (TRINO, DUCKDB)}


def _literal(text: str) -> str:
    # Locations are built from the bucket and the hour: refuse anything that needs quoting.
    if not _SAFE.match(text):
        raise ValueError(f"not a safe SQL literal: {text!r}")
    return f"'{text}'"


def hour_partition(hour_ms: int) -> tuple[str, str]:
    """The archive partition values of an hour: ("YYYY-MM-DD", "HH")."""
    if hour_ms % HOUR_MS:
        raise ValueError(f"not an hour start: {hour_ms}")
    moment = datetime.fromtimestamp(hour_ms / 1000, UTC)
    return f"{moment:%Y-%m-%d}", f"{moment:%H}"


def archive_location(root: str, hour_ms: int) -> str:
    """Prefix of an hour's gzip JSON Lines objects under root ("s3://bucket", or a folder)."""
    day, hour = hour_partition(hour_ms)
    return f"{root}/{ARCHIVE_PREFIX}/dt={day}/hour={hour}/"


def compact_location(root: str, hour_ms: int) -> str:
    """Prefix of an hour's Parquet objects (the compaction's output) under root."""
    day, hour = hour_partition(hour_ms)
    return f"{root}/{COMPACT_PREFIX}/dt={day}/hour={hour}/"


def _hour_filter(hour_ms: int) -> str:
    return f"ts >= {hour_ms} AND ts < {hour_ms + HOUR_MS}"


# typed sources ---------------------------------------------------------------------------


def json_source(dialect: Dialect, root: str, hour_ms: int) -> str:
    """The typed rows of an hour's gzip JSON Lines (every version of every reading)."""
    day, hour = hour_partition(hour_ms)
    if dialect is TRINO:
        # v: the value's JSON text, whose first character tells its type.
        return f"""SELECT
    json_extract_scalar(j, '$.device_id') AS device_id,
    json_extract_scalar(j, '$.metric') AS metric,
    json_extract_scalar(j, '$.unit') AS unit,
    CAST(json_extract(j, '$.ts') AS bigint) AS ts,
    CAST(json_extract(j, '$.received_at') AS bigint) AS received_at,
    CASE WHEN v IN ('true', 'false') THEN {BOOL} WHEN substr(v, 1, 1) = '"' THEN {STRING} ELSE {NUMBER} END AS kind,
    CASE
        WHEN v = 'true' THEN 1e0
        WHEN v = 'false' THEN 0e0
        WHEN substr(v, 1, 1) <> '"' THEN CAST(json_extract(j, '$.value') AS double)
    END AS number,
    CASE WHEN substr(v, 1, 1) = '"' THEN json_extract_scalar(j, '$.value') END AS text
FROM (
    SELECT j, json_format(json_extract(j, '$.value')) AS v
    FROM (SELECT json_parse(line) AS j FROM {ARCHIVE_LINES_TABLE} WHERE dt = '{day}' AND "hour" = {int(hour)})
)"""
    files = _literal(archive_location(root, hour_ms) + "*.jsonl.gz")
    return f"""SELECT
    device_id, metric, unit, ts, received_at,
    CASE
        WHEN json_type(value) = 'BOOLEAN' THEN {BOOL}
        WHEN json_type(value) = 'VARCHAR' THEN {STRING}
        ELSE {NUMBER}
    END AS kind,
    CASE
        WHEN json_type(value) = 'BOOLEAN' THEN CAST(CAST(value AS BOOLEAN) AS DOUBLE)
        WHEN json_type(value) <> 'VARCHAR' THEN CAST(value AS DOUBLE)
    END AS number,
    CASE WHEN json_type(value) = 'VARCHAR' THEN value ->> '$' END AS text
FROM read_json(
    {files},
    format = 'newline_delimited',
    hive_partitioning = false,
    columns = {{
        device_id: 'VARCHAR', metric: 'VARCHAR', unit: 'VARCHAR',
        ts: 'BIGINT', value: 'JSON', received_at: 'BIGINT'
    }}
)"""


def parquet_source(dialect: Dialect, root: str, hour_ms: int) -> str:
    """The resolved typed rows of a compacted hour, only the columns the rollup reads."""
    columns = ", ".join(ROLLUP_COLUMNS)
    if dialect is TRINO:
        day, hour = hour_partition(hour_ms)
        return f"SELECT {columns} FROM {COMPACT_TABLE} WHERE dt = '{day}' AND \"hour\" = {int(hour)}"
    files = _literal(compact_location(root, hour_ms) + "*.parquet")
    return f"SELECT {columns} FROM read_parquet({files}, hive_partitioning = false)"


def resolved(source: str, hour_ms: int) -> str:
    """One row per identity of the hour: the greatest version (mapreduce.version_key)."""
    columns = ", ".join(TYPED_COLUMNS)
    return f"""SELECT {columns}
FROM (
    SELECT
        *,
        row_number() OVER (
            PARTITION BY device_id, metric, unit, ts
            ORDER BY received_at DESC NULLS LAST, kind DESC, number DESC NULLS LAST, text DESC NULLS LAST
        ) AS version
    FROM ({source}) AS typed
    WHERE {_hour_filter(hour_ms)}
) AS versions
WHERE version = 1"""


# statements ------------------------------------------------------------------------------


def rollup_query(dialect: Dialect, rows: str) -> str:
    """Per series of resolved rows: the Partial's fields, ordered by device then series.

    first_*/last_* are the (kind, number, text) of the earliest and latest reading; number
    and text are never NULL there (a placeholder where the kind does not use them), so
    min_by/max_by mean the same in both engines whatever they do with NULLs.
    """
    d = dialect
    is_number = f"kind = {NUMBER}"
    value_parts = {"kind": "kind", "number": "coalesce(number, 0e0)", "text": "coalesce(text, '')"}
    ends = ["min(ts) AS first_ts", "max(ts) AS last_ts"]
    for part, expr in value_parts.items():
        ends.append(f"{d.min_by}({expr}, ts) AS first_{part}")
        ends.append(f"{d.max_by}({expr}, ts) AS last_{part}")
    ends_sql = ",\n    ".join(ends)
    return f"""SELECT
    device_id,
    metric,
    unit,
    min(ts {d.int_div} {HOUR_MS}) * {HOUR_MS} AS hour_ms,
    count(*) AS "count",
    count(CASE WHEN {is_number} THEN 1 END) AS numbers,
    min(CASE WHEN {is_number} THEN number END) AS "min",
    max(CASE WHEN {is_number} THEN number END) AS "max",
    {d.sum}(CASE WHEN {is_number} THEN number END) AS "sum",
    {ends_sql}
FROM ({rows}) AS readings
GROUP BY device_id, metric, unit, ts {d.int_div} {HOUR_MS}
ORDER BY device_id, metric, unit, hour_ms"""


def hourly_rollup(dialect: Dialect, root: str, hour_ms: int, *, compacted: bool) -> str:
    """The rollup of one hour, from its Parquet compaction or from its gzip JSON Lines."""
    if compacted:
        rows = f"SELECT * FROM ({parquet_source(dialect, root, hour_ms)}) AS compacted WHERE {_hour_filter(hour_ms)}"
        return rollup_query(dialect, rows)
    return rollup_query(dialect, resolved(json_source(dialect, root, hour_ms), hour_ms))


def compact_statement(dialect: Dialect, root: str, hour_ms: int) -> str:
    """Write an hour's resolved readings as Parquet (ZSTD) under compact_location.

    Sorted by series and time: runs of equal device/metric/unit and near ts compress to
    little, and a device's row group statistics let a one-device query skip the rest.
    Athena's UNLOAD refuses a non-empty target: the job empties it first.
    """
    rows = resolved(json_source(dialect, root, hour_ms), hour_ms)
    typed = f"""SELECT device_id, metric, unit, ts, received_at,
    CAST(kind AS integer) AS kind, number, text
FROM ({rows}) AS resolved
ORDER BY device_id, metric, unit, ts"""
    target = compact_location(root, hour_ms)
    if dialect is TRINO:
        return f"UNLOAD ({typed})\nTO {_literal(target)}\nWITH (format = 'PARQUET', compression = 'ZSTD')"
    return f"COPY ({typed})\nTO {_literal(target + 'part-00000.parquet')} (FORMAT PARQUET, COMPRESSION ZSTD)"


# Athena tables ---------------------------------------------------------------------------


def _projection(bucket: str, prefix: str) -> str:
    return f"""TBLPROPERTIES (
    'projection.enabled' = 'true',
    'projection.dt.type' = 'date',
    'projection.dt.range' = '2020-01-01,NOW',
    'projection.dt.format' = 'yyyy-MM-dd',
    'projection.dt.interval' = '1',
    'projection.dt.interval.unit' = 'DAYS',
    'projection.hour.type' = 'integer',
    'projection.hour.range' = '0,23',
    'projection.hour.digits' = '2',
    'storage.location.template' = 's3://{bucket}/{prefix}/dt=${{dt}}/hour=${{hour}}/'
)"""


def athena_ddl(bucket: str) -> list[str]:
    """The two tables the Athena statements read: archive lines as text, and the compaction.

    The lines table has one string column: LazySimpleSerDe splits fields at \\x01, which a
    JSON line never holds raw (control characters are escaped), so a line is one field.
    """
    _literal(bucket)
    lines = f"""CREATE EXTERNAL TABLE IF NOT EXISTS {ARCHIVE_LINES_TABLE} (line string)
PARTITIONED BY (dt string, `hour` int)
STORED AS TEXTFILE
LOCATION 's3://{bucket}/{ARCHIVE_PREFIX}/'
{_projection(bucket, ARCHIVE_PREFIX)}"""
    compact = f"""CREATE EXTERNAL TABLE IF NOT EXISTS {COMPACT_TABLE} (
    device_id string, metric string, unit string, ts bigint, received_at bigint,
    kind int, number double, text string
)
PARTITIONED BY (dt string, `hour` int)
STORED AS PARQUET
LOCATION 's3://{bucket}/{COMPACT_PREFIX}/'
{_projection(bucket, COMPACT_PREFIX)}"""
    return [lines, compact]


# results ---------------------------------------------------------------------------------

ROLLUP_RESULT_COLUMNS = (
    "device_id",
    "metric",
    "unit",
    "hour_ms",
    "count",
    "numbers",
    "min",
    "max",
    "sum",
    "first_ts",
    "last_ts",
    "first_kind",
    "last_kind",
    "first_number",
    "last_number",
    "first_text",
    "last_text",
)


def _value(kind: object, number: object, text: object) -> Value:
    k = int(kind)  # type: ignore[call-overload]
    if k == BOOL:
        return float(number) != 0.0  # type: ignore[arg-type]
    if k == NUMBER:
        return float(number)  # type: ignore[arg-type]
    if k == STRING:
        return str(text)
    raise ValueError(f"unknown kind {kind!r}")


def _opt_float(x: object) -> float | None:
    return None if x is None or x == "" else float(x)  # type: ignore[arg-type]


def rollup_row(record: Mapping[str, Any]) -> dict[str, Any]:
    """A rollup result record (either engine; values may be the text of GetQueryResults)
    as the ROLLUP row: device_id, metric, unit, hour, count, numbers, min, max, sum, mean,
    first, first_ts, last, last_ts."""
    numbers = int(record["numbers"])
    total = _opt_float(record["sum"]) if numbers else 0.0
    return {
        "device_id": str(record["device_id"]),
        "metric": str(record["metric"]),
        "unit": str(record["unit"] or ""),
        "hour": hour_of(int(record["hour_ms"])),
        "count": int(record["count"]),
        "numbers": numbers,
        "min": _opt_float(record["min"]) if numbers else None,
        "max": _opt_float(record["max"]) if numbers else None,
        "sum": total,
        "mean": total / numbers if numbers and total is not None else None,
        "first": _value(record["first_kind"], record["first_number"], record["first_text"]),
        "first_ts": int(record["first_ts"]),
        "last": _value(record["last_kind"], record["last_number"], record["last_text"]),
        "last_ts": int(record["last_ts"]),
    }


def partial_of_row(row: Mapping[str, Any]) -> Partial:
    """The Partial of a ROLLUP row (what RollupStore.put_hour stores)."""
    return Partial(
        count=row["count"],
        first_ts=row["first_ts"],
        first=row["first"],
        last_ts=row["last_ts"],
        last=row["last"],
        numbers=row["numbers"],
        min=row["min"],
        max=row["max"],
        sum=row["sum"] if row["numbers"] else 0.0,
    )
