from __future__ import annotations

import gzip
import json
import os
import random
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest

from chalicelib.domain.archive import encode_lines, partition_of
from chalicelib.domain.mapreduce import (
    DEDUPE,
    INDEX,
    ROLLUP,
    ArchiveLineError,
    Row,
    TooManyKeysError,
    dedupe,
    hour_of,
    hour_start_ms,
    index_map,
    index_reduce,
    partial_of_row,
    rollup_map,
    rollup_reduce,
    rollup_row,
    run_local,
    words,
)
from chalicelib.domain.rollups import partial_of
from infra import analytics_sql
from infra.analytics_sql import ARCHIVE_VARIABLE, INDEX_SQL, ROLLUP_SQL

ROOT = Path(__file__).resolve().parents[2]
H9 = 1_795_597_200_000  # 2026-11-25T09:00:00Z
H10 = H9 + 3_600_000
S = 1000  # one second in ms


def line(device, metric, unit, ts, value, received_at=None):
    return {
        "device_id": device,
        "metric": metric,
        "unit": unit,
        "ts": ts,
        "value": value,
        "received_at": ts + 500 if received_at is None else received_at,
    }


def rollup(device, metric, unit, hour, points):
    """The row by hand: points are the resolved (ts, value) pairs of the series-hour."""
    points = sorted(points)
    nums = [v for _, v in points if type(v) in (int, float)]
    total = float(sum(nums))
    return {
        "device_id": device,
        "metric": metric,
        "unit": unit,
        "hour": hour,
        "count": len(points),
        "numbers": len(nums),
        "min": min(nums) if nums else None,
        "max": max(nums) if nums else None,
        "sum": total,
        "mean": total / len(nums) if nums else None,
        "first": points[0][1],
        "first_ts": points[0][0],
        "last": points[-1][1],
        "last_ts": points[-1][0],
    }


# rollups, by hand -------------------------------------------------------------------------

ROLLUP_LINES = [
    line("d1", "temp", "Cel", H9 + 1 * S, 20),
    line("d1", "temp", "Cel", H9 + 2 * S, 22.5),
    line("d1", "temp", "Cel", H9 + 2 * S, 22.5),  # the same line twice: counted once
    line("d1", "temp", "Cel", H9 + 3 * S, 21.0),
    line("d1", "temp", "Cel", H10 - 1, 23),  # last millisecond of 09
    line("d1", "temp", "Cel", H10, 19.5),  # first millisecond of 10
    line("d1", "temp", "Cel", H10 + 60 * S, 30, received_at=H10 + 61 * S),  # superseded ...
    line("d1", "temp", "Cel", H10 + 60 * S, 18, received_at=H10 + 65 * S),  # ... by this one
    line("d1", "temp", "degF", H9 + 1 * S, 70),  # another unit, another series
    line("d2", "temp", "Cel", H9 + 1 * S, 25),
    line("d1", "door", "", H9 + 4 * S, "open"),  # strings and booleans: no rollup
    line("d1", "alarm", "", H9 + 4 * S, True),
    line("d2", "level", "%", H9 + 5 * S, 5, received_at=H9 + 6 * S),  # superseded by a string: not counted
    line("d2", "level", "%", H9 + 5 * S, "sensor fault", received_at=H9 + 7 * S),
    line("d2", "level", "%", H9 + 6 * S, 7),
    line("d2", "level", "%", H9 + 7 * S, 3, received_at=H9 + 8 * S),  # same received_at: the greater value wins
    line("d2", "level", "%", H9 + 7 * S, 4, received_at=H9 + 8 * S),
    line("d2", "level", "%", H9 + 8 * S, False, received_at=H9 + 9 * S),  # a tie between bool and number:
    line("d2", "level", "%", H9 + 8 * S, 9, received_at=H9 + 9 * S),  # the number wins
]

ROLLUP_ROWS = [
    rollup("d1", "alarm", "", "2026-11-25T09", [(H9 + 4 * S, True)]),
    rollup("d1", "door", "", "2026-11-25T09", [(H9 + 4 * S, "open")]),
    rollup("d1", "temp", "Cel", "2026-11-25T09", [(H9 + S, 20), (H9 + 2 * S, 22.5), (H9 + 3 * S, 21.0), (H10 - 1, 23)]),
    rollup("d1", "temp", "Cel", "2026-11-25T10", [(H10, 19.5), (H10 + 60 * S, 18)]),
    rollup("d1", "temp", "degF", "2026-11-25T09", [(H9 + S, 70)]),
    rollup(
        "d2",
        "level",
        "%",
        "2026-11-25T09",
        [(H9 + 5 * S, "sensor fault"), (H9 + 6 * S, 7), (H9 + 7 * S, 4), (H9 + 8 * S, 9)],
    ),
    rollup("d2", "temp", "Cel", "2026-11-25T09", [(H9 + S, 25)]),
]


