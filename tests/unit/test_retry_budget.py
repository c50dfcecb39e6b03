"""adapters.retry: one time budget per request, on a fake clock (nothing sleeps)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from botocore.exceptions import ClientError, ConnectTimeoutError, ReadTimeoutError
from pynamodb.exceptions import PutError

from chalicelib.adapters.retry import (
    RESPONSE_RESERVE_S,
    Budget,
    RetryPolicy,
    UnprocessedItemsError,
    budget_scope,
    is_transient,
)
from chalicelib.config import API_GATEWAY_TIMEOUT_S, DEFAULT_RETRY_BUDGET_S, from_env
from chalicelib.errors import StorageUnavailableError
from tests.fake_clock import FakeClock

THROTTLED = "ProvisionedThroughputExceededException"


def policy(clock: FakeClock, **overrides: Any) -> RetryPolicy:
    # rng 1.0: every backoff is its ceiling, the slowest the policy can be.
    values: dict[str, Any] = {"clock": clock, "sleep": clock.sleep, "rng": lambda: 1.0}
    return RetryPolicy(**{**values, **overrides})


def throttled() -> PutError:
    """What PynamoDB raises when DynamoDB throttles a write (botocore's error as the cause)."""
    cause = ClientError({"Error": {"Code": THROTTLED, "Message": "slow down"}}, "PutItem")
    return PutError("Failed to put item", cause)


def failing(clock: FakeClock, latency: float, error: Callable[[], Exception], times: int = 10**6) -> Any:
    """A call that takes `latency` simulated seconds and fails `times` times, then answers "ok"."""
    calls: list[float] = []

    def attempt() -> str:
        calls.append(clock.now)
        clock.now += latency
        if len(calls) <= times:
            raise error()
        return "ok"

    attempt.calls = calls  # type: ignore[attr-defined]
    return attempt


LATENCIES = [0.005, 0.5, 1.5, 3.9]  # from a quick throttle answer to nearly a read timeout


@pytest.mark.parametrize("latency", LATENCIES)
def test_an_always_throttled_call_ends_within_the_budget_and_the_attempts(latency: float) -> None:
    clock = FakeClock()
    budget = policy(clock).start()
    attempt = failing(clock, latency, throttled)
    with pytest.raises(StorageUnavailableError) as raised:
        budget.call("PutItem on devices", attempt)
    assert 1 <= len(attempt.calls) <= budget.policy.max_attempts
    assert budget.attempts == len(attempt.calls)
    assert budget.elapsed() <= DEFAULT_RETRY_BUDGET_S
    assert isinstance(raised.value.__cause__, PutError)
    assert THROTTLED in raised.value.message


def test_the_budget_not_the_attempt_count_ends_slow_retries() -> None:
    clock = FakeClock()
    budget = policy(clock).start()
    attempt = failing(clock, 1.5, throttled)
    with pytest.raises(StorageUnavailableError, match="10 s retry budget is spent"):
        budget.call("BatchWriteItem on readings", attempt)
    # 0 -> 1.5, +0.05, -> 3.05, +0.1, -> 4.65, +0.2, -> 6.35: a fifth would start with 3.65 s left (< 4 s).
    assert len(attempt.calls) == 4
    assert budget.elapsed() == pytest.approx(6.35)


def test_one_budget_is_shared_by_every_call_of_a_request() -> None:
    clock = FakeClock()
    budget = policy(clock).start()
    with pytest.raises(StorageUnavailableError):
        budget.call("BatchWriteItem on readings", failing(clock, 1.0, throttled))
    spent = budget.elapsed()
    later = failing(clock, 0.01, throttled, times=0)
    with pytest.raises(StorageUnavailableError, match="budget is spent"):
        budget.call("UpdateItem on devices", later)
    assert later.calls == []  # never started: its worst case did not fit in what was left
    assert spent <= budget.elapsed() <= DEFAULT_RETRY_BUDGET_S


def test_a_call_that_stops_failing_within_the_budget_succeeds() -> None:
    clock = FakeClock()
    budget = policy(clock).start()
    attempt = failing(clock, 0.2, throttled, times=3)
    assert budget.call("BatchWriteItem on readings", attempt) == "ok"
    assert len(attempt.calls) == 4
    assert clock.sleeps == [0.05, 0.1, 0.2]
    assert budget.elapsed() == pytest.approx(4 * 0.2 + 0.35)


def test_a_hung_call_times_out_and_one_more_attempt_fits() -> None:
    clock = FakeClock()
    budget = policy(clock).start()

    def timed_out() -> Exception:
        return PutError("Failed", ReadTimeoutError(endpoint_url="https://dynamodb.us-east-1.amazonaws.com"))

    attempt = failing(clock, budget.policy.attempt_timeout_s, timed_out)
    with pytest.raises(StorageUnavailableError, match="budget is spent"):
        budget.call("BatchWriteItem on readings", attempt)
    assert len(attempt.calls) == 2  # 0 -> 4 s, +0.05 s, -> 8.05 s; a third would end past 10 s
    assert budget.elapsed() <= DEFAULT_RETRY_BUDGET_S


def test_non_transient_errors_propagate_at_once() -> None:
    clock = FakeClock()
    budget = policy(clock).start()
    condition = PutError("Failed", ClientError({"Error": {"Code": "ConditionalCheckFailedException"}}, "PutItem"))
    calls: list[int] = []

    def attempt() -> None:
        calls.append(1)
        raise condition

    with pytest.raises(PutError) as raised:
        budget.call("PutItem on devices", attempt)
    assert raised.value is condition and calls == [1] and clock.sleeps == []


@pytest.mark.parametrize(
    ("error", "transient"),
    [
        (throttled(), True),
        (PutError("x", ClientError({"Error": {"Code": "InternalServerError"}}, "PutItem")), True),
        (PutError("x", ConnectTimeoutError(endpoint_url="https://dynamodb")), True),
        (UnprocessedItemsError("3 items"), True),
        (PutError("x", ClientError({"Error": {"Code": "ValidationException"}}, "PutItem")), False),
        # An inner retry's verdict is final: retrying it again would multiply the attempts.
        (StorageUnavailableError("spent"), False),
        (ValueError("a bug"), False),
    ],
)
def test_what_is_worth_another_attempt(error: Exception, transient: bool) -> None:
    if isinstance(error, StorageUnavailableError):
        error.__cause__ = throttled()
    assert is_transient(error) is transient


class _Context:
    def __init__(self, remaining_ms: int) -> None:
        self.remaining_ms = remaining_ms

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_ms


def test_the_lambda_invocations_remaining_time_caps_the_budget() -> None:
    clock = FakeClock()
    assert policy(clock).start(_Context(29_000)).seconds == DEFAULT_RETRY_BUDGET_S
    assert policy(clock).start(_Context(6_000)).seconds == 6.0 - RESPONSE_RESERVE_S
    assert policy(clock).start(_Context(500)).seconds == 0.0
    assert policy(clock).start(None).seconds == DEFAULT_RETRY_BUDGET_S


def test_calls_outside_a_request_get_a_budget_each_inside_one_they_share_it() -> None:
    clock = FakeClock()
    retries = policy(clock)
    assert retries.budget() is not retries.budget()
    with budget_scope(retries.start()) as shared:
        assert retries.budget() is shared and policy(clock).budget() is shared
    assert retries.budget() is not shared


def test_the_budget_setting() -> None:
    base = {"DEVICES_TABLE": "d", "READINGS_TABLE": "r"}
    assert from_env(base).retry_budget_s == DEFAULT_RETRY_BUDGET_S < API_GATEWAY_TIMEOUT_S
    assert from_env({**base, "RETRY_BUDGET_SECONDS": "20"}).retry_budget_s == 20.0
    for refused in ("29", "60", "3", "0"):
        with pytest.raises(ValueError, match="RETRY_BUDGET_SECONDS"):
            from_env({**base, "RETRY_BUDGET_SECONDS": refused})
    settings = from_env(base)
    assert RetryPolicy.from_settings(settings).attempt_timeout_s == (
        settings.dynamodb_connect_timeout_s + settings.dynamodb_read_timeout_s
    )


def test_a_budget_is_a_deadline_on_its_policys_clock() -> None:
    clock = FakeClock()
    budget = Budget(policy(clock), 10.0)
    clock.now += 2.5
    assert budget.remaining() == 7.5 and budget.elapsed() == 2.5
