"""Time values on input: epoch seconds or milliseconds, or ISO 8601 with a zone.

Every time in the domain is an int of milliseconds since the Unix epoch, UTC.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime, timedelta

# Numbers below this are epoch seconds (1e11 s is the year 5138; 1e11 ms is 1973).
SECONDS_THRESHOLD = 1e11
# Longer strings are not timestamps; don't hand them to the ISO parser.
_MAX_ISO_CHARS = 64
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_US = timedelta(microseconds=1)
_DECIMAL = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")


class NonFiniteTimeError(ValueError):
    """The time is NaN or infinite (a number problem rather than a format problem)."""


def round_half_even_div(numerator: int, denominator: int) -> int:
    """numerator / denominator rounded like round() does (half to even), exactly."""
    quotient, remainder = divmod(numerator, denominator)
    twice = 2 * remainder
    if twice > denominator or (twice == denominator and quotient % 2 == 1):
        quotient += 1
    return quotient


def number_to_ms(value: int | float) -> int:
    """Epoch seconds (abs < 1e11, may be fractional) or milliseconds -> int ms."""
    if type(value) is float:
        if not math.isfinite(value):
            raise NonFiniteTimeError(f"time {value!r} is not a finite number")
        if -SECONDS_THRESHOLD < value < SECONDS_THRESHOLD:
            return round(value * 1000)
        return round(value)
    if -SECONDS_THRESHOLD < value < SECONDS_THRESHOLD:
        return int(value) * 1000
    return int(value)


def iso_to_ms(text: str) -> int:
    """ISO 8601 date-time with a zone (`Z` or `+01:00`) -> int ms; ValueError otherwise."""
    if len(text) > _MAX_ISO_CHARS:
        raise ValueError("timestamp string is too long")
    parsed = datetime.fromisoformat(text)
    if parsed.tzinfo is None or parsed.utcoffset() is None:
        raise ValueError(f"timestamp {text!r} has no time zone (add Z or an offset)")
    return round_half_even_div((parsed - _EPOCH) // _ONE_US, 1000)


def parse_time(value: object, received_at_ms: int, *, allow_numeric_string: bool = False) -> int:
    """Resolve one input time to int milliseconds since the epoch, UTC.

    Accepts a number (epoch seconds when abs < 1e11, else milliseconds; bool is not a
    number) or an ISO 8601 string with a zone. `None` means "not given" and resolves to
    `received_at_ms`. With `allow_numeric_string` (query strings), a decimal string is
    read as a number. No range check is done here. Raises ValueError on anything else.
    """
    if value is None:
        return received_at_ms
    kind = type(value)
    if kind is int or kind is float:
        return number_to_ms(value)  # type: ignore[arg-type]
    if kind is str:
        text: str = value  # type: ignore[assignment]
        if allow_numeric_string and _DECIMAL.fullmatch(text.strip()):
            stripped = text.strip()
            number: int | float
            number = float(stripped) if any(c in stripped for c in ".eE") else int(stripped)
            return number_to_ms(number)
        try:
            return iso_to_ms(text)
        except ValueError as e:
            raise ValueError(
                f"invalid timestamp {text[:40]!r}: use epoch seconds or milliseconds, or ISO 8601 with a zone"
            ) from e
    raise ValueError(f"invalid timestamp of type {kind.__name__}: use a number or an ISO 8601 string")
