"""Rollup engines: one hour of archive as gzip JSON Lines vs ZSTD Parquet, and the 1 M-device hourly model.

One hour at a realistic density (default 2,000 devices x 60 records x 5 metrics = 600,000
readings, written as the archiver writes them: gzip JSON Lines, several objects) is
compacted to Parquet with the same DuckDB COPY the local stack runs (`domain.rollup_sql`).
Measured: bytes of each form, the bytes the rollup query scans (JSON: every object whole,
as Athena bills compressed bytes read; Parquet: the compressed column chunks of the
columns the query reads, from the file's metadata), DuckDB's time for the rollup over each,
and `run_local`'s CPU time for the in-Lambda path. Then, at 1 million devices (300 million
readings an hour), the modelled hourly cost and time of both paths.

    .venv/bin/python -m bench.rollup_engines [--devices N]
"""

from __future__ import annotations

import argparse
import csv
import gzip
import io
import json
import math
import random
import tempfile
import time
from pathlib import Path
from typing import Any

import duckdb

from chalicelib.config import ATHENA_THRESHOLD_READINGS_PER_HOUR
from chalicelib.domain import rollup_sql
from chalicelib.domain.mapreduce import ROLLUP, partials_by_device, run_local
from devstack.athena import athena_csv, athena_text

HOUR = 1_764_050_400_000  # 2025-11-25T06:00Z
METRICS = (("temp", "C"), ("hum", "%"), ("pres", "hPa"), ("volt", "V"), ("status", ""))
OBJECTS = 8  # archive objects in the hour (the archiver writes one per stream batch and partition)
FLEET_DEVICES = 1_000_000
FLEET_READINGS_PER_HOUR = FLEET_DEVICES * 60 * 5
LAMBDA_LIMIT_S = 900
SAFETY = 0.5  # a run must finish in half the limit (cold start, slow S3, a re-roll)
LAMBDA_GB = 1.769  # 1,769 MB: one full vCPU, so CPU seconds are wall seconds
# Not measurable on this machine (no AWS), so stated: one S3 GET stream into Lambda, and one
# 25-item BatchWriteItem call's round trip, sequential (the load does not parallelise its calls).
S3_READ_BYTES_PER_S = 50e6
BATCH_WRITE_S = 0.015


def _pricing() -> dict[str, Any]:
    path = Path(__file__).resolve().parent.parent / "chalicelib" / "pricing.json"
    prices: dict[str, Any] = json.loads(path.read_text())
    return prices


def hour_of_archive(devices: int, seed: int = 7) -> list[dict[str, Any]]:
    """One hour: each device a record of 5 metrics a minute; a few duplicate deliveries."""
    rng = random.Random(seed)
    lines = []
    for d in range(devices):
        device = f"dev-{d:07d}"
        base = [20.0 + rng.random() * 5, 40.0 + rng.random() * 20, 1000.0 + rng.random() * 30, 3.3, 0]
        for minute in range(60):
            ts = HOUR + minute * 60_000 + rng.randrange(0, 1000)
            received = ts + rng.randrange(50, 2000)
            values: list[Any] = [
                round(base[0] + rng.gauss(0, 0.2), 2),
                round(base[1] + rng.gauss(0, 1), 1),
                round(base[2] + rng.gauss(0, 0.5), 1),
                round(3.3 + rng.gauss(0, 0.01), 3),
                rng.choice(["ok", "ok", "ok", "door open"]),
            ]
            for (metric, unit), value in zip(METRICS, values, strict=True):
                line = {"device_id": device, "metric": metric, "unit": unit, "ts": ts, "value": value,
                        "received_at": received}  # fmt: skip
                lines.append(line)
                if rng.random() < 0.001:
                    lines.append({**line, "received_at": received + 1000})
    return lines


def _write_archive(folder: Path, lines: list[dict[str, Any]]) -> list[str]:
    files = []
    batch = math.ceil(len(lines) / OBJECTS)
    for i in range(OBJECTS):
        path = folder / f"archive/dt=2025-11-25/hour=06/part-{i:05d}.jsonl.gz"
        path.parent.mkdir(parents=True, exist_ok=True)
        body = "".join(json.dumps(x, separators=(",", ":")) + "\n" for x in lines[i * batch : (i + 1) * batch])
        path.write_bytes(gzip.compress(body.encode()))
        files.append(str(path))
    return files


