"""Plain data shared by the simulator modules: samples, records, identities."""

from __future__ import annotations

import re
from dataclasses import dataclass

# bool first: it is a subclass of int, so every isinstance check must test bool before numbers.
Value = bool | int | float | str

# A reading's identity within one device: (metric, unit, ts_ms).
Identity = tuple[str, str, int]

FORMATS: tuple[str, ...] = ("json", "senml-json", "senml-xml", "thingsboard")

# Server limits the simulator knows about (see the API contract in README.md).
MAX_FUTURE_MS = 5 * 60 * 1000
MIN_TS_MS = 946_684_800_000  # 2000-01-01T00:00:00Z
MAX_METRIC_LEN = 128
MAX_STRING_BYTES = 1024
MAX_METRICS_PER_RECORD = 100
MAX_READ_LIMIT = 10_000
# The server's device-id rule (chalicelib/domain/devices.py ID_PATTERN; a unit test keeps the two
# equal): 1-64 of these characters, the first alphanumeric.
DEVICE_ID_CHARS = r"A-Za-z0-9\-_.:"
MAX_DEVICE_ID_LEN = 64
DEVICE_ID_RE = re.compile(rf"^[A-Za-z0-9][{DEVICE_ID_CHARS}]{{0,{MAX_DEVICE_ID_LEN - 1}}}$")
# The server's metric-name rule (chalicelib/domain/rules.py METRIC_PATTERN; a unit test keeps the
# two equal): a letter or digit, then letters, digits and -:./_, at most MAX_METRIC_LEN in all.
_METRIC_FIRST = "[A-Za-z0-9]"
_METRIC_REST = r"[A-Za-z0-9\-:./_]"
METRIC_CHARS_RE = re.compile(f"^{_METRIC_FIRST}{_METRIC_REST}*$")  # the characters, any length
METRIC_RE = re.compile(f"^{_METRIC_FIRST}{_METRIC_REST}{{0,{MAX_METRIC_LEN - 1}}}$")


@dataclass(frozen=True, slots=True)
class Sample:
    """One value of one metric inside a record."""

    metric: str
    unit: str
    value: Value


@dataclass(frozen=True, slots=True)
class Record:
    """Everything one device measured at one instant (epoch milliseconds)."""

    ts_ms: int
    samples: tuple[Sample, ...]


def format_carries_units(fmt: str) -> bool:
    """JSON shapes carry no unit, so the server stores "" for them; SenML keeps the unit."""
    return fmt.startswith("senml")


def stored_identity(sample: Sample, ts_ms: int, fmt: str) -> Identity:
    """The identity the server will give this sample when sent in ``fmt``."""
    unit = sample.unit if format_carries_units(fmt) else ""
    return (sample.metric, unit, ts_ms)
