"""The app's metrics: EMF documents in Lambda (the PutMetricData sink: tests/functional/test_metrics_sink.py)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from chalicelib.adapters.metrics import EmfSink, Metrics, emf_value


def valid_emf(line: str) -> dict[str, Any]:
    """One printed line as an EMF document, checked against the specification's rules:
    https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/CloudWatch_Embedded_Metric_Format_Specification.html"""
    doc = json.loads(line)
    assert isinstance(doc, dict)
    meta = doc["_aws"]
    assert isinstance(meta["Timestamp"], int) and meta["Timestamp"] > 1_600_000_000_000
    assert meta["CloudWatchMetrics"]
    for directive in meta["CloudWatchMetrics"]:
        assert isinstance(directive["Namespace"], str) and directive["Namespace"]
        for dimension_set in directive["Dimensions"]:
            assert 0 < len(dimension_set) <= 30
            assert all(isinstance(doc[name], str) for name in dimension_set)  # a dimension is a string member
        assert 0 < len(directive["Metrics"]) <= 100
        for metric in directive["Metrics"]:
            value = doc[metric["Name"]]  # every metric is a member: a number, or a list of 1-100 numbers
            numbers = value if isinstance(value, list) else [value]
            assert 0 < len(numbers) <= 100
            assert all(isinstance(n, int | float) and not isinstance(n, bool) for n in numbers)
            assert set(metric) <= {"Name", "Unit", "StorageResolution"}
    return doc


def printed(capsys: pytest.CaptureFixture[str]) -> list[dict[str, Any]]:
    return [valid_emf(line) for line in capsys.readouterr().out.splitlines()]


def test_emf_documents_carry_namespace_stage_and_dimensions(capsys: pytest.CaptureFixture[str]) -> None:
    metrics = Metrics("prod", EmfSink())
    metrics.add("IngestRequests", 1)
    metrics.add("ReadingsIngested", 500)
    metrics.add("RejectedRequests", 1, ErrorCode="validation_failed")
    metrics.flush()
    docs = printed(capsys)
    assert len(docs) == 2  # one per dimension set
    plain = next(d for d in docs if "ErrorCode" not in d)
    (directive,) = plain["_aws"]["CloudWatchMetrics"]
    assert directive["Namespace"] == "iotcloud"
    assert directive["Dimensions"] == [["Stage"]]
    assert plain["Stage"] == "prod"
    assert plain["IngestRequests"] == 1
    assert plain["ReadingsIngested"] == 500
    rejected = next(d for d in docs if "ErrorCode" in d)
    assert rejected["ErrorCode"] == "validation_failed"
    assert sorted(rejected["_aws"]["CloudWatchMetrics"][0]["Dimensions"][0]) == ["ErrorCode", "Stage"]


def test_nothing_is_printed_when_nothing_was_measured(capsys: pytest.CaptureFixture[str]) -> None:
    Metrics("prod", EmfSink()).flush()
    assert capsys.readouterr().out == ""


def test_a_failing_sink_never_fails_the_caller() -> None:
    class Broken:
        def publish(self, datums: Any) -> None:
            raise RuntimeError("CloudWatch is down")

        def drain(self) -> None:
            pass

    metrics = Metrics("dev", Broken())
    metrics.add("IngestRequests", 1)
    metrics.flush()  # logged, not raised


def test_emf_documents_follow_the_specification_and_its_limits(capsys: pytest.CaptureFixture[str]) -> None:
    """Timestamp in ms, one directive naming every metric with its unit, at most 100 metrics and 100 values each."""
    metrics = Metrics("prod", EmfSink())
    for n in range(150):
        metrics.add(f"M{n}", n, "Milliseconds")
    for _ in range(250):
        metrics.add("IngestRequests", 1)
    metrics.flush()
    docs = printed(capsys)
    seen: dict[str, list[float]] = {}
    for doc in docs:
        (directive,) = doc["_aws"]["CloudWatchMetrics"]
        assert isinstance(doc["_aws"]["Timestamp"], int) and doc["_aws"]["Timestamp"] > 1_600_000_000_000
        assert directive["Dimensions"] == [["Stage"]] and doc["Stage"] == "prod"
        assert 0 < len(directive["Metrics"]) <= 100
        for metric in directive["Metrics"]:
            assert metric["Unit"] == ("Count" if metric["Name"] == "IngestRequests" else "Milliseconds")
            value = doc[metric["Name"]]
            seen.setdefault(metric["Name"], []).extend(value if isinstance(value, list) else [value])
    assert seen["IngestRequests"] == [1.0] * 250
    assert {name: values for name, values in seen.items() if name != "IngestRequests"} == {
        f"M{n}": [float(n)] for n in range(150)
    }


def test_an_ingest_requests_metrics_are_one_compact_line(capsys: pytest.CaptureFixture[str]) -> None:
    """What the request path prints on every invocation: one document, single values as numbers,
    no spaces, no float noise; the values CloudWatch receives are what was measured."""
    metrics = Metrics("prod", EmfSink())
    metrics.add("IngestRequests", 1)
    metrics.add("ReadingsIngested", 5)
    metrics.add("BatchSize", 1)
    metrics.add("IngestLatency", 161.8086110000263, "Milliseconds")
    metrics.flush()
    line = capsys.readouterr().out
    assert line.count("\n") == 1 and " " not in line
    (doc,) = [valid_emf(line)]
    assert {k: v for k, v in doc.items() if k != "_aws"} == {
        "Stage": "prod",
        "IngestRequests": 1,
        "ReadingsIngested": 5,
        "BatchSize": 1,
        "IngestLatency": 161.809,
    }
    assert '"IngestRequests":1,' in line  # not 1.0, not [1]
    (directive,) = doc["_aws"]["CloudWatchMetrics"]
    assert [(m["Name"], m["Unit"]) for m in directive["Metrics"]] == [
        ("IngestRequests", "Count"),
        ("ReadingsIngested", "Count"),
        ("BatchSize", "Count"),
        ("IngestLatency", "Milliseconds"),
    ]


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        (1.0, "1"),
        (0.0, "0"),
        (-3.0, "-3"),
        (500.0, "500"),
        (123456789.0, "123457000"),
        (0.1 + 0.2, "0.3"),
        (12.3456789, "12.3457"),
        (1e-9, "1e-09"),
        (1e300, "1e+300"),
        (2.0**60, "1.15292e+18"),
    ],
)
def test_values_keep_six_significant_digits(value: float, shown: str) -> None:
    printed_value = json.dumps(emf_value(value))
    assert printed_value == shown
    assert abs(float(printed_value) - value) <= abs(value) * 5e-6
