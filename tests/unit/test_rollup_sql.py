"""The SQL rollup (DuckDB dialect) equals the Python definition on random archives, from JSON Lines and Parquet."""

from __future__ import annotations

import gzip
import json
import random
from collections import defaultdict
from pathlib import Path
from typing import Any

import duckdb
import pytest

from chalicelib.domain import rollup_sql
from chalicelib.domain.mapreduce import hour_of, version_key
from chalicelib.domain.rollups import HOUR_MS, partial_of

HOUR = 1_764_050_400_000  # 2025-11-25T06:00Z


def _value(rng: random.Random) -> Any:
    pick = rng.random()
    if pick < 0.6:
        return round(rng.uniform(-50, 50), rng.choice([0, 1, 3])) if rng.random() < 0.7 else rng.randint(-100, 100)
    if pick < 0.75:
        return rng.choice([True, False])
    return rng.choice(["21.5", "open", "", "closed door", "true", "é ü"])


def _archive(rng: random.Random, hours: int = 1) -> list[dict[str, Any]]:
    lines = []
    for _ in range(rng.randint(50, 400)):
        ts = HOUR + rng.randrange(0, hours * HOUR_MS // 1000) * 1000 // 10 * 10
        line = {
            "device_id": f"dev-{rng.randint(1, 6)}",
            "metric": rng.choice(["temp", "door", "rh"]),
            "unit": rng.choice(["C", ""]),
            "ts": ts,
            "value": _value(rng),
            "received_at": rng.choice([None, ts + rng.randint(0, 3) * 1000]),
        }
        lines.append(line)
        if rng.random() < 0.3:  # a duplicate or a new version of the same identity
            lines.append(
                {**line, "value": _value(rng), "received_at": rng.choice([None, line["received_at"], ts + 5000])}
            )
    rng.shuffle(lines)
    return lines


def expected(lines: list[dict[str, Any]], hour_ms: int) -> dict[tuple[str, str, str, int], dict[str, Any]]:
    """The definition: resolve versions with version_key, then partial_of per series and hour."""
    newest: dict[tuple[str, str, str, int], dict[str, Any]] = {}
    for line in lines:
        if not hour_ms <= line["ts"] < hour_ms + HOUR_MS:
            continue
        identity = (line["device_id"], line["metric"], line["unit"], line["ts"])
        seen = newest.get(identity)
        if seen is None or version_key(line["received_at"], line["value"]) > version_key(
            seen["received_at"], seen["value"]
        ):
            newest[identity] = line
    series: dict[tuple[str, str, str, int], list[tuple[int, Any]]] = defaultdict(list)
    for (d, m, u, ts), line in newest.items():
        series[(d, m, u, ts - ts % HOUR_MS)].append((ts, line["value"]))
    out = {}
    for (d, m, u, h), points in series.items():
        p = partial_of(points)
        assert p is not None
        out[(d, m, u, h)] = {
            "device_id": d, "metric": m, "unit": u, "hour": hour_of(h), "hour_ms": h, "count": p.count,
            "numbers": p.numbers, "min": p.min, "max": p.max, "sum": p.sum, "mean": p.mean,
            "first": p.first, "first_ts": p.first_ts, "last": p.last, "last_ts": p.last_ts,
        }  # fmt: skip
    return out


def _write(tmp: Path, lines: list[dict[str, Any]], parts: int = 3) -> list[str]:
    files = []
    for i in range(parts):
        path = tmp / f"archive/dt=2025-11-25/hour=06/part-{i}.jsonl.gz"
        path.parent.mkdir(parents=True, exist_ok=True)
        body = "".join(json.dumps(line, ensure_ascii=False) + "\n" for line in lines[i::parts])
        path.write_bytes(gzip.compress(body.encode()))
        files.append(str(path))
    return files


def _rows(db: duckdb.DuckDBPyConnection, sql: str) -> dict[tuple[str, str, str, int], dict[str, Any]]:
    cursor = db.execute(sql)
    names = [c[0] for c in cursor.description]
    assert tuple(names) == rollup_sql.RESULT_COLUMNS
    rows = [rollup_sql.decode_row(dict(zip(names, r, strict=True))) for r in cursor.fetchall()]
    return {(r["device_id"], r["metric"], r["unit"], r["hour_ms"]): r for r in rows}


def _assert_same(got: dict[Any, dict[str, Any]], want: dict[Any, dict[str, Any]]) -> None:
    assert got.keys() == want.keys()
    for key, w in want.items():
        g = dict(got[key])
        for field in ("first", "last"):  # same value and same type (bool is not a number)
            assert type(g[field]) is type(w[field]) or (
                isinstance(w[field], int | float) and type(g[field]) is float and not isinstance(w[field], bool)
            ), (key, field, g, w)
        if w["numbers"]:
            bound = rollup_sql.sum_tolerance(w["numbers"], max(abs(w["min"]), abs(w["max"])))
            assert abs(g["sum"] - w["sum"]) <= bound, (key, g, w)
            assert abs(g["mean"] - w["mean"]) <= bound / w["numbers"], (key, g, w)
            g["sum"], g["mean"] = w["sum"], w["mean"]
        assert g == w, key


@pytest.mark.parametrize("seed", range(8))
def test_duckdb_rollup_of_json_lines_and_parquet_equals_the_definition(seed: int, tmp_path: Path) -> None:
    rng = random.Random(seed)
    lines = _archive(rng)
    # Readings of the next hour in the same files: the query keeps only its hour.
    lines += [{**line, "ts": line["ts"] + HOUR_MS} for line in lines[:20]]
    files = _write(tmp_path, lines)
    want = expected(lines, HOUR)
    assert want, "the random archive has readings"

    db = duckdb.connect()
    source = rollup_sql.duckdb_lines_source(files)
    _assert_same(_rows(db, rollup_sql.rollup_json_sql("duckdb", HOUR, source)), want)

    parquet = tmp_path / "compact/dt=2025-11-25/hour=06/part-0.parquet"
    parquet.parent.mkdir(parents=True)
    db.execute(rollup_sql.compact_copy_sql(HOUR, str(parquet), source))
    compact = db.execute(f"SELECT count(*) FROM read_parquet('{parquet}')").fetchone()
    identities = {(x["device_id"], x["metric"], x["unit"], x["ts"]) for x in lines if HOUR <= x["ts"] < HOUR + HOUR_MS}
    assert compact is not None and compact[0] == len(identities)  # one version per identity
    _assert_same(_rows(db, rollup_sql.rollup_parquet_sql("duckdb", HOUR, f"read_parquet('{parquet}')")), want)


def test_versions_follow_version_key_types_and_received_at(tmp_path: Path) -> None:
    ts = HOUR + 1000
    base = {"device_id": "d", "metric": "m", "unit": "", "ts": ts}
    lines = [
        {**base, "value": 21.5, "received_at": 5},
        {**base, "value": "21.5", "received_at": 5},  # same received_at: a string beats a number
        {**base, "ts": ts + 1, "value": True, "received_at": None},
        {**base, "ts": ts + 1, "value": 3, "received_at": 1},  # any received_at beats a missing one
        {**base, "ts": ts + 2, "value": False, "received_at": 9},
    ]
    files = _write(tmp_path, lines, parts=1)
    got = _rows(duckdb.connect(), rollup_sql.rollup_json_sql("duckdb", HOUR, rollup_sql.duckdb_lines_source(files)))
    row = got[("d", "m", "", HOUR)]
    assert (row["count"], row["numbers"], row["first"], row["last"], row["sum"]) == (3, 1, "21.5", False, 3.0)
    assert row == expected(lines, HOUR)[("d", "m", "", HOUR)]


def test_the_trino_dialect_reads_lines_as_text_and_prunes_the_partition() -> None:
    sql = rollup_sql.rollup_json_sql("trino", HOUR)
    assert "FROM iotcloud_archive_lines WHERE dt = '2025-11-25' AND \"hour\" = '06'" in sql
    assert "json_format(json_extract(line, '$.value'))" in sql and "min_by(" in sql and "fsum" not in sql
    unload = rollup_sql.compact_unload_sql(HOUR, "bkt")
    assert "TO 's3://bkt/compact/dt=2025-11-25/hour=06/'" in unload and "compression = 'ZSTD'" in unload
    with pytest.raises(ValueError):
        rollup_sql.rollup_json_sql("trino", HOUR + 1)
