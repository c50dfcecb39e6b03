"""python -m infra.bootstrap: idempotent against the local stack, a dry run, records, tokens, post-deploy."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import boto3
import pytest
from moto import mock_aws

from chalicelib.config import from_env
from chalicelib.domain.tokens import hash_token
from infra.bootstrap import STREAM_ARN_VARIABLE, main
from infra.stages import stage_environment
from tests.deploy import iam_recorder

READS = ("Describe", "Get", "List", "Head", "Scan", "Query")


def _stage_env(config: Path, stage: str = "prod") -> dict[str, str]:
    return stage_environment(stage, config)


def test_bootstrap_against_the_local_stack_twice_changes_nothing_the_second_time(
    on_moto_server: str, stage_config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--stage", "prod", "--config", str(stage_config), "--record"]) == 0
    first = capsys.readouterr().out
    for line in (
        "created tables iotcloud-prod-readings",
        "created tables iotcloud-prod-devices",
        "created bucket iotcloud-prod-archive",
        "created alarms iotcloud-prod-ingest-fleet-scale-up",
        "created dashboard iotcloud-prod",
        f"recorded {STREAM_ARN_VARIABLE}=",
    ):
        assert line in first

    with iam_recorder.listening() as calls:
        assert main(["--stage", "prod", "--config", str(stage_config), "--record"]) == 0
    second = capsys.readouterr().out
    assert "no changes: every resource was in place" in second
    assert f"already recorded {STREAM_ARN_VARIABLE}=" in second
    writes = [c for c in calls if c.origin == "bootstrap" and not c.operation.startswith(READS)]
    # bootstrap.py writes nothing the second time; bootstrap_monitoring upserts what it owns.
    assert [c for c in writes if c.where.startswith("infra/bootstrap.py")] == []
    assert {c.operation for c in writes} <= {"PutMetricAlarm", "PutDashboard", "PutScalingPolicy"}

    dynamodb = boto3.client("dynamodb", region_name="us-east-1", endpoint_url=on_moto_server)
    stream = dynamodb.describe_table(TableName="iotcloud-prod-readings")["Table"]["LatestStreamArn"]
    assert _stage_env(stage_config)[STREAM_ARN_VARIABLE] == stream


def test_dry_run_prints_the_plan_and_calls_nothing(stage_config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with iam_recorder.listening() as calls:
        assert main(["--stage", "prod", "--config", str(stage_config), "--dry-run"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert calls == []
    assert out and all(line.startswith("would ensure ") for line in out)
    text = "\n".join(out)
    for part in (
        "DynamoDB table iotcloud-prod-readings (on demand; stream NEW_AND_OLD_IMAGES; TTL on x)",
        "token_hash-index",
        "S3 bucket iotcloud-prod-archive",
        "CloudWatch alarms iotcloud-prod-ingest-fleet-scale-up",
        "CloudWatch dashboard iotcloud-prod",
    ):
        assert part in text


def test_a_custom_endpoint_records_only_when_asked(
    on_moto_server: str, stage_config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = stage_config.read_text()
    assert main(["--stage", "prod", "--config", str(stage_config)]) == 0
    assert "not recorded" in capsys.readouterr().out
    assert stage_config.read_text() == before


@mock_aws
def test_a_real_run_records_the_stream_unless_told_not_to(
    stage_config: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    before = stage_config.read_text()
    assert main(["--stage", "prod", "--config", str(stage_config), "--no-record"]) == 0
    assert stage_config.read_text() == before
    assert main(["--stage", "prod", "--config", str(stage_config)]) == 0
    recorded = _stage_env(stage_config)[STREAM_ARN_VARIABLE]
    assert recorded.startswith("arn:aws:dynamodb:us-east-1:") and ":table/iotcloud-prod-readings/stream/" in recorded
    # Only that variable changed, and the file is still what Chalice reads.
    doc = json.loads(stage_config.read_text())
    doc["stages"]["prod"]["environment_variables"].pop(STREAM_ARN_VARIABLE)
    assert doc == json.loads(before)
    capsys.readouterr()


def test_admin_token_is_printed_once_and_its_hash_recorded(
    stage_config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["admin-token", "--stage", "prod", "--config", str(stage_config)]) == 0
    first = capsys.readouterr().out.strip()
    assert first.startswith("iota_") and len(first) > 40
    assert from_env(_stage_env(stage_config)).admin_token_hashes == {hash_token(first)}

    assert main(["admin-token", "--stage", "prod", "--config", str(stage_config)]) == 0
    second = capsys.readouterr().out.strip()
    assert from_env(_stage_env(stage_config)).admin_token_hashes == {hash_token(first), hash_token(second)}

    assert main(["admin-token", "--stage", "prod", "--config", str(stage_config), "--replace"]) == 0
    third = capsys.readouterr().out.strip()
    assert from_env(_stage_env(stage_config)).admin_token_hashes == {hash_token(third)}

    before = stage_config.read_text()
    assert main(["admin-token", "--stage", "prod", "--config", str(stage_config), "--no-record"]) == 0
    captured = capsys.readouterr()
    assert hash_token(captured.out.strip()) in captured.err
    assert stage_config.read_text() == before


def _lambda_zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as z:
        z.writestr("app.py", "def handler(event, context):\n    return {}\n")
    return buffer.getvalue()


@mock_aws
def test_post_deploy_makes_chalices_mappings_report_batch_item_failures(
    stage_config: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    assert main(["--stage", "test", "--config", str(stage_config), "--no-record"]) == 0
    region = "us-east-1"
    stream = boto3.client("dynamodb", region_name=region).describe_table(TableName="iotcloud-test-readings")["Table"][
        "LatestStreamArn"
    ]
    role = boto3.client("iam", region_name=region).create_role(
        RoleName="iotcloud-test", AssumeRolePolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": []})
    )["Role"]["Arn"]
    lam = boto3.client("lambda", region_name=region)
    function = lam.create_function(
        FunctionName="iotcloud-test-archive_readings",
        Runtime="python3.11",
        Role=role,
        Handler="app.handler",
        Code={"ZipFile": _lambda_zip()},
    )["FunctionArn"]
    uuid = lam.create_event_source_mapping(
        EventSourceArn=stream, FunctionName=function, StartingPosition="TRIM_HORIZON", BatchSize=1000
    )["UUID"]
    # What `chalice deploy` records in .chalice/deployed/<stage>.json.
    deployed = stage_config.parent / "deployed" / "test.json"
    deployed.parent.mkdir()
    resource = {
        "name": "archive_readings-dynamodb-event-source",
        "resource_type": "dynamodb_event",
        "stream_arn": stream,
        "event_uuid": uuid,
        "lambda_arn": function,
    }
    deployed.write_text(json.dumps({"resources": [resource], "schema_version": "2.0", "backend": "api"}))
    project = ["--stage", "test", "--config", str(stage_config), "--project-dir", str(stage_config.parent.parent)]

    assert main(["post-deploy", *project]) == 0
    assert "FunctionResponseTypes ['ReportBatchItemFailures'], ParallelizationFactor 10" in capsys.readouterr().out
    mapping = lam.get_event_source_mapping(UUID=uuid)
    assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert mapping["ParallelizationFactor"] == 10
    assert main(["post-deploy", *project]) == 0
    assert "no changes" in capsys.readouterr().out
