"""The app's metrics: EMF documents in Lambda (the PutMetricData sink: tests/functional/test_metrics_sink.py)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from chalicelib.adapters.metrics import EmfSink, Metrics


def test_emf_documents_carry_namespace_stage_and_dimensions(capsys: pytest.CaptureFixture[str]) -> None:
    metrics = Metrics("prod", EmfSink())
    metrics.add("IngestRequests", 1)
    metrics.add("ReadingsIngested", 500)
    metrics.add("RejectedRequests", 1, ErrorCode="validation_failed")
    metrics.flush()
    docs = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(docs) == 2  # one per dimension set
    plain = next(d for d in docs if "ErrorCode" not in d)
    (directive,) = plain["_aws"]["CloudWatchMetrics"]
    assert directive["Namespace"] == "iotcloud"
    assert directive["Dimensions"] == [["Stage"]]
    assert plain["Stage"] == "prod"
    assert plain["IngestRequests"] == [1.0]
    assert plain["ReadingsIngested"] == [500.0]
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
    docs = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    seen: dict[str, list[float]] = {}
    for doc in docs:
        (directive,) = doc["_aws"]["CloudWatchMetrics"]
        assert isinstance(doc["_aws"]["Timestamp"], int) and doc["_aws"]["Timestamp"] > 1_600_000_000_000
        assert directive["Dimensions"] == [["Stage"]] and doc["Stage"] == "prod"
        assert 0 < len(directive["Metrics"]) <= 100
        for metric in directive["Metrics"]:
            assert metric["Unit"] == ("Count" if metric["Name"] == "IngestRequests" else "Milliseconds")
            assert 0 < len(doc[metric["Name"]]) <= 100
            seen.setdefault(metric["Name"], []).extend(doc[metric["Name"]])
    assert seen["IngestRequests"] == [1.0] * 250
    assert {name: values for name, values in seen.items() if name != "IngestRequests"} == {
        f"M{n}": [float(n)] for n in range(150)
    }