def test_rollups_by_hand():
    assert run_local(ROLLUP, ROLLUP_LINES) == ROLLUP_ROWS


def test_rollups_do_not_depend_on_line_order():
    assert run_local(ROLLUP, reversed(ROLLUP_LINES)) == ROLLUP_ROWS
    assert run_local(ROLLUP, iter(random.Random(3).sample(ROLLUP_LINES, len(ROLLUP_LINES)))) == ROLLUP_ROWS


def test_rollup_keeps_int_and_float_as_they_are():
    row = run_local(ROLLUP, ROLLUP_LINES)[2]
    assert (row["min"], type(row["min"]), row["max"], type(row["max"])) == (20, int, 23, int)
    assert type(row["sum"]) is float and type(row["mean"]) is float


def test_rollup_of_a_series_without_numbers_counts_its_readings():
    key, value = next(rollup_map(line("d1", "door", "", H9, "open")))
    row = rollup_reduce(key, [value])
    assert row is not None
    assert (row["count"], row["numbers"], row["min"], row["max"], row["mean"]) == (1, 0, None, None, None)
    assert (row["first"], row["last"]) == ("open", "open")


def test_rollup_row_is_the_partial_of_the_contract():
    rows = run_local(ROLLUP, ROLLUP_LINES)
    level = next(r for r in rows if r["metric"] == "level")
    assert partial_of_row(level) == partial_of(
        [(H9 + 5 * S, "sensor fault"), (H9 + 6 * S, 7), (H9 + 7 * S, 4), (H9 + 8 * S, 9)]
    )
    assert rollup_row("d2", "level", "%", level["hour"], partial_of_row(level)) == level
    assert hour_start_ms(level["hour"]) == H9


def test_hour_buckets_are_utc():
    assert hour_of(H9) == "2026-11-25T09"
    assert hour_of(H10 - 1) == "2026-11-25T09"
    assert hour_of(H10) == "2026-11-25T10"
    assert hour_of(0) == "1970-01-01T00"


# inverted index, by hand ------------------------------------------------------------------

T1, T2, T3, T4, T5 = (H9 + n * S for n in range(1, 6))

INDEX_LINES = [
    line("d1", "door", "", T1, "door open"),
    line("d1", "door", "", T1, "door open"),  # the same line twice: counted once
    line("d1", "door", "", T2, "Door OPEN again"),
    line("d1", "door", "", T3, "Door-open!"),
    line("d2", "status", "", T3, "battery low"),
    line("d2", "door", "", T4, "open open OPEN"),  # a word counts once per reading
    line("d3", "status", "", T2, "ghost reading", received_at=T2 + 1),  # superseded: not indexed
    line("d3", "status", "", T2, "battery ok", received_at=T2 + 2),
    line("d3", "status", "", T5, "x" * 65 + " ok"),  # words over 64 characters are skipped
    line("d1", "door", "", T5, True),  # neither booleans nor numbers are indexed
    line("d1", "door", "", T5 + S, 42),
]


def posting(device, metric, count, first_ts, last_ts):
    return {"device_id": device, "metric": metric, "count": count, "first_ts": first_ts, "last_ts": last_ts}


def word_row(word, *postings):
    return {
        "word": word,
        "postings": list(postings),
        "count": sum(p["count"] for p in postings),
        "first_ts": min(p["first_ts"] for p in postings),
        "last_ts": max(p["last_ts"] for p in postings),
    }


INDEX_ROWS = [
    word_row("again", posting("d1", "door", 1, T2, T2)),
    word_row("battery", posting("d2", "status", 1, T3, T3), posting("d3", "status", 1, T2, T2)),
    word_row("door", posting("d1", "door", 3, T1, T3)),
    word_row("low", posting("d2", "status", 1, T3, T3)),
    word_row("ok", posting("d3", "status", 2, T2, T5)),
    word_row("open", posting("d1", "door", 3, T1, T3), posting("d2", "door", 1, T4, T4)),
]


def test_inverted_index_by_hand():
    assert run_local(INDEX, INDEX_LINES) == INDEX_ROWS


def test_index_reduce_alone_counts_identical_duplicates_once():
    values = [v for ln in INDEX_LINES[:2] for k, v in index_map(ln) if k == "door"]
    assert len(values) == 2
    assert index_reduce("door", values) == word_row("door", posting("d1", "door", 1, T1, T1))


