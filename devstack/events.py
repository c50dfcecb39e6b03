"""Emulation of what `chalice local` lacks: schedules, DynamoDB streams, SQS queues, alarm events.

Each emulated source finds its handlers in the Chalice app's `event_sources` and
invokes them exactly as Lambda would: the same event shapes (JSON-safe, binary
attributes base64-encoded), a Lambda context, and the retry semantics of the real
event source mapping (a failed stream batch is delivered again and `batchItemFailures`
re-delivers from the first failed record; a failed SQS batch stays in the queue and
comes back after its visibility timeout, and `batchItemFailures` leaves only the
failed messages there).
"""

from __future__ import annotations

import base64
import datetime as dt
import importlib
import json
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import ClientError
from chalice.app import (
    Chalice,
    CloudWatchEventConfig,
    DynamoDBEventConfig,
    ScheduledEventConfig,
    SQSEventConfig,
)
from chalice.local import LambdaContext

from devstack.schedule import Schedule, ScheduleError, check_fires, parse_schedule

logger = logging.getLogger("devstack.events")

ACCOUNT_ID = "123456789012"
Handler = Callable[[dict[str, Any], Any], Any]


def resolve_handler(handler_string: str) -> Handler:
    """The callable Lambda would invoke for a handler string like `app.archive`."""
    module_name, _, attribute = handler_string.rpartition(".")
    handler: Handler = getattr(importlib.import_module(module_name), attribute)
    return handler


def lambda_context(name: str, timeout_s: int = 300) -> Any:
    return LambdaContext(function_name=name, memory_size=512, max_runtime_ms=timeout_s * 1000)


# --- Schedules -----------------------------------------------------------------------------


def _expression(config: ScheduledEventConfig) -> str:
    expr = config.schedule_expression
    return expr if isinstance(expr, str) else expr.to_string()


def schedule_due(expression: str, previous: dt.datetime, now: dt.datetime, started: dt.datetime) -> bool:
    """Whether a schedule fires in (previous, now]: rate() counted from `started`, cron() in UTC minutes."""
    upcoming = parse_schedule(expression).next_after(previous, started)
    return upcoming is not None and upcoming <= now


# Each scheduled handler's name -> its parsed schedule and its next fire time.
SchedulePlan = dict[str, tuple[Schedule, dt.datetime]]


def plan_schedules(sources: Iterable[ScheduledEventConfig], now: dt.datetime) -> SchedulePlan:
    """Each scheduled handler's parsed schedule and first fire time after `now`.

    Raises ScheduleError naming every schedule EventBridge would refuse or that never fires,
    so that the stack refuses to start rather than fail at the first tick.
    """
    planned: SchedulePlan = {}
    problems: list[str] = []
    for source in sources:
        expression = _expression(source)
        try:
            schedule = parse_schedule(expression)
            planned[source.name] = (schedule, check_fires(schedule, now))
        except ScheduleError as error:
            problems.append(f"schedule {source.name!r} (handler {source.handler_string}): {error}")
    if problems:
        raise ScheduleError("cannot schedule: " + "; ".join(problems))
    return planned


def scheduled_event(rule_name: str, region: str, when: dt.datetime | None = None) -> dict[str, Any]:
    """An EventBridge scheduled event, as Lambda receives it."""
    moment = when or dt.datetime.now(dt.UTC)
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": ACCOUNT_ID,
        "time": moment.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": region,
        "resources": [f"arn:aws:events:{region}:{ACCOUNT_ID}:rule/{rule_name}"],
        "detail": {},
    }


# --- DynamoDB streams -------------------------------------------------------------------------


def _json_safe(value: Any) -> Any:
    """Convert boto3's parsed AttributeValues back to the Lambda event's JSON form."""
    if isinstance(value, bytes | bytearray):
        return base64.b64encode(bytes(value)).decode()
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | set | tuple):
        return [_json_safe(v) for v in value]
    if isinstance(value, dt.datetime):
        return int(value.timestamp())
    return value


