"""The archive: stream records of chunk items -> gzip JSON Lines per hour partition.

Only readings new to an item are archived: for an INSERT, all of them; for a
MODIFY (a retried request rewriting its chunk), those in the new image and not in
the old one with the same value. REMOVE (TTL expiry) is not archived: S3 keeps
everything.
"""

from __future__ import annotations

import gzip
import hashlib
import json
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from chalicelib.domain.chunks import decode
from chalicelib.domain.readings import Reading

ARCHIVE_PREFIX = "archive"


@dataclass(frozen=True)
class ChunkChange:
    """One stream record, reduced to what the archive needs."""

    event_name: str  # INSERT | MODIFY | REMOVE
    sequence_number: str
    device_id: str
    new_data: bytes | None
    new_received_at: int | None
    old_data: bytes | None


def partition_of(ts_ms: int) -> str:
    """Hive-style partition of a reading: dt=YYYY-MM-DD/hour=HH (UTC)."""
    moment = datetime.fromtimestamp(ts_ms / 1000, UTC)
    return f"dt={moment:%Y-%m-%d}/hour={moment:%H}"


def new_readings(change: ChunkChange) -> list[Reading]:
    """Readings this change adds to the store (see the module docstring)."""
    if change.event_name == "REMOVE" or change.new_data is None:
        return []
    fresh = decode(change.new_data)
    if change.event_name != "MODIFY" or change.old_data is None:
        return fresh
    before = {(r.identity, json.dumps(r.value)) for r in decode(change.old_data)}
    return [r for r in fresh if (r.identity, json.dumps(r.value)) not in before]


def archive_lines(changes: Iterable[ChunkChange]) -> dict[str, list[dict[str, object]]]:
    """Group the new readings of a batch into archive lines by partition."""
    partitions: dict[str, list[dict[str, object]]] = defaultdict(list)
    for change in changes:
        for r in new_readings(change):
            partitions[partition_of(r.ts_ms)].append(
                {
                    "device_id": change.device_id,
                    "metric": r.metric,
                    "unit": r.unit,
                    "ts": r.ts_ms,
                    "value": r.value,
                    "received_at": change.new_received_at,
                }
            )
    return dict(partitions)


def encode_lines(lines: list[dict[str, object]]) -> bytes:
    """gzip JSON Lines, sorted by series then time so neighbouring lines compress well."""
    ordered = sorted(lines, key=lambda x: (x["device_id"], x["metric"], x["unit"], x["ts"]))  # type: ignore[return-value]
    text = "".join(json.dumps(line, separators=(",", ":"), ensure_ascii=False) + "\n" for line in ordered)
    return gzip.compress(text.encode(), compresslevel=9, mtime=0)


def object_key(partition: str, stream_arn: str, first_sequence: str, last_sequence: str) -> str:
    """The object of one partition of one stream batch: a retried batch rewrites it."""
    stream = hashlib.sha256(stream_arn.encode()).hexdigest()[:8]
    return f"{ARCHIVE_PREFIX}/{partition}/{stream}-{first_sequence}-{last_sequence}.jsonl.gz"
