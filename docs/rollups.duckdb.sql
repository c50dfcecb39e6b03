-- Hourly rollups and the inverted index over the archive, in DuckDB.
-- Generated from infra/analytics_sql.py by `python -m infra.analytics_sql`: edit it there.
--
--   duckdb -cmd "SET VARIABLE archive = 'archive/dt=*/hour=*/*.jsonl.gz'" < docs/rollups.duckdb.sql
--
-- `archive` is a glob or a list of gzip JSON Lines files (s3:// works with the
-- httpfs extension). Same rows as the rollup and index jobs of
-- chalicelib/domain/mapreduce.py (sum and mean up to float rounding), which the unit tests
-- check: one row per reading identity, the version received last (then bool < number <
-- string, then the greater value); rollups of every type (numbers alone in numbers, min,
-- max, sum, mean; first and last as JSON), the index of strings only.

-- Rollups: the hourly Partial per (device_id, metric, unit, UTC hour), every value type.
WITH archive AS (
    SELECT device_id, metric, unit, ts, received_at, value, json_type(value) AS json_type
    FROM read_json(
        getvariable('archive'),
        format = 'newline_delimited',
        hive_partitioning = false,
        columns = {
            device_id: 'VARCHAR', metric: 'VARCHAR', unit: 'VARCHAR',
            ts: 'BIGINT', value: 'JSON', received_at: 'BIGINT'
        }
    )
),
typed AS (
    SELECT
        *,
        CASE
            WHEN json_type = 'BOOLEAN' THEN 0
            WHEN json_type IN ('UBIGINT', 'BIGINT', 'HUGEINT', 'UHUGEINT', 'DOUBLE') THEN 1
            WHEN json_type = 'VARCHAR' THEN 2
        END AS kind,
        CASE WHEN json_type IN ('UBIGINT', 'BIGINT', 'HUGEINT', 'UHUGEINT', 'DOUBLE') THEN CAST(value AS DOUBLE) END AS number,
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
)
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
ORDER BY device_id, metric, unit, hour;

-- Inverted index: word -> postings per (device_id, metric) of string readings.
WITH archive AS (
    SELECT device_id, metric, unit, ts, received_at, value, json_type(value) AS json_type
    FROM read_json(
        getvariable('archive'),
        format = 'newline_delimited',
        hive_partitioning = false,
        columns = {
            device_id: 'VARCHAR', metric: 'VARCHAR', unit: 'VARCHAR',
            ts: 'BIGINT', value: 'JSON', received_at: 'BIGINT'
        }
    )
),
typed AS (
    SELECT
        *,
        CASE
            WHEN json_type = 'BOOLEAN' THEN 0
            WHEN json_type IN ('UBIGINT', 'BIGINT', 'HUGEINT', 'UHUGEINT', 'DOUBLE') THEN 1
            WHEN json_type = 'VARCHAR' THEN 2
        END AS kind,
        CASE WHEN json_type IN ('UBIGINT', 'BIGINT', 'HUGEINT', 'UHUGEINT', 'DOUBLE') THEN CAST(value AS DOUBLE) END AS number,
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
),
words AS (
    SELECT DISTINCT device_id, metric, unit, ts, word
    FROM (SELECT *, unnest(regexp_extract_all(lower(replace(text, chr(304), 'i' || chr(775))), '[a-z0-9]+')) AS word FROM latest WHERE kind = 2)
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
        {'device_id': device_id, 'metric': metric, 'count': "count", 'first_ts': first_ts, 'last_ts': last_ts}
        ORDER BY device_id, metric
    ) AS postings,
    CAST(sum("count") AS BIGINT) AS "count",
    min(first_ts) AS first_ts,
    max(last_ts) AS last_ts
FROM postings
GROUP BY word
ORDER BY word;
