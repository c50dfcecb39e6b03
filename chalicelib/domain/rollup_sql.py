"""The hourly rollup as SQL, from one definition, in two dialects: Trino (Athena) and DuckDB.

Three stages, written once; only the leaf expressions differ by dialect (`_Dialect`):

1. ``typed``: each archive line as typed columns (device_id, metric, unit, ts, received_at,
   kind 0 bool / 1 number / 2 string, number double, text varchar). From gzip JSON Lines,
   each line is read as ONE string (Athena: a TEXTFILE table with a `line` column; the OpenX
   SerDe would turn 21.5 and "21.5" into the same string) and typed with JSON functions;
   from the Parquet compaction the columns are already typed.
2. ``latest``: one row per identity (device_id, metric, unit, ts), the version
   `domain.mapreduce.version_key` ranks greatest: received_at (missing oldest), then
   kind (bool < number < string), then value.
3. the rollup: per (device_id, metric, unit, hour) the `domain.rollups.Partial` fields;
   count/first/last over every reading, numbers/min/max/sum over numbers (booleans are not).

The query returns typed columns (first/last as kind, number, text); `decode_row` turns a
result row (native values from DuckDB, or strings from Athena's CSV) into the ROLLUP row
{device_id, metric, unit, hour, count, numbers, min, max, sum, mean, first, first_ts, last,
last_ts} and `partials` into what `RollupStore.put_hour` takes.

Sum. Python uses math.fsum (exactly rounded). DuckDB's fsum is Kahan-Babuska compensated
summation: |error| <= 2u * sum|x| (u = 2**-53), in practice equal to fsum. Trino's sum(double)
is plain summation in an unspecified (parallel) order: |error| <= (n-1)u * sum|x|, so at
60 readings an hour about 7e-15 of sum|x|, at 3,600 about 4e-13. The tests hold DuckDB to
n * 2**-52 * n * max|x| (>= the bound above); mean = sum / numbers carries the same relative error.
Numbers are doubles in SQL: integers beyond 2**53 lose precision (the archive's readings
are sensor values; the Python path keeps them exact).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from chalicelib.domain.rollups import HOUR_MS, Value

KIND_BOOL, KIND_NUMBER, KIND_STRING = 0, 1, 2
TYPED_COLUMNS = ("device_id", "metric", "unit", "ts", "received_at", "kind", "number", "text")
# The columns the rollup reads from the Parquet compaction (what Athena bills for it).
PARQUET_COLUMNS_READ = tuple(c for c in TYPED_COLUMNS if c != "received_at")
RESULT_COLUMNS = (
    "device_id", "metric", "unit", "hour_ms", "count", "numbers", "min", "max", "sum", "mean",
    "first_ts", "first_kind", "first_number", "first_text",
    "last_ts", "last_kind", "last_number", "last_text",
)  # fmt: skip

# DuckDB's default row group (122,880 rows) restarts every column's encoding and halves the
# gain on ts; Athena's writer makes row groups of ~128 MB, far more rows than this.
COMPACT_ROW_GROUP_ROWS = 1_000_000

# Athena tables (names used by the generated SQL; the DDL is `athena_ddl`).
ATHENA_LINES_TABLE = "iotcloud_archive_lines"
ATHENA_COMPACT_TABLE = "iotcloud_compact"


@dataclass(frozen=True)
class _Dialect:
    name: str
    fsum: str  # the sum of doubles
    first_by: str  # arg_min / min_by
    last_by: str
    row: str  # a record of (kind, number, text), field access as .k .n .t
    text_of_json: str  # JSON scalar -> its text ({j}: a JSON value)
    json_kind: str  # {j} -> 0/1/2
    json_number: str  # {j} -> double
    json_field: str  # {line}, {field} -> JSON value of the field
    bigint_field: str  # {line}, {field} -> bigint


TRINO = _Dialect(
    name="trino",
    fsum="sum({x})",
    first_by="min_by({x}, {by})",
    last_by="max_by({x}, {by})",
    row="CAST(ROW(kind, number, text) AS ROW(k integer, n double, t varchar))",
    # json_format keeps the JSON text (strings quoted), so the type survives.
    text_of_json="json_extract_scalar({j}, '$')",
    json_kind=(
        "CASE WHEN json_format({j}) IN ('true', 'false') THEN 0 "
        "WHEN substr(json_format({j}), 1, 1) = '\"' THEN 2 ELSE 1 END"
    ),
    json_number="CAST({j} AS double)",
    json_field="json_extract({line}, '$.{field}')",
    bigint_field="CAST(json_extract_scalar({line}, '$.{field}') AS bigint)",
)

DUCKDB = _Dialect(
    name="duckdb",
    fsum="fsum({x})",
    first_by="arg_min({x}, {by})",
    last_by="arg_max({x}, {by})",
    row="{'k': kind, 'n': number, 't': text}",
    text_of_json="({j} ->> '$')",
    json_kind=(
        "CASE WHEN json_type({j}) = 'BOOLEAN' THEN 0 WHEN json_type({j}) = 'VARCHAR' THEN 2 "
        "WHEN json_type({j}) IN ('UBIGINT', 'BIGINT', 'HUGEINT', 'UHUGEINT', 'DOUBLE') THEN 1 END"
    ),
    json_number="CAST({j} AS DOUBLE)",
    json_field="json_extract({line}, '$.{field}')",
    bigint_field="CAST(json_extract({line}, '$.{field}') AS BIGINT)",
)

DIALECTS = {d.name: d for d in (TRINO, DUCKDB)}


def _typed_from_lines(d: _Dialect, source: str) -> str:
    """SELECT of the typed columns from a relation with one JSON text column `line`."""
    j = d.json_field.format(line="line", field="value")

    def s(field: str) -> str:
        return d.text_of_json.format(j=d.json_field.format(line="line", field=field))

    def b(field: str) -> str:
        return d.bigint_field.format(line="line", field=field)

    kind = d.json_kind.format(j=j)
    return (
        f"SELECT {s('device_id')} AS device_id, {s('metric')} AS metric, {s('unit')} AS unit, "
        f"{b('ts')} AS ts, {b('received_at')} AS received_at,\n"
        f"        {kind} AS kind,\n"
        f"        CASE WHEN {kind} = 1 THEN {d.json_number.format(j=j)} END AS number,\n"
        f"        CASE WHEN {kind} <> 1 THEN {d.text_of_json.format(j=j)} END AS text\n"
        f"    FROM {source}"
    )


# The version order of domain.mapreduce.version_key; the greatest is number 1.
_VERSION = """row_number() OVER (
        PARTITION BY device_id, metric, unit, ts
        ORDER BY received_at DESC NULLS LAST, kind DESC, number DESC NULLS LAST, text DESC NULLS LAST
    )"""


def _typed_from_compact(source: str) -> str:
    # The compaction holds one version per identity (the winner), so received_at is not read:
    # the rollup scans 7 of the 8 columns and its ranking has nothing left to choose.
    columns = ", ".join("CAST(NULL AS bigint) AS received_at" if c == "received_at" else c for c in TYPED_COLUMNS)
    return f"SELECT {columns} FROM {source}"


def _rollup(d: _Dialect, typed: str) -> str:
    rec = d.row
    first = d.first_by.format(x=rec, by="ts")
    last = d.last_by.format(x=rec, by="ts")
    return f"""WITH typed AS (
    {typed}
),
ranked AS (
    SELECT *, {_VERSION} AS version
    FROM typed
),
latest AS (
    SELECT * FROM ranked WHERE version = 1
),
hours AS (
    SELECT
        device_id, metric, unit, ts - ts % {HOUR_MS} AS hour_ms,
        count(*) AS "count",
        count(number) AS numbers,
        min(number) AS "min",
        max(number) AS "max",
        {d.fsum.format(x="number")} AS "sum",
        min(ts) AS first_ts,
        {first} AS first_v,
        max(ts) AS last_ts,
        {last} AS last_v
    FROM latest
    GROUP BY device_id, metric, unit, ts - ts % {HOUR_MS}
)
SELECT
    device_id, metric, unit, hour_ms, "count", numbers, "min", "max",
    CASE WHEN numbers > 0 THEN "sum" ELSE 0.0 END AS "sum",
    CASE WHEN numbers > 0 THEN "sum" / numbers END AS mean,
    first_ts, first_v.k AS first_kind, first_v.n AS first_number, first_v.t AS first_text,
    last_ts, last_v.k AS last_kind, last_v.n AS last_number, last_v.t AS last_text
