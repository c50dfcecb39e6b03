"""The local stack delivers SQS messages as Lambda's SQS event source mapping does."""

from __future__ import annotations

import base64
import hashlib
import time
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from aws_lambda_powertools.utilities.parser.models import SqsModel
from chalice.app import Chalice, SQSEvent
from moto import mock_aws

from devstack.events import EventEmulator

QUEUE = "call-timeouts"


@pytest.fixture
def moto_clients() -> Iterator[Any]:
    with mock_aws():
        yield lambda service: boto3.client(service, region_name="us-east-1")


@pytest.fixture
def queue_url(moto_clients: Any) -> str:
    return str(moto_clients("sqs").create_queue(QueueName=QUEUE)["QueueUrl"])


def _emulator(app: Chalice, moto_clients: Any, **options: Any) -> EventEmulator:
    # What Lambda imports for "app.<name>": the decorated handler, which Chalice keeps in handler_map.
    handlers = {f"app.{name}": handler for name, handler in app.handler_map.items()}
    return EventEmulator(app, moto_clients, resolver=handlers.__getitem__, **options)


def _wait_for(condition: Any, emulator: EventEmulator, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        emulator.pump_queues()
        time.sleep(0.05)


def test_batch_has_lambdas_sqs_event_shape(moto_clients: Any, queue_url: str) -> None:
    app = Chalice(app_name="sqs-shape")
    events: list[dict[str, Any]] = []

    @app.on_sqs_message(queue=QUEUE, batch_size=10)
    def on_message(event: SQSEvent) -> None:
        events.append(event.to_dict())

    sqs = moto_clients("sqs")
    for i in range(3):
        sqs.send_message(
            QueueUrl=queue_url,
            MessageBody=f'{{"n": {i}}}',
            MessageAttributes={
                "kind": {"DataType": "String", "StringValue": "timeout"},
                "blob": {"DataType": "Binary", "BinaryValue": b"\x00\x01"},
            },
        )
    emulator = _emulator(app, moto_clients)
    assert emulator.drain(timeout=10) == 3
    (event,) = events
    records = event["Records"]
    assert [r["body"] for r in records] == ['{"n": 0}', '{"n": 1}', '{"n": 2}']
    record = records[0]
    assert set(record) == {
        "messageId",
        "receiptHandle",
        "body",
        "attributes",
        "messageAttributes",
        "md5OfBody",
        "md5OfMessageAttributes",
        "eventSource",
        "eventSourceARN",
        "awsRegion",
    }
    assert record["eventSource"] == "aws:sqs"
    assert record["eventSourceARN"] == f"arn:aws:sqs:us-east-1:123456789012:{QUEUE}"
    assert record["awsRegion"] == "us-east-1"
    assert record["md5OfBody"] == hashlib.md5(b'{"n": 0}').hexdigest()
    assert record["attributes"]["ApproximateReceiveCount"] == "1"
    for name in ("SentTimestamp", "SenderId", "ApproximateFirstReceiveTimestamp"):
        assert name in record["attributes"]
    assert record["messageAttributes"]["kind"] == {
        "stringValue": "timeout",
        "stringListValues": [],
        "binaryListValues": [],
        "dataType": "String",
    }
    assert base64.b64decode(record["messageAttributes"]["blob"]["binaryValue"]) == b"\x00\x01"
    # Powertools' model of Lambda's SQS event accepts it as it is.
    SqsModel.model_validate(event)
    # Handled messages are deleted.
    assert sqs.receive_message(QueueUrl=queue_url, WaitTimeSeconds=0).get("Messages", []) == []
    assert emulator.queue_pumps[0].stats.messages == 3


def test_delayed_message_is_delivered_only_after_its_delay(moto_clients: Any, queue_url: str) -> None:
    app = Chalice(app_name="sqs-delay")
    delivered: list[tuple[str, float]] = []

    @app.on_sqs_message(queue=QUEUE, batch_size=10)
    def on_timeout(event: SQSEvent) -> None:
        delivered.extend((record.body, time.monotonic()) for record in event)

    sqs = moto_clients("sqs")
    emulator = _emulator(app, moto_clients)
    sent = time.monotonic()
    sqs.send_message(QueueUrl=queue_url, MessageBody="later", DelaySeconds=2)
    sqs.send_message(QueueUrl=queue_url, MessageBody="now")
    assert emulator.drain(timeout=10) == 1
    assert [body for body, _ in delivered] == ["now"]
    _wait_for(lambda: len(delivered) == 2, emulator)
    body, at = delivered[1]
    assert body == "later"
    assert at - sent >= 1.9


def test_failed_batch_comes_back_after_the_visibility_timeout(moto_clients: Any, queue_url: str) -> None:
    app = Chalice(app_name="sqs-flaky")
    calls: list[list[str]] = []

    @app.on_sqs_message(queue=QUEUE, batch_size=10)
    def flaky(event: SQSEvent) -> None:
        calls.append([record.body for record in event])
        if len(calls) == 1:
            raise RuntimeError("downstream is down")

    sqs = moto_clients("sqs")
    for body in ("a", "b"):
        sqs.send_message(QueueUrl=queue_url, MessageBody=body)
    emulator = _emulator(app, moto_clients, queue_visibility_timeout=1)
    emulator.drain(timeout=10)
    assert calls == [["a", "b"]]  # the failed messages are invisible for a while, not lost
    _wait_for(lambda: len(calls) == 2, emulator)
    assert sorted(calls[1]) == ["a", "b"]
    stats = emulator.queue_pumps[0].stats
    assert (stats.failures, stats.redelivered, stats.messages) == (1, 2, 2)
    emulator.drain(timeout=10)
    assert len(calls) == 2


def test_batch_item_failures_leave_only_the_failed_messages(moto_clients: Any, queue_url: str) -> None:
    app = Chalice(app_name="sqs-partial")
    calls: list[dict[str, str]] = []

    @app.on_sqs_message(queue=QUEUE, batch_size=10)
    def partial(event: SQSEvent) -> dict[str, Any]:
        records = {record.body: record.to_dict()["messageId"] for record in event}
        calls.append(records)
        if len(calls) == 1:
            return {"batchItemFailures": [{"itemIdentifier": records["m1"]}, {"itemIdentifier": records["m3"]}]}
        return {"batchItemFailures": []}

    sqs = moto_clients("sqs")
    for i in range(5):
        sqs.send_message(QueueUrl=queue_url, MessageBody=f"m{i}")
    emulator = _emulator(app, moto_clients, queue_visibility_timeout=1)
    emulator.drain(timeout=10)
    assert sorted(calls[0]) == ["m0", "m1", "m2", "m3", "m4"]
    # SQS may hand the two redelivered messages back in one receive or in two.
    def redelivered() -> list[str]:
        return sorted(body for call in calls[1:] for body in call)

    _wait_for(lambda: redelivered() == ["m1", "m3"], emulator)
    second = next(iter(calls[1].values()))
    assert second in calls[0].values()  # the same messages, delivered again
    emulator.drain(timeout=10)
    assert redelivered() == ["m1", "m3"]  # only the failed ones, once each


def test_unknown_item_identifier_fails_the_whole_batch(moto_clients: Any, queue_url: str) -> None:
    app = Chalice(app_name="sqs-bad-answer")
    calls: list[int] = []

    @app.on_sqs_message(queue=QUEUE, batch_size=10)
    def bad_answer(event: SQSEvent) -> dict[str, Any]:
        calls.append(len(list(event)))
        if len(calls) == 1:
            return {"batchItemFailures": [{"itemIdentifier": "not-in-this-batch"}]}
        return {}

    sqs = moto_clients("sqs")
    for i in range(3):
        sqs.send_message(QueueUrl=queue_url, MessageBody=f"m{i}")
    emulator = _emulator(app, moto_clients, queue_visibility_timeout=1)
    emulator.drain(timeout=10)
    _wait_for(lambda: len(calls) == 2, emulator)
    assert calls == [3, 3]


def test_batches_larger_than_one_receive(moto_clients: Any, queue_url: str) -> None:
    app = Chalice(app_name="sqs-big")
    sizes: list[int] = []

    @app.on_sqs_message(queue=QUEUE, batch_size=25)
    def big(event: SQSEvent) -> None:
        sizes.append(len(list(event)))

    sqs = moto_clients("sqs")
    for start in range(0, 30, 10):
        sqs.send_message_batch(
            QueueUrl=queue_url,
            Entries=[{"Id": str(i), "MessageBody": f"m{start + i}"} for i in range(10)],
        )
    emulator = _emulator(app, moto_clients)
    assert emulator.drain(timeout=10) == 30
    assert sizes == [25, 5]


def test_background_thread_delivers_and_queue_names_can_be_mapped(moto_clients: Any, queue_url: str) -> None:
    app = Chalice(app_name="sqs-background")
    bodies: list[str] = []

    @app.on_sqs_message(queue="name-baked-in-at-import", batch_size=10)
    def background(event: SQSEvent) -> None:
        bodies.extend(record.body for record in event)

    emulator = _emulator(app, moto_clients, queues={"name-baked-in-at-import": QUEUE}, poll_seconds=0.05)
    emulator.start()
    try:
        moto_clients("sqs").send_message(QueueUrl=queue_url, MessageBody="hello", DelaySeconds=1)
        deadline = time.monotonic() + 10
        while not bodies:
            assert time.monotonic() < deadline
            time.sleep(0.05)
    finally:
        emulator.stop()
    assert bodies == ["hello"]


def test_a_missing_queue_is_skipped(moto_clients: Any) -> None:
    app = Chalice(app_name="sqs-missing")

    @app.on_sqs_message(queue="no-such-queue")
    def orphan(event: SQSEvent) -> None:
        raise AssertionError("never called")

    emulator = _emulator(app, moto_clients)
    assert emulator.drain(timeout=10) == 0
