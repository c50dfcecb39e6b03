"""The daily map/reduce job: hourly rollups and the inverted index of a day's archive."""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from chalicelib.adapters.aggregates import AggregateStore, index_items, rollup_item
from chalicelib.adapters.archive import S3Archive
from chalicelib.domain.archive import ARCHIVE_PREFIX
from chalicelib.domain.mapreduce import INDEX, ROLLUP, run_local


@dataclass(frozen=True)
class DayOutcome:
    day: str
    objects: int
    rollups: int
    words: int


def days_to_roll_up(event_time: str | None, now: datetime | None = None) -> list[str]:
    """The UTC days touched by the 24 hours before the event: yesterday (now complete) and today."""
    moment = now or datetime.now(UTC)
    if event_time:
        moment = datetime.fromisoformat(event_time.replace("Z", "+00:00"))
    return sorted({f"{moment - timedelta(days=1):%Y-%m-%d}", f"{moment:%Y-%m-%d}"})


def _rows_file(rows: list[dict[str, Any]]) -> bytes:
    text = "".join(json.dumps(row, separators=(",", ":")) + "\n" for row in rows)
    return gzip.compress(text.encode(), mtime=0)


def roll_up_day(day: str, archive: S3Archive, store: AggregateStore) -> DayOutcome:
    """Run both jobs over one day's partitions, streaming each object, and publish the rows.

    Outputs go to S3 (`rollups/dt=DAY/`, `index/dt=DAY/`, for Athena and EMR) and to the
    aggregates table (for the API). Keys are per day, so a re-run overwrites.
    """
    keys = sorted(archive.keys(f"{ARCHIVE_PREFIX}/dt={day}/"))

    def lines() -> Iterator[dict[str, Any]]:
        for key in keys:
            yield from archive.lines(key)

    rollups = run_local(ROLLUP, lines())
    index = run_local(INDEX, lines())
    archive.put(f"rollups/dt={day}/part-00000.jsonl.gz", _rows_file(rollups))
    archive.put(f"index/dt={day}/part-00000.jsonl.gz", _rows_file(index))
    store.put([rollup_item(row) for row in rollups] + [item for row in index for item in index_items(row, day)])
    return DayOutcome(day=day, objects=len(keys), rollups=len(rollups), words=len(index))


@dataclass(frozen=True)
class RollupsJob:
    """The daily schedule: roll up every day the event's last 24 hours touched."""

    archive: S3Archive
    store: AggregateStore

    def run(self, event_time: str | None) -> dict[str, Any]:
        """The handler's answer: each day's outcome."""
        return {"days": [vars(roll_up_day(day, self.archive, self.store)) for day in days_to_roll_up(event_time)]}