def stream_event(records: Iterable[dict[str, Any]], stream_arn: str, region: str) -> dict[str, Any]:
    """A DynamoDB stream event as Lambda receives it, from GetRecords records."""
    out = []
    for record in records:
        shaped = _json_safe(record)
        shaped["eventSourceARN"] = stream_arn
        shaped.setdefault("awsRegion", region)
        shaped.setdefault("eventSource", "aws:dynamodb")
        out.append(shaped)
    # A round trip through JSON proves the event is what Lambda could have sent.
    return dict(json.loads(json.dumps({"Records": out})))


@dataclass
class StreamStats:
    batches: int = 0
    records: int = 0
    failures: int = 0
    redelivered: int = 0
    last_error: str | None = None


@dataclass
class _Shard:
    shard_id: str
    iterator: str | None


@dataclass
class StreamPump:
    """Polls one stream and delivers its records in batches to one handler."""

    streams: Any  # a boto3 dynamodbstreams client
    tables: Any  # a boto3 dynamodb client
    stream_arn: str
    handler: Handler
    name: str
    region: str
    table: str | None = None  # the table whose stream this is (default: named by stream_arn)
    batch_size: int = 100
    starting_position: str = "TRIM_HORIZON"
    max_attempts: int = 10
    stats: StreamStats = field(default_factory=StreamStats)
    _shards: dict[str, _Shard] = field(default_factory=dict)
    _seen: set[Any] = field(default_factory=set)

    def current_stream_arn(self) -> str:
        """The table's current stream: the app's ARN names the table, the label may be stale.

        (The app module is imported once per process, while each local stack creates its
        tables anew, so the label baked into the handler's ARN may be an old one.)
        """
        table = self.table or self.stream_arn.split(":table/", 1)[1].split("/", 1)[0]
        return str(self.tables.describe_table(TableName=table)["Table"]["LatestStreamArn"])

    def _refresh_shards(self) -> None:
        if not self._shards:
            self.stream_arn = self.current_stream_arn()
        description = self.streams.describe_stream(StreamArn=self.stream_arn)["StreamDescription"]
        for shard in description.get("Shards", []):
            shard_id = shard["ShardId"]
            if shard_id not in self._shards:
                iterator = self.streams.get_shard_iterator(
                    StreamArn=self.stream_arn, ShardId=shard_id, ShardIteratorType=self.starting_position
                )["ShardIterator"]
                self._shards[shard_id] = _Shard(shard_id, iterator)

    def pump_once(self) -> int:
        """Deliver at most one batch per shard; the number of records delivered."""
        self._refresh_shards()
        delivered = 0
        for shard in self._shards.values():
            if shard.iterator is None:
                continue
            answer = self.streams.get_records(ShardIterator=shard.iterator, Limit=self.batch_size)
            # moto can give two concurrent writes one sequence number, and then hands the second
            # record out twice; a real stream delivers each record once per batch boundary.
            records = [r for r in answer.get("Records", []) if r.get("eventID") not in self._seen]
            self._seen.update(r.get("eventID") for r in records)
            if len(self._seen) > 100_000:
                self._seen.clear()
            if records:
                self._deliver(shard, records)
                delivered += len(records)
            shard.iterator = answer.get("NextShardIterator")
        return delivered

    def _deliver(self, shard: _Shard, records: list[dict[str, Any]]) -> None:
        pending = records
        for attempt in range(self.max_attempts):
            event = stream_event(pending, self.stream_arn, self.region)
            try:
                result = self.handler(event, lambda_context(self.name))
            except Exception as e:  # the real mapping retries the whole batch
                self.stats.failures += 1
                self.stats.last_error = f"{type(e).__name__}: {e}"
                logger.warning("stream handler %s failed (attempt %d): %s", self.name, attempt + 1, e)
                time.sleep(min(2.0, 0.05 * 2**attempt))
                continue
            self.stats.batches += 1
            failed = [f["itemIdentifier"] for f in (result or {}).get("batchItemFailures", [])]
            if not failed:
                self.stats.records += len(pending)
                return
            # Report-batch-item-failures: re-deliver from the first failed record on.
            positions = [i for i, r in enumerate(pending) if r["dynamodb"]["SequenceNumber"] in failed]
            first = positions[0] if positions else 0
            self.stats.records += first
            self.stats.redelivered += len(pending) - first
            pending = pending[first:]
            time.sleep(min(2.0, 0.05 * 2**attempt))
        raise RuntimeError(f"stream handler {self.name} kept failing: {self.stats.last_error}")


