"""Times and numbers as the reports and CloudWatch's state reasons print them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def iso_utc(ts_ms: int, *, minutes: bool = False) -> str:
    """``2025-11-25T10:00:00.000Z`` (or ``2025-11-25T10:00Z`` with ``minutes``)."""
    moment = _EPOCH + timedelta(milliseconds=ts_ms)
    if minutes:
        return moment.strftime("%Y-%m-%dT%H:%MZ")
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def cw_time(ts_ms: int) -> str:
    # CloudWatch's StateReason prints datapoint times as dd/mm/yy HH:MM:SS.
    return (_EPOCH + timedelta(milliseconds=ts_ms)).strftime("%d/%m/%y %H:%M:%S")


def hms(ts_ms: int) -> str:
    return (_EPOCH + timedelta(milliseconds=ts_ms)).strftime("%H:%M:%S")


def num(value: float) -> str:
    return repr(round(float(value), 3))


def plural_s(count: int) -> str:
    return "" if count == 1 else "s"


def was_were(count: int) -> str:
    return "was" if count == 1 else "were"
