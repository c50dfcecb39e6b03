"""device_sim: report arithmetic (percentiles, rates, merges, exit code) and verify
comparison, on hand-computed data."""

from __future__ import annotations

import json
from typing import Any

import pytest

from device_sim.model import Identity, Value
from device_sim.report import (
    Stats,
    build_report,
    exit_code,
    failure_reasons,
    latency_summary,
    merge_counts,
    merge_stats,
    percentile,
    rate,
)
from device_sim.verify import VerifyResult, compare_readings, values_equal

# ----------------------------------------------------------------- percentiles


def test_percentile_linear_interpolation() -> None:
    data = [10.0, 20.0, 30.0, 40.0, 50.0]
    # rank = (n - 1) * p / 100 = 4p/100
    assert percentile(data, 0) == 10.0
    assert percentile(data, 50) == 30.0
    assert percentile(data, 95) == pytest.approx(48.0)  # rank 3.8: 40 + 0.8 * 10
    assert percentile(data, 99) == pytest.approx(49.6)  # rank 3.96
    assert percentile(data, 100) == 50.0
    assert percentile([4.0, 1.0, 3.0, 2.0], 50) == 2.5  # unsorted input, rank 1.5
    assert percentile([7.0], 99) == 7.0
    assert percentile([], 50) is None
    with pytest.raises(ValueError):
        percentile(data, 101)


def test_latency_summary() -> None:
    values = [float(v) for v in range(1, 101)]  # 1..100
    summary = latency_summary(values)
    assert summary == {"p50": 50.5, "p95": 95.05, "p99": 99.01, "max": 100.0}
    assert latency_summary([]) == {"p50": None, "p95": None, "p99": None, "max": None}


def test_rate() -> None:
    assert rate(300, 10.0) == 30.0
    assert rate(1, 3.0) == 0.333
    assert rate(5, 0.0) == 0.0
    assert rate(5, -1.0) == 0.0


# ----------------------------------------------------------------- merging


def test_merge_counts() -> None:
    assert merge_counts({"a": 1, "b": 2}, {"b": 3, "c": 4}) == {"a": 1, "b": 5, "c": 4}
    assert merge_counts({}, {}) == {}
    assert list(merge_counts({"z": 1}, {"a": 1})) == ["a", "z"]


def test_merge_stats() -> None:
    a = Stats(records_sent=3, readings_sent=9, retries=1, latencies_ms=[1.0, 2.0])
    a.count_rejection("validation_failed", expected=True)
    b = Stats(records_sent=2, readings_sent=4, server_errors=2, latencies_ms=[3.0])
    b.count_rejection("validation_failed", expected=True)
    b.count_rejection("unauthorized", expected=False)
    total = merge_stats([a, b])
    assert (total.records_sent, total.readings_sent) == (5, 13)
    assert (total.retries, total.server_errors) == (1, 2)
    assert total.latencies_ms == [1.0, 2.0, 3.0]
    assert total.rejected_expected == {"validation_failed": 2}
    assert total.rejected_unexpected == {"unauthorized": 1}
    assert a.latencies_ms == [1.0, 2.0]  # inputs untouched
    assert merge_stats([]) == Stats()


# ----------------------------------------------------------------- report / exit code


def sample_stats() -> Stats:
    s = Stats(
        records_generated=100,
        records_sent=100,
        readings_sent=300,
        records_acked=90,
        readings_acked=270,
        server_accepted=270,
        records_rejected=10,
        readings_rejected=30,
        requests=25,
        retries=4,
        throttled=3,
        server_errors=1,
        latencies_ms=[10.0, 20.0, 30.0, 40.0, 50.0],
    )
    s.count_rejection("validation_failed", expected=True)
    s.count_rejection("malformed_payload", expected=True)
    return s


def test_build_report_fields_and_arithmetic() -> None:
    report = build_report(sample_stats(), devices=5, fmt="json", duration_s=9.0, seed=1)
    for key in (
        "devices", "format", "duration_s", "records_sent", "readings_sent", "records_acked",
        "readings_acked", "requests", "rejected_by_code", "rejected_expected",
        "rejected_unexpected", "retries", "server_errors", "dropped_buffer", "latency_ms",
        "readings_per_second", "verify",
    ):  # fmt: skip
        assert key in report
    assert report["devices"] == 5 and report["format"] == "json"
    assert report["readings_per_second"] == 30.0  # 270 / 9
    assert report["records_per_second"] == 10.0
    assert report["latency_ms"] == {"p50": 30.0, "p95": 48.0, "p99": 49.6, "max": 50.0}
    assert report["rejected_by_code"] == {"malformed_payload": 1, "validation_failed": 1}
    assert report["rejected_expected"] == 2 and report["rejected_unexpected"] == 0
    assert report["verify"] is None
    assert report["ok"] is True and report["exit_code"] == 0 and report["failures"] == []
    json.dumps(report)  # serialisable