# --- SQS queues -------------------------------------------------------------------------------

# Lambda's SQS poller asks for at most 10 messages a call, as ReceiveMessage allows.
_SQS_RECEIVE_MAX = 10
_MISSING_QUEUE = ("AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist")


def _sqs_message_attributes(attributes: dict[str, Any]) -> dict[str, Any]:
    """ReceiveMessage's MessageAttributes as the Lambda event spells them (binary: base64)."""
    out: dict[str, Any] = {}
    for name, attribute in attributes.items():
        shaped: dict[str, Any] = {}
        if "StringValue" in attribute:
            shaped["stringValue"] = attribute["StringValue"]
        if "BinaryValue" in attribute:
            shaped["binaryValue"] = _json_safe(attribute["BinaryValue"])
        shaped["stringListValues"] = list(attribute.get("StringListValues", []))
        shaped["binaryListValues"] = [_json_safe(v) for v in attribute.get("BinaryListValues", [])]
        shaped["dataType"] = attribute["DataType"]
        out[name] = shaped
    return out


def sqs_event(messages: Iterable[dict[str, Any]], queue_arn: str, region: str) -> dict[str, Any]:
    """An SQS event as Lambda receives it, from ReceiveMessage messages."""
    records = []
    for message in messages:
        record: dict[str, Any] = {
            "messageId": message["MessageId"],
            "receiptHandle": message["ReceiptHandle"],
            "body": message["Body"],
            "attributes": dict(message.get("Attributes", {})),
            "messageAttributes": _sqs_message_attributes(message.get("MessageAttributes", {})),
            "md5OfBody": message["MD5OfBody"],
        }
        if "MD5OfMessageAttributes" in message:
            record["md5OfMessageAttributes"] = message["MD5OfMessageAttributes"]
        record["eventSource"] = "aws:sqs"
        record["eventSourceARN"] = queue_arn
        record["awsRegion"] = region
        records.append(record)
    return dict(json.loads(json.dumps({"Records": records})))


def _failed_message_ids(result: Any, message_ids: set[str]) -> set[str] | None:
    """The messages a handler's `batchItemFailures` names; None when the whole batch failed.

    As Lambda reads the answer: no answer or an empty list is success; an identifier that
    is empty or not in the batch fails the whole batch.
    """
    failures = result.get("batchItemFailures") if isinstance(result, dict) else None
    if not failures:
        return set()
    failed: set[str] = set()
    for failure in failures:
        identifier = failure.get("itemIdentifier") if isinstance(failure, dict) else None
        if not identifier or identifier not in message_ids:
            return None
        failed.add(identifier)
    return failed


@dataclass
class QueueStats:
    batches: int = 0  # invocations that returned
    messages: int = 0  # messages handled and deleted
    failures: int = 0  # invocations that raised (or failed the whole batch)
    redelivered: int = 0  # messages left in the queue to come back after the visibility timeout
    last_error: str | None = None


