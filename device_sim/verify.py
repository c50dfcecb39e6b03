"""Read every device's telemetry back through the API and compare with what was acked."""

from __future__ import annotations

import asyncio
import math
from collections import Counter
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from typing import Any
from urllib.parse import quote

from device_sim.model import MAX_READ_LIMIT, Identity, Value
from device_sim.transport import Api

REL_TOL = 1e-9
MAX_EXAMPLES = 10


@dataclass
class VerifyResult:
    checked_devices: int = 0
    readings_expected: int = 0  # distinct acked identities
    readings_found: int = 0  # expected identities present in the API answer
    missing: int = 0  # acked but absent
    duplicated: int = 0  # identities returned more than once
    unexpected: int = 0  # returned but never acked (and not possibly-stored)
    value_mismatches: int = 0  # present with another value
    uncertain_found: int = 0  # possibly-stored (timed-out, never acked) readings found
    errors: int = 0  # devices whose read-back failed
    examples: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def add(self, other: VerifyResult) -> None:
        for f in fields(self):
            if f.name != "examples":  # every other field is a count
                setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))
        room = MAX_EXAMPLES - len(self.examples)
        if room > 0:
            self.examples.extend(other.examples[:room])


def values_equal(expected: Value, found: Any, rel_tol: float = REL_TOL) -> bool:
    """Equal by type family; numbers (not bools) with a relative tolerance."""
    if isinstance(expected, bool) or isinstance(found, bool):
        return isinstance(expected, bool) and isinstance(found, bool) and expected == found
    if isinstance(expected, str) or isinstance(found, str):
        return isinstance(expected, str) and isinstance(found, str) and expected == found
    if isinstance(found, (int, float)):
        return math.isclose(float(expected), float(found), rel_tol=rel_tol, abs_tol=0.0)
    return False


def reading_identity(row: Mapping[str, Any]) -> Identity | None:
    metric, unit, ts = row.get("metric"), row.get("unit", ""), row.get("ts")
    if not isinstance(metric, str) or isinstance(ts, bool) or not isinstance(ts, (int, float)):
        return None
    return (metric, unit if isinstance(unit, str) else "", int(ts))


def compare_readings(
    expected: Mapping[Identity, Value],
    found: Iterable[Mapping[str, Any]],
    uncertain: Collection[Identity] = (),
    device: str = "",
) -> VerifyResult:
    """Compare one device's acked readings with the rows the API returned."""
    result = VerifyResult(checked_devices=1, readings_expected=len(expected))
    counts: Counter[Identity] = Counter()
    first_value: dict[Identity, Any] = {}
    for row in found:
        ident = reading_identity(row)
        if ident is None:
            result.unexpected += 1
            continue
        counts[ident] += 1
        first_value.setdefault(ident, row.get("value"))
    result.duplicated = sum(1 for n in counts.values() if n > 1)
    for ident, value in expected.items():
        if ident not in counts:
            result.missing += 1
            _example(result, "missing", device, ident, value, None)
            continue
        result.readings_found += 1
        if not values_equal(value, first_value[ident]):
            result.value_mismatches += 1
            _example(result, "value_mismatch", device, ident, value, first_value[ident])
    for ident, n in counts.items():
        if n > 1:
            _example(result, "duplicated", device, ident, None, first_value[ident])
        if ident in expected:
            continue
        if ident in uncertain:
            result.uncertain_found += 1
        else:
            result.unexpected += 1
            _example(result, "unexpected", device, ident, None, first_value[ident])
    return result


def _example(result: VerifyResult, kind: str, device: str, ident: Identity, expected: Any, found: Any) -> None:
    if len(result.examples) < MAX_EXAMPLES:
        metric, unit, ts = ident
        result.examples.append(
            {
                "kind": kind,
                "device_id": device,
                "metric": metric,
                "unit": unit,
                "ts": ts,
                "expected": expected,
                "found": found,
            }
        )


class ReadBackError(RuntimeError):
    pass


async def fetch_readings(
    api: Api,
    admin_token: str,
    device_id: str,
    from_ms: int,
    to_ms: int,
    limit: int = MAX_READ_LIMIT,
) -> list[dict[str, Any]]:
    """All readings of a device in [from_ms, to_ms], following next_cursor until null."""
    path = f"/v1/devices/{quote(device_id, safe='')}/telemetry"
    headers = {"Authorization": f"Bearer {admin_token}"}
    rows: list[dict[str, Any]] = []
    cursor: str | None = None
    seen_cursors: set[str] = set()
    while True:
        params: dict[str, str | int] = {"from": from_ms, "to": to_ms, "limit": limit}
        if cursor is not None:
            params["cursor"] = cursor
        result = await api.request("GET", path, headers=headers, params=params)
        if not result.ok:
            raise ReadBackError(f"GET {path}: {result.status or ''} {result.code or ''} {result.message}".strip())
        data = result.data
        if not isinstance(data, Mapping) or not isinstance(data.get("readings"), list):
            raise ReadBackError(f"GET {path}: answer has no 'readings' list")
        rows.extend(r for r in data["readings"] if isinstance(r, dict))
        next_cursor = data.get("next_cursor")
        if not next_cursor:
            return rows
        if not isinstance(next_cursor, str) or next_cursor in seen_cursors:
            raise ReadBackError(f"GET {path}: next_cursor repeats or is not a string")
        seen_cursors.add(next_cursor)
        cursor = next_cursor


@dataclass
class DeviceExpectation:
    device_id: str
    expected: dict[Identity, Value]
    uncertain: set[Identity]
    from_ms: int  # window covering every timestamp the device generated this run
    to_ms: int


async def verify_device(api: Api, admin_token: str, exp: DeviceExpectation) -> VerifyResult:
    try:
        rows = await fetch_readings(api, admin_token, exp.device_id, exp.from_ms, exp.to_ms)
    except ReadBackError as exc:
        # Unknown rather than missing: counted under "errors", which fails the run too.
        result = VerifyResult(checked_devices=1, readings_expected=len(exp.expected), errors=1)
        result.examples.append({"kind": "error", "device_id": exp.device_id, "error": str(exc)})
        return result
    return compare_readings(exp.expected, rows, exp.uncertain, exp.device_id)


async def verify_fleet(api: Api, admin_token: str, devices: Sequence[DeviceExpectation]) -> VerifyResult:
    results = await asyncio.gather(*(verify_device(api, admin_token, d) for d in devices))
    total = VerifyResult()
    for r in results:
        total.add(r)
    return total


async def verify_with_rechecks(
    api: Api,
    admin_token: str,
    devices: Sequence[DeviceExpectation],
    waits: Sequence[float] = (),
) -> VerifyResult:
    """verify_fleet, re-reading devices with missing readings after each wait in ``waits``
    (the store may be eventually consistent)."""
    results = list(await asyncio.gather(*(verify_device(api, admin_token, d) for d in devices)))
    for wait in waits:
        redo = [i for i, r in enumerate(results) if r.missing or r.errors]
        if not redo:
            break
        await asyncio.sleep(wait)
        again = await asyncio.gather(*(verify_device(api, admin_token, devices[i]) for i in redo))
        for i, r in zip(redo, again, strict=True):
            results[i] = r
    total = VerifyResult()
    for r in results:
        total.add(r)
    return total
