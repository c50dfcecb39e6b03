from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from chalicelib.domain.mapreduce import run_local
from chalicelib.jobs.streaming import main

ROOT = Path(__file__).resolve().parents[2]
H9 = 1_795_597_200_000  # 2026-11-25T09:00:00Z


def reading(device="d1", metric="temp", unit="Cel", ts=H9, value=21.5, received_at=H9 + 100):
    return {"device_id": device, "metric": metric, "unit": unit, "ts": ts, "value": value, "received_at": received_at}


def jsonl(*lines):
    return "".join(json.dumps(x, ensure_ascii=False) + "\n" for x in lines)


def run(job, phase, text):
    out = io.StringIO()
    code = main([job, phase], stdin=io.StringIO(text), stdout=out)
    return code, out.getvalue()


def pairs(text):
    result = []
    for line in text.splitlines():
        assert line.count("\t") == 1, line
        key, value = line.split("\t")
        result.append((key, json.loads(value)))
    return result


def pipeline(job, text):
    code, mapped = run(job, "map", text)
    assert code == 0
    code, reduced = run(job, "reduce", "".join(sorted(mapped.splitlines(keepends=True))))
    assert code == 0
    return [json.loads(x) for x in reduced.splitlines()]


def test_rollup_map_writes_series_hour_key_and_ts_received_at_value():
    code, out = run("rollup", "map", jsonl(reading(), reading(metric="door", unit="", value="door open")))
    assert code == 0
    assert out.endswith("\n")
    assert pairs(out) == [
        ('["d1","temp","Cel","2026-11-25T09"]', [H9, H9 + 100, 21.5]),
        ('["d1","door","","2026-11-25T09"]', [H9, H9 + 100, "door open"]),  # strings whole: first/last
    ]


def test_index_map_writes_each_distinct_word_once():
    code, out = run("index", "map", jsonl(reading(metric="door", unit="", value="Door open, door!")))
    assert code == 0
    assert pairs(out) == [("door", ["d1", "door", "", H9]), ("open", ["d1", "door", "", H9])]


def test_index_map_ignores_numbers_and_booleans():
    assert run("index", "map", jsonl(reading(value=1), reading(value=True))) == (0, "")


def test_dedupe_map_keys_by_identity_and_keeps_the_line():
    line = reading(metric="note", unit="", value="tab\there\nnewline")
    code, out = run("dedupe", "map", jsonl(line))
    assert code == 0
    assert out.count("\n") == 1 and out.count("\t") == 1  # the string's tab and newline are escaped
    assert pairs(out) == [('["d1","note","",1795597200000]', line)]


def test_map_skips_blank_lines_and_accepts_crlf():
    text = "\n  \n" + json.dumps(reading()) + "\r\n\n"
    code, out = run("rollup", "map", text)
    assert code == 0 and len(pairs(out)) == 1


def test_reduce_writes_one_json_row_per_key():
    text = "".join(
        [
            '["d1","door","","2026-11-25T09"]\t[1795597200000,1,"open"]\n',  # no numbers: a row all the same
            '["d1","temp","Cel","2026-11-25T09"]\t[1795597200000,1,20]\n',
            '["d1","temp","Cel","2026-11-25T09"]\t[1795597201000,1,22.5]\n',
            "\n",
            '["d2","temp","Cel","2026-11-25T10"]\t[1795600800000,1,19]\n',
        ]
    )
    code, out = run("rollup", "reduce", text)
    assert code == 0
    rows = [json.loads(x) for x in out.splitlines()]
    assert [(r["device_id"], r["metric"], r["hour"], r["count"], r["numbers"], r["sum"]) for r in rows] == [
        ("d1", "door", "2026-11-25T09", 1, 0, 0.0),
        ("d1", "temp", "2026-11-25T09", 2, 2, 42.5),
        ("d2", "temp", "2026-11-25T10", 1, 1, 19.0),
    ]
    assert list(rows[0]) == [
        "device_id", "metric", "unit", "hour", "count", "numbers", "min", "max", "sum", "mean",
        "first", "first_ts", "last", "last_ts",
    ]  # fmt: skip
    assert (rows[0]["min"], rows[0]["mean"], rows[0]["first"], rows[0]["last"]) == (None, None, "open", "open")


