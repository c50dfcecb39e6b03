"""How the pages write times and values (Jinja2 filters and globals)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any


def iso(ms: int | None) -> str:
    """A time in ms as ISO 8601 UTC (seconds)."""
    if ms is None:
        return ""
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def short(ms: int | None) -> str:
    """A time in ms as month-day hour:minute (UTC)."""
    if ms is None:
        return ""
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%m-%d %H:%M")


def when(ms: int | None) -> str:
    """A time in ms in full (UTC), or "never"."""
    if ms is None:
        return "never"
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def ago(ms: int | None, now: int) -> str:
    """How long before `now` a time was, in its largest whole unit."""
    if ms is None:
        return "never"
    seconds = (now - ms) / 1000
    if seconds < -5:
        return "in the future"
    for size, unit in ((86400, "d"), (3600, "h"), (60, "min")):
        if seconds >= size:
            return f"{int(seconds // size)} {unit} ago"
    return f"{max(0, int(seconds))} s ago"


def show_value(value: Any) -> str:
    """A reading's value as the page's script shows it too (JSON numbers and booleans)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return str(value)
