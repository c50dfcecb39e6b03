"""Device state: folded lazily from the readings stream, read exactly by merging the unfolded tail.

The request path writes only its chunk (one write unit for a small request). The readings
stream's `live` consumer folds a device's chunks into its device item (latest value per
series, last_seen, the active-hour key) at most once per FOLD_INTERVAL_MS per container,
and records the fold mark `folded_at`: the received_at of the newest request folded.

A fold reads the device item and, strongly consistent, every chunk from the hour bucket of
`tail_from(mark)` on, then writes the merge. That makes the mark mean: every chunk not yet
folded was received at or after `folded_at - MAX_REQUEST_MS` (a request committed after the
fold's read read its clock at most MAX_REQUEST_MS before committing, and the mark is the
newest received_at the read saw). A request's newest reading of each of its series is no
older than received_at - LATE_FOLD_MS, because a request where one is older folds itself,
synchronously, on the request path. So every unfolded reading that can be a series' latest
lies in an hour bucket at or after `hour_bucket(tail_from(mark))` (a batch's older readings
may lie before it, but the same request's newer reading of the series outranks them), and an
exact read is the device item merged with one Query of that tail. Which container
gets a shard's batches does not matter for correctness: the in-memory record only decides
when to fold (cost), never what a fold covers.

The folded last_seen (what the fleet page and the offline check read) is at most
FOLD_INTERVAL_MS behind the newest request, plus the stream's delay.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Protocol

from chalicelib.domain.chunks import decode, hour_bucket
from chalicelib.domain.readings import Reading
from chalicelib.errors import StorageUnavailableError

# A request whose newest reading of a series is older than its received_at minus this folds itself at once.
LATE_FOLD_MS = 15 * 60_000
# A device is folded at most once per this, per live consumer container (but see LazyFolds).
FOLD_INTERVAL_MS = 5 * 60_000
# The longest a request can take between reading its clock (received_at) and its write
# committing: the API function's timeout (lambda_timeout of api_handler in .chalice/config.json,
# held equal by tests/unit/test_state_fold.py). Lambda stops the request there.
MAX_REQUEST_MS = 29_000
FOLD_RETRIES = 5  # a fold that loses a race re-reads and merges again

Series = tuple[str, str]


@dataclass(frozen=True)
class FoldedState:
    """What a device item holds of the device's state."""

    device_id: str
    created_at: int
    latest: dict[Series, Reading] = field(default_factory=dict)
    last_seen: int | None = None
    folded_at: int | None = None  # the fold mark: received_at of the newest request folded
    state_ts: int | None = None  # the newest reading time over `latest` (the stored write guard)

    def readings(self) -> list[Reading]:
        """The latest readings in (metric, unit) order."""
        return sorted(self.latest.values(), key=lambda r: (r.metric, r.unit))


class TailChunk(Protocol):
    @property
    def data(self) -> bytes: ...

    @property
    def received_at(self) -> int: ...


class StateStore(Protocol):
    """The device items (adapters.devices.DeviceRepository)."""

    def folded(self, device_id: str, consistent: bool = False) -> FoldedState: ...

    def save_fold(self, before: FoldedState, after: FoldedState) -> bool: ...


class ChunkTail(Protocol):
    """The chunk items (adapters.readings.ReadingStore)."""

    def tail(self, device_id: str, from_bucket: str, consistent: bool = False) -> Sequence[TailChunk]: ...


def is_late(latest: Iterable[Reading], received_at_ms: int) -> bool:
    """Whether a request's newest reading of some series (`latest`: one per series) is older
    than the fold covers, so the request must fold itself. A batch spanning hours is not late
    when each series' newest reading is recent: its older readings cannot be a latest value."""
    return any(r.ts_ms < received_at_ms - LATE_FOLD_MS for r in latest)


def tail_from(state: FoldedState) -> int:
    """The oldest time an unfolded reading of the device can have (see the module docstring).

    Never folded: counted from the device's registration (no request came before it).
    """
    mark = state.folded_at if state.folded_at is not None else state.created_at
    return mark - LATE_FOLD_MS - MAX_REQUEST_MS


