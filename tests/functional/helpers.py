"""Helpers shared by the functional tests: JSON bodies, clocks, DynamoDB call counting and faults."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from decimal import Decimal
from typing import Any
from unittest.mock import patch

from botocore.exceptions import ClientError
from pynamodb.connection.base import Connection

from chalicelib import wiring

# 2025-11-25T09:00:00Z: an hour start, in the past, after 2000.
T0 = 1_764_061_200_000
HOUR = 3_600_000

ERROR_KEYS = {"code", "message", "details"}


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def body_of(answer: Any) -> Any:
    return json.loads(answer.body)


def error_of(answer: Any) -> dict[str, Any]:
    """The error object of an error answer, after checking the shared error shape."""
    doc = body_of(answer)
    assert set(doc) == {"error"}, doc
    error = doc["error"]
    assert set(error) == ERROR_KEYS, error
    assert isinstance(error["code"], str) and error["code"]
    assert isinstance(error["message"], str) and error["message"]
    assert isinstance(error["details"], list)
    for detail in error["details"]:
        assert {"code", "message"} <= set(detail) <= {"code", "message", "index", "metric", "field"}, detail
    return error  # type: ignore[no-any-return]


def state_of(api: Any, device_id: str, token: str | None = None) -> dict[str, Any]:
    answer = api.request("GET", f"/v1/devices/{device_id}/state", token or api.admin)
    assert answer.status_code == 200, answer.body
    return body_of(answer)  # type: ignore[no-any-return]


def latest_of(api: Any, device_id: str) -> dict[tuple[str, str], tuple[int, Any]]:
    """The device state's latest values as {(metric, unit): (ts, value)}."""
    return {(r["metric"], r["unit"]): (r["ts"], r["value"]) for r in state_of(api, device_id)["latest"]}


def stored_items(device_id: str) -> int:
    """How many chunk items the readings table holds for a device."""
    return sum(1 for _ in wiring.readings().iter_all(device_id))


def throttled(operation: str) -> ClientError:
    """The ClientError botocore raises when DynamoDB throttles `operation`."""
    return ClientError(
        {"Error": {"Code": "ProvisionedThroughputExceededException", "Message": "Rate of requests exceeds"}},
        operation,
    )


def _validation_error(operation: str, message: str) -> ClientError:
    return ClientError({"Error": {"Code": "ValidationException", "Message": message}}, operation)


def _numbers(value: Any) -> Iterator[str]:
    """Every number (N, NS) in a request's attribute values."""
    if isinstance(value, dict):
        for key, item in value.items():
            if key == "N" and isinstance(item, str):
                yield item
            elif key == "NS" and isinstance(item, list):
                yield from item
            else:
                yield from _numbers(item)
    elif isinstance(value, list):
        for item in value:
            yield from _numbers(item)


def _number_problem(text: str) -> str | None:
    """Why DynamoDB would refuse a number: 38 significant digits, magnitude 1e-130 to 1e126."""
    number = Decimal(text)
    if not number.is_finite():
        return "not a number"
    if number == 0:
        return None
    if len(number.normalize().as_tuple().digits) > 38:
        return "Attempting to store more than 38 significant digits in a Number"
    if number.adjusted() > 125:
        return "Number overflow. Attempting to store a number with magnitude larger than supported range"
    if number.adjusted() < -130:
        return "Number underflow. Attempting to store a number with magnitude smaller than supported range"
    return None


def like_dynamodb(operation: str, kwargs: dict[str, Any]) -> dict[str, Any] | None:
    """A fault that is not one: refuse what DynamoDB refuses and moto lets through.

    DynamoDB answers a key condition `BETWEEN :a AND :b` with a > b, and numbers
    outside its range or precision, with a ValidationException; moto does not.
    """
    if operation in ("PutItem", "UpdateItem", "BatchWriteItem"):
        for text in _numbers({k: v for k, v in kwargs.items() if k != "ReturnConsumedCapacity"}):
            problem = _number_problem(text)
            if problem is not None:
                raise _validation_error(operation, problem)
    expression = kwargs.get("KeyConditionExpression", "")
    if operation == "Query" and " BETWEEN " in expression:
        low_name, high_name = expression.split(" BETWEEN ", 1)[1].split(" AND ")[:2]
        values = kwargs.get("ExpressionAttributeValues", {})
        low, high = values[low_name.strip()]["S"], values[high_name.strip().rstrip(")")]["S"]
        if low > high:
            raise _validation_error(
                operation,
                "Invalid KeyConditionExpression: The BETWEEN operator requires upper bound "
                "to be greater than or equal to lower bound",
            )
    return None


# The real dispatch, for faults that let part of a call through.
real_dispatch = Connection.dispatch

Fault = Callable[[str, dict[str, Any]], dict[str, Any] | None]


@contextmanager
def dynamodb(fault: Fault | None = None) -> Iterator[list[str]]:
    """Record every DynamoDB operation PynamoDB dispatches (names, in order).

    `fault(operation, kwargs)` may raise (as botocore would), return an answer to use
    instead of calling DynamoDB, or return None to let the call through.
    """
    calls: list[str] = []
    original = Connection.dispatch

    def dispatch(self: Connection, operation_name: str, operation_kwargs: dict[str, Any]) -> dict[str, Any]:
        calls.append(operation_name)
        if fault is not None:
            answer = fault(operation_name, operation_kwargs)
            if answer is not None:
                return answer
        return original(self, operation_name, operation_kwargs)

    with patch.object(Connection, "dispatch", dispatch):
        yield calls
