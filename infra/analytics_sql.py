"""The analytics SQL, in one place: DuckDB (local, tests) and Athena (AWS) over the archive.

`docs/rollups.duckdb.sql` and `docs/athena.sql` are generated from this module
(``python -m infra.analytics_sql``; ``--check`` fails when they are stale), and the
unit tests run the DuckDB queries against the map/reduce jobs of `domain.mapreduce`.

DuckDB reads the archive through the variable ``archive`` (a glob or a list of
.jsonl.gz files): ``SET VARIABLE archive = 'archive/dt=*/hour=*/*.jsonl.gz'``. The
value is read as JSON, so numbers, booleans and strings stay apart and the version order
of `domain.mapreduce` (received_at, then bool < number < string, then value) is exact.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

ARCHIVE_VARIABLE = "archive"

_NUMBER_TYPES = "('UBIGINT', 'BIGINT', 'HUGEINT', 'UHUGEINT', 'DOUBLE')"

# One row per identity: the version domain.mapreduce._version ranks greatest.
_DUCKDB_LATEST = f"""WITH archive AS (
    SELECT device_id, metric, unit, ts, received_at, value, json_type(value) AS json_type
    FROM read_json(
        getvariable('{ARCHIVE_VARIABLE}'),
        format = 'newline_delimited',
        hive_partitioning = false,
        columns = {{
            device_id: 'VARCHAR', metric: 'VARCHAR', unit: 'VARCHAR',
            ts: 'BIGINT', value: 'JSON', received_at: 'BIGINT'
        }}
    )
),
typed AS (
    SELECT
        *,
        CASE
            WHEN json_type = 'BOOLEAN' THEN 0
            WHEN json_type IN {_NUMBER_TYPES} THEN 1
            WHEN json_type = 'VARCHAR' THEN 2
        END AS kind,
        CASE WHEN json_type IN {_NUMBER_TYPES} THEN CAST(value AS DOUBLE) END AS number,
        CASE WHEN json_type IN ('BOOLEAN', 'VARCHAR') THEN value ->> '$' END AS text
    FROM archive
),
latest AS (
    SELECT *
    FROM typed
    QUALIFY row_number() OVER (
        PARTITION BY device_id, metric, unit, ts
        ORDER BY received_at DESC NULLS LAST, kind DESC NULLS LAST, number DESC, text DESC
    ) = 1
)"""

# The hourly Partial of domain.rollups: every reading in count/first/last (value as typed
# JSON), numbers alone in numbers/min/max/sum/mean (min/max/mean null when none, sum 0.0).
ROLLUP_SQL = f"""{_DUCKDB_LATEST}
SELECT
    device_id,
    metric,
    unit,
    strftime(epoch_ms(ts), '%Y-%m-%dT%H') AS hour,
    count(*) AS "count",
    count(number) AS numbers,
    min(number) AS "min",
    max(number) AS "max",
    coalesce(fsum(number), 0.0) AS "sum",
    CASE WHEN count(number) > 0 THEN fsum(number) / count(number) END AS mean,
    arg_min(value, ts) AS "first",
    min(ts) AS first_ts,
    arg_max(value, ts) AS "last",
    max(ts) AS last_ts
FROM latest
GROUP BY ALL
ORDER BY device_id, metric, unit, hour"""

# Python's str.lower() turns U+0130 (capital I with dot) into "i" + U+0307, which ends a
# token; DuckDB's lower() gives a bare "i". No other character differs (checked over all).
_DUCKDB_LOWER = "lower(replace(text, chr(304), 'i' || chr(775)))"

INDEX_SQL = f"""{_DUCKDB_LATEST},
words AS (
    SELECT DISTINCT device_id, metric, unit, ts, word
    FROM (SELECT *, unnest(regexp_extract_all({_DUCKDB_LOWER}, '[a-z0-9]+')) AS word FROM latest WHERE kind = 2)
    WHERE length(word) <= 64
),
postings AS (
    SELECT word, device_id, metric, count(*) AS "count", min(ts) AS first_ts, max(ts) AS last_ts
    FROM words
    GROUP BY ALL
)
SELECT
    word,
    list(
        {{'device_id': device_id, 'metric': metric, 'count': "count", 'first_ts': first_ts, 'last_ts': last_ts}}
        ORDER BY device_id, metric
    ) AS postings,
    CAST(sum("count") AS BIGINT) AS "count",
    min(first_ts) AS first_ts,
    max(last_ts) AS last_ts
