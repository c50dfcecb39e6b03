"""Run counters and the report arithmetic (pure functions, unit tested).

The JSON report schema is documented in ``device_sim/README.md``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any, TypeVar

REPORT_VERSION = 1


@dataclass
class Stats:
    """Counters of one run (or of one device; merge with :func:`merge_stats`)."""

    records_generated: int = 0
    records_sent: int = 0  # records in real batches, counted once at first transmission
    readings_sent: int = 0
    records_acked: int = 0  # records in batches answered 2xx
    readings_acked: int = 0
    server_accepted: int = 0  # sum of the server's "accepted" over acked real batches
    records_rejected: int = 0  # records in real batches answered 4xx
    readings_rejected: int = 0
    records_unsent: int = 0  # still buffered when the run ended (never delivered)
    readings_unsent: int = 0
    dropped_buffer: int = 0  # records dropped because the device buffer was full
    requests: int = 0  # telemetry HTTP requests, including retries, duplicates, malformed
    retries: int = 0
    throttled: int = 0  # 429 and 503 answers
    server_errors: int = 0  # 5xx answers other than 503
    transport_errors: int = 0  # timeouts, connection errors, 408
    gave_up: int = 0  # times a request exhausted its retries (the batch stays buffered)
    unrecovered_server_errors: int = 0  # batches never delivered, last failure a 5xx
    unrecovered_failures: int = 0  # batches never delivered (any cause)
    rejected_expected: dict[str, int] = field(default_factory=dict)  # by error code
    rejected_unexpected: dict[str, int] = field(default_factory=dict)  # by error code
    duplicates_sent: int = 0
    duplicates_acked: int = 0
    malformed_sent: int = 0
    malformed_accepted: int = 0  # the server took a deliberately invalid body: a bug
    bursts: int = 0
    skewed_devices: int = 0
    latencies_ms: list[float] = field(default_factory=list)  # successful requests only

    def count_rejection(self, code: str, expected: bool) -> None:
        target = self.rejected_expected if expected else self.rejected_unexpected
        target[code] = target.get(code, 0) + 1


WAMP_PROCEDURES: tuple[str, ...] = ("set_interval", "reboot", "get_status")


@dataclass
class WampStats:
    """WAMP counters of one device (merge a fleet's with :func:`merge_wamp_stats`)."""

    connected: int = 0  # devices whose session joined at least once (0 or 1 per device)
    reconnects: int = 0  # sessions joined after the first one (the connection had dropped)
    connect_failures: int = 0  # connection or join attempts that failed
    calls: dict[str, int] = field(default_factory=lambda: dict.fromkeys(WAMP_PROCEDURES, 0))
    published: int = 0  # publications the router acknowledged (PUBLISHED)
    publish_errors_by_code: dict[str, int] = field(default_factory=dict)  # ERROR answers
    reboots: int = 0
    commands_polled: int = 0  # commands queued while offline, fetched over HTTP after joining

    def count_call(self, procedure: str) -> None:
        self.calls[procedure] = self.calls.get(procedure, 0) + 1

    def count_publish_error(self, code: str) -> None:
        self.publish_errors_by_code[code] = self.publish_errors_by_code.get(code, 0) + 1


def merge_wamp_stats(items: Iterable[WampStats]) -> WampStats:
    """Add up devices' WAMP counters (ints summed, maps merged with sorted keys)."""
    return _add_up(WampStats(), items)


def wamp_section(stats: WampStats) -> dict[str, Any]:
    """The report's ``wamp`` object."""
    return {
        "connected": stats.connected,
        "reconnects": stats.reconnects,
        "connect_failures": stats.connect_failures,
        "calls": merge_counts(stats.calls, {}),
        "reboots": stats.reboots,
        "commands_polled": stats.commands_polled,
        "published": stats.published,
        "publish_errors_by_code": merge_counts(stats.publish_errors_by_code, {}),
    }


_Counters = TypeVar("_Counters", "Stats", "WampStats")


def merge_counts(a: Mapping[str, int], b: Mapping[str, int]) -> dict[str, int]:
    """Sum two {key: n} maps; keys sorted for stable output."""
    out: dict[str, int] = {}
    for key in sorted(set(a) | set(b)):
        out[key] = a.get(key, 0) + b.get(key, 0)
    return out


def merge_stats(items: Iterable[Stats]) -> Stats:
    """Add up counters (ints summed, code maps merged, latencies concatenated)."""
    return _add_up(Stats(), items)


def _add_up(total: _Counters, items: Iterable[_Counters]) -> _Counters:
    """`items` added into `total` field by field: ints summed, {key: n} maps merged, lists concatenated."""
    for item in items:
        for f in fields(total):
            mine = getattr(total, f.name)
            theirs = getattr(item, f.name)
            if isinstance(mine, dict):
                setattr(total, f.name, merge_counts(mine, theirs))
            elif isinstance(mine, list):
                mine.extend(theirs)
            else:
                setattr(total, f.name, mine + theirs)
    return total


def percentile(values: Sequence[float], p: float) -> float | None:
    """The p-th percentile (0..100) with linear interpolation between closest ranks
    (numpy's default "linear" method); None for no data."""
    if not 0 <= p <= 100:
        raise ValueError("p must be within 0..100")
    if not values:
        return None
    data = sorted(values)
    rank = (len(data) - 1) * p / 100.0
    low = math.floor(rank)
    high = math.ceil(rank)
    if low == high:
        return float(data[low])
    return data[low] + (data[high] - data[low]) * (rank - low)


def latency_summary(values: Sequence[float], digits: int = 3) -> dict[str, float | None]:
    def r(x: float | None) -> float | None:
        return None if x is None else round(x, digits)

    return {
        "p50": r(percentile(values, 50)),
        "p95": r(percentile(values, 95)),
        "p99": r(percentile(values, 99)),
        "max": r(max(values)) if values else None,
    }


def rate(count: float, seconds: float, digits: int = 3) -> float:
    """count / seconds, 0 when no time elapsed."""
    if seconds <= 0:
        return 0.0
    return round(count / seconds, digits)


def failure_reasons(report: Mapping[str, Any]) -> list[str]:
    """Why a run counts as failed (empty list: success). See exit_code()."""
    reasons: list[str] = []
    if report.get("rejected_unexpected", 0):
        codes = report.get("rejected_unexpected_by_code", {})
        reasons.append(f"unexpected rejections: {dict(codes)}")
    if report.get("unrecovered_server_errors", 0):
        reasons.append(f"{report['unrecovered_server_errors']} batch(es) failed with 5xx")
    if report.get("unrecovered_failures", 0):
        reasons.append(
            f"{report['unrecovered_failures']} batch(es) ({report.get('records_unsent', 0)} records) never delivered"
        )
    faults = report.get("faults", {})
    if faults.get("malformed_accepted", 0):
        reasons.append(f"server accepted {faults['malformed_accepted']} malformed payload(s)")
    wamp = report.get("wamp")
    if wamp:
        never = report.get("devices", 0) - wamp.get("connected", 0)
        if never > 0:
            reasons.append(f"{never} device(s) never joined a WAMP session")
    verify = report.get("verify")
    if verify:
        if verify.get("missing", 0):
            reasons.append(f"{verify['missing']} acked reading(s) missing on read-back")
        if verify.get("value_mismatches", 0):
            reasons.append(f"{verify['value_mismatches']} reading(s) read back with another value")
        if verify.get("errors", 0):
            reasons.append(f"read-back failed for {verify['errors']} device(s)")
    return reasons


def exit_code(report: Mapping[str, Any]) -> int:
    """0 if the run is clean, 1 otherwise (see failure_reasons)."""
    return 1 if failure_reasons(report) else 0


def build_report(
    stats: Stats,
    *,
    devices: int,
    fmt: str,
    duration_s: float,
    profile: str = "",
    seed: int | None = None,
    url: str = "",
    started_at: str = "",
    verify: Mapping[str, Any] | None = None,
    transport: str = "http",
    ingest_url: str = "",
    ws_url: str | None = None,
    wamp: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The JSON report (schema in README.md) from the merged counters of a run."""
    report: dict[str, Any] = {
        "report_version": REPORT_VERSION,
        "url": url,
        "started_at": started_at,
        "profile": profile,
        "seed": seed,
        "devices": devices,
        "format": fmt,
        "transport": transport,
        "ingest_url": ingest_url or url,  # where telemetry went: url, or a Function URL
        "ws_url": ws_url,
        "duration_s": round(duration_s, 3),
        **_counts(stats),
        "faults": {
            "duplicates_sent": stats.duplicates_sent,
            "duplicates_acked": stats.duplicates_acked,
            "malformed_sent": stats.malformed_sent,
            "malformed_accepted": stats.malformed_accepted,
            "bursts": stats.bursts,
            "skewed_devices": stats.skewed_devices,
        },
        "latency_ms": latency_summary(stats.latencies_ms),
        "readings_per_second": rate(stats.readings_acked, duration_s),
        "records_per_second": rate(stats.records_acked, duration_s),
        "requests_per_second": rate(stats.requests, duration_s),
        "wamp": dict(wamp) if wamp is not None else None,
        "verify": dict(verify) if verify is not None else None,
    }
    reasons = failure_reasons(report)
    report["ok"] = not reasons
    report["failures"] = reasons
    report["exit_code"] = 1 if reasons else 0
    return report


def _counts(stats: Stats) -> dict[str, Any]:
    """The report's counters, in the report's order: records and readings, requests, rejections by code."""
    return {
        "records_generated": stats.records_generated,
        "records_sent": stats.records_sent,
        "readings_sent": stats.readings_sent,
        "records_acked": stats.records_acked,
        "readings_acked": stats.readings_acked,
        "server_accepted": stats.server_accepted,
        "records_rejected": stats.records_rejected,
        "readings_rejected": stats.readings_rejected,
        "records_unsent": stats.records_unsent,
        "readings_unsent": stats.readings_unsent,
        "dropped_buffer": stats.dropped_buffer,
        "requests": stats.requests,
        "retries": stats.retries,
        "throttled": stats.throttled,
        "server_errors": stats.server_errors,
        "transport_errors": stats.transport_errors,
        "gave_up": stats.gave_up,
        "unrecovered_server_errors": stats.unrecovered_server_errors,
        "unrecovered_failures": stats.unrecovered_failures,
        "rejected_by_code": merge_counts(stats.rejected_expected, stats.rejected_unexpected),
        "rejected_expected": sum(stats.rejected_expected.values()),
        "rejected_unexpected": sum(stats.rejected_unexpected.values()),
        "rejected_expected_by_code": merge_counts(stats.rejected_expected, {}),
        "rejected_unexpected_by_code": merge_counts(stats.rejected_unexpected, {}),
    }
