-- The archive in Athena: s3://<bucket>/archive/dt=YYYY-MM-DD/hour=HH/*.jsonl.gz,
-- gzip JSON Lines, one reading a line:
--   {"device_id", "metric", "unit", "ts" (epoch ms UTC), "value", "received_at" (epoch ms)}
-- Generated from infra/analytics_sql.py by `python -m infra.analytics_sql`: edit it there.
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
-- A reading's identity is (device_id, metric, unit, ts). iotcloud_readings keeps one line per
-- identity, the one received last; on equal received_at it orders by the value's text,
-- where the jobs order bool < number < string first.

CREATE EXTERNAL TABLE IF NOT EXISTS iotcloud_archive (
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
    'storage.location.template' = 's3://<bucket>/archive/dt=${dt}/hour=${hour}/'
);

CREATE OR REPLACE VIEW iotcloud_readings AS
SELECT device_id, metric, unit, ts, "value", received_at, dt, "hour"
FROM (
    SELECT
        *,
        row_number() OVER (
            PARTITION BY dt, "hour", device_id, metric, unit, ts
            ORDER BY received_at DESC NULLS LAST, "value" DESC
        ) AS version
    FROM iotcloud_archive
)
WHERE version = 1;

-- Readings of one device in a time range (dt prunes partitions: keep it in step with ts).
SELECT from_unixtime(ts / 1000e0) AS reading_time, ts, metric, unit, "value"
FROM iotcloud_readings
WHERE device_id = 'dev-0001'
  AND dt BETWEEN '2026-11-24' AND '2026-11-25'
  AND ts >= to_unixtime(TIMESTAMP '2026-11-24 06:00:00 UTC') * 1000
  AND ts < to_unixtime(TIMESTAMP '2026-11-25 06:00:00 UTC') * 1000
ORDER BY ts, metric, unit;

-- Hourly rollups of a day, with the rollup job's columns. GROUP BY takes ordinals because there a name
-- means an input column, and the partition column is called hour too.
SELECT
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
    SELECT *, CASE WHEN regexp_like("value", '^-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?$') THEN try_cast("value" AS double) END AS number
    FROM iotcloud_readings
    WHERE dt = '2026-11-25'
)
GROUP BY 1, 2, 3, 4
ORDER BY 1, 2, 3, 4;

-- Daily active devices (a distinct count needs no de-duplication).
SELECT dt, count(DISTINCT device_id) AS active_devices
FROM iotcloud_archive
WHERE dt BETWEEN '2026-11-01' AND '2026-11-30'
GROUP BY dt
ORDER BY dt;

-- Word search: the inverted index's postings of some words, computed on the fly.
SELECT word, device_id, metric, count(*) AS "count", min(ts) AS first_ts, max(ts) AS last_ts
FROM iotcloud_readings
CROSS JOIN UNNEST(array_distinct(regexp_extract_all(lower("value"), '[a-z0-9]+'))) AS t (word)
WHERE dt BETWEEN '2026-11-01' AND '2026-11-30'
  AND "value" NOT IN ('true', 'false')
  AND NOT regexp_like("value", '^-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?$')
  AND length(word) <= 64
  AND word IN ('door', 'open')
GROUP BY 1, 2, 3
ORDER BY word, device_id, metric;