def test_words():
    assert words("Door OPEN again, door!") == ["again", "door", "open"]
    assert words("temp=21.5C") == ["21", "5c", "temp"]
    assert words("Überhitzung") == ["berhitzung"]
    assert words("a" * 64 + " " + "b" * 65) == ["a" * 64]
    assert words("") == []


def test_dedupe_keeps_the_newest_version_of_each_identity():
    kept = list(dedupe(ROLLUP_LINES))
    assert len(kept) == len({(x["device_id"], x["metric"], x["unit"], x["ts"]) for x in ROLLUP_LINES})
    by_identity = {(x["device_id"], x["metric"], x["ts"]): x["value"] for x in kept}
    assert by_identity[("d1", "temp", H10 + 60 * S)] == 18
    assert by_identity[("d2", "level", H9 + 5 * S)] == "sensor fault"
    assert by_identity[("d2", "level", H9 + 7 * S)] == 4
    assert run_local(DEDUPE, ROLLUP_LINES) == sorted(
        kept, key=lambda x: json.dumps([x["device_id"], x["metric"], x["unit"], x["ts"]], separators=(",", ":"))
    )


def test_missing_received_at_is_the_oldest_version():
    lines = [line("d1", "m", "", H9, 1, received_at=None) | {"received_at": None}, line("d1", "m", "", H9, 2, 5)]
    assert [x["value"] for x in dedupe(lines)] == [2]
    assert run_local(ROLLUP, lines)[0]["sum"] == 2.0


@pytest.mark.parametrize(
    "bad",
    [
        {"device_id": "d1", "metric": "m", "unit": "", "ts": H9},
        line("d1", "m", "", H9, None),
        line("d1", "m", "", H9, {"nested": 1}),
        line("d1", "m", "", H9, float("nan")),
        line("d1", "m", "", H9, 1) | {"ts": str(H9)},
        line("d1", "m", "", H9, 1) | {"ts": True},
        line(1, "m", "", H9, 1),
    ],
)
def test_malformed_lines_are_refused(bad):
    with pytest.raises(ArchiveLineError):
        run_local(ROLLUP, [bad])


def test_too_many_keys():
    lines = [line("d1", "m", "", H9 + n * 3_600_000, 1) for n in range(5)]
    assert len(run_local(ROLLUP, lines, max_keys=5)) == 5
    with pytest.raises(TooManyKeysError):
        run_local(ROLLUP, lines, max_keys=4)


def test_sql_documents_are_generated_from_analytics_sql():
    for relative, text in analytics_sql.render_docs().items():
        assert (ROOT / relative).read_text(encoding="utf-8") == text, f"run python -m infra.analytics_sql ({relative})"


# three-way agreement: run_local == Hadoop Streaming commands == DuckDB ---------------------

PHRASES = [
    "door open",
    "Door OPEN again",
    "door closed",
    "battery low",
    "Battery LOW!",
    "tamper: door forced open",
    "Überhitzung erkannt",
    "İstanbul gateway offline",
    "code E42; retry 3",
    "y" * 70 + " long token",
    "",
]


