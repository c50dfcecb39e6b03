"""The hourly rollup on Athena (ROLLUP_ENGINE=athena; DuckDB locally): a state machine advanced by
schedule ticks, never sleeping.

Each tick (the `rollups` schedule, every 5 minutes) looks at the closed hours from
the rollup store's watermark on (an hour is closed `ROLLUP_GRACE_MS` after its end) and moves each
one step:

    (none) --start compaction--> COMPACTING --SUCCEEDED, start rollup--> ROLLING
           --SUCCEEDED, put_hour--> LOADED

A FAILED or CANCELLED query is started again, up to `MAX_ATTEMPTS` per stage; then the hour
is FAILED and reported in every tick's answer (and logged as an error) until it starts again on
its own `FAILED_RETRY_MS` later, or at once when an operator `retry`s it. The
watermark (rollups cover every hour before it: the same item the in-Lambda job keeps, so the
engines can be switched) only passes LOADED hours, so no hour is lost: later hours still load,
but the watermark waits at the failed one.

Each tick works within `TICK_BUDGET_S`: an hour's load, or a closed day's compaction, at a
million devices takes minutes, so what does not fit waits for the next tick. When the watermark
passes a UTC day's end, the day is compacted into one item per device (shard by shard of its
pages, over as many ticks as it needs) and its inverted index is computed: Athena selects the
day's string readings from the Parquet (numbers never leave S3) and the INDEX job of
domain.mapreduce maps them here. Late readings
(the archiver's dirty marks for rolled hours) re-run their hour: compaction again (the JSON
archive has them), the rollup of the marked devices only, `replace_hours` per device, and the
mark is deleted only if no newer one replaced it.

The state is one item per hour in flight in the aggregates table (partition `job#fleet-rollups`,
sort "YYYY-MM-DDTHH", forgotten once the watermark passes it) and one `index` item with the
closing days (compaction progress, index query).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pynamodb.exceptions import DoesNotExist

from chalicelib.adapters.aggregates import DAY_MS, AggregateStore, RollupStore, day_of, day_start_ms, index_items
from chalicelib.adapters.athena import CANCELLED, FAILED, SUCCEEDED, AthenaQueries
from chalicelib.clock import now_ms
from chalicelib.domain import rollup_sql
from chalicelib.domain.mapreduce import INDEX, hour_of, partials_by_device, run_local
from chalicelib.domain.rollups import HOUR_MS
from chalicelib.jobs.rollups import event_ms, last_due_hour_end
from chalicelib.models import AggregateModel

log = logging.getLogger(__name__)

STATE_PARTITION = "job#fleet-rollups"
INDEX_SORT = "index"
MAX_ATTEMPTS = 3
FAILED_RETRY_MS = 2 * 3_600_000  # a FAILED hour (or index) starts again on its own two hours later
MAX_HOURS_PER_TICK = 6  # hours in flight at once (a backlog drains at this rate per tick)
MAX_REROLL_DEVICES = 1_000  # devices named in one re-roll query; more: the whole hour is rolled again
COMPACTING, ROLLING, LOADED, FAILED_STAGE = "COMPACTING", "ROLLING", "LOADED", "FAILED"
DAY_COMPACTING, INDEXING = "DAY_COMPACTING", "INDEXING"  # a closed day: its day items, then its index
# A tick's work budget: an hour's load at a million devices takes about 6.5 minutes
# (bench/rollup_engines.py), so a tick starts another load, or another shard of a closed day's
# compaction, only within this budget; the rest waits for the next tick. A tick is then at most
# the budget plus one load, inside the 900 s timeout (the capacity model's headroom).
TICK_BUDGET_S = 120.0


@dataclass
class HourState:
    """One hour's (or, for INDEXING, one day's) query in flight; `marks` (device -> mark version)
    make it a re-roll of those devices."""

    hour_ms: int
    stage: str
    execution_id: str
    attempts: int = 1
    reason: str = ""
    marks: dict[str, str] = field(default_factory=dict)
    shard: int = 0  # DAY_COMPACTING: the next shard of the day's pages
    failed_at: int = 0  # FAILED: when (the tick's time, epoch ms)


class JobState:
    """The job's items in the aggregates table."""

    def __init__(self, model: type[AggregateModel] = AggregateModel) -> None:
        self._model = model

    def _get(self, sort: str) -> Any:
        try:
            return json.loads(self._model.get(STATE_PARTITION, sort, consistent_read=True).row)
        except DoesNotExist:
            return None

    def _put(self, sort: str, row: Any) -> None:
        self._model(STATE_PARTITION, sort, row=json.dumps(row, separators=(",", ":"))).save()

    def hour(self, hour_ms: int) -> HourState | None:
        row = self._get(hour_of(hour_ms))
        return None if row is None else HourState(**row)

    def save(self, state: HourState) -> None:
        self._put(hour_of(state.hour_ms), vars(state))

    def forget(self, hour_ms: int) -> None:
        self._model(STATE_PARTITION, hour_of(hour_ms)).delete()

    def indexing(self) -> dict[str, HourState]:
        """The days whose index query is in flight (or FAILED), by day."""
        return {day: HourState(**row) for day, row in (self._get(INDEX_SORT) or {}).items()}

    def save_indexing(self, days: dict[str, HourState]) -> None:
        self._put(INDEX_SORT, {day: vars(s) for day, s in sorted(days.items())})


