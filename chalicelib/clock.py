"""The wall clock, in the milliseconds since the epoch that every stored timestamp uses.

Its own module so that the composition root, the routes and the jobs all read time from
one place without importing each other.
"""

from __future__ import annotations

import time


def now_ms() -> int:
    """The current time in epoch milliseconds."""
    return time.time_ns() // 1_000_000
