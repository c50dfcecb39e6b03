"""What the scaling report reads and changes in AWS: metric data and target capacities."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from chalicelib.errors import ScalingTargetError


def metric_series(
    cloudwatch: Any, metric: dict[str, Any], start_ms: int, end_ms: int, period_s: int
) -> list[tuple[int, float]]:
    """(timestamp ms, value) per period of a metric, oldest first, with GetMetricData.

    A `per_second` metric (a Sum) is divided by the period, so it is a rate.
    """
    query = {
        "Id": "m",
        "MetricStat": {
            "Metric": {
                "Namespace": metric["namespace"],
                "MetricName": metric["name"],
                "Dimensions": [{"Name": k, "Value": v} for k, v in metric.get("dimensions", {}).items()],
            },
            "Period": period_s,
            "Stat": metric.get("stat", "Average"),
        },
        "ReturnData": True,
    }
    points: list[tuple[int, float]] = []
    kwargs: dict[str, Any] = {
        "MetricDataQueries": [query],
        "StartTime": datetime.fromtimestamp(start_ms / 1000, UTC),
        "EndTime": datetime.fromtimestamp(end_ms / 1000, UTC),
        "ScanBy": "TimestampAscending",
    }
    try:
        while True:
            answer = cloudwatch.get_metric_data(**kwargs)
            for result in answer.get("MetricDataResults", []):
                for ts, value in zip(result.get("Timestamps", []), result.get("Values", []), strict=False):
                    points.append((int(ts.timestamp() * 1000), float(value)))
            token = answer.get("NextToken")
            if not token:
                break
            kwargs["NextToken"] = token
    except (ClientError, BotoCoreError) as e:
        raise ScalingTargetError(f"GetMetricData failed for {metric['name']}") from e
    if metric.get("per_second"):
        points = [(ts, value / period_s) for ts, value in points]
    return sorted(points)


class Capacities:
    """Reads and sets the capacity knob of each kind of target."""

    def __init__(self, clients: Any) -> None:
        self._clients = clients

    def current(self, kind: str, resource: str) -> int | None:
        """The target's capacity now; None when it has none to scale (on-demand, unreserved)."""
        try:
            if kind == "asg":
                groups = self._clients("autoscaling").describe_auto_scaling_groups(AutoScalingGroupNames=[resource])
                found = groups["AutoScalingGroups"]
                return int(found[0]["DesiredCapacity"]) if found else None
            if kind == "dynamodb":
                table = self._clients("dynamodb").describe_table(TableName=resource)["Table"]
                if table.get("BillingModeSummary", {}).get("BillingMode") == "PAY_PER_REQUEST":
                    return None
                return int(table["ProvisionedThroughput"]["WriteCapacityUnits"])
            if kind == "lambda":
                answer = self._clients("lambda").get_function_concurrency(FunctionName=resource)
                reserved = answer.get("ReservedConcurrentExecutions")
                return int(reserved) if reserved is not None else None
        except (ClientError, BotoCoreError) as e:
            if isinstance(e, ClientError) and e.response["Error"]["Code"] in ("ResourceNotFoundException",):
                return None
            raise ScalingTargetError(f"could not read the capacity of {kind} {resource}") from e
        raise ValueError(f"unknown target kind {kind!r}")

    def apply(self, kind: str, resource: str, capacity: int) -> None:
        """Set the target's capacity (ASG desired capacity, table WCU, reserved concurrency)."""
        try:
            if kind == "asg":
                self._clients("autoscaling").set_desired_capacity(
                    AutoScalingGroupName=resource, DesiredCapacity=capacity, HonorCooldown=False
                )
            elif kind == "dynamodb":
                dynamodb = self._clients("dynamodb")
                table = dynamodb.describe_table(TableName=resource)["Table"]
                reads = int(table["ProvisionedThroughput"]["ReadCapacityUnits"])
                dynamodb.update_table(
                    TableName=resource,
                    ProvisionedThroughput={"ReadCapacityUnits": reads, "WriteCapacityUnits": capacity},
                )
            elif kind == "lambda":
                self._clients("lambda").put_function_concurrency(
                    FunctionName=resource, ReservedConcurrentExecutions=capacity
                )
            else:
                raise ValueError(f"unknown target kind {kind!r}")
        except (ClientError, BotoCoreError) as e:
            raise ScalingTargetError(f"could not set the capacity of {kind} {resource} to {capacity}") from e