FROM hours
ORDER BY device_id, metric, unit, hour_ms"""


def _hour_filter(hour_ms: int) -> str:
    return f"ts >= {hour_ms} AND ts < {hour_ms + HOUR_MS}"


def _athena_partition(hour_ms: int) -> str:
    from datetime import UTC, datetime

    moment = datetime.fromtimestamp(hour_ms / 1000, UTC)
    return f"dt = '{moment:%Y-%m-%d}' AND \"hour\" = '{moment:%H}'"


def partition_of_hour(hour_ms: int) -> str:
    """The archive's hive partition of an hour: dt=YYYY-MM-DD/hour=HH."""
    from datetime import UTC, datetime

    moment = datetime.fromtimestamp(hour_ms / 1000, UTC)
    return f"dt={moment:%Y-%m-%d}/hour={moment:%H}"


def _check_hour(hour_ms: int) -> None:
    if hour_ms % HOUR_MS:
        raise ValueError(f"not the start of an hour: {hour_ms}")


def rollup_json_sql(dialect: str, hour_ms: int, source: str | None = None) -> str:
    """The rollup of one hour over the gzip JSON Lines archive.

    trino: over `ATHENA_LINES_TABLE` (partition-pruned by dt/hour). duckdb: `source` is a
    relation with a `line` column, by default `lines` (see `duckdb_lines_source`).
    """
    _check_hour(hour_ms)
    d = DIALECTS[dialect]
    relation = f"{ATHENA_LINES_TABLE} WHERE {_athena_partition(hour_ms)}" if d is TRINO else source or "lines"
    typed = f"SELECT * FROM ({_typed_from_lines(d, relation)}) WHERE {_hour_filter(hour_ms)}"
    return _rollup(d, typed)