def test_exit_code_rules() -> None:
    clean = build_report(sample_stats(), devices=1, fmt="json", duration_s=1.0)
    assert exit_code(clean) == 0

    s = sample_stats()
    s.count_rejection("unauthorized", expected=False)
    bad = build_report(s, devices=1, fmt="json", duration_s=1.0)
    assert exit_code(bad) == 1 and bad["rejected_unexpected_by_code"] == {"unauthorized": 1}

    s = sample_stats()
    s.unrecovered_server_errors = 1
    s.unrecovered_failures = 1
    assert exit_code(build_report(s, devices=1, fmt="json", duration_s=1.0)) == 1

    s = sample_stats()
    s.malformed_accepted = 1
    assert exit_code(build_report(s, devices=1, fmt="json", duration_s=1.0)) == 1

    s = sample_stats()
    s.dropped_buffer = 5  # dropping under a full buffer is designed behaviour
    assert exit_code(build_report(s, devices=1, fmt="json", duration_s=1.0)) == 0

    missing = VerifyResult(checked_devices=1, readings_expected=3, readings_found=2, missing=1)
    r = build_report(sample_stats(), devices=1, fmt="json", duration_s=1.0,
                     verify=missing.as_dict())  # fmt: skip
    assert exit_code(r) == 1
    assert any("missing" in f for f in failure_reasons(r))

    dup_only = VerifyResult(checked_devices=1, readings_expected=3, readings_found=3, duplicated=1)
    r = build_report(sample_stats(), devices=1, fmt="json", duration_s=1.0,
                     verify=dup_only.as_dict())  # fmt: skip
    assert exit_code(r) == 0


# ----------------------------------------------------------------- verify comparison


def row(metric: str, ts: int, value: Any, unit: str = "") -> dict[str, Any]:
    return {"metric": metric, "unit": unit, "ts": ts, "value": value}


def test_compare_readings_counts_missing_duplicated_unexpected() -> None:
    expected: dict[Identity, Value] = {
        ("temp", "Cel", 1): 20.5,
        ("temp", "Cel", 2): 20.6,
        ("door", "", 1): "open",
        ("on", "", 1): True,
    }
    found = [
        row("temp", 1, 20.5, "Cel"),
        row("temp", 1, 20.5, "Cel"),  # duplicate
        row("door", 1, "open"),
        row("on", 1, True),
        row("temp", 3, 1.0, "Cel"),  # never sent
        row("temp", 2, 20.6),  # wrong unit: a different identity
    ]
    r = compare_readings(expected, found, device="d1")
    assert r.readings_expected == 4
    assert r.readings_found == 3
    assert r.missing == 1  # ("temp","Cel",2)
    assert r.duplicated == 1
    assert r.unexpected == 2
    assert r.value_mismatches == 0
    kinds = {e["kind"] for e in r.examples}
    assert kinds == {"missing", "duplicated", "unexpected"}


def test_compare_readings_uncertain_are_not_unexpected() -> None:
    r = compare_readings({}, [row("x", 5, 1)], uncertain={("x", "", 5)})
    assert r.unexpected == 0 and r.uncertain_found == 1


def test_compare_readings_value_tolerance() -> None:
    expected: dict[Identity, Value] = {("x", "", 1): 1000.0, ("y", "", 1): 1000.0}
    r = compare_readings(expected, [row("x", 1, 1000.0000001), row("y", 1, 1000.001)])
    assert r.readings_found == 2 and r.value_mismatches == 1


def test_values_equal() -> None:
    assert values_equal(1.0, 1.0 + 1e-12)
    assert values_equal(21, 21.0)
    assert not values_equal(1.0, 1.0001)
    assert values_equal(0.0, 0)
    assert not values_equal(True, 1)  # bools are not numbers
    assert not values_equal(1, True)
    assert values_equal(False, False)
    assert values_equal("open", "open") and not values_equal("open", "Open")
    assert not values_equal("1", 1)
    assert not values_equal(1.0, None)


def test_verify_result_add_and_dict() -> None:
    total = VerifyResult()
    total.add(VerifyResult(checked_devices=1, readings_expected=5, readings_found=5))
    total.add(VerifyResult(checked_devices=1, readings_expected=2, missing=2))
    d = total.as_dict()
    assert d["checked_devices"] == 2 and d["readings_expected"] == 7
    assert d["readings_found"] == 5 and d["missing"] == 2
    for key in ("checked_devices", "readings_expected", "readings_found", "missing",
                "duplicated", "unexpected"):  # fmt: skip
        assert key in d