FROM postings
GROUP BY word
ORDER BY word"""

# Athena ---------------------------------------------------------------------------------

ATHENA_TABLE = "iotcloud_archive"
ATHENA_VIEW = "iotcloud_readings"

# A JSON number pattern: the SerDe hands every value over as a string (see the DDL's note).
_ATHENA_NUMBER = r"^-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?$"

ATHENA_DDL = f"""CREATE EXTERNAL TABLE IF NOT EXISTS {ATHENA_TABLE} (
    device_id string,
    metric string,
    unit string,
    ts bigint,
    `value` string,
    received_at bigint
)
PARTITIONED BY (dt string, `hour` int)
ROW FORMAT SERDE 'org.openx.data.jsonserde.JsonSerDe'
LOCATION 's3://<bucket>/archive/'
TBLPROPERTIES (
    'projection.enabled' = 'true',
    'projection.dt.type' = 'date',
    'projection.dt.range' = '2020-01-01,NOW',
    'projection.dt.format' = 'yyyy-MM-dd',
    'projection.dt.interval' = '1',
    'projection.dt.interval.unit' = 'DAYS',
    'projection.hour.type' = 'integer',
    'projection.hour.range' = '0,23',
    'projection.hour.digits' = '2',
    'storage.location.template' = 's3://<bucket>/archive/dt=${{dt}}/hour=${{hour}}/'
)"""

# dt and hour follow from ts, so listing them in PARTITION BY changes nothing but lets
# partition filters on the view reach the table (Trino pushes them through the window).
ATHENA_VIEW_DDL = f"""CREATE OR REPLACE VIEW {ATHENA_VIEW} AS
SELECT device_id, metric, unit, ts, "value", received_at, dt, "hour"
FROM (
    SELECT
        *,
        row_number() OVER (
            PARTITION BY dt, "hour", device_id, metric, unit, ts
            ORDER BY received_at DESC NULLS LAST, "value" DESC
        ) AS version
    FROM {ATHENA_TABLE}
)
WHERE version = 1"""

_ATHENA_DEVICE_RANGE = f"""SELECT from_unixtime(ts / 1000e0) AS reading_time, ts, metric, unit, "value"
FROM {ATHENA_VIEW}
WHERE device_id = 'dev-0001'
  AND dt BETWEEN '2026-11-24' AND '2026-11-25'
  AND ts >= to_unixtime(TIMESTAMP '2026-11-24 06:00:00 UTC') * 1000
  AND ts < to_unixtime(TIMESTAMP '2026-11-25 06:00:00 UTC') * 1000
ORDER BY ts, metric, unit"""

_ATHENA_HOURLY_ROLLUP = f"""SELECT
    device_id,
    metric,
    unit,
    date_format(from_unixtime(ts / 1000), '%Y-%m-%dT%H') AS "hour",
    count(*) AS "count",
    count(number) AS numbers,
    min(number) AS "min",
    max(number) AS "max",
    coalesce(sum(number), 0e0) AS "sum",
    sum(number) / nullif(count(number), 0) AS mean,
    min_by("value", ts) AS "first",
    min(ts) AS first_ts,
    max_by("value", ts) AS "last",
    max(ts) AS last_ts
FROM (
    SELECT *, CASE WHEN regexp_like("value", '{_ATHENA_NUMBER}') THEN try_cast("value" AS double) END AS number
    FROM {ATHENA_VIEW}
    WHERE dt = '2026-11-25'
)
GROUP BY 1, 2, 3, 4
ORDER BY 1, 2, 3, 4"""

_ATHENA_DAILY_ACTIVE = f"""SELECT dt, count(DISTINCT device_id) AS active_devices
FROM {ATHENA_TABLE}
WHERE dt BETWEEN '2026-11-01' AND '2026-11-30'
GROUP BY dt
ORDER BY dt"""

_ATHENA_WORD_SEARCH = f"""SELECT word, device_id, metric, count(*) AS "count", min(ts) AS first_ts, max(ts) AS last_ts
FROM {ATHENA_VIEW}
CROSS JOIN UNNEST(array_distinct(regexp_extract_all(lower("value"), '[a-z0-9]+'))) AS t (word)
WHERE dt BETWEEN '2026-11-01' AND '2026-11-30'
  AND "value" NOT IN ('true', 'false')
  AND NOT regexp_like("value", '{_ATHENA_NUMBER}')
  AND length(word) <= 64
  AND word IN ('door', 'open')
