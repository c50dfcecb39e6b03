"""Retries store nothing twice, and a throttling or refusing DynamoDB loses nothing.

moto never throttles and never answers with UnprocessedItems, so the faults are
injected at PynamoDB's Connection.dispatch, below PynamoDB's own error wrapping
(a botocore ClientError raised there reaches the app as PynamoDB's PutError or
UpdateError, as it would from DynamoDB).
"""

from __future__ import annotations

from typing import Any

from botocore.exceptions import ClientError

from chalicelib.models import ReadingChunkModel
from tests.functional.helpers import (
    HOUR,
    T0,
    body_of,
    dynamodb,
    error_of,
    latest_of,
    now_ms,
    real_dispatch,
    stored_items,
    throttled,
)

BATCH_WRITE = "BatchWriteItem"
UPDATE_ITEM = "UpdateItem"


def batch(records: int = 10, metrics: int = 3, start: int = T0, step: int = 1000) -> list[dict[str, Any]]:
    return [{"ts": start + i * step, "values": {f"m{j}": i * 10 + j for j in range(metrics)}} for i in range(records)]


def identities(readings: list[dict[str, Any]]) -> list[tuple[str, str, int]]:
    return [(r["metric"], r["unit"], r["ts"]) for r in readings]


# --------------------------------------------------------------------------- idempotency


def test_retried_batch_is_stored_once(api, device):
    body = batch(records=100, metrics=5)
    assert api.post(device["token"], body).status_code == 200
    items = stored_items(device["id"])
    answer = api.post(device["token"], body)
    assert answer.status_code == 200
    assert body_of(answer) == {"accepted": 500, "records": 100, "ignored": 0}
    assert stored_items(device["id"]) == items
    got = api.readings(device["id"])
    assert len(got) == 500
    assert len(set(identities(got))) == 500


