"""The local stack's metrics sink: PutMetricData reaches CloudWatch (moto)."""

from __future__ import annotations

from typing import Any

import boto3
from moto import mock_aws

from chalicelib.adapters.metrics import Metrics, PutMetricDataSink


def test_put_metric_data_sink_reaches_cloudwatch() -> None:
    with mock_aws():
        cloudwatch = boto3.client("cloudwatch", region_name="us-east-1")
        metrics = Metrics("dev", PutMetricDataSink(cloudwatch))
        for n in (100, 200, 300):
            metrics.add("ReadingsIngested", n)
            metrics.flush()
        metrics.drain()
        listed = cloudwatch.list_metrics(Namespace="iotcloud")["Metrics"]
        assert {m["MetricName"] for m in listed} == {"ReadingsIngested"}
        assert listed[0]["Dimensions"] == [{"Name": "Stage", "Value": "dev"}]
        stats: Any = cloudwatch.get_metric_statistics(
            Namespace="iotcloud",
            MetricName="ReadingsIngested",
            Dimensions=[{"Name": "Stage", "Value": "dev"}],
            StartTime="2000-01-01T00:00:00Z",
            EndTime="2100-01-01T00:00:00Z",
            Period=86400,
            Statistics=["Sum"],
        )
        assert sum(p["Sum"] for p in stats["Datapoints"]) == 600
