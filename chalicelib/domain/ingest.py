"""Ingestion: validated readings -> chunks -> store, then device state."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from chalicelib.domain.chunks import Chunk, deduplicate, latest_per_series, make_chunks
from chalicelib.domain.readings import Reading


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
    """Store a request's readings, then move the device's state forward.

    The readings are written first: if that fails nothing is acknowledged and the
    state is untouched; if the state update fails the client retries and the
    idempotent chunk keys make the second write harmless.
    """
    unique = deduplicate(readings)
    chunks = make_chunks(device_id, unique, idempotency_key)
    store.write(device_id, chunks, received_at_ms)
    devices.record_state(device_id, latest_per_series(unique), received_at_ms)
    return IngestOutcome(accepted=len(unique), chunks=len(chunks))
