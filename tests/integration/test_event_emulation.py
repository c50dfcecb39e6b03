"""The local stack's event emulation delivers what Lambda would, with Lambda's shapes."""

from __future__ import annotations

import base64
import datetime as dt
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from chalice.app import Chalice, Rate
from moto import mock_aws

from devstack.events import EventEmulator, pattern_matches, schedule_due


@pytest.fixture
def moto_clients() -> Iterator[Any]:
    with mock_aws():
        yield lambda service: boto3.client(service, region_name="us-east-1")


def _table_with_stream(dynamodb: Any) -> str:
    answer = dynamodb.create_table(
        TableName="emulated",
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
    )
    return str(answer["TableDescription"]["LatestStreamArn"])


def _app_with_handlers(stream_arn: str, seen: dict[str, list[Any]]) -> tuple[Chalice, dict[str, Any]]:
    app = Chalice(app_name="emulated")
    handlers: dict[str, Any] = {}

    @app.on_dynamodb_record(stream_arn=stream_arn, batch_size=3, starting_position="TRIM_HORIZON")
    def on_record(event: Any) -> None:
        seen["stream"].append(event.to_dict())

    @app.schedule(Rate(1, unit=Rate.MINUTES))
    def every_minute(event: Any) -> None:
        seen["schedule"].append(event.to_dict())

    @app.on_cw_event({"source": ["aws.cloudwatch"], "detail-type": ["CloudWatch Alarm State Change"]})
    def on_alarm(event: Any) -> None:
        seen["alarm"].append(event.to_dict())

    for name, fn in (("on_record", on_record), ("every_minute", every_minute), ("on_alarm", on_alarm)):
        handlers[f"app.{name}"] = fn
    return app, handlers


def test_stream_records_arrive_in_batches_with_lambda_shape(moto_clients: Any) -> None:
    dynamodb = moto_clients("dynamodb")
    arn = _table_with_stream(dynamodb)
    seen: dict[str, list[Any]] = {"stream": [], "schedule": [], "alarm": []}
    app, handlers = _app_with_handlers(arn, seen)
    emulator = EventEmulator(app, moto_clients, resolver=handlers.__getitem__)
    for i in range(7):
        dynamodb.put_item(TableName="emulated", Item={"pk": {"S": f"k{i}"}, "blob": {"B": b"\x00\x01"}})
    dynamodb.put_item(TableName="emulated", Item={"pk": {"S": "k0"}, "blob": {"B": b"\x02"}})
    assert emulator.drain(timeout=10) == 8
    assert [len(e["Records"]) for e in seen["stream"]] == [3, 3, 2]
    records = [r for e in seen["stream"] for r in e["Records"]]
    assert [r["eventName"] for r in records] == ["INSERT"] * 7 + ["MODIFY"]
    last = records[-1]
    assert last["eventSourceARN"] == arn
    assert last["dynamodb"]["Keys"] == {"pk": {"S": "k0"}}
    # Binary attributes arrive base64-encoded, as in a real Lambda event.
    assert base64.b64decode(last["dynamodb"]["NewImage"]["blob"]["B"]) == b"\x02"
    assert base64.b64decode(last["dynamodb"]["OldImage"]["blob"]["B"]) == b"\x00\x01"
    assert isinstance(last["dynamodb"]["SequenceNumber"], str)


def test_failed_batch_is_delivered_again(moto_clients: Any) -> None:
    dynamodb = moto_clients("dynamodb")
    arn = _table_with_stream(dynamodb)
    app = Chalice(app_name="flaky")
    calls: list[int] = []

    @app.on_dynamodb_record(stream_arn=arn, batch_size=10, starting_position="TRIM_HORIZON")
    def flaky(event: Any) -> None:
        calls.append(len(list(event)))
        if len(calls) == 1:
            raise RuntimeError("S3 is down")

    emulator = EventEmulator(app, moto_clients, resolver={"app.flaky": flaky}.__getitem__)
    for i in range(4):
        dynamodb.put_item(TableName="emulated", Item={"pk": {"S": f"k{i}"}})
    emulator.drain(timeout=10)
    assert calls == [4, 4]
    assert emulator.pumps[0].stats.failures == 1