def merge(state: FoldedState, chunks: Iterable[TailChunk]) -> FoldedState:
    """The state with the chunks folded in: per series the newest reading, last_seen and the mark the
    newest received_at. Forward only, so folding a chunk twice changes nothing."""
    latest = dict(state.latest)
    last_seen, mark = state.last_seen, state.folded_at
    # Oldest request first, so that of two readings at the same time the later request's wins,
    # as it did when each request updated the state itself.
    for chunk in sorted(chunks, key=lambda c: c.received_at):
        for r in decode(chunk.data):
            current = latest.get((r.metric, r.unit))
            if current is None or current.ts_ms <= r.ts_ms:
                latest[(r.metric, r.unit)] = r
        last_seen = chunk.received_at if last_seen is None else max(last_seen, chunk.received_at)
        mark = chunk.received_at if mark is None else max(mark, chunk.received_at)
    newest = max((r.ts_ms for r in latest.values()), default=None)
    state_ts = newest if state.state_ts is None or newest is None else max(state.state_ts, newest)
    return replace(state, latest=latest, last_seen=last_seen, folded_at=mark, state_ts=state_ts)


def _tail_bucket(state: FoldedState, now_ms: int | None, retention_ms: int | None) -> str:
    start = tail_from(state)
    if state.folded_at is None and now_ms is not None and retention_ms is not None:
        start = max(start, now_ms - retention_ms)  # older chunks have expired (TTL = newest reading + retention)
    return hour_bucket(max(0, start))


@dataclass(frozen=True)
class DeviceStates:
    """Exact reads and folds of device state over the device items and the chunk tail."""

    devices: StateStore
    chunks: ChunkTail
    retention_ms: int | None = None

    def exact(self, device_id: str, now_ms: int | None = None) -> FoldedState:
        """The device's state as of every request stored: the folded state merged with the unfolded
        tail (a GetItem and one Query, both eventually consistent). Raises DeviceNotFoundError."""
        folded = self.devices.folded(device_id)
        tail = self.chunks.tail(device_id, _tail_bucket(folded, now_ms, self.retention_ms))
        return merge(folded, tail)

    def last_seen(self, device_id: str, now_ms: int | None = None) -> int | None:
        """The exact last_seen: what the offline check confirms a silence with before raising."""
        return self.exact(device_id, now_ms).last_seen

    def fold(self, device_id: str, now_ms: int | None = None) -> FoldedState:
        """Fold every stored chunk of the device into its item; returns what is stored.

        The chunks are read strongly consistent, so the mark covers every chunk committed before
        the read. The item is read eventually consistent first (half the read units): a stale
        item only makes the tail longer, and the write's guard (save_fold) refuses to overwrite
        what it did not read; then it is read again, consistently, and merged again. Raises
        StorageUnavailableError (the stream batch is retried: folding again is harmless).
        """
        for attempt in range(FOLD_RETRIES):
            before = self.devices.folded(device_id, consistent=attempt > 0)
            tail = self.chunks.tail(device_id, _tail_bucket(before, now_ms, self.retention_ms), consistent=True)
            after = merge(before, tail)
            if after == before or self.devices.save_fold(before, after):
                return after
        raise StorageUnavailableError(f"folding the state of {device_id} is too contended; retry")


@dataclass
class _Folded:
    received_at: int
    series: set[Series]


@dataclass
class LazyFolds:
    """When a live consumer container folds a device: the in-memory record of its own folds.

    Due on first sight (a cold container), when FOLD_INTERVAL_MS has passed since the last fold
    (by received_at), when a request falls in another hour bucket than the last fold's (the
    active-hour key must move) and when a series appears that this container has not folded.
    """

    interval_ms: int = FOLD_INTERVAL_MS
    _folds: dict[str, _Folded] = field(default_factory=dict)

    def due(self, device_id: str, received_at: int, series: Iterable[Series]) -> bool:
        last = self._folds.get(device_id)
        if last is None or received_at - last.received_at >= self.interval_ms:
            return True
        if hour_bucket(received_at) > hour_bucket(last.received_at):
            return True
        return not set(series) <= last.series

    def folded(self, device_id: str, state: FoldedState) -> None:
        """Record a fold (what it stored: its series and its mark)."""
        mark = state.folded_at if state.folded_at is not None else 0
        self._folds[device_id] = _Folded(mark, set(state.latest))