def _timed(db: duckdb.DuckDBPyConnection, sql: str) -> tuple[float, int]:
    start = time.perf_counter()
    rows = len(db.execute(sql).fetchall())
    return time.perf_counter() - start, rows


def load_cpu(result_csv: bytes) -> dict[str, Any]:
    """The Athena path's Lambda work for an hour's result, measured: parse the result CSV, decode its
    rows, group them by device, and build and serialise the rollup store's page items (put_hour's
    writes, less the DynamoDB calls themselves)."""
    from chalicelib.adapters.aggregates import RollupStore, day_of, shards_for

    cpu = time.process_time()
    rows = csv.DictReader(io.StringIO(result_csv.decode()))
    devices = partials_by_device(rollup_sql.decode_row(r) for r in rows)
    items = RollupStore().page_items(day_of(HOUR), HOUR, shards_for(devices, HOUR), devices)
    for item in items:
        item.serialize()
    cpu_s = time.process_time() - cpu
    result_rows = sum(len(series) for series in devices.values())
    return {
        "result_rows": result_rows,
        "result_csv_bytes": len(result_csv),
        "page_items": len(items),
        "cpu_s": round(cpu_s, 3),
        "cpu_s_per_row": cpu_s / max(1, result_rows),
        "items_per_row": len(items) / max(1, result_rows),
        "csv_bytes_per_row": len(result_csv) / max(1, result_rows),
    }


def measure(devices: int = 2_000) -> dict[str, Any]:
    """Measured figures for one hour of `devices` and the 1 M-device model; figures.json "rollup_engines"."""
    lines = hour_of_archive(devices)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        files = _write_archive(folder, lines)
        json_bytes = sum(Path(f).stat().st_size for f in files)
        db = duckdb.connect()
        source = rollup_sql.duckdb_lines_source(files)
        parquet = folder / "compact/dt=2025-11-25/hour=06/part-00000.parquet"
        parquet.parent.mkdir(parents=True)
        start = time.perf_counter()
        db.execute(rollup_sql.compact_copy_sql(HOUR, str(parquet), source))
        compact_s = time.perf_counter() - start
        parquet_bytes = parquet.stat().st_size
        pq = f"read_parquet('{parquet}')"
        # Athena bills the column chunks the rollup reads (all but received_at).
        scanned = db.execute(
            f"SELECT sum(total_compressed_size) FROM parquet_metadata('{parquet}') "
            f"WHERE path_in_schema IN ({', '.join(repr(c) for c in rollup_sql.PARQUET_COLUMNS_READ)})"
        ).fetchone()
        parquet_scanned = int(scanned[0]) if scanned and scanned[0] is not None else parquet_bytes
        json_s, json_rows = _timed(db, rollup_sql.rollup_json_sql("duckdb", HOUR, source))
        parquet_s, parquet_rows = _timed(db, rollup_sql.rollup_parquet_sql("duckdb", HOUR, pq))
        assert json_rows == parquet_rows
        cursor = db.execute(rollup_sql.rollup_parquet_sql("duckdb", HOUR, pq))
        result_csv = athena_csv(
            [c[0] for c in cursor.description], [[athena_text(v) for v in r] for r in cursor.fetchall()]
        )
        load = load_cpu(result_csv)
    cpu = time.process_time()
    local_rows = run_local(ROLLUP, lines)
    run_local_cpu = time.process_time() - cpu
    readings = len(lines)
    cpu_per_million = run_local_cpu / readings * 1e6
    return {
        "hour": {
            "devices": devices,
            "readings": readings,
            "series_hours": json_rows,
            "run_local_rows": len(local_rows),
            "gzip_jsonl_bytes": json_bytes,
            "parquet_zstd_bytes": parquet_bytes,
            "json_scanned_bytes": json_bytes,
            "parquet_scanned_bytes": parquet_scanned,
            "scan_ratio_json_over_parquet": round(json_bytes / parquet_scanned, 2),
            "duckdb_compact_s": round(compact_s, 3),
            "duckdb_rollup_json_s": round(json_s, 3),
            "duckdb_rollup_parquet_s": round(parquet_s, 3),
            "run_local_cpu_s": round(run_local_cpu, 3),
            "run_local_cpu_s_per_million_readings": round(cpu_per_million, 2),
        },
        "load": load,
        "fleet": fleet_model(cpu_per_million, json_bytes / readings, parquet_scanned / readings, load),
        "threshold": threshold(cpu_per_million),
    }