def test_retried_batch_across_hours_is_stored_once(api, device):
    body = batch(records=6, metrics=2, step=HOUR // 2)  # three hours
    for _ in range(3):
        assert api.post(device["token"], body).status_code == 200
    assert stored_items(device["id"]) == 3
    assert len(api.readings(device["id"])) == 12


def test_same_idempotency_key_and_body_is_stored_once(api, device):
    body = batch(records=5)
    headers = {"Idempotency-Key": "req-0001"}
    assert api.post(device["token"], body, headers=headers).status_code == 200
    items = stored_items(device["id"])
    assert api.post(device["token"], body, headers=headers).status_code == 200
    assert stored_items(device["id"]) == items
    assert len(api.readings(device["id"])) == 15


def test_idempotency_key_makes_a_timeless_retry_harmless(api, device):
    headers = {"Idempotency-Key": "boot-7/seq-42"}
    assert api.post(device["token"], {"temp": 21}, headers=headers).status_code == 200
    _wait_for_the_next_millisecond()
    assert api.post(device["token"], {"temp": 21}, headers=headers).status_code == 200
    got = api.readings(device["id"])
    assert [(r["metric"], r["value"]) for r in got] == [("temp", 21)]


def test_different_idempotency_keys_store_separately(api, device):
    assert api.post(device["token"], batch(records=2), headers={"Idempotency-Key": "a"}).status_code == 200
    assert (
        api.post(device["token"], batch(records=2, start=T0 + 10_000), headers={"Idempotency-Key": "b"}).status_code
        == 200
    )
    assert len(api.readings(device["id"])) == 12


def test_overlapping_bodies_return_each_reading_once(api, device):
    first = batch(records=10, metrics=2)
    second = batch(records=10, metrics=2, start=T0 + 5000)  # shares five timestamps with the first
    assert api.post(device["token"], first).status_code == 200
    assert api.post(device["token"], second).status_code == 200
    assert stored_items(device["id"]) == 2
    got = api.readings(device["id"])
    assert len(got) == 30
    assert len(set(identities(got))) == 30
    assert got == sorted(got, key=lambda r: (r["ts"], r["metric"], r["unit"]))


def test_a_later_value_for_the_same_identity_wins(api, device):
    assert api.post(device["token"], {"ts": T0, "values": {"temp": 1}}).status_code == 200
    assert api.post(device["token"], {"ts": T0, "values": {"temp": 2, "hum": 3}}).status_code == 200
    assert api.readings(device["id"]) == [
        {"metric": "hum", "unit": "", "ts": T0, "value": 3},
        {"metric": "temp", "unit": "", "ts": T0, "value": 2},
    ]


def _wait_for_the_next_millisecond() -> None:
    start = now_ms()
    while now_ms() == start:
        pass


def test_timeless_body_posted_twice_is_stored_twice(api, device):
    window = []
    for _ in range(2):
        start = now_ms()
        assert api.post(device["token"], {"temp": 21}).status_code == 200
        window.append((start, now_ms()))
        _wait_for_the_next_millisecond()
    got = api.readings(device["id"])
    assert [(r["metric"], r["value"]) for r in got] == [("temp", 21), ("temp", 21)]
    assert got[0]["ts"] < got[1]["ts"]
    for reading, (start, end) in zip(got, window, strict=True):
        assert start <= reading["ts"] <= end
    assert stored_items(device["id"]) == 2


# --------------------------------------------------------------------------- faults: readings table


def unprocessed_first(times: int, calls: list[int]):
    """The first `times` BatchWriteItem calls write nothing and hand every item back."""

    def fault(operation: str, kwargs: dict[str, Any]) -> dict[str, Any] | None:
        if operation != BATCH_WRITE:
            return None
        calls.append(len(next(iter(kwargs["RequestItems"].values()))))
        if len(calls) <= times:
            return {"UnprocessedItems": kwargs["RequestItems"]}
        return None

    return fault


def test_unprocessed_items_are_retried_until_stored(api, device, sleeps):
    body = batch(records=6, metrics=4, step=HOUR // 2)  # three chunks
    writes: list[int] = []
    with dynamodb(unprocessed_first(2, writes)):
        answer = api.post(device["token"], body)
    assert answer.status_code == 200, answer.body
    assert writes == [3, 3, 3]
    assert len(sleeps) == 2
    assert len(api.readings(device["id"])) == 24
    assert stored_items(device["id"]) == 3


def test_partly_processed_batches_resend_only_the_rest(api, device, sleeps):
    body = batch(records=60, metrics=1, step=HOUR)  # 60 hours: 60 chunks, three BatchWriteItem calls
    sizes: list[int] = []

    def half_unprocessed(operation: str, kwargs: dict[str, Any]) -> dict[str, Any] | None:
        if operation != BATCH_WRITE:
            return None
        ((table, requests),) = kwargs["RequestItems"].items()
        sizes.append(len(requests))
        if len(requests) < 2:
            return None
        keep, rest = requests[: len(requests) // 2], requests[len(requests) // 2 :]
        connection = ReadingChunkModel._get_connection().connection
        written = real_dispatch(connection, operation, {**kwargs, "RequestItems": {table: keep}})
        return {**written, "UnprocessedItems": {table: rest}}

    with dynamodb(half_unprocessed):
        answer = api.post(device["token"], body)
    assert answer.status_code == 200, answer.body
    assert sum(1 for s in sizes if s > 1) >= 3
    assert max(sizes) == 25
    assert stored_items(device["id"]) == 60
    assert len(api.readings(device["id"])) == 60


def test_throttled_batch_writes_are_retried(api, device, sleeps):
    failures: list[str] = []

    def throttle_twice(operation: str, kwargs: dict[str, Any]) -> dict[str, Any] | None:
        if operation == BATCH_WRITE and len(failures) < 2:
            failures.append(operation)
            raise throttled(operation)
        return None

    with dynamodb(throttle_twice) as calls:
        answer = api.post(device["token"], batch(records=5))
    assert answer.status_code == 200, answer.body
    assert calls.count(BATCH_WRITE) == 3
    assert len(sleeps) == 2
    assert len(api.readings(device["id"])) == 15


def _always_unprocessed(operation: str, kwargs: dict[str, Any]) -> dict[str, Any] | None:
    return {"UnprocessedItems": kwargs["RequestItems"]} if operation == BATCH_WRITE else None


def _always_throttled(operation: str, kwargs: dict[str, Any]) -> dict[str, Any] | None:
    if operation == BATCH_WRITE:
        raise throttled(operation)
    return None


def _assert_unavailable(answer: Any) -> None:
    assert answer.status_code == 503, answer.body
    assert error_of(answer)["code"] == "storage_unavailable"
    assert int(answer.headers["Retry-After"]) >= 1


def test_a_store_that_never_takes_the_write_is_503_then_a_retry_stores_once(api, device, sleeps):
    body = batch(records=5)
    for fault in (_always_unprocessed, _always_throttled):
        with dynamodb(fault) as calls:
            answer = api.post(device["token"], body)
        _assert_unavailable(answer)
        assert calls.count(BATCH_WRITE) == 6  # WRITE_MAX_ATTEMPTS (default)
        assert UPDATE_ITEM not in calls  # nothing acknowledged: the state is untouched
        assert stored_items(device["id"]) == 0
        assert latest_of(api, device["id"]) == {}
    assert len(sleeps) == 10

    assert api.post(device["token"], body).status_code == 200
    assert api.post(device["token"], body).status_code == 200
    assert len(api.readings(device["id"])) == 15
    assert stored_items(device["id"]) == 1


def test_a_non_throttling_write_error_is_503_without_retries(api, device, sleeps):
    def refuse(operation: str, kwargs: dict[str, Any]) -> dict[str, Any] | None:
        if operation == BATCH_WRITE:
            raise ClientError({"Error": {"Code": "InternalFailure", "Message": "boom"}}, operation)
        return None

    with dynamodb(refuse) as calls:
        answer = api.post(device["token"], batch(records=1))
    _assert_unavailable(answer)
    assert calls.count(BATCH_WRITE) == 1
    assert sleeps == []


# --------------------------------------------------------------------------- faults: devices table


def test_throttled_state_update_is_503_and_a_retry_stores_readings_once(api, device, sleeps):
    body = batch(records=4, metrics=2)

    def throttle_state(operation: str, kwargs: dict[str, Any]) -> dict[str, Any] | None:
        if operation == UPDATE_ITEM:
            raise throttled(operation)
        return None

    with dynamodb(throttle_state):
        answer = api.post(device["token"], body)
    _assert_unavailable(answer)
    assert latest_of(api, device["id"]) == {}

    assert api.post(device["token"], body).status_code == 200
    got = api.readings(device["id"])
    assert len(got) == 8 and len(set(identities(got))) == 8
    assert stored_items(device["id"]) == 1
    assert latest_of(api, device["id"]) == {("m0", ""): (T0 + 3000, 30), ("m1", ""): (T0 + 3000, 31)}


def test_throttled_out_of_order_state_merge_is_503(api, device, sleeps):
    assert api.post(device["token"], {"ts": T0 + 1000, "values": {"temp": 2}}).status_code == 200
    updates: list[str] = []

    def throttle_merge(operation: str, kwargs: dict[str, Any]) -> dict[str, Any] | None:
        if operation == UPDATE_ITEM:
            updates.append(operation)
            if len(updates) >= 2:  # the first is the fast path, refused by its condition
                raise throttled(operation)
        return None

    with dynamodb(throttle_merge):
        answer = api.post(device["token"], {"ts": T0, "values": {"temp": 1, "hum": 5}})
    _assert_unavailable(answer)
    assert api.post(device["token"], {"ts": T0, "values": {"temp": 1, "hum": 5}}).status_code == 200
    assert latest_of(api, device["id"]) == {("temp", ""): (T0 + 1000, 2), ("hum", ""): (T0, 5)}


def test_throttled_token_lookup_is_503_not_401(api, device, sleeps):
    def throttle_lookup(operation: str, kwargs: dict[str, Any]) -> dict[str, Any] | None:
        # A device token names its device: its lookup is a GetItem (an old token's: test_device_tokens.py).
        if operation == "GetItem" and kwargs.get("Key", {}).get("device_id") == {"S": device["id"]}:
            raise throttled(operation)
        return None

    with dynamodb(throttle_lookup):
        answer = api.post(device["token"], {"temp": 1})
    _assert_unavailable(answer)
    assert api.post(device["token"], {"temp": 1}).status_code == 200
