"""The hourly rollup job: each closed hour of the archive into the rollup store, late readings re-rolled.

Every run (every 5 minutes) rolls the hours from the store's watermark up to the last
hour whose end + ROLLUP_GRACE_MS has passed, at most `max_hours` of them (the rest next run;
the first run starts at the archive's oldest day). An hour is map/reduced from its archive
partition `archive/dt=DAY/hour=HH/` and written with `RollupStore.put_hour` (a retry rewrites
the same items), then the watermark moves past it. When a day's 24 hours are in, the day is
compacted into one item per device and its inverted index is written. Device-hours marked
dirty by the archiver (late readings) are re-rolled from their partition and the mark is
deleted only if no newer one replaced it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from chalicelib.adapters.aggregates import DAY_MS, AggregateStore, RollupStore, day_of, day_start_ms, index_items
from chalicelib.adapters.archive import S3Archive
from chalicelib.clock import now_ms
from chalicelib.domain.archive import ARCHIVE_PREFIX
from chalicelib.domain.mapreduce import INDEX, ROLLUP, partials_by_device, run_local
from chalicelib.domain.rollups import HOUR_MS, ROLLUP_GRACE_MS

MAX_HOURS_PER_RUN = 48  # a run's bound: two days of catching up, well inside the Lambda timeout


def last_due_hour_end(now: int, grace_ms: int = ROLLUP_GRACE_MS) -> int:
    """The end of the last hour that may be rolled at `now`: its end + grace has passed."""
    return (now - grace_ms) // HOUR_MS * HOUR_MS


def event_ms(event_time: str) -> int:
    """A schedule event's time ("2026-12-07T10:10:00Z") in epoch milliseconds."""
    return int(datetime.fromisoformat(event_time.replace("Z", "+00:00")).timestamp() * 1000)


def oldest_archive_hour(archive: S3Archive) -> int | None:
    """The start of the archive's first day (where a first run starts), or None if it is empty."""
    days = [p for p in archive.children(f"{ARCHIVE_PREFIX}/") if p.startswith(f"{ARCHIVE_PREFIX}/dt=")]
    return day_start_ms(days[0].removeprefix(f"{ARCHIVE_PREFIX}/dt=").rstrip("/")) if days else None


def hour_prefix(hour_ms: int) -> str:
    """The archive partition of an hour."""
    moment = datetime.fromtimestamp(hour_ms / 1000, UTC)
    return f"{ARCHIVE_PREFIX}/dt={moment:%Y-%m-%d}/hour={moment:%H}/"


@dataclass
class RollupsJob:
    """The hourly schedule's body (see the module docstring)."""

    archive: S3Archive
    store: RollupStore
    index: AggregateStore
    max_hours: int = MAX_HOURS_PER_RUN
    clock: Any = field(default=now_ms)

    def _lines(self, prefix: str, devices: set[str] | None = None) -> Iterator[dict[str, Any]]:
        for key in sorted(self.archive.keys(prefix)):
            for line in self.archive.lines(key):
                if devices is None or line.get("device_id") in devices:
                    yield line

    def _write_index(self, day: str) -> int:
        rows = run_local(INDEX, self._lines(f"{ARCHIVE_PREFIX}/dt={day}/"))
        return self.index.put(item for row in rows for item in index_items(row, day))

    def run(self, event_time: str | None) -> dict[str, Any]:
        """Roll due hours, compact complete days, re-roll dirty device-hours; the handler's answer."""
        now = event_ms(event_time) if event_time else self.clock()
        due_end = last_due_hour_end(now)
        start = self.store.covered_until_ms()
        if start == 0:
            start = oldest_archive_hour(self.archive) or due_end
        hours: list[str] = []
        compacted: list[str] = []
        days: set[str] = set()
        hour = start
        while hour < due_end and len(hours) < self.max_hours:
            rows = partials_by_device(run_local(ROLLUP, self._lines(hour_prefix(hour))))
            manifest = self.store.put_hour(hour, rows)
            self.store.set_covered_until(hour + HOUR_MS)
            day = day_of(hour)
            hours.append(datetime.fromtimestamp(hour / 1000, UTC).strftime("%Y-%m-%dT%H"))
            days.add(day)
            # the day's last hour closes it (even if a concurrent run's manifest write lost an hour:
            # compaction reads every page there is)
            if not manifest.compacted and (len(manifest.hours) == 24 or hour + HOUR_MS == day_start_ms(day) + DAY_MS):
                self.store.compact(day)
                self._write_index(day)
                compacted.append(day)
            hour += HOUR_MS
        rerolled = self._reroll(hour, days)
        return {"days": sorted(days), "hours": hours, "rerolled": rerolled, "compacted": compacted}

    def _reroll(self, covered_until: int, days: set[str]) -> list[dict[str, Any]]:
        marks: dict[int, dict[str, str]] = {}
        for hour, device, version in self.store.dirty():
            if hour < covered_until:  # later hours are still to be rolled in full
                marks.setdefault(hour, {})[device] = version
        done: list[dict[str, Any]] = []
        index_days: set[str] = set()
        for hour, devices in sorted(marks.items()):
            rows = partials_by_device(run_local(ROLLUP, self._lines(hour_prefix(hour), set(devices))))
            for device, version in sorted(devices.items()):
                self.store.replace_hours(device, rows.get(device, {}), {hour})
                cleared = self.store.clear_dirty(hour, device, version)
                done.append({"hour": hour, "device_id": device, "cleared": cleared})
            day = day_of(hour)
            days.add(day)
            manifest = self.store.manifest(day)
            if manifest is not None and manifest.compacted:
                index_days.add(day)
        for day in sorted(index_days):
            self._write_index(day)
        return done
