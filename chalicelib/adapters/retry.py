"""Exponential backoff with full jitter, shared by the adapters."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import Any

from pynamodb.exceptions import PynamoDBException
from pynamodb.models import Model

from chalicelib.errors import StorageUnavailableError

BATCH_WRITE_MAX = 25

THROTTLING_CODES = frozenset(
    {
        "ProvisionedThroughputExceededException",
        "ThrottlingException",
        "RequestLimitExceeded",
        "InternalServerError",
        "ServiceUnavailable",
    }
)


def backoff_delay(
    attempt: int, base: float = 0.05, cap: float = 2.0, rng: Callable[[], float] = random.random
) -> float:
    """Seconds to wait before retry number `attempt` (0-based): full jitter, capped."""
    return rng() * min(cap, base * (1 << attempt))


def error_code(exc: BaseException) -> str | None:
    """The AWS error code behind a PynamoDB or botocore exception, if any."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        response = getattr(current, "response", None)
        if isinstance(response, dict):
            code = response.get("Error", {}).get("Code")
            if code:
                return str(code)
        current = getattr(current, "cause", None) or current.__cause__
    return None


def is_throttling(exc: BaseException) -> bool:
    return error_code(exc) in THROTTLING_CODES


def put_items(
    model: type[Model],
    items: list[dict[str, Any]],
    *,
    max_attempts: int = 6,
    sleep: Callable[[float], None] | None = None,
) -> None:
    """BatchWriteItem serialized items, or raise StorageUnavailableError.

    Throttling and UnprocessedItems are retried with exponential backoff and full
    jitter; callers' item keys are idempotent, so re-sending an item is harmless.
    """
    for start in range(0, len(items), BATCH_WRITE_MAX):
        _put_batch(model, items[start : start + BATCH_WRITE_MAX], max_attempts, sleep or time.sleep)


def _put_batch(
    model: type[Model], pending: list[dict[str, Any]], max_attempts: int, sleep: Callable[[float], None]
) -> None:
    connection = model._get_connection()
    table = model.Meta.table_name
    for attempt in range(max_attempts):
        try:
            answer = connection.batch_write_item(put_items=pending)
        except PynamoDBException as e:
            if not is_throttling(e) or attempt == max_attempts - 1:
                raise StorageUnavailableError(f"{table} refused the write") from e
        else:
            unprocessed = (answer or {}).get("UnprocessedItems", {}).get(table, [])
            if not unprocessed:
                return
            pending = [request["PutRequest"]["Item"] for request in unprocessed]
        if attempt < max_attempts - 1:
            sleep(backoff_delay(attempt))
    raise StorageUnavailableError(f"{len(pending)} items for {table} still unprocessed after {max_attempts} attempts")