def rollup_parquet_sql(dialect: str, hour_ms: int, source: str | None = None) -> str:
    """The rollup of one hour over its Parquet compaction (typed columns; reads only those it needs)."""
    _check_hour(hour_ms)
    d = DIALECTS[dialect]
    relation = f"{ATHENA_COMPACT_TABLE} WHERE {_athena_partition(hour_ms)}" if d is TRINO else source or "compact"
    typed = f"SELECT * FROM ({_typed_from_compact(relation)}) WHERE {_hour_filter(hour_ms)}"
    return _rollup(d, typed)


def compact_select(dialect: str, hour_ms: int, source: str | None = None) -> str:
    """The typed columns of one hour's readings, one row per identity (the version version_key ranks
    greatest, received_at kept for reference), sorted so each series' ts and values sit together.

    A late reading for the hour lands in the JSON archive and the hour is compacted again (re-roll).
    """
    _check_hour(hour_ms)
    d = DIALECTS[dialect]
    relation = f"{ATHENA_LINES_TABLE} WHERE {_athena_partition(hour_ms)}" if d is TRINO else (source or "lines")
    columns = ", ".join(TYPED_COLUMNS)
    return (
        f"SELECT {columns} FROM (\n"
        f"    SELECT *, {_VERSION} AS version\n"
        f"    FROM ({_typed_from_lines(d, relation)}) WHERE {_hour_filter(hour_ms)}\n"
        ") WHERE version = 1\n"
        "ORDER BY device_id, metric, unit, ts"
    )


def compact_unload_sql(hour_ms: int, bucket: str, prefix: str = "compact") -> str:
    """Athena UNLOAD of one hour into s3://bucket/compact/dt=/hour=/ as ZSTD Parquet (the prefix must be empty)."""
    return (
        f"UNLOAD ({compact_select('trino', hour_ms)})\n"
        f"TO 's3://{bucket}/{prefix}/{partition_of_hour(hour_ms)}/'\n"
        "WITH (format = 'PARQUET', compression = 'ZSTD')"
    )


def compact_copy_sql(hour_ms: int, target: str, source: str | None = None) -> str:
    """DuckDB COPY of one hour into a ZSTD Parquet file (the local stand-in for UNLOAD)."""
    target_sql = target.replace("'", "''")
    options = f"FORMAT PARQUET, COMPRESSION ZSTD, ROW_GROUP_SIZE {COMPACT_ROW_GROUP_ROWS}"
    return f"COPY ({compact_select('duckdb', hour_ms, source)}) TO '{target_sql}' ({options})"


