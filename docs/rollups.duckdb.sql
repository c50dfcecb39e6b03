-- Hourly rollups and the inverted index over the archive, in DuckDB.
-- Generated from infra/analytics_sql.py by `python -m infra.analytics_sql`: edit it there.
--
--   duckdb -cmd "SET VARIABLE archive = 'archive/dt=*/hour=*/*.jsonl.gz'" < docs/rollups.duckdb.sql
--
-- `archive` is a glob or a list of gzip JSON Lines files (s3:// works with the
-- httpfs extension). Same rows as the rollup and index jobs of
-- chalicelib/domain/mapreduce.py (sum and mean up to float rounding), which the unit tests
-- check: one row per reading identity, the version received last (then bool < number <
-- string, then the greater value); rollups of numbers only, the index of strings only.

-- Rollups: per (device_id, metric, unit, UTC hour) of numeric readings.
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
    min(number) AS "min",
    max(number) AS "max",
    fsum(number) AS "sum",
    fsum(number) / count(*) AS mean,
    min(ts) AS first_ts,
    max(ts) AS last_ts
FROM latest
WHERE kind = 1
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