def test_index_reduce_row():
    text = 'open\t["d1","door","",2]\nopen\t["d1","door","",1]\nopen\t["d1","door","",2]\nopen\t["d2","door","",5]\n'
    assert run("index", "reduce", text) == (
        0,
        '{"word":"open","postings":[{"device_id":"d1","metric":"door","count":2,"first_ts":1,"last_ts":2},'
        '{"device_id":"d2","metric":"door","count":1,"first_ts":5,"last_ts":5}],"count":3,"first_ts":1,"last_ts":5}\n',
    )


def test_dedupe_reduce_writes_archive_lines_that_map_again():
    old, new = reading(value=1, received_at=5), reading(value=2, received_at=6)
    rows = pipeline("dedupe", jsonl(old, new, old))
    assert rows == [new]
    assert pipeline("rollup", jsonl(*rows))[0]["sum"] == 2.0


def test_reduce_refuses_unsorted_input(capsys):
    text = 'open\t["d1","door","",1]\ndoor\t["d1","door","",1]\nopen\t["d1","door","",2]\n'
    code, _ = run("index", "reduce", text)
    assert code == 1
    assert "LC_ALL=C sort" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("phase", "text", "message"),
    [
        ("map", "not json\n", "line 1 is not JSON"),
        ("map", "\n[1, 2]\n", "line 2 is not a JSON object"),
        ("map", '{"device_id": "d1"}\n', "archive line without 'metric'"),
        ("reduce", "no tab here\n", "line 1 has no tab"),
    ],
)
def test_bad_input_fails_with_a_message(capsys, phase, text, message):
    assert run("rollup", phase, text)[0] == 1
    assert message in capsys.readouterr().err


def test_keys_group_and_order_like_run_local_whatever_the_characters():
    # "!" sorts just after space and "\x01" before tab: neither may split or reorder a group.
    lines = [
        reading(device=device, unit=unit, ts=H9 + n, value=n)
        for n, (device, unit) in enumerate(
            [(d, u) for d in ("a", "a!", "a-b", "a.b", "b") for u in ("", "!", "%", "Cel", "\x01", "é")] * 3
        )
    ]
    text = jsonl(*lines)
    _, mapped = run("rollup", "map", text)
    assert all(ord(c) > 0x1F for key, _ in pairs(mapped) for c in key)
    assert pipeline("rollup", text) == run_local("rollup", lines)


@pytest.mark.skipif(shutil.which("sort") is None, reason="no sort command")
def test_shell_pipeline_in_the_c_locale_keeps_utf8():
    lines = [reading(metric="msg", unit="", value="Tür offen 🚪", ts=H9 + n) for n in range(3)]
    command = (
        f"{sys.executable} -m chalicelib.jobs.streaming dedupe map | LC_ALL=C sort"
        f" | {sys.executable} -m chalicelib.jobs.streaming dedupe reduce"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONIOENCODING", "PYTHONUTF8")}
    env |= {"LC_ALL": "C", "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        ["bash", "-o", "pipefail", "-c", command],
        input=jsonl(*lines).encode(),
        capture_output=True,
        cwd=ROOT,
        env=env,
        check=True,
    )
    assert [json.loads(x) for x in done.stdout.decode("utf-8").splitlines()] == lines


def test_usage_errors_exit_2():
    done = subprocess.run(
        [sys.executable, "-m", "chalicelib.jobs.streaming", "wordcount", "map"],
        capture_output=True,
        cwd=ROOT,
        check=False,
    )
    assert done.returncode == 2
    assert b"invalid choice" in done.stderr
