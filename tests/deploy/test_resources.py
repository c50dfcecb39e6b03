"""The CloudFormation path declares what bootstrap makes: compared with what bootstrap made in moto."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from chalice.app import DynamoDBEventConfig, SQSEventConfig
from moto import mock_aws

from chalicelib.config import Settings
from infra.bootstrap import bootstrap
from infra.resources import merge_template
from infra.stages import stage_settings
from tests.deploy.conftest import ROOT, Clients

CONFIG = ROOT / ".chalice" / "config.json"


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    from app import app  # imported with the test stage's environment (tests/conftest.py)

    return merge_template("test", CONFIG, app=app)


@pytest.fixture
def made(clients: Clients, monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    with mock_aws():
        settings = stage_settings("test", CONFIG)
        bootstrap(settings, clients, CONFIG)
        yield settings


def _of_type(template: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {k: v["Properties"] for k, v in template["Resources"].items() if v.get("Type") == kind}


def _keys(schema: list[dict[str, str]]) -> list[tuple[str, str]]:
    return sorted((k["AttributeName"], k["KeyType"]) for k in schema)


def _projection(projection: dict[str, Any]) -> tuple[str, list[str]]:
    return projection["ProjectionType"], sorted(projection.get("NonKeyAttributes", []))


def _tags(tags: list[dict[str, str]]) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in tags}


def test_tables_have_the_same_keys_indexes_stream_ttl_and_tags(
    template: dict[str, Any], made: Settings, clients: Clients
) -> None:
    dynamodb = clients("dynamodb")
    declared = _of_type(template, "AWS::DynamoDB::Table")
    assert sorted(p["TableName"] for p in declared.values()) == sorted(dynamodb.list_tables()["TableNames"])
    for logical, props in declared.items():
        name = props["TableName"]
        table = dynamodb.describe_table(TableName=name)["Table"]
        assert template["Resources"][logical]["DeletionPolicy"] == "Retain"
        assert _keys(props["KeySchema"]) == _keys(table["KeySchema"]), name
        assert props["KeySchema"][0]["KeyType"] == "HASH"
        assert sorted((a["AttributeName"], a["AttributeType"]) for a in props["AttributeDefinitions"]) == sorted(
            (a["AttributeName"], a["AttributeType"]) for a in table["AttributeDefinitions"]
        ), name
        assert props["BillingMode"] == table["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
        assert {
            i["IndexName"]: (_keys(i["KeySchema"]), _projection(i["Projection"]))
            for i in props.get("GlobalSecondaryIndexes", [])
        } == {
            i["IndexName"]: (_keys(i["KeySchema"]), _projection(i["Projection"]))
            for i in table.get("GlobalSecondaryIndexes", [])
        }, name
        stream = table.get("StreamSpecification") or {}
        assert props.get("StreamSpecification", {}).get("StreamViewType") == stream.get("StreamViewType"), name
        ttl = dynamodb.describe_time_to_live(TableName=name)["TimeToLiveDescription"]
        declared_ttl = props.get("TimeToLiveSpecification")
        assert (declared_ttl or {}).get("AttributeName") == ttl.get("AttributeName"), name
        assert bool(declared_ttl) == (ttl["TimeToLiveStatus"] == "ENABLED"), name
        tags = dynamodb.list_tags_of_resource(ResourceArn=table["TableArn"])["Tags"]
        assert _tags(props["Tags"]) == _tags(tags) == {"app": "iotcloud", "stage": "test"}
    readings = next(p for p in declared.values() if p["TableName"] == made.readings_table)
    assert readings["StreamSpecification"] == {"StreamViewType": "NEW_AND_OLD_IMAGES"}
    assert readings["TimeToLiveSpecification"] == {"AttributeName": "x", "Enabled": True}


def test_bucket_is_encrypted_private_with_the_same_lifecycle(
    template: dict[str, Any], made: Settings, clients: Clients
) -> None:
    s3 = clients("s3")
    bucket = template["Resources"]["ArchiveBucket"]
    props = bucket["Properties"]
    assert bucket["DeletionPolicy"] == "Retain" and props["BucketName"] == made.archive_bucket
    rules = s3.get_bucket_encryption(Bucket=made.archive_bucket)["ServerSideEncryptionConfiguration"]["Rules"]
    assert [
        r["ServerSideEncryptionByDefault"] for r in props["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    ] == [{"SSEAlgorithm": r["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"]} for r in rules]
    public = s3.get_public_access_block(Bucket=made.archive_bucket)["PublicAccessBlockConfiguration"]
    assert props["PublicAccessBlockConfiguration"] == public and all(public.values())
    lifecycle = s3.get_bucket_lifecycle_configuration(Bucket=made.archive_bucket)["Rules"]
    assert (
        [
            (r["Id"], r["Status"], r["Prefix"], [(t["TransitionInDays"], t["StorageClass"]) for t in r["Transitions"]])
            for r in props["LifecycleConfiguration"]["Rules"]
        ]
        == [
            (r["ID"], r["Status"], r["Filter"]["Prefix"], [(t["Days"], t["StorageClass"]) for t in r["Transitions"]])
            for r in lifecycle
        ]
        == [("archive-to-infrequent-access", "Enabled", "archive/", [(30, "STANDARD_IA")])]
    )
    assert _tags(props["Tags"]) == _tags(s3.get_bucket_tagging(Bucket=made.archive_bucket)["TagSet"])


def test_queue_has_the_same_attributes(template: dict[str, Any], made: Settings, clients: Clients) -> None:
    sqs = clients("sqs")
    url = sqs.get_queue_url(QueueName=made.call_timeout_queue)["QueueUrl"]
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    props = template["Resources"]["CallTimeoutQueue"]["Properties"]
    assert props["QueueName"] == made.call_timeout_queue
    assert str(props["VisibilityTimeout"]) == attributes["VisibilityTimeout"]
    assert str(props["SqsManagedSseEnabled"]).lower() == attributes["SqsManagedSseEnabled"]


def test_alarms_dashboard_and_scaling_group_are_the_same(
    template: dict[str, Any], made: Settings, clients: Clients
) -> None:
    cloudwatch, autoscaling = clients("cloudwatch"), clients("autoscaling")
    resources = template["Resources"]
    alarms = {a["AlarmName"]: a for a in cloudwatch.describe_alarms()["MetricAlarms"]}
    declared = _of_type(template, "AWS::CloudWatch::Alarm")
    assert sorted(p["AlarmName"] for p in declared.values()) == sorted(alarms)
    policies = {p["PolicyARN"]: p for p in autoscaling.describe_policies()["ScalingPolicies"]}
    for props in declared.values():
        alarm = alarms[props["AlarmName"]]
        for key in ("Threshold", "ComparisonOperator", "EvaluationPeriods", "DatapointsToAlarm", "TreatMissingData"):
            assert props[key] == alarm[key], (props["AlarmName"], key)
        assert props["Metrics"] == alarm["Metrics"], props["AlarmName"]
        # Alarm actions: the same scaling policies (by their adjustment), named by ARN or by Ref.
        made_actions = sorted(policies[arn]["ScalingAdjustment"] for arn in alarm["AlarmActions"])
        declared_actions = sorted(resources[a["Ref"]]["Properties"]["ScalingAdjustment"] for a in props["AlarmActions"])
        assert made_actions == declared_actions, props["AlarmName"]

    dashboard = _of_type(template, "AWS::CloudWatch::Dashboard")["Dashboard"]
    body = cloudwatch.get_dashboard(DashboardName=dashboard["DashboardName"])["DashboardBody"]
    declared_body = dashboard["DashboardBody"]["Fn::Sub"].replace("${AWS::Region}", made.region)
    assert json.loads(declared_body) == json.loads(body)

    groups = autoscaling.describe_auto_scaling_groups()["AutoScalingGroups"]
    declared_groups = _of_type(template, "AWS::AutoScaling::AutoScalingGroup")
    assert sorted(p["AutoScalingGroupName"] for p in declared_groups.values()) == sorted(
        g["AutoScalingGroupName"] for g in groups
    )
    for group in groups:
        props = next(p for p in declared_groups.values() if p["AutoScalingGroupName"] == group["AutoScalingGroupName"])
        assert (props["MinSize"], props["MaxSize"], props["DesiredCapacity"], props["Cooldown"]) == tuple(
            str(group[k]) for k in ("MinSize", "MaxSize", "DesiredCapacity", "DefaultCooldown")
        )
        assert len(props["AvailabilityZones"]) == len(group["AvailabilityZones"])
    declared_policies = sorted(
        (p["ScalingAdjustment"], p["Cooldown"], p["AdjustmentType"])
        for p in _of_type(template, "AWS::AutoScaling::ScalingPolicy").values()
    )
    assert declared_policies == sorted(
        (p["ScalingAdjustment"], str(p["Cooldown"]), p["AdjustmentType"]) for p in policies.values()
    )


def test_event_sources_subscribe_to_declared_resources_and_report_batch_failures(template: dict[str, Any]) -> None:
    from chalice.utils import to_cfn_resource_name

    from app import app

    resources = template["Resources"]
    sources = [s for s in app.event_sources if isinstance(s, DynamoDBEventConfig | SQSEventConfig)]
    assert sources
    for source in sources:
        kind = "dynamodb" if isinstance(source, DynamoDBEventConfig) else "sqs"
        function = resources[to_cfn_resource_name(source.name)]
        event = function["Properties"]["Events"][to_cfn_resource_name(f"{source.name}-{kind}-event-source")]
        assert event["Properties"]["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
        if kind == "dynamodb":
            assert event["Properties"]["ParallelizationFactor"] == 10
            table, attribute = event["Properties"]["Stream"]["Fn::GetAtt"]
            assert attribute == "StreamArn"
            assert "StreamSpecification" in resources[table]["Properties"]
        else:
            assert function["DependsOn"] == ["CallTimeoutQueue"]