def synthetic_lines(seed: int = 20261125, n: int = 20_000) -> list[Row]:
    """3 devices x 4 metrics over 5 hours; duplicates, conflicting versions, mixed types."""
    rnd = random.Random(seed)
    start = H9 - 2 * 3_600_000

    def value_of(metric):
        if metric == "temp":
            return round(rnd.uniform(-10, 40), 3) if rnd.random() < 0.8 else rnd.randint(-10, 40)
        if metric == "humidity":
            return rnd.randint(20, 95)
        if metric == "event":
            return rnd.choice(PHRASES)
        return rnd.choice([True, False, rnd.randint(0, 3), 2.5, "eco Mode", "BOOST"])  # mode: mixed types

    units = {"temp": "Cel", "humidity": "%RH", "event": "", "mode": ""}
    lines = []
    for _ in range(n):
        metric = rnd.choice(list(units))
        ts = start + rnd.randrange(5 * 3_600_000 // 50) * 50  # coarse times: some identities meet by chance
        lines.append(line(f"dev-{rnd.randint(1, 3)}", metric, units[metric], ts, value_of(metric)))
    extra = []
    for original in rnd.sample(lines, n // 20):  # identical duplicates
        extra.append(dict(original))
    for original in rnd.sample(lines, n // 30):  # same identity, another value, older, newer or tied
        received_at = original["received_at"] + rnd.choice([-1000, 0, 0, 1000])
        extra.append(original | {"value": value_of(rnd.choice(list(units))), "received_at": received_at})
    lines += extra
    rnd.shuffle(lines)
    return lines


@pytest.fixture(scope="module")
def archive(tmp_path_factory) -> tuple[list[Path], list[Row]]:
    """The synthetic lines as the archiver writes them: gzip JSON Lines, by hour partition, in batches."""
    root = tmp_path_factory.mktemp("archive")
    lines = synthetic_lines()
    partitions: dict[str, list[Row]] = {}
    for ln in lines:
        partitions.setdefault(partition_of(ln["ts"]), []).append(ln)
    files = []
    for partition, members in sorted(partitions.items()):
        for batch, first in enumerate(range(0, len(members), 700)):
            path = root / "archive" / partition / f"batch-{batch:03d}.jsonl.gz"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(encode_lines(members[first : first + 700]))
            files.append(path)
    return files, lines


def read_archive(files: list[Path]) -> Iterator[Row]:
    for path in files:
        with gzip.open(path, "rt", encoding="utf-8") as f:
            for text in f:
                yield json.loads(text)


def archive_text(files: list[Path]) -> bytes:
    return b"".join(gzip.decompress(path.read_bytes()) for path in files)


def streaming(*jobs: str, stdin: bytes) -> list[Row]:
    """The jobs' map | LC_ALL=C sort | reduce pipelines, chained, as separate processes."""
    if shutil.which("sort") is None:
        pytest.skip("no sort command")
    command = " | ".join(
        f"{sys.executable} -m chalicelib.jobs.streaming {job} map | LC_ALL=C sort"
        f" | {sys.executable} -m chalicelib.jobs.streaming {job} reduce"
        for job in jobs
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        ["bash", "-o", "pipefail", "-c", command], input=stdin, capture_output=True, cwd=ROOT, env=env, check=False
    )
    assert done.returncode == 0, done.stderr.decode()
    return [json.loads(text) for text in done.stdout.decode().splitlines()]


def duck(sql: str, files: list[Path]) -> list[Row]:
    con = duckdb.connect()
    try:
        con.execute(f"SET VARIABLE {ARCHIVE_VARIABLE} = ?", [[str(p) for p in files]])
        result = con.execute(sql)
        names = [d[0] for d in result.description]
        return [dict(zip(names, row, strict=True)) for row in result.fetchall()]
    finally:
        con.close()


def natural(rows: list[Row]) -> list[Row]:
    return sorted(rows, key=lambda r: (r["device_id"], r["metric"], r["unit"], r["hour"]))


def test_synthetic_archive_has_what_the_agreement_needs(archive):
    files, lines = archive
    identities = {(x["device_id"], x["metric"], x["unit"], x["ts"]) for x in lines}
    assert len(lines) >= 20_000 and len(identities) < len(lines) - 1000
    assert len({f.parent for f in files}) == 5
    values = {type(x["value"]) for x in lines}
    assert values == {int, float, bool, str}


def test_rollups_agree_three_ways(archive):
    files, lines = archive
    local = run_local(ROLLUP, read_archive(files))
    assert len(local) >= 3 * 3 * 5  # temp, humidity and mode of each device and hour, and more
    assert sum(r["count"] for r in local) < len(lines)  # duplicates resolved
    assert sum(r["numbers"] for r in local) < sum(1 for x in lines if type(x["value"]) in (int, float))
    assert any(r["numbers"] == 0 for r in local) and any(isinstance(r["first"], str) for r in local)

    assert streaming(ROLLUP, stdin=archive_text(files)) == local

    from_sql, local = natural(duck(ROLLUP_SQL, files)), natural(local)
    for r in from_sql:  # first and last come out of DuckDB as JSON text, typed
        r["first"], r["last"] = json.loads(r["first"]), json.loads(r["last"])
    exact = [{k: v for k, v in r.items() if k not in ("sum", "mean")} for r in local]
    assert [{k: v for k, v in r.items() if k not in ("sum", "mean")} for r in from_sql] == exact
    sums = [x for r in local for x in (r["sum"], r["mean"]) if x is not None]
    assert [r["mean"] is None for r in from_sql] == [r["mean"] is None for r in local]
    from_sql_sums = [x for r in from_sql for x in (r["sum"], r["mean"]) if x is not None]
    assert from_sql_sums == pytest.approx(sums, rel=1e-9, abs=1e-9)


def test_index_agrees_three_ways(archive):
    files, _ = archive
    local = run_local(INDEX, read_archive(files))
    assert {"door", "open", "battery", "berhitzung", "gateway", "e42"} <= {r["word"] for r in local}
    assert "y" * 70 not in {r["word"] for r in local}

    assert streaming(DEDUPE, INDEX, stdin=archive_text(files)) == local
    assert duck(INDEX_SQL, files) == local


def test_dedupe_agrees_with_the_streaming_command(archive):
    files, _ = archive
    assert streaming(DEDUPE, stdin=archive_text(files)) == run_local(DEDUPE, read_archive(files))