@dataclass
class SqsPump:
    """Polls one queue and delivers its messages in batches to one handler, as Lambda's poller.

    Messages are received with a short visibility timeout, so a failed batch (the handler
    raised) or the messages a handler names in `batchItemFailures` come back quickly;
    the others are deleted once the handler returns.
    """

    sqs: Any  # a boto3 sqs client
    queue: str  # the queue's name, or its URL
    handler: Handler
    name: str
    region: str
    batch_size: int = 10
    visibility_timeout: int = 2
    stats: QueueStats = field(default_factory=QueueStats)
    queue_url: str | None = None
    queue_arn: str | None = None
    _missing_reported: bool = False

    def resolve(self) -> str:
        """The queue's URL (and ARN), looked up by name once."""
        if self.queue_url is None or self.queue_arn is None:
            if self.queue.startswith(("http://", "https://")):
                url = self.queue
            else:
                url = str(self.sqs.get_queue_url(QueueName=self.queue)["QueueUrl"])
            attributes = self.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]
            self.queue_url, self.queue_arn = url, str(attributes["QueueArn"])
        return self.queue_url

    def pump_once(self, wait_seconds: int = 0) -> int:
        """Receive up to one batch (long-polling `wait_seconds`) and deliver it; the messages received."""
        try:
            url = self.resolve()
        except ClientError as e:
            if e.response.get("Error", {}).get("Code") not in _MISSING_QUEUE:
                raise
            if not self._missing_reported:
                logger.warning("queue %s of handler %s does not exist (yet)", self.queue, self.name)
                self._missing_reported = True
            return 0
        messages: list[dict[str, Any]] = []
        wait = wait_seconds
        while len(messages) < self.batch_size:
            answer = self.sqs.receive_message(
                QueueUrl=url,
                MaxNumberOfMessages=min(_SQS_RECEIVE_MAX, self.batch_size - len(messages)),
                WaitTimeSeconds=wait,
                VisibilityTimeout=self.visibility_timeout,
                MessageSystemAttributeNames=["All"],
                MessageAttributeNames=["All"],
            )
            received = answer.get("Messages", [])
            messages.extend(received)
            if len(received) < _SQS_RECEIVE_MAX:
                break
            wait = 0  # a batch larger than one receive: take what is there now
        if messages:
            self._deliver(url, messages)
        return len(messages)

    def _deliver(self, url: str, messages: list[dict[str, Any]]) -> None:
        assert self.queue_arn is not None
        event = sqs_event(messages, self.queue_arn, self.region)
        try:
            result = self.handler(event, lambda_context(self.name))
        except Exception as e:  # the messages stay; they come back after the visibility timeout
            self.stats.failures += 1
            self.stats.redelivered += len(messages)
            self.stats.last_error = f"{type(e).__name__}: {e}"
            logger.warning("queue handler %s failed: %s", self.name, e)
            return
        self.stats.batches += 1
        failed = _failed_message_ids(result, {m["MessageId"] for m in messages})
        if failed is None:
            self.stats.failures += 1
            self.stats.redelivered += len(messages)
            self.stats.last_error = f"invalid batchItemFailures: {result!r}"
            logger.warning("queue handler %s answered an invalid batchItemFailures", self.name)
            return
        done = [m for m in messages if m["MessageId"] not in failed]
        for start in range(0, len(done), _SQS_RECEIVE_MAX):
            chunk = done[start : start + _SQS_RECEIVE_MAX]
            answer = self.sqs.delete_message_batch(
                QueueUrl=url,
                Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(chunk)],
            )
            for failure in answer.get("Failed", []):
                logger.warning("could not delete a message of %s: %s", self.queue, failure)
        self.stats.messages += len(done)
        self.stats.redelivered += len(failed)


# --- CloudWatch alarm state changes -----------------------------------------------------------


def pattern_matches(pattern: Any, event: Any) -> bool:
    """EventBridge pattern matching for the forms the app uses: lists of values, nesting."""
    if isinstance(pattern, dict):
        return isinstance(event, dict) and all(k in event and pattern_matches(v, event[k]) for k, v in pattern.items())
    if isinstance(pattern, list):
        if isinstance(event, list):
            return any(pattern_matches(pattern, e) for e in event)
        return any(_value_matches(p, event) for p in pattern)
    return bool(pattern == event)


def _value_matches(rule: Any, value: Any) -> bool:
    """One entry of a pattern's value list: a literal, or a {"prefix": ...} content filter."""
    if isinstance(rule, dict):
        if "prefix" in rule:
            return isinstance(value, str) and value.startswith(rule["prefix"])
        return pattern_matches(rule, value)
    return bool(rule == value)


def alarm_event(alarm: dict[str, Any], previous: str, region: str) -> dict[str, Any]:
    """The EventBridge 'CloudWatch Alarm State Change' event for a DescribeAlarms entry."""
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.000+0000")
    event: dict[str, Any] = _json_safe(
        {
            "version": "0",
            "id": str(uuid.uuid4()),
            "detail-type": "CloudWatch Alarm State Change",
            "source": "aws.cloudwatch",
            "account": ACCOUNT_ID,
            "time": now,
            "region": region,
            "resources": [alarm["AlarmArn"]],
            "detail": {
                "alarmName": alarm["AlarmName"],
                "state": {"value": alarm["StateValue"], "reason": alarm.get("StateReason", ""), "timestamp": now},
                "previousState": {"value": previous},
                "configuration": {
                    "metrics": alarm.get("Metrics", []),
                    "description": alarm.get("AlarmDescription", ""),
                    "namespace": alarm.get("Namespace"),
                    "metricName": alarm.get("MetricName"),
                    "threshold": alarm.get("Threshold"),
                },
            },
        }
    )
    return event


