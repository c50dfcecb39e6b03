"""Bootstrap creates every resource of a stage, and a second run changes nothing."""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest

from chalicelib import wiring
from infra.bootstrap import bootstrap, main


def _snapshot(settings: Any) -> dict[str, Any]:
    c = lambda service: boto3.client(service, region_name=settings.region)  # noqa: E731
    dynamodb, s3, cloudwatch, autoscaling, ec2 = c("dynamodb"), c("s3"), c("cloudwatch"), c("autoscaling"), c("ec2")
    tables = {}
    for name in sorted(dynamodb.list_tables()["TableNames"]):
        t = dynamodb.describe_table(TableName=name)["Table"]
        tables[name] = {
            "keys": t["KeySchema"],
            "gsis": sorted(i["IndexName"] for i in t.get("GlobalSecondaryIndexes", [])),
            "stream": t.get("StreamSpecification"),
            "stream_arn": t.get("LatestStreamArn"),
            "ttl": dynamodb.describe_time_to_live(TableName=name)["TimeToLiveDescription"],
        }
    bucket = settings.archive_bucket
    alarms = cloudwatch.describe_alarms()["MetricAlarms"]
    groups = autoscaling.describe_auto_scaling_groups()["AutoScalingGroups"]
    return {
        "tables": tables,
        "buckets": sorted(b["Name"] for b in s3.list_buckets()["Buckets"]),
        "encryption": s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"],
        "public_access": s3.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"],
        "lifecycle": s3.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"],
        "alarms": sorted(
            (a["AlarmName"], a["Threshold"], a["ComparisonOperator"], a["EvaluationPeriods"], tuple(a["AlarmActions"]))
            for a in alarms
        ),
        "groups": sorted((g["AutoScalingGroupName"], g["MinSize"], g["MaxSize"], g["DesiredCapacity"]) for g in groups),
        "policies": sorted(
            (p["PolicyName"], p["ScalingAdjustment"], p.get("Cooldown"))
            for p in autoscaling.describe_policies()["ScalingPolicies"]
        ),
        "templates": sorted(t["LaunchTemplateName"] for t in ec2.describe_launch_templates()["LaunchTemplates"]),
        "dashboards": sorted(d["DashboardName"] for d in cloudwatch.list_dashboards()["DashboardEntries"]),
    }


def test_bootstrap_creates_everything_and_is_idempotent(aws: None) -> None:
    settings = wiring.bound_settings()

    def clients(service: str) -> Any:
        return boto3.client(service, region_name=settings.region)

    bootstrap(settings, clients)
    first = _snapshot(settings)
    bootstrap(settings, clients)
    assert _snapshot(settings) == first

    readings = first["tables"][settings.readings_table]
    assert readings["stream"] == {"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"}
    assert readings["ttl"]["TimeToLiveStatus"] == "ENABLED"
    assert first["tables"][settings.devices_table]["gsis"] == [
        "active_hour-index",
        "kind-device_id-index",
        "token_hash-index",
    ]
    assert settings.aggregates_table in first["tables"]
    assert first["encryption"]["Rules"][0]["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
    assert all(first["public_access"].values())
    # The seed's scenario: a group with +1/-1 policies, cooldown 180 s, and the two alarms.
    group = "iotcloud-test-ingest-fleet"
    assert first["groups"] == [(group, 1, 4, 1)]
    assert first["policies"] == [(f"{group}-scale-down", -1, 180), (f"{group}-scale-up", 1, 180)]
    names = [a[0] for a in first["alarms"]]
    assert "iotcloud-test-ingest-fleet-scale-up" in names and "iotcloud-test-ingest-fleet-scale-down" in names
    up = next(a for a in first["alarms"] if a[0] == "iotcloud-test-ingest-fleet-scale-up")
    assert up[1:4] == (70.0, "GreaterThanThreshold", 2)
    assert first["dashboards"] == ["iotcloud-test"]


def test_dry_run_prints_the_plan_and_creates_nothing(aws: None, capsys: pytest.CaptureFixture[str]) -> None:
    before = boto3.client("dynamodb", region_name="us-east-1").list_tables()["TableNames"]
    assert main(["--stage", "prod", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "would ensure DynamoDB table iotcloud-prod-readings" in out
    assert "iotcloud-prod-archive" in out
    assert boto3.client("dynamodb", region_name="us-east-1").list_tables()["TableNames"] == before
    assert json.dumps(out)  # printable