def test_batch_item_failures_redeliver_from_the_first_failure(moto_clients: Any) -> None:
    dynamodb = moto_clients("dynamodb")
    arn = _table_with_stream(dynamodb)
    app = Chalice(app_name="partial")
    batches: list[list[str]] = []

    @app.on_dynamodb_record(stream_arn=arn, batch_size=10, starting_position="TRIM_HORIZON")
    def partial(event: Any) -> dict[str, Any]:
        keys = [r.keys["pk"]["S"] for r in event]
        batches.append(keys)
        if len(batches) == 1:
            third = list(event)[2]
            return {"batchItemFailures": [{"itemIdentifier": third.sequence_number}]}
        return {"batchItemFailures": []}

    emulator = EventEmulator(app, moto_clients, resolver={"app.partial": partial}.__getitem__)
    for i in range(5):
        dynamodb.put_item(TableName="emulated", Item={"pk": {"S": f"k{i}"}})
    emulator.drain(timeout=10)
    assert batches == [["k0", "k1", "k2", "k3", "k4"], ["k2", "k3", "k4"]]


def test_scheduled_handler_runs_on_demand_with_a_scheduled_event(moto_clients: Any) -> None:
    seen: dict[str, list[Any]] = {"stream": [], "schedule": [], "alarm": []}
    app, handlers = _app_with_handlers("arn:aws:dynamodb:us-east-1:123456789012:table/x/stream/y", seen)
    emulator = EventEmulator(app, moto_clients, resolver=handlers.__getitem__)
    emulator.run_job("every_minute")
    (event,) = seen["schedule"]
    assert event["detail-type"] == "Scheduled Event"
    assert event["source"] == "aws.events"
    assert event["resources"][0].endswith(":rule/iotcloud-every_minute")
    with pytest.raises(KeyError):
        emulator.run_job("nope")


def test_schedules_fire_on_rate_and_cron() -> None:
    t0 = dt.datetime(2026, 11, 25, 9, 0, 30, tzinfo=dt.UTC)
    minute = dt.timedelta(minutes=1)
    assert not schedule_due("rate(1 minute)", t0, t0 + dt.timedelta(seconds=20), t0)
    assert schedule_due("rate(1 minute)", t0 + dt.timedelta(seconds=50), t0 + dt.timedelta(seconds=61), t0)
    assert schedule_due("rate(2 hours)", t0 + 119 * minute, t0 + 121 * minute, t0)
    assert schedule_due("cron(0 * * * ? *)", t0 + 58 * minute, t0 + 60 * minute, t0)
    assert not schedule_due("cron(0 * * * ? *)", t0, t0 + 20 * minute, t0)
    assert schedule_due("cron(15 10 * * ? *)", t0 + 74 * minute, t0 + 75 * minute, t0)
    assert schedule_due("cron(*/5 * * * ? *)", t0, t0 + 5 * minute, t0)


def test_alarm_state_changes_become_eventbridge_events(moto_clients: Any) -> None:
    seen: dict[str, list[Any]] = {"stream": [], "schedule": [], "alarm": []}
    app, handlers = _app_with_handlers("arn:aws:dynamodb:us-east-1:123456789012:table/x/stream/y", seen)
    emulator = EventEmulator(app, moto_clients, resolver=handlers.__getitem__)
    cloudwatch = moto_clients("cloudwatch")
    cloudwatch.put_metric_alarm(
        AlarmName="cpu-high",
        MetricName="CPUUtilization",
        Namespace="AWS/EC2",
        Statistic="Average",
        Period=60,
        EvaluationPeriods=2,
        Threshold=70,
        ComparisonOperator="GreaterThanThreshold",
    )
    cloudwatch.set_alarm_state(AlarmName="cpu-high", StateValue="OK", StateReason="start")
    assert emulator.check_alarms() == 0  # first sight: no change yet
    cloudwatch.set_alarm_state(AlarmName="cpu-high", StateValue="ALARM", StateReason="test")
    assert emulator.check_alarms() == 1
    (event,) = seen["alarm"]
    assert event["detail"]["alarmName"] == "cpu-high"
    assert event["detail"]["state"]["value"] == "ALARM"
    assert event["detail"]["previousState"]["value"] == "OK"
    assert emulator.check_alarms() == 0


def test_pattern_matching() -> None:
    event = {"source": "aws.cloudwatch", "detail": {"state": {"value": "ALARM"}}}
    assert pattern_matches({"source": ["aws.cloudwatch"]}, event)
    assert pattern_matches({"detail": {"state": {"value": ["ALARM", "OK"]}}}, event)
    assert not pattern_matches({"source": ["aws.ec2"]}, event)
    assert pattern_matches({"source": [{"prefix": "aws."}]}, event)
    assert not pattern_matches({"source": [{"prefix": "custom."}]}, event)