def threshold(cpu_s_per_million: float) -> dict[str, Any]:
    """Readings an hour above which the in-Lambda path no longer fits one 900 s run with the safety factor."""
    readings = int(LAMBDA_LIMIT_S * SAFETY / cpu_s_per_million * 1e6)
    return {
        "lambda_limit_s": LAMBDA_LIMIT_S,
        "safety": SAFETY,
        "max_readings_per_hour_in_lambda": readings,
        "devices_at_5_metrics_a_minute": readings // 300,
        # The setting's documented switch point (chalicelib.config): below the measured CPU bound,
        # leaving the rest of the run for the archive's GETs and the rollup store's writes.
        "configured_threshold_readings_per_hour": ATHENA_THRESHOLD_READINGS_PER_HOUR,
        "configured_threshold_below_measured": readings > ATHENA_THRESHOLD_READINGS_PER_HOUR,
    }


def fleet_model(
    cpu_s_per_million: float, json_bytes_per_reading: float, parquet_bytes_per_reading: float, load: dict[str, Any]
) -> dict[str, Any]:
    """The hourly job at 1 M devices (300 M readings an hour) on both paths, from the measured rates.

    Both paths write the same rollup items (priced from the store's real items); the Athena path's
    Lambda also reads the result CSV from S3 and makes the BatchWriteItem calls, at the assumed rates
    below (not measurable here)."""
    prices = _pricing()
    gb_s = prices["lambda"]["gb_second_x86"]
    write = prices["dynamodb"]["on_demand_write_per_million"] / 1e6
    readings = FLEET_READINGS_PER_HOUR
    cpu_s = cpu_s_per_million * readings / 1e6
    json_scan = json_bytes_per_reading * readings
    parquet_scan = parquet_bytes_per_reading * readings
    tb = 1e12
    athena_per_tb = prices["athena"]["per_tb_scanned"]
    athena_min_bytes = prices["athena"]["minimum_mb_per_query"] * 10**6
    # Compaction scans the JSON once; the rollup then reads the Parquet.
    athena_cost = (max(json_scan, athena_min_bytes) + max(parquet_scan, athena_min_bytes)) / tb * athena_per_tb
    rows = FLEET_DEVICES * len(METRICS)
    csv_s = rows * load["csv_bytes_per_row"] / S3_READ_BYTES_PER_S
    batch_calls = math.ceil(rows * load["items_per_row"] / 25)
    write_calls_s = batch_calls * BATCH_WRITE_S
    load_s = rows * load["cpu_s_per_row"] + csv_s + write_calls_s
    load_cost = load_s * LAMBDA_GB * gb_s
    # The rollup store's write units per reading, priced from its real items (bench.model).
    from bench.model import job_outputs_per_reading

    per_reading = job_outputs_per_reading()["rollup_write_units_per_million"] / 1e6
    writes = readings * per_reading
    write_cost = writes * write
    lam_cost = cpu_s * LAMBDA_GB * gb_s
    both_json_cost = 2 * json_scan / tb * athena_per_tb
    return {
        "devices": FLEET_DEVICES,
        "readings_per_hour": readings,
        "in_lambda": {
            "cpu_s": round(cpu_s),
            "lambda_usd_per_hour": round(lam_cost, 4),
            "dynamodb_usd": round(write_cost, 4),
            "usd_per_hour": round(lam_cost + write_cost, 4),
            "usd_per_million_readings": round((lam_cost + write_cost) / (readings / 1e6), 6),
            "cpu_s_per_million_readings": round(cpu_s_per_million, 2),
            "functions_of_900_s": math.ceil(cpu_s / LAMBDA_LIMIT_S),
            "fits_one_function": cpu_s <= LAMBDA_LIMIT_S * SAFETY,
        },
        "athena": {
            "json_scanned_gb": round(json_scan / 1e9, 2),
            "parquet_scanned_gb": round(parquet_scan / 1e9, 2),
            "athena_usd_per_hour": round(athena_cost, 4),
            "athena_usd_per_hour_if_rollup_read_json": round(both_json_cost, 4),
            "load_rows": rows,
            "load_cpu_s": round(rows * load["cpu_s_per_row"], 1),
            "load_result_csv_s": round(csv_s, 1),
            "load_batch_write_calls": batch_calls,
            "load_batch_write_s": round(write_calls_s, 1),
            "load_lambda_s": round(load_s, 1),
            "load_lambda_usd": round(load_cost, 4),
            "load_fits_one_function": load_s <= LAMBDA_LIMIT_S * SAFETY,
            "dynamodb_write_units": round(writes),
            "dynamodb_usd": round(write_cost, 4),
            "usd_per_hour": round(athena_cost + load_cost + write_cost, 4),
            "usd_per_million_readings": round((athena_cost + load_cost + write_cost) / (readings / 1e6), 6),
            "lambda_s_per_million_readings": round(load_s / (readings / 1e6), 3),
        },
        "assumptions": {
            "athena_usd_per_tb": athena_per_tb,
            "lambda_gb": LAMBDA_GB,
            "rollup_write_units_per_reading": per_reading,
            "s3_read_bytes_per_s": S3_READ_BYTES_PER_S,
            "batch_write_item_s": BATCH_WRITE_S,
        },
    }