# --- The emulator ----------------------------------------------------------------------------


@dataclass
class EventEmulator:
    """Runs the app's event sources against moto: stream pumps, a scheduler, alarm watcher."""

    app: Chalice
    clients: Callable[[str], Any]  # service name -> boto3 client (pointed at moto)
    region: str = "us-east-1"
    poll_seconds: float = 0.25
    resolver: Callable[[str], Handler] = resolve_handler
    # The table behind the app's stream sources, when the ARN baked in at import is stale.
    stream_table: str | None = None
    # The queue to poll for a queue the app names (by name or ARN), when it differs.
    queues: dict[str, str] = field(default_factory=dict)
    # ReceiveMessage's WaitTimeSeconds in the background thread (0: short polls every poll_seconds).
    queue_wait_seconds: int = 0
    queue_visibility_timeout: int = 2
    pumps: list[StreamPump] = field(default_factory=list)
    queue_pumps: list[SqsPump] = field(default_factory=list)
    fired: list[str] = field(default_factory=list)
    # The scheduler's clock (UTC, timezone-aware); tests move it by hand.
    clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC)
    # Each schedule, parsed, with its next fire time: rate() schedules count from start().
    planned: SchedulePlan = field(default_factory=dict)
    _schedules_started: dt.datetime | None = None
    _alarm_states: dict[str, str] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _queue_lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        # Every schedule is checked before anything runs: one EventBridge would refuse, or that
        # never fires, stops the stack here with its name and handler, not at the first tick.
        self.plan_schedules()
        for source in self.app.event_sources:
            if isinstance(source, SQSEventConfig):
                self.queue_pumps.append(self._queue_pump(source))
            if isinstance(source, DynamoDBEventConfig):
                self.pumps.append(
                    StreamPump(
                        streams=self.clients("dynamodbstreams"),
                        tables=self.clients("dynamodb"),
                        stream_arn=source.stream_arn,
                        table=self.stream_table,
                        handler=self.resolver(source.handler_string),
                        name=source.name,
                        region=self.region,
                        batch_size=source.batch_size,
                        starting_position=source.starting_position,
                    )
                )

    def _queue_pump(self, source: SQSEventConfig) -> SqsPump:
        named = source.queue or (source.queue_arn or "").rsplit(":", 1)[-1]
        queue = self.queues.get(named) or self.queues.get(source.queue_arn or "") or named
        return SqsPump(
            sqs=self.clients("sqs"),
            queue=queue,
            handler=self.resolver(source.handler_string),
            name=source.name,
            region=self.region,
            batch_size=source.batch_size,
            visibility_timeout=self.queue_visibility_timeout,
        )

    def schedules(self) -> list[ScheduledEventConfig]:
        return [s for s in self.app.event_sources if isinstance(s, ScheduledEventConfig)]

    def plan_schedules(self) -> dict[str, dt.datetime]:
        """Parse every schedule and compute its first fire time from now (ScheduleError if one cannot run)."""
        now = self.clock()
        self.planned = plan_schedules(self.schedules(), now)
        self._schedules_started = now
        return self.next_fires()

    def next_fires(self) -> dict[str, dt.datetime]:
        """When each scheduled handler fires next (UTC)."""
        return {name: upcoming for name, (_, upcoming) in self.planned.items()}

    def fire_due_schedules(self) -> list[str]:
        """Run every scheduled handler whose fire time has come, once, and plan its next one.

        A scheduler that fell behind (a suspended laptop) fires a schedule once, not once per
        missed time, and plans from now: EventBridge does not catch up either.
        """
        now = self.clock()
        fired: list[str] = []
        for name, (schedule, upcoming) in list(self.planned.items()):
            if upcoming > now:
                continue
            following = schedule.next_after(now, self._schedules_started)
            if following is None:
                del self.planned[name]  # its last fire time (the year field ran out)
            else:
                self.planned[name] = (schedule, following)
            try:
                self.run_job(name, upcoming)  # the event carries its scheduled time, as EventBridge's does
                fired.append(name)
            except Exception:
                logger.exception("scheduled handler %s failed", name)
        return fired

    def alarm_handlers(self) -> list[CloudWatchEventConfig]:
        return [s for s in self.app.event_sources if isinstance(s, CloudWatchEventConfig)]

    def run_job(self, name: str, when: dt.datetime | None = None) -> Any:
        """Invoke a scheduled handler now, as its schedule would (its event's time: `when`, or now)."""
        for source in self.schedules():
            if source.name == name:
                self.fired.append(name)
                return self.resolver(source.handler_string)(
                    scheduled_event(f"iotcloud-{name}", self.region, when), lambda_context(name)
                )
        known = ", ".join(s.name for s in self.schedules()) or "none"
        raise KeyError(f"no scheduled handler {name!r} (known: {known})")

    def pump_streams(self) -> int:
        with self._lock:
            return sum(pump.pump_once() for pump in self.pumps)

    def pump_queues(self, wait_seconds: int = 0) -> int:
        with self._queue_lock:
            return sum(pump.pump_once(wait_seconds) for pump in self.queue_pumps)

    def drain(self, timeout: float = 60.0, quiet_polls: int = 2) -> int:
        """Deliver stream records and visible queue messages until `quiet_polls` polls in a row find none.

        Queue messages that are delayed or waiting out a visibility timeout are not waited for.
        """
        deadline = time.monotonic() + timeout
        total, quiet = 0, 0
        while quiet < quiet_polls:
            if time.monotonic() > deadline:
                raise TimeoutError("streams did not drain in time")
            delivered = self.pump_streams() + self.pump_queues()
            total += delivered
            quiet = quiet + 1 if delivered == 0 else 0
        return total

    def check_alarms(self) -> int:
        """Deliver a state-change event for every alarm whose state changed since the last check."""
        handlers = self.alarm_handlers()
        if not handlers:
            return 0
        cloudwatch = self.clients("cloudwatch")
        delivered = 0
        for alarm in cloudwatch.describe_alarms().get("MetricAlarms", []):
            name, state = alarm["AlarmName"], alarm["StateValue"]
            previous = self._alarm_states.get(name)
            self._alarm_states[name] = state
            if previous is None or previous == state:
                continue
            event = alarm_event(alarm, previous, self.region)
            for source in handlers:
                if pattern_matches(source.event_pattern, event):
                    self.resolver(source.handler_string)(event, lambda_context(source.name))
                    delivered += 1
        return delivered

    def _run_streams(self) -> None:
        while not self._stop.is_set():
            try:
                if self.pump_streams() == 0:
                    self._stop.wait(self.poll_seconds)
            except Exception:
                logger.exception("stream emulation failed; retrying")
                self._stop.wait(1.0)

    def _run_queues(self) -> None:
        while not self._stop.is_set():
            try:
                if self.pump_queues(self.queue_wait_seconds) == 0:
                    self._stop.wait(self.poll_seconds)
            except Exception:
                logger.exception("queue emulation failed; retrying")
                self._stop.wait(1.0)

    def _run_schedules(self) -> None:
        while not self._stop.wait(1.0):
            self.fire_due_schedules()
            try:
                self.check_alarms()
            except Exception:
                logger.exception("alarm emulation failed")

    def start(self) -> None:
        for name, upcoming in self.plan_schedules().items():  # rate() schedules count from here
            schedule = self.planned[name][0]
            logger.info("schedule %s: %s, next at %s", name, schedule.expression, f"{upcoming:%Y-%m-%dT%H:%MZ}")
        targets = [(self._run_streams, "streams"), (self._run_schedules, "schedules")]
        if self.queue_pumps:
            targets.append((self._run_queues, "queues"))
        for target, name in targets:
            thread = threading.Thread(target=target, name=f"emulate-{name}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=10)
        self._threads.clear()
