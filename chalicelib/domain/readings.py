"""The reading: one value of one metric of one device at one time."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeAlias

from chalicelib.domain.rules import MAX_STRING_BYTES

Value: TypeAlias = float | int | bool | str


@dataclass(frozen=True, slots=True)
class Reading:
    """A validated reading of the requesting device.

    Identity is (device, metric, unit, ts_ms); the device is implied by the request.
    `unit` is "" when the payload gives none.
    """

    metric: str
    unit: str
    ts_ms: int
    value: Value

    @property
    def identity(self) -> tuple[str, str, int]:
        return (self.metric, self.unit, self.ts_ms)


@dataclass(frozen=True)
class Limits:
    """Request limits; configurable per stage (see config.Settings)."""

    max_body_bytes: int = 1 << 20
    max_records: int = 1000
    max_metrics_per_record: int = 100
    max_string_bytes: int = MAX_STRING_BYTES
    max_future_ms: int = 5 * 60 * 1000
    min_ts_ms: int = 946_684_800_000  # 2000-01-01T00:00:00Z