def duckdb_lines_source(files: Iterable[str]) -> str:
    """A DuckDB relation with one `line` VARCHAR column over gzip JSON Lines files."""
    listed = ", ".join("'" + f.replace("'", "''") + "'" for f in files)
    # A delimiter and quote that never occur in a JSON line: the whole line is the column.
    return (
        f"read_csv([{listed}], columns = {{'line': 'VARCHAR'}}, header = false, delim = '\\x01', "
        "quote = '', escape = '', compression = 'gzip', auto_detect = false)"
    )


def athena_ddl(bucket: str) -> list[str]:
    """The two tables the job's queries read: archive lines as text, and the Parquet compaction."""
    projection = (
        "    'projection.enabled' = 'true',\n"
        "    'projection.dt.type' = 'date', 'projection.dt.range' = '2020-01-01,NOW',\n"
        "    'projection.dt.format' = 'yyyy-MM-dd', 'projection.dt.interval' = '1',\n"
        "    'projection.dt.interval.unit' = 'DAYS',\n"
        "    'projection.hour.type' = 'integer', 'projection.hour.range' = '0,23', 'projection.hour.digits' = '2',\n"
    )
    lines = (
        f"CREATE EXTERNAL TABLE IF NOT EXISTS {ATHENA_LINES_TABLE} (line string)\n"
        "PARTITIONED BY (dt string, `hour` string)\n"
        "ROW FORMAT DELIMITED LINES TERMINATED BY '\\n'\nSTORED AS TEXTFILE\n"
        f"LOCATION 's3://{bucket}/archive/'\nTBLPROPERTIES (\n{projection}"
        f"    'storage.location.template' = 's3://{bucket}/archive/dt=${{dt}}/hour=${{hour}}/'\n)"
    )
    compact = (
        f"CREATE EXTERNAL TABLE IF NOT EXISTS {ATHENA_COMPACT_TABLE} (\n"
        "    device_id string, metric string, unit string, ts bigint, received_at bigint,\n"
        "    kind int, number double, text string\n)\n"
        "PARTITIONED BY (dt string, `hour` string)\nSTORED AS PARQUET\n"
        f"LOCATION 's3://{bucket}/compact/'\nTBLPROPERTIES (\n{projection}"
        f"    'storage.location.template' = 's3://{bucket}/compact/dt=${{dt}}/hour=${{hour}}/'\n)"
    )
    return [lines, compact]


# decoding results ----------------------------------------------------------------------


def _int(x: Any) -> int:
    return int(x)


def _num(x: Any) -> float | None:
    return None if x is None or x == "" else float(x)


def _value(kind: Any, number: Any, text: Any) -> Value:
    k = int(kind)
    if k == KIND_BOOL:
        return str(text) == "true"
    if k == KIND_NUMBER:
        return float(number)
    return "" if text is None else str(text)


def decode_row(row: Mapping[str, Any]) -> dict[str, Any]:
    """A result row (RESULT_COLUMNS; native values or Athena's CSV strings) as the ROLLUP row.

    (Athena's CSV writes NULL as an empty field; a string reading's text may be empty too,
    which is why first_text/last_text of a string are read as "" when missing.)
    """
    from chalicelib.domain.mapreduce import hour_of

    hour_ms = _int(row["hour_ms"])
    numbers = _int(row["numbers"])
    total = float(row["sum"]) if numbers else 0.0
    return {
        "device_id": str(row["device_id"]),
        "metric": str(row["metric"]),
        "unit": str(row["unit"]),
        "hour": hour_of(hour_ms),
        "hour_ms": hour_ms,
        "count": _int(row["count"]),
        "numbers": numbers,
        "min": _num(row["min"]) if numbers else None,
        "max": _num(row["max"]) if numbers else None,
        "sum": total,
        "mean": total / numbers if numbers else None,
        "first": _value(row["first_kind"], row["first_number"], row["first_text"]),
        "first_ts": _int(row["first_ts"]),
        "last": _value(row["last_kind"], row["last_number"], row["last_text"]),
        "last_ts": _int(row["last_ts"]),
    }


def sum_tolerance(numbers: int, largest: float) -> float:
    """The documented bound on |SQL sum - math.fsum| for `numbers` values of magnitude <= largest."""
    return numbers * numbers * 2.0**-52 * largest + (0.0 if math.isfinite(largest) else math.inf)
