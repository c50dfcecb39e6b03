"""Chunking: a request's readings become one compact item per (device, hour, request).

A chunk holds the readings of one hour bucket, grouped into series (one per metric
and unit), with delta-encoded times, as compressed JSON. Its sort key starts with the
hour bucket, so a time-range Query reads few items, and ends with a digest of its own
content (or of the request's Idempotency-Key), so a retried request rewrites the same
items instead of adding new ones.
"""

from __future__ import annotations

import hashlib
import json
import zlib
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from chalicelib.domain.readings import Reading, Value

HOUR_MS = 3_600_000
FORMAT_VERSION = 1
# DynamoDB items are at most 400 KB; keep the encoded data well below that.
MAX_CHUNK_BYTES = 300_000
_KEY_SEPARATOR = "#"


@dataclass(frozen=True)
class Chunk:
    """One stored item's worth of readings."""

    sort_key: str
    data: bytes
    count: int
    ts_min: int
    ts_max: int


def hour_bucket(ts_ms: int) -> str:
    """The hour bucket of a time, as sortable text: YYYYMMDDHH (UTC)."""
    return datetime.fromtimestamp(ts_ms // HOUR_MS * 3600, UTC).strftime("%Y%m%d%H")


def bucket_start_ms(bucket: str) -> int:
    """The first millisecond of an hour bucket."""
    moment = datetime.strptime(bucket, "%Y%m%d%H").replace(tzinfo=UTC)
    return int(moment.timestamp()) * 1000


def deduplicate(readings: Iterable[Reading]) -> list[Reading]:
    """Keep one reading per identity; the last one in the payload wins."""
    latest: dict[tuple[str, str, int], Reading] = {}
    for reading in readings:
        latest[reading.identity] = reading
    return list(latest.values())


def encode(readings: list[Reading]) -> bytes:
    """Encode readings of one hour as compressed per-series columns (deterministic)."""
    series: dict[tuple[str, str], list[tuple[int, Value]]] = defaultdict(list)
    for r in readings:
        series[(r.metric, r.unit)].append((r.ts_ms, r.value))
    columns = []
    for (metric, unit), points in sorted(series.items()):
        points.sort(key=lambda p: p[0])
        times = [p[0] for p in points]
        deltas = [times[0]] + [b - a for a, b in zip(times, times[1:], strict=False)]
        columns.append([metric, unit, deltas, [p[1] for p in points]])
    doc = json.dumps([FORMAT_VERSION, columns], separators=(",", ":"), ensure_ascii=False)
    return zlib.compress(doc.encode(), 9)


def decode(data: bytes) -> list[Reading]:
    """Expand an encoded chunk back into readings."""
    version, columns = json.loads(zlib.decompress(data))
    if version != FORMAT_VERSION:
        raise ValueError(f"unknown chunk format {version}")
    out: list[Reading] = []
    for metric, unit, deltas, values in columns:
        ts = 0
        for delta, value in zip(deltas, values, strict=True):
            ts += delta
            out.append(Reading(metric, unit, ts, value))
    return out


def _digest(*parts: str | bytes) -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update(part.encode() if isinstance(part, str) else part)
        h.update(b"\x00")
    return h.hexdigest()[:20]


def _split(readings: list[Reading]) -> list[tuple[list[Reading], bytes]]:
    data = encode(readings)
    if len(data) <= MAX_CHUNK_BYTES or len(readings) == 1:
        return [(readings, data)]
    half = len(readings) // 2
    return _split(readings[:half]) + _split(readings[half:])


def make_chunks(device_id: str, readings: list[Reading], idempotency_key: str | None = None) -> list[Chunk]:
    """Group a request's readings into chunks, one per hour bucket (split if very large).

    Readings must already be de-duplicated. The key of each chunk is derived from its
    content, or from the Idempotency-Key when the client sent one.
    """
    by_hour: dict[str, list[Reading]] = defaultdict(list)
    for r in readings:
        by_hour[hour_bucket(r.ts_ms)].append(r)
    chunks: list[Chunk] = []
    for bucket in sorted(by_hour):
        hour_readings = sorted(by_hour[bucket], key=lambda r: (r.ts_ms, r.metric, r.unit))
        for part, (part_readings, data) in enumerate(_split(hour_readings)):
            if idempotency_key is not None:
                key = _digest(device_id, "idempotency", idempotency_key, str(part))
            else:
                key = _digest(device_id, data)
            chunks.append(
                Chunk(
                    sort_key=f"{bucket}{_KEY_SEPARATOR}{key}",
                    data=data,
                    count=len(part_readings),
                    ts_min=part_readings[0].ts_ms,
                    ts_max=part_readings[-1].ts_ms,
                )
            )
    return chunks


def latest_per_series(readings: Iterable[Reading]) -> dict[tuple[str, str], Reading]:
    """The newest reading of each (metric, unit) in a request."""
    latest: dict[tuple[str, str], Reading] = {}
    for r in readings:
        key = (r.metric, r.unit)
        current = latest.get(key)
        if current is None or r.ts_ms >= current.ts_ms:
            latest[key] = r
    return latest