GROUP BY 1, 2, 3
ORDER BY word, device_id, metric"""

ATHENA_QUERIES: list[tuple[str, str]] = [
    ("Readings of one device in a time range (dt prunes partitions: keep it in step with ts).", _ATHENA_DEVICE_RANGE),
    (
        "Hourly rollups of a day, with the rollup job's columns. GROUP BY takes ordinals because there a name\n"
        "-- means an input column, and the partition column is called hour too.",
        _ATHENA_HOURLY_ROLLUP,
    ),
    ("Daily active devices (a distinct count needs no de-duplication).", _ATHENA_DAILY_ACTIVE),
    ("Word search: the inverted index's postings of some words, computed on the fly.", _ATHENA_WORD_SEARCH),
]

# Documents ------------------------------------------------------------------------------

_GENERATED = "-- Generated from infra/analytics_sql.py by `python -m infra.analytics_sql`: edit it there."

_ATHENA_HEADER = f"""-- The archive in Athena: s3://<bucket>/archive/dt=YYYY-MM-DD/hour=HH/*.jsonl.gz,
-- gzip JSON Lines, one reading a line:
--   {{"device_id", "metric", "unit", "ts" (epoch ms UTC), "value", "received_at" (epoch ms)}}
{_GENERATED}
--
-- Replace <bucket> with the archive bucket. Partition projection computes the partitions
-- from the dt and hour filters: no crawler, no MSCK REPAIR, but always filter on dt.
--
-- `value` is declared string because it is a number, a boolean or a string, and a Hive
-- column has one type. The JSON SerDe turns 21.5 into '21.5' and true into 'true', so the
-- type is lost: the queries below take a value that looks like a JSON number for a number
-- and 'true'/'false' for a boolean, which misreads a string reading such as "42". The
-- rollup and index jobs (chalicelib/domain/mapreduce.py) and DuckDB
-- (docs/rollups.duckdb.sql) see the JSON types and are exact; use them where that matters.
--
-- A reading's identity is (device_id, metric, unit, ts). {ATHENA_VIEW} keeps one line per
-- identity, the one received last; on equal received_at it orders by the value's text,
-- where the jobs order bool < number < string first."""

_DUCKDB_HEADER = f"""-- Hourly rollups and the inverted index over the archive, in DuckDB.
{_GENERATED}
--
--   duckdb -cmd "SET VARIABLE {ARCHIVE_VARIABLE} = 'archive/dt=*/hour=*/*.jsonl.gz'" < docs/rollups.duckdb.sql
--
-- `{ARCHIVE_VARIABLE}` is a glob or a list of gzip JSON Lines files (s3:// works with the
-- httpfs extension). Same rows as the rollup and index jobs of
-- chalicelib/domain/mapreduce.py (sum and mean up to float rounding), which the unit tests
-- check: one row per reading identity, the version received last (then bool < number <
-- string, then the greater value); rollups of every type (numbers alone in numbers, min,
-- max, sum, mean; first and last as JSON), the index of strings only."""


def render_docs() -> dict[str, str]:
    """The generated documents, by path relative to the repository root."""
    athena = [_ATHENA_HEADER, ATHENA_DDL + ";", ATHENA_VIEW_DDL + ";"]
    athena += [f"-- {title}\n{sql};" for title, sql in ATHENA_QUERIES]
    duckdb = [
        _DUCKDB_HEADER,
        "-- Rollups: the hourly Partial per (device_id, metric, unit, UTC hour), every value type.\n"
        + ROLLUP_SQL
        + ";",
        "-- Inverted index: word -> postings per (device_id, metric) of string readings.\n" + INDEX_SQL + ";",
    ]
    return {"docs/athena.sql": "\n\n".join(athena) + "\n", "docs/rollups.duckdb.sql": "\n\n".join(duckdb) + "\n"}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m infra.analytics_sql", description="Write the SQL documents.")
    parser.add_argument("--check", action="store_true", help="fail if a document is out of date instead of writing")
    parser.add_argument("--root", type=Path, default=Path(__file__).resolve().parent.parent)
    args = parser.parse_args(argv)
    stale = []
    for relative, text in render_docs().items():
        path = args.root / relative
        if path.exists() and path.read_text(encoding="utf-8") == text:
            continue
        if args.check:
            stale.append(relative)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
    if stale:
        print(f"out of date: {', '.join(stale)} (run python -m infra.analytics_sql)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
