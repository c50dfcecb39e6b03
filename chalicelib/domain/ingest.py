"""Ingestion: validated readings -> chunks -> store; device state only for late readings.

The readings stream folds every other request into the device state (domain.state), so a
request costs one write: its chunk.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from chalicelib.domain.chunks import Chunk, deduplicate, latest_per_series, make_chunks
from chalicelib.domain.readings import Reading
from chalicelib.domain.state import is_late


class ChunkWriter(Protocol):
    def write(self, device_id: str, chunks: list[Chunk], received_at_ms: int) -> None: ...


class StateRecorder(Protocol):
    def record_state(self, device_id: str, latest: dict[tuple[str, str], Reading], now_ms: int) -> None: ...


@dataclass(frozen=True)
class IngestOutcome:
    accepted: int
    chunks: int


def ingest(
    device_id: str,
    readings: list[Reading],
    received_at_ms: int,
    *,
    store: ChunkWriter,
    devices: StateRecorder,
    idempotency_key: str | None = None,
) -> IngestOutcome:
    """Store a request's readings; a request with a late reading also moves the device's state forward.

    The live stream folds chunks into the state lazily and the exact read merges the chunks it has
    not folded yet, which it finds by time: it looks back LATE_FOLD_MS from the fold mark. A request
    whose newest reading of a series is older (a buffered upload: rare) would fall outside that, so it updates the
    state itself, after its write: if the write fails nothing is acknowledged and the state is
    untouched; if the state update fails the client retries and the idempotent chunk keys make
    the second write harmless.
    """
    unique = deduplicate(readings)
    chunks = make_chunks(device_id, unique, idempotency_key)
    store.write(device_id, chunks, received_at_ms)
    latest = latest_per_series(unique)
    if is_late(latest.values(), received_at_ms):
        devices.record_state(device_id, latest, received_at_ms)
    return IngestOutcome(accepted=len(unique), chunks=len(chunks))