def print_table(result: dict[str, Any]) -> None:
    """A small plain table of the figures."""
    h, f, t = result["hour"], result["fleet"], result["threshold"]
    print(f"one hour: {h['devices']:,} devices, {h['readings']:,} readings, {h['series_hours']:,} series-hours")
    print(f"  {'':34}{'gzip JSON Lines':>18}{'Parquet ZSTD':>16}")
    print(f"  {'bytes':34}{h['gzip_jsonl_bytes']:>18,}{h['parquet_zstd_bytes']:>16,}")
    print(f"  {'bytes the rollup scans':34}{h['json_scanned_bytes']:>18,}{h['parquet_scanned_bytes']:>16,}")
    print(f"  {'DuckDB rollup s':34}{h['duckdb_rollup_json_s']:>18}{h['duckdb_rollup_parquet_s']:>16}")
    print(f"  scanned JSON / Parquet: {h['scan_ratio_json_over_parquet']}x (target >= 5x)")
    print(f"  run_local CPU: {h['run_local_cpu_s']} s ({h['run_local_cpu_s_per_million_readings']} s per million)")
    print(f"threshold: in-Lambda up to {t['max_readings_per_hour_in_lambda']:,} readings/hour "
          f"({t['devices_at_5_metrics_a_minute']:,} devices at 5 metrics a minute); ROLLUP_ENGINE=athena past "
          f"{t['configured_threshold_readings_per_hour']:,} (chalicelib/config.py)")  # fmt: skip
    lam, ath = f["in_lambda"], f["athena"]
    print(f"1 M devices, {f['readings_per_hour']:,} readings/hour:")
    print(
        f"  in-Lambda: {lam['cpu_s']:,} CPU s = {lam['functions_of_900_s']} functions of 900 s, "
        f"Lambda ${lam['lambda_usd_per_hour']} + DynamoDB ${lam['dynamodb_usd']} = ${lam['usd_per_hour']}/h "
        f"(${lam['usd_per_million_readings']} per million readings)"
    )
    print(f"  Athena: scans {ath['json_scanned_gb']} GB JSON (compaction) + {ath['parquet_scanned_gb']} GB Parquet "
          f"= ${ath['athena_usd_per_hour']}; load {ath['load_lambda_s']} s Lambda (CPU {ath['load_cpu_s']} s, "
          f"CSV {ath['load_result_csv_s']} s, {ath['load_batch_write_calls']:,} BatchWriteItem "
          f"{ath['load_batch_write_s']} s) ${ath['load_lambda_usd']}; "
          f"DynamoDB ${ath['dynamodb_usd']}; total ${ath['usd_per_hour']}/h "
          f"(${ath['usd_per_million_readings']} per million readings)")  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.rollup_engines")
    parser.add_argument("--devices", type=int, default=2_000)
    args = parser.parse_args(argv)
    result = measure(args.devices)
    print_table(result)
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
