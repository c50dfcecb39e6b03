"""Exponential backoff with full jitter, shared by the adapters."""

from __future__ import annotations

import random
from collections.abc import Callable

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
