"""The readings stream -> S3 archive handler's body."""

from __future__ import annotations

import base64
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from chalicelib.adapters.archive import S3Archive
from chalicelib.adapters.metrics import Metrics
from chalicelib.clock import now_ms
from chalicelib.domain.archive import ChunkChange, archive_lines, encode_lines, object_key
from chalicelib.domain.mapreduce import late_marks

if TYPE_CHECKING:
    from chalicelib.adapters.aggregates import RollupStore

logger = logging.getLogger("iotcloud.archiver")


@dataclass(frozen=True)
class ArchiveOutcome:
    objects: int
    readings: int
    bytes: int
    oldest_received_at: int | None = None
    late: frozenset[tuple[int, str]] = frozenset()  # (hour, device) written after the hour's rollup was due


def _binary(image: dict[str, Any] | None, name: str) -> bytes | None:
    if not image or name not in image:
        return None
    raw = image[name]["B"]
    # Lambda delivers binary attributes base64-encoded in the event's JSON.
    return base64.b64decode(raw) if isinstance(raw, str) else bytes(raw)


def _number(image: dict[str, Any] | None, name: str) -> int | None:
    if not image or name not in image:
        return None
    return int(image[name]["N"])


def change_of(record: dict[str, Any]) -> ChunkChange:
    """A Lambda DynamoDB stream record (dict form) of a readings chunk item."""
    ddb = record["dynamodb"]
    new, old = ddb.get("NewImage"), ddb.get("OldImage")
    return ChunkChange(
        event_name=record["eventName"],
        sequence_number=ddb["SequenceNumber"],
        device_id=ddb["Keys"]["d"]["S"],
        new_data=_binary(new, "b"),
        new_received_at=_number(new, "r"),
        old_data=_binary(old, "b"),
    )


def archive_batch(
    records: Iterable[dict[str, Any]], archive: S3Archive, clock: Callable[[], int] = now_ms
) -> ArchiveOutcome:
    """Archive one stream batch. Raises ArchiveUnavailableError so the batch is retried.

    Every object's key is derived from the batch, so a retry rewrites the same
    objects: an S3 failure half-way loses nothing and duplicates nothing.
    """
    batch = list(records)
    if not batch:
        return ArchiveOutcome(0, 0, 0)
    changes = [change_of(r) for r in batch]
    stream_arn = str(batch[0].get("eventSourceARN", ""))
    first, last = changes[0].sequence_number, changes[-1].sequence_number
    written = readings = size = 0
    late: set[tuple[int, str]] = set()
    for partition, lines in sorted(archive_lines(changes).items()):
        body = encode_lines(lines)
        archive.put(object_key(partition, stream_arn, first, last), body)
        written, readings, size = written + 1, readings + len(lines), size + len(body)
        late |= late_marks(lines, clock())  # the clock after the put: the object is visible by then
    received = [c.new_received_at for c in changes if c.new_received_at is not None]
    return ArchiveOutcome(written, readings, size, min(received) if received else None, frozenset(late))


@dataclass(frozen=True)
class ArchiveJob:
    """The readings stream's archive handler: archive the batch, record how many and how late."""

    archive: S3Archive
    metrics: Metrics
    clock: Callable[[], int] = now_ms
    marks: RollupStore | None = None  # where late device-hours are marked for a re-roll

    def handle(self, records: Iterable[dict[str, Any]]) -> dict[str, Any]:
        """Archive one batch. Failures raise, so Lambda retries the whole batch; object keys make that harmless."""
        batch = list(records)
        outcome = archive_batch(batch, self.archive, self.clock)
        if outcome.late and self.marks is not None:
            # a fresh version per batch, so the job never deletes a mark it has not re-rolled
            last = batch[-1]["dynamodb"]["SequenceNumber"]
            self.marks.mark_dirty(outcome.late, f"{self.clock()}-{last}")
        self.metrics.add("ArchivedReadings", outcome.readings)
        if outcome.oldest_received_at is not None:
            self.metrics.add("ArchiveLag", self.clock() - outcome.oldest_received_at, "Milliseconds")
        logger.info("archived %d readings in %d objects (%d bytes)", outcome.readings, outcome.objects, outcome.bytes)
        return {"batchItemFailures": []}
