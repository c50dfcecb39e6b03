"""Reading telemetry back: chunks of complete hours -> readings in time order, paged."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from chalicelib.domain.chunks import HOUR_MS, bucket_start_ms, decode, hour_bucket
from chalicelib.domain.readings import Reading
from chalicelib.errors import InvalidParameterError

Identity = tuple[int, str, str]  # (ts, metric, unit): the order of a page
MAX_BUCKET = "~"  # sorts after every "YYYYMMDDHH#..." key


class ChunkLike(Protocol):
    @property
    def bucket(self) -> str: ...
    @property
    def data(self) -> bytes: ...
    @property
    def received_at(self) -> int: ...


@dataclass(frozen=True)
class Cursor:
    """Where the next page starts: an hour bucket and the last identity already returned."""

    bucket: str
    after: Identity | None = None

    def encode(self) -> str:
        doc = {"b": self.bucket, "a": list(self.after) if self.after else None}
        return base64.urlsafe_b64encode(json.dumps(doc, separators=(",", ":")).encode()).decode().rstrip("=")

    @staticmethod
    def decode(text: str) -> Cursor:
        try:
            padded = text + "=" * (-len(text) % 4)
            doc = json.loads(base64.urlsafe_b64decode(padded.encode()))
            bucket = doc["b"]
            after = doc.get("a")
            if not (isinstance(bucket, str) and len(bucket) == 10 and bucket.isdigit()):
                raise ValueError("bad bucket")
            if after is not None:
                ts, metric, unit = after
                if not (isinstance(ts, int) and isinstance(metric, str) and isinstance(unit, str)):
                    raise ValueError("bad position")
                return Cursor(bucket, (ts, metric, unit))
            return Cursor(bucket)
        except (ValueError, KeyError, TypeError, binascii.Error, UnicodeDecodeError) as e:
            raise InvalidParameterError("cursor is not one this API issued") from e


@dataclass(frozen=True)
class Window:
    """What a telemetry query asks for."""

    from_ms: int
    to_ms: int
    metric: str | None
    limit: int

    def key_range(self, cursor: Cursor | None) -> tuple[str, str]:
        low = hour_bucket(self.from_ms)
        if cursor is not None and cursor.bucket > low:
            low = cursor.bucket
        return low, hour_bucket(self.to_ms) + MAX_BUCKET


@dataclass(frozen=True)
class Page:
    readings: list[Reading]
    next_cursor: Cursor | None


def _bucket_readings(chunks: Sequence[ChunkLike], window: Window) -> list[Reading]:
    """One hour's readings, filtered and de-duplicated (the most recently received wins)."""
    best: dict[tuple[str, str, int], tuple[int, Reading]] = {}
    for chunk in chunks:
        for r in decode(chunk.data):
            if not (window.from_ms <= r.ts_ms <= window.to_ms):
                continue
            if window.metric is not None and r.metric != window.metric:
                continue
            seen = best.get(r.identity)
            if seen is None or chunk.received_at >= seen[0]:
                best[r.identity] = (chunk.received_at, r)
    return sorted((r for _, r in best.values()), key=lambda r: (r.ts_ms, r.metric, r.unit))


def page_of(chunks: Sequence[ChunkLike], more_in_store: bool, window: Window, cursor: Cursor | None) -> Page:
    """Build a page from chunks in key order.

    When the store has more items, the last hour read may be incomplete, so only the
    hours before it are used and the next page starts at that hour. (If the chunks
    are all of one hour, the store has read that hour whole: see ReadingStore.chunks.)
    """
    buckets: dict[str, list[ChunkLike]] = {}
    for chunk in chunks:
        buckets.setdefault(chunk.bucket, []).append(chunk)
    ordered = sorted(buckets)
    resume: str | None = None
    if more_in_store and ordered:
        resume = ordered[-1]
        if len(ordered) > 1:
            ordered = ordered[:-1]
        else:
            resume = hour_bucket(bucket_start_ms(resume) + HOUR_MS)
    out: list[Reading] = []
    for bucket in ordered:
        for r in _bucket_readings(buckets[bucket], window):
            if cursor and cursor.after and bucket == cursor.bucket and (r.ts_ms, r.metric, r.unit) <= cursor.after:
                continue
            out.append(r)
            if len(out) == window.limit:
                last = (r.ts_ms, r.metric, r.unit)
                return Page(out, Cursor(hour_bucket(r.ts_ms), last))
    return Page(out, Cursor(resume) if resume else None)