def _hour(hour_ms: int) -> str:
    return datetime.fromtimestamp(hour_ms / 1000, UTC).strftime("%Y-%m-%dT%H")


@dataclass
class FleetRollupsJob:
    """The Athena path of the hourly rollup (see the module docstring); `run` is the schedule's body."""

    queries: AthenaQueries
    state: JobState
    store: RollupStore
    index: AggregateStore
    bucket: str
    oldest_hour: Callable[[], int | None]  # the archive's first hour (where a first run starts)
    dialect: str = "trino"  # "duckdb" in the local stack (devstack.athena.DuckDBAthena)
    clear_prefix: Callable[[str], object] | None = None  # UNLOAD needs an empty target prefix
    clock: Callable[[], int] = now_ms
    budget_s: float = TICK_BUDGET_S
    timer: Callable[[], float] = time.monotonic
    _deadline: float = field(default=0.0, init=False)
    _loads: int = field(default=0, init=False)
    _now: int = field(default=0, init=False)

    def _over_budget(self) -> bool:
        return self.timer() > self._deadline

    # -- one query's stages --------------------------------------------------------------------

    def _compaction_sql(self, hour_ms: int) -> str:
        if self.dialect == "trino":
            return rollup_sql.compact_unload_sql(hour_ms, self.bucket)
        target = f"s3://{self.bucket}/compact/{rollup_sql.partition_of_hour(hour_ms)}/part-00000.parquet"
        return rollup_sql.compact_copy_sql(hour_ms, target)

    def _start(self, hour_ms: int, stage: str, attempts: int, marks: dict[str, str]) -> HourState:
        if stage == COMPACTING:
            if self.clear_prefix is not None:
                self.clear_prefix(f"compact/{rollup_sql.partition_of_hour(hour_ms)}/")
            sql = self._compaction_sql(hour_ms)
        else:
            only = sorted(marks) if marks and len(marks) <= MAX_REROLL_DEVICES else None
            sql = rollup_sql.rollup_parquet_sql(self.dialect, hour_ms, devices=only)
        return HourState(hour_ms, stage, self.queries.start(sql), attempts, marks=marks)

    def _load(self, current: HourState) -> None:
        rows = partials_by_device(rollup_sql.decode_row(r) for r in self.queries.rows(current.execution_id))
        if not current.marks:
            self.store.put_hour(current.hour_ms, rows)
            return
        for device, version in sorted(current.marks.items()):
            self.store.replace_hours(device, rows.get(device, {}), {current.hour_ms})
            self.store.clear_dirty(current.hour_ms, device, version)

    def _step(self, hour_ms: int, marks: dict[str, str] | None = None) -> HourState:
        """Move one hour a step. `marks`: a re-roll of a LOADED (or forgotten) hour for these devices."""
        current = self.state.hour(hour_ms)
        if current is not None and current.stage == FAILED_STAGE and self._now - current.failed_at >= FAILED_RETRY_MS:
            log.warning("fleet rollup %s: starting again, %d ms after it failed", _hour(hour_ms), FAILED_RETRY_MS)
            current = self._start(hour_ms, COMPACTING, 1, current.marks)
        elif current is None or (current.stage == LOADED and marks):
            current = self._start(hour_ms, COMPACTING, 1, marks or {})
        elif current.stage in (COMPACTING, ROLLING):
            q = self.queries.state(current.execution_id)
            if q.state == SUCCEEDED and current.stage == COMPACTING:
                current = self._start(hour_ms, ROLLING, 1, current.marks)
            elif q.state == SUCCEEDED:
                if self._loads and self._over_budget():
                    return current  # loaded next tick
                self._loads += 1
                self._load(current)
                current = HourState(hour_ms, LOADED, current.execution_id, current.attempts, marks=current.marks)
            elif q.state in (FAILED, CANCELLED) and current.attempts < MAX_ATTEMPTS:
                log.warning("fleet rollup %s: %s %s, retrying: %s", _hour(hour_ms), current.stage, q.state, q.reason)
                current = self._start(hour_ms, current.stage, current.attempts + 1, current.marks)
            elif q.state in (FAILED, CANCELLED):
                log.error("fleet rollup %s failed %d times at %s: %s", _hour(hour_ms), current.attempts,
                          current.stage, q.reason)  # fmt: skip
                current = HourState(hour_ms, FAILED_STAGE, current.execution_id, current.attempts,
                                    f"{current.stage}: {q.reason}", current.marks, failed_at=self._now)  # fmt: skip
            else:
                return current  # still running: look again next tick
        else:
            return current
        self.state.save(current)
        return current

    # -- the tick ------------------------------------------------------------------------------

    def run(self, event_time: str | None) -> dict[str, Any]:
        """The schedule's body: one tick at the event's time (or now)."""
        return self.tick(event_ms(event_time) if event_time else self.clock())

    def tick(self, now: int) -> dict[str, Any]:
        """Advance every closed hour in flight, re-rolls and index queries; the answer reports each and failures."""
        self._deadline, self._loads, self._now = self.timer() + self.budget_s, 0, now
        due_end = last_due_hour_end(now)
        watermark = self.store.covered_until_ms()
        if watermark == 0:  # first run: start at the archive's first hour
            watermark = self.oldest_hour() or due_end
            self.store.set_covered_until(watermark)
        hours: dict[str, str] = {}
        failed: list[dict[str, Any]] = []
        advanced, contiguous = watermark, True
        for hour_ms in range(watermark, min(due_end, watermark + MAX_HOURS_PER_TICK * HOUR_MS), HOUR_MS):
            s = self._step(hour_ms)
            hours[_hour(hour_ms)] = s.stage
            if s.stage == FAILED_STAGE:
                failed.append({"hour": _hour(hour_ms), "attempts": s.attempts, "reason": s.reason})
            if contiguous and s.stage == LOADED:
                advanced = hour_ms + HOUR_MS
            else:
                contiguous = False
        indexing = self.state.indexing()
        seen = {day: dict(vars(state)) for day, state in indexing.items()}
        compacted: list[str] = []
        if advanced != watermark:
            self.store.set_covered_until(advanced)
            for hour_ms in range(watermark, advanced, HOUR_MS):
                self.state.forget(hour_ms)
                if (hour_ms + HOUR_MS) % DAY_MS == 0:  # the watermark passed the day's end: close it
                    day = day_of(hour_ms)
                    indexing[day] = HourState(day_start_ms(day), DAY_COMPACTING, "")
        rerolled = self._rerolls(advanced, hours, failed, indexing)
        indexed = self._day_step(indexing, failed, compacted)
        if {day: vars(state) for day, state in indexing.items()} != seen:  # no write on an idle tick
            self.state.save_indexing(indexing)
        days = sorted({h[:10] for h in hours} | set(compacted) | set(indexed))
        return {
            "days": days,
            "hours": hours,
            "rerolled": rerolled,
            "compacted": compacted,
            "indexed": indexed,
            "failed": failed,
            "covered_until_ms": advanced,
        }

    def _rerolls(
        self, covered_until: int, hours: dict[str, str], failed: list[dict[str, Any]], indexing: dict[str, HourState]
    ) -> list[dict[str, Any]]:
        marks: dict[int, dict[str, str]] = {}
        for hour_ms, device, version in self.store.dirty():
            closing = indexing.get(day_of(hour_ms))
            if closing is not None and closing.stage == DAY_COMPACTING:
                continue  # its day items are being written from the pages: after that
            if hour_ms < covered_until:  # later hours are still to be rolled in full
                marks.setdefault(hour_ms, {})[device] = version
        done: list[dict[str, Any]] = []
        for hour_ms, devices in sorted(marks.items())[:MAX_HOURS_PER_TICK]:
            s = self._step(hour_ms, devices)
            hours[_hour(hour_ms)] = s.stage
            if s.stage == FAILED_STAGE:
                failed.append({"hour": _hour(hour_ms), "attempts": s.attempts, "reason": s.reason})
            elif s.stage == LOADED:
                self.state.forget(hour_ms)  # a newer mark (not cleared) starts it again next tick
                done += [{"hour": hour_ms, "device_id": d} for d in sorted(s.marks)]
                day = day_of(hour_ms)
                manifest = self.store.manifest(day)
                if manifest is not None and manifest.compacted and day not in indexing:
                    indexing[day] = self._start_index(day, 1)
        return done

    # -- the daily index -----------------------------------------------------------------------

    def _start_index(self, day: str, attempts: int) -> HourState:
        sql = rollup_sql.day_strings_sql(self.dialect, day_start_ms(day))
        return HourState(day_start_ms(day), INDEXING, self.queries.start(sql), attempts)

    def _day_step(
        self, indexing: dict[str, HourState], failed: list[dict[str, Any]], compacted: list[str]
    ) -> list[str]:
        """Move each closing day a step: its day items (shards within the budget), then its index query."""
        done = []
        for day, current in sorted(indexing.items()):
            if current.stage == DAY_COMPACTING:
                if (self._loads or compacted) and self._over_budget():
                    continue
                shard = self.store.compact_from(day, current.shard, self._over_budget)
                if shard is None:
                    compacted.append(day)
                    indexing[day] = self._start_index(day, 1)
                else:
                    indexing[day] = HourState(current.hour_ms, DAY_COMPACTING, "", shard=shard)
                continue
            if current.stage == FAILED_STAGE and self._now - current.failed_at >= FAILED_RETRY_MS:
                indexing[day] = current = self._start_index(day, 1)
            if current.stage == FAILED_STAGE:
                failed.append({"day": day, "attempts": current.attempts, "reason": current.reason})
                continue
            q = self.queries.state(current.execution_id)
            if q.state == SUCCEEDED:
                lines = (rollup_sql.index_line(r) for r in self.queries.rows(current.execution_id))
                self.index.put(item for row in run_local(INDEX, lines) for item in index_items(row, day))
                del indexing[day]
                done.append(day)
            elif q.state in (FAILED, CANCELLED) and current.attempts < MAX_ATTEMPTS:
                log.warning("fleet index %s: %s, retrying: %s", day, q.state, q.reason)
                indexing[day] = self._start_index(day, current.attempts + 1)
            elif q.state in (FAILED, CANCELLED):
                log.error("fleet index %s failed %d times: %s", day, current.attempts, q.reason)
                indexing[day] = HourState(current.hour_ms, FAILED_STAGE, current.execution_id, current.attempts,
                                          f"{INDEXING}: {q.reason}", failed_at=self._now)  # fmt: skip
                failed.append({"day": day, "attempts": current.attempts, "reason": indexing[day].reason})
        return done

    def retry(self, hour_ms: int) -> None:
        """An operator's retry of a FAILED hour (or of a day's FAILED index, by its start): the next
        tick starts it again."""
        current = self.state.hour(hour_ms)
        if current is not None and current.stage == FAILED_STAGE:
            self.state.forget(hour_ms)
        indexing = self.state.indexing()
        day = day_of(hour_ms)
        if day in indexing and indexing[day].stage == FAILED_STAGE:
            indexing[day] = self._start_index(day, 1)
            self.state.save_indexing(indexing)
