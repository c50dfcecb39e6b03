"""The one retry loop of DynamoDB calls: full-jitter backoff within a time budget per request.

Layering. PynamoDB's botocore client makes one attempt per call on the tables the app
retries (models.bind sets `max_retry_attempts` 0 there, with short connect/read timeouts),
and this module is the only loop: it sees UnprocessedItems (a 200 to botocore), it knows
the request's deadline (botocore's backoff does not, and can sleep up to 20 s), and its
clock and sleep can be faked in tests. Two loops multiply: 6 attempts here times botocore's
4 were 24 calls, long past API Gateway's 29 s.

Budget. An API request (or a WebSocket message) opens one `Budget` (see `budget_scope`);
every DynamoDB call it makes, with every retry, draws on it. An attempt starts only if
its worst case (connect + read timeout) fits in the time left, and a backoff never sleeps
into that reserve, so the request's DynamoDB time stays within the budget. When it is
spent the caller gets StorageUnavailableError (503 with Retry-After) and acknowledges
nothing; a partial write is harmless, as every key the request writes is derived from
its content (or its Idempotency-Key), so the device's retry rewrites the same items.
A call made outside any request (stream and schedule handlers, tools) gets a budget
of its own.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, TypeVar

from botocore.exceptions import ConnectionError as BotocoreConnectionError
from botocore.exceptions import HTTPClientError
from pynamodb.exceptions import PynamoDBException
from pynamodb.models import Model

from chalicelib.config import (
    DEFAULT_RETRY_BUDGET_S,
    DYNAMODB_CONNECT_TIMEOUT_S,
    DYNAMODB_READ_TIMEOUT_S,
    Settings,
)
from chalicelib.errors import IotCloudError, StorageUnavailableError

T = TypeVar("T")

BATCH_WRITE_MAX = 25
# Kept back from the Lambda invocation's remaining time: answering the 503 takes a moment.
RESPONSE_RESERVE_S = 1.0

THROTTLING_CODES = frozenset(
    {
        "ProvisionedThroughputExceededException",
        "ThrottlingException",
        "RequestLimitExceeded",
        "InternalServerError",
        "ServiceUnavailable",
    }
)
# What botocore's own standard mode treats as transient: a lost or timed-out connection.
TRANSPORT_ERRORS = (BotocoreConnectionError, HTTPClientError)


class UnprocessedItemsError(Exception):
    """BatchWriteItem handed items back: worth another attempt, like throttling."""


def backoff_delay(
    attempt: int, base: float = 0.05, cap: float = 2.0, rng: Callable[[], float] = random.random
) -> float:
    """Seconds to wait before retry number `attempt` (0-based): full jitter, capped."""
    return rng() * min(cap, base * (1 << attempt))


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """The exception and its causes (PynamoDB keeps botocore's error in `cause`)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = getattr(current, "cause", None) or current.__cause__


def error_code(exc: BaseException) -> str | None:
    """The AWS error code behind a PynamoDB or botocore exception, if any."""
    for current in _chain(exc):
        response = getattr(current, "response", None)
        if isinstance(response, dict):
            code = response.get("Error", {}).get("Code")
            if code:
                return str(code)
    return None


def is_throttling(exc: BaseException) -> bool:
    return error_code(exc) in THROTTLING_CODES


def is_transient(exc: BaseException) -> bool:
    """Worth another attempt: throttling, a 5xx DynamoDB names, a lost connection, unprocessed items.

    A domain error never is: it already says how the request ends (and retrying one
    raised by an inner retry would multiply the attempts).
    """
    if isinstance(exc, IotCloudError):
        return False
    if is_throttling(exc):
        return True
    return any(isinstance(e, (UnprocessedItemsError, *TRANSPORT_ERRORS)) for e in _chain(exc))


@dataclass(frozen=True)
class RetryPolicy:
    """How DynamoDB calls are retried: at most `max_attempts` each, within a shared time budget."""

    budget_s: float = DEFAULT_RETRY_BUDGET_S
    # The worst case of one attempt: botocore's connect timeout plus its read timeout.
    attempt_timeout_s: float = DYNAMODB_CONNECT_TIMEOUT_S + DYNAMODB_READ_TIMEOUT_S
    max_attempts: int = 6
    backoff_base_s: float = 0.05
    backoff_cap_s: float = 2.0
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep
    rng: Callable[[], float] = random.random

    @classmethod
    def from_settings(cls, settings: Settings, **overrides: Any) -> RetryPolicy:
        """The stage's policy (overrides: a fake clock, sleep or rng in tests)."""
        values: dict[str, Any] = {
            "budget_s": settings.retry_budget_s,
            "attempt_timeout_s": settings.dynamodb_connect_timeout_s + settings.dynamodb_read_timeout_s,
            "max_attempts": settings.write_max_attempts,
        }
        return cls(**{**values, **overrides})

    def start(self, lambda_context: Any = None) -> Budget:
        """A new budget: `budget_s`, or less when the Lambda invocation has less time left."""
        seconds = self.budget_s
        remaining_ms = getattr(lambda_context, "get_remaining_time_in_millis", None)
        if callable(remaining_ms):
            seconds = max(0.0, min(seconds, remaining_ms() / 1000 - RESPONSE_RESERVE_S))
        return Budget(self, seconds)

    def budget(self) -> Budget:
        """The running request's budget, or a fresh one for a call made outside any request."""
        return _current.get() or self.start()


class Budget:
    """The time a request has left for DynamoDB calls, shared by every call and retry it makes."""

    def __init__(self, policy: RetryPolicy, seconds: float) -> None:
        self.policy = policy
        self.seconds = seconds
        self.started = policy.clock()
        self.deadline = self.started + seconds
        self.attempts = 0  # DynamoDB calls made under this budget

    def remaining(self) -> float:
        return self.deadline - self.policy.clock()

    def elapsed(self) -> float:
        return self.policy.clock() - self.started

    def _room(self) -> float:
        """Seconds that may still pass before the last attempt that fits has to start."""
        return self.remaining() - self.policy.attempt_timeout_s

    def call(self, what: str, attempt: Callable[[], T]) -> T:
        """`attempt()`, retried with backoff while it fails transiently and the budget lasts.

        A non-transient error propagates unchanged (callers map it); running out of
        attempts or of time raises StorageUnavailableError from the last failure.
        """
        policy = self.policy
        last: BaseException | None = None
        for n in range(policy.max_attempts):
            if n:
                room = self._room()
                if room <= 0:
                    break
                # Never sleep into the reserve the next attempt needs.
                policy.sleep(min(room, backoff_delay(n - 1, policy.backoff_base_s, policy.backoff_cap_s, policy.rng)))
            if self._room() < 0:
                break
            self.attempts += 1
            try:
                return attempt()
            except Exception as e:
                if not is_transient(e):
                    raise
                last = e
        if last is None or self._room() <= 0:
            reason = f"the request's {self.seconds:g} s retry budget is spent"
        else:
            reason = f"still failing after {policy.max_attempts} attempts"
        detail = f" ({error_code(last) or type(last).__name__})" if last is not None else ""
        raise StorageUnavailableError(f"{what}: {reason}{detail}") from last


_current: ContextVar[Budget | None] = ContextVar("iotcloud_retry_budget", default=None)


@contextmanager
def budget_scope(budget: Budget) -> Iterator[Budget]:
    """Make `budget` the one every DynamoDB call draws on until the block ends (one request)."""
    token = _current.set(budget)
    try:
        yield budget
    finally:
        _current.reset(token)


DEFAULT_POLICY = RetryPolicy()


def put_items(model: type[Model], items: list[dict[str, Any]], retries: RetryPolicy = DEFAULT_POLICY) -> None:
    """BatchWriteItem serialized items, or raise StorageUnavailableError.

    Throttling and UnprocessedItems are retried (see RetryPolicy); callers' item keys
    are idempotent, so re-sending an item is harmless.
    """
    for start in range(0, len(items), BATCH_WRITE_MAX):
        _put_batch(model, items[start : start + BATCH_WRITE_MAX], retries.budget())


def _put_batch(model: type[Model], pending: list[dict[str, Any]], budget: Budget) -> None:
    connection = model._get_connection()
    table = model.Meta.table_name

    def attempt() -> None:
        nonlocal pending
        try:
            answer = connection.batch_write_item(put_items=pending)
        except PynamoDBException as e:
            if is_transient(e):
                raise
            raise StorageUnavailableError(f"{table} refused the write") from e
        unprocessed = (answer or {}).get("UnprocessedItems", {}).get(table, [])
        if unprocessed:
            pending = [request["PutRequest"]["Item"] for request in unprocessed]
            raise UnprocessedItemsError(f"{len(pending)} items for {table} unprocessed")

    budget.call(f"BatchWriteItem on {table}", attempt)
