"""One retry budget per request, through the API, on a fake clock: throttling never outlasts it.

Faults are injected as in test_idempotency_and_faults (PynamoDB's Connection.dispatch) and
each simulated DynamoDB call moves the fake clock by its latency; the last tests inject
throttling at the HTTP level instead (a before-send hook on the real botocore client) to
count what botocore itself sends.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from botocore.awsrequest import AWSResponse
from botocore.exceptions import ReadTimeoutError

from chalicelib import wiring
from chalicelib.adapters.retry import RetryPolicy
from chalicelib.models import APP_RETRIED, DeviceModel, ReadingChunkModel
from tests.fake_clock import FakeClock
from tests.functional.helpers import HOUR, T0, body_of, dynamodb, error_of, latest_of, stored_items, throttled

BATCH_WRITE = "BatchWriteItem"
UPDATE_ITEM = "UpdateItem"
THROTTLED = "ProvisionedThroughputExceededException"
BASE_LATENCY = 0.01


@pytest.fixture
def clock(api: Any, monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    """Every request's retry budget runs on a fake clock, with the slowest backoff (rng 1.0)."""
    fake = FakeClock(now=0.0)  # the budget runs from 0: the last test reads clock.now as time spent
    retries = RetryPolicy.from_settings(wiring.bound_settings(), clock=fake, sleep=fake.sleep, rng=lambda: 1.0)
    monkeypatch.setattr(wiring, "retry_policy", lambda: retries)
    return fake


def budget_s() -> float:
    return wiring.bound_settings().retry_budget_s


def batch(records: int = 5, metrics: int = 2, step: int = 1000) -> list[dict[str, Any]]:
    return [{"ts": T0 + i * step, "values": {f"m{j}": i + j for j in range(metrics)}} for i in range(records)]


@dataclass
class Dynamo:
    """Simulated DynamoDB: `faults` says how many calls of an operation fail; the faulted
    operations' calls take `latency` fake seconds, the others `BASE_LATENCY`."""

    clock: FakeClock
    latency: float = 0.05
    faults: dict[str, int] = field(default_factory=dict)  # operation -> how many of its calls fail
    hang: bool = False  # failing calls time out (after the read timeout) instead of being throttled
    seen: dict[str, int] = field(default_factory=dict)

    def __call__(self, operation: str, kwargs: dict[str, Any]) -> dict[str, Any] | None:
        self.seen[operation] = self.seen.get(operation, 0) + 1
        if self.seen[operation] > self.faults.get(operation, 0):
            self.clock.now += self.latency if operation in self.faults else BASE_LATENCY
            return None
        if self.hang:
            self.clock.now += wiring.retry_policy().attempt_timeout_s
            raise ReadTimeoutError(endpoint_url="http://dynamodb.us-east-1.amazonaws.com")
        self.clock.now += self.latency
        raise throttled(operation)


def assert_unavailable(answer: Any) -> None:
    assert answer.status_code == 503, answer.body
    assert error_of(answer)["code"] == "storage_unavailable"
    assert int(answer.headers["Retry-After"]) >= 1


FOREVER = 10**6


@pytest.mark.parametrize(
    ("latency", "hang"),
    [(0.005, False), (1.5, False), (3.9, False), (0.0, True)],
    ids=["fast-throttle", "slow-throttle", "nearly-timing-out", "hung-until-read-timeout"],
)
def test_a_write_that_never_lands_is_503_within_the_budget_then_a_retry_stores_once(
    api: Any, device: dict[str, Any], clock: FakeClock, latency: float, hang: bool
) -> None:
    body = batch()
    dynamo = Dynamo(clock, latency=latency, faults={BATCH_WRITE: FOREVER}, hang=hang)
    start = clock.now
    with dynamodb(dynamo) as calls:
        answer = api.post(device["token"], body)
    assert_unavailable(answer)
    assert 1 <= calls.count(BATCH_WRITE) <= wiring.retry_policy().max_attempts  # (a) bounded calls
    assert clock.now - start <= budget_s()  # (b) the simulated time stays within the budget
    assert UPDATE_ITEM not in calls  # (c) nothing acknowledged: the state is untouched
    assert stored_items(device["id"]) == 0
    assert latest_of(api, device["id"]) == {}

    assert api.post(device["token"], body).status_code == 200
    assert stored_items(device["id"]) == 1
    assert len(api.readings(device["id"])) == 10


def test_the_chunk_write_and_the_state_update_share_one_budget(
    api: Any, device: dict[str, Any], clock: FakeClock
) -> None:
    body = batch(records=4, step=HOUR)  # four hours: four chunks, one BatchWriteItem
    # The write lands on its fourth attempt (slowly); the state update is throttled to the end.
    dynamo = Dynamo(clock, latency=1.0, faults={BATCH_WRITE: 3, UPDATE_ITEM: FOREVER})
    start = clock.now
    with dynamodb(dynamo) as calls:
        answer = api.post(device["token"], body)
    assert_unavailable(answer)
    assert calls.count(BATCH_WRITE) == 4
    # 4 s of writes and 0.35 s of backoff leave about 5.6 s: the update gets two attempts, not six.
    assert calls.count(UPDATE_ITEM) == 2
    assert clock.now - start <= budget_s()
    assert latest_of(api, device["id"]) == {}
    written = stored_items(device["id"])
    assert written == 4  # written, not acknowledged: harmless, the keys come from the content

    answer = api.post(device["token"], body)
    assert answer.status_code == 200, answer.body
    assert body_of(answer)["accepted"] == 8
    assert stored_items(device["id"]) == written  # the retry rewrote the same items
    assert len(api.readings(device["id"])) == 8
    assert latest_of(api, device["id"]) == {("m0", ""): (T0 + 3 * HOUR, 3), ("m1", ""): (T0 + 3 * HOUR, 4)}


def test_throttling_that_stops_within_the_budget_is_a_200(api: Any, device: dict[str, Any], clock: FakeClock) -> None:
    dynamo = Dynamo(clock, latency=0.2, faults={BATCH_WRITE: 3, UPDATE_ITEM: 2})
    start = clock.now
    with dynamodb(dynamo) as calls:
        answer = api.post(device["token"], batch())
    assert answer.status_code == 200, answer.body
    assert calls.count(BATCH_WRITE) == 4 and calls.count(UPDATE_ITEM) == 3
    assert clock.now - start <= budget_s()
    assert clock.sleeps == [0.05, 0.1, 0.2, 0.05, 0.1]  # each call's backoff starts over; the time does not
    assert stored_items(device["id"]) == 1
    assert len(api.readings(device["id"])) == 10


def test_each_request_gets_a_budget_of_its_own(api: Any, device: dict[str, Any], clock: FakeClock) -> None:
    for n in range(3):
        dynamo = Dynamo(clock, latency=1.5, faults={BATCH_WRITE: FOREVER})
        start = clock.now
        with dynamodb(dynamo) as calls:
            assert_unavailable(api.post(device["token"], batch()))
        assert calls.count(BATCH_WRITE) == 4, n  # not fewer: the last request's spent time is not carried over
        assert clock.now - start <= budget_s()


# --------------------------------------------------------------------------- botocore's own retries


class _Body(io.BytesIO):
    def stream(self, **kwargs: Any) -> Iterator[bytes]:
        yield self.getvalue()


def _throttled_http(request: Any, **kwargs: Any) -> AWSResponse:
    """DynamoDB's throttling answer, as it arrives over HTTP (botocore parses and retries it, or not)."""
    body = json.dumps({"__type": f"com.amazonaws.dynamodb.v20120810#{THROTTLED}", "message": "Rate exceeded"})
    headers = {"Content-Type": "application/x-amz-json-1.0", "x-amzn-RequestId": "injected"}
    return AWSResponse(request.url, 400, headers, _Body(body.encode()))


def test_the_app_retried_tables_clients_make_one_attempt_with_short_timeouts(api: Any) -> None:
    s = wiring.bound_settings()
    for model in APP_RETRIED:
        config = model._get_connection().connection.client.meta.config
        assert config.retries == {"total_max_attempts": 1, "mode": "standard"}, model
        assert (config.connect_timeout, config.read_timeout) == (
            s.dynamodb_connect_timeout_s,
            s.dynamodb_read_timeout_s,
        )
    assert wiring.retry_policy().attempt_timeout_s == s.dynamodb_connect_timeout_s + s.dynamodb_read_timeout_s


@pytest.mark.parametrize(("model", "operation"), [(ReadingChunkModel, BATCH_WRITE), (DeviceModel, UPDATE_ITEM)])
def test_throttled_over_http_each_app_attempt_is_one_http_request(
    api: Any, device: dict[str, Any], clock: FakeClock, model: Any, operation: str
) -> None:
    sent: list[str] = []

    def hook(request: Any, **kwargs: Any) -> AWSResponse:
        sent.append(request.url)
        return _throttled_http(request)

    events = model._get_connection().connection.client.meta.events
    event = f"before-send.dynamodb.{operation}"
    events.register_first(event, hook)
    try:
        with dynamodb() as calls:
            answer = api.post(device["token"], batch())
    finally:
        events.unregister(event, hook)
    assert_unavailable(answer)
    attempts = wiring.retry_policy().max_attempts
    assert calls.count(operation) == attempts  # the app's attempts
    assert len(sent) == attempts  # and botocore sent each once: 6, not 6 x 4 = 24
    assert clock.now <= budget_s()


# --------------------------------------------------------------------------- the WebSocket path


def test_a_websocket_message_runs_under_one_budget_capped_by_lambdas_time(
    api: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from chalice.local import LambdaContext

    import chalicelib.jobs.realtime as realtime
    from app import app
    from chalicelib.adapters import retry

    seen: list[Any] = []

    def handle_frame(*args: Any, **kwargs: Any) -> list[Any]:
        seen.append(retry._current.get())  # what every DynamoDB call of the message would draw on
        return []

    monkeypatch.setattr(realtime, "handle_frame", handle_frame)
    event = {
        "requestContext": {"routeKey": "$default", "eventType": "MESSAGE", "connectionId": "c-1",
                           "domainName": "ws.example", "stage": "api", "apiId": "x"},
        "body": "[]",
        "isBase64Encoded": False,
    }  # fmt: skip
    remaining_s = 6
    app.handler_map["ws_message"](event, LambdaContext("ws_message", 512, max_runtime_ms=remaining_s * 1000))
    (budget,) = seen
    assert budget is not None
    assert budget.seconds == pytest.approx(remaining_s - retry.RESPONSE_RESERVE_S, abs=0.05)
    assert retry._current.get() is None  # closed with the invocation
