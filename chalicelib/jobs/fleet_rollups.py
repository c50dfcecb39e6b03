"""The hourly rollup on Athena (DuckDB locally): a state machine advanced by schedule ticks, never sleeping.

Each tick (the schedule, every minute or five) looks at the closed hours from the watermark on
(an hour is closed `ROLLUP_GRACE_MS` after its end) and moves each one step:

    (none) --start compaction--> COMPACTING --SUCCEEDED, start rollup--> ROLLING
           --SUCCEEDED, put_hour--> LOADED

A FAILED or CANCELLED query is started again, up to `MAX_ATTEMPTS` per stage; then the hour
is FAILED and reported in every tick's answer (and logged) until an operator `retry`s it. The
watermark (rollups cover every hour before it) only passes LOADED hours, so no hour is lost:
later hours still load, but the watermark waits at the failed one.

The state is one item per hour in the aggregates table (partition `job#fleet-rollups`, sort
the hour "YYYY-MM-DDTHH") and one `watermark` item, so a tick is a few GetItem/PutItem and
Athena calls, well inside any Lambda limit; the rows of an hour load with `put_hour`.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from pynamodb.exceptions import DoesNotExist

from chalicelib.adapters.athena import CANCELLED, FAILED, SUCCEEDED, AthenaQueries
from chalicelib.domain import rollup_sql
from chalicelib.domain.mapreduce import hour_of, partials_by_device
from chalicelib.domain.rollups import HOUR_MS, ROLLUP_GRACE_MS, Partial, SeriesHour
from chalicelib.models import AggregateModel

log = logging.getLogger(__name__)

STATE_PARTITION = "job#fleet-rollups"
WATERMARK_SORT = "watermark"
MAX_ATTEMPTS = 3
MAX_HOURS_PER_TICK = 6  # hours in flight at once (a backlog drains at this rate per tick)
COMPACTING, ROLLING, LOADED, FAILED_STAGE = "COMPACTING", "ROLLING", "LOADED", "FAILED"


class HourSink(Protocol):
    """Where an hour's Partials go (adapters.aggregates.RollupStore)."""

    def put_hour(self, hour_ms: int, rows: Mapping[str, Mapping[SeriesHour, Partial]]) -> Any: ...


@dataclass
class HourState:
    hour_ms: int
    stage: str
    execution_id: str
    attempts: int = 1
    reason: str = ""


class JobState:
    """The job's items in the aggregates table."""

    def __init__(self, model: type[AggregateModel] = AggregateModel) -> None:
        self._model = model

    def _get(self, sort: str) -> dict[str, Any] | None:
        try:
            row: dict[str, Any] = json.loads(self._model.get(STATE_PARTITION, sort).row)
        except DoesNotExist:
            return None
        return row

    def _put(self, sort: str, row: dict[str, Any]) -> None:
        self._model(STATE_PARTITION, sort, row=json.dumps(row, separators=(",", ":"))).save()

    def hour(self, hour_ms: int) -> HourState | None:
        row = self._get(hour_of(hour_ms))
        return None if row is None else HourState(**row)

    def save(self, state: HourState) -> None:
        self._put(hour_of(state.hour_ms), vars(state))

    def forget(self, hour_ms: int) -> None:
        self._model(STATE_PARTITION, hour_of(hour_ms)).delete()

    def watermark(self) -> int | None:
        row = self._get(WATERMARK_SORT)
        return None if row is None else int(row["covered_until_ms"])

    def set_watermark(self, covered_until_ms: int) -> None:
        self._put(WATERMARK_SORT, {"covered_until_ms": covered_until_ms})


@dataclass
class FleetRollupsJob:
    """The Athena path of the hourly rollup (ROLLUP_ENGINE=athena)."""

    queries: AthenaQueries
    state: JobState
    sink: HourSink
    bucket: str
    dialect: str = "trino"  # "duckdb" in the local stack (devstack.athena.DuckDBAthena)
    clear_prefix: Callable[[str], None] | None = None  # UNLOAD needs an empty target prefix

    def _compaction_sql(self, hour_ms: int) -> str:
        if self.dialect == "trino":
            return rollup_sql.compact_unload_sql(hour_ms, self.bucket)
        target = f"s3://{self.bucket}/compact/{rollup_sql.partition_of_hour(hour_ms)}/part-00000.parquet"
        return rollup_sql.compact_copy_sql(hour_ms, target)

    def _start(self, hour_ms: int, stage: str, attempts: int) -> HourState:
        if stage == COMPACTING:
            if self.clear_prefix is not None:
                self.clear_prefix(f"compact/{rollup_sql.partition_of_hour(hour_ms)}/")
            sql = self._compaction_sql(hour_ms)
        else:
            sql = rollup_sql.rollup_parquet_sql(self.dialect, hour_ms)
        return HourState(hour_ms, stage, self.queries.start(sql), attempts)

    def _step(self, hour_ms: int) -> HourState:
        current = self.state.hour(hour_ms)
        if current is None:
            current = self._start(hour_ms, COMPACTING, 1)
        elif current.stage in (COMPACTING, ROLLING):
            q = self.queries.state(current.execution_id)
            if q.state == SUCCEEDED and current.stage == COMPACTING:
                current = self._start(hour_ms, ROLLING, 1)
            elif q.state == SUCCEEDED:
                rows = [rollup_sql.decode_row(r) for r in self.queries.rows(current.execution_id)]
                self.sink.put_hour(hour_ms, partials_by_device(rows))
                current = HourState(hour_ms, LOADED, current.execution_id, current.attempts)
            elif q.state in (FAILED, CANCELLED) and current.attempts < MAX_ATTEMPTS:
                log.warning("fleet rollup %s: %s %s, retrying: %s", hour_of(hour_ms), current.stage, q.state, q.reason)
                current = self._start(hour_ms, current.stage, current.attempts + 1)
            elif q.state in (FAILED, CANCELLED):
                log.error("fleet rollup %s failed %d times at %s: %s", hour_of(hour_ms), current.attempts,
                          current.stage, q.reason)  # fmt: skip
                current = HourState(hour_ms, FAILED_STAGE, current.execution_id, current.attempts,
                                    f"{current.stage}: {q.reason}")  # fmt: skip
            else:
                return current  # still running: look again next tick
        else:
            return current
        self.state.save(current)
        return current

    def tick(self, now_ms: int) -> dict[str, Any]:
        """One schedule tick: advance every closed hour in flight; the answer reports each hour and failures."""
        last_closed = (now_ms - ROLLUP_GRACE_MS) // HOUR_MS * HOUR_MS - HOUR_MS
        watermark = self.state.watermark()
        if watermark is None:  # first run: start with the last closed hour
            watermark = last_closed
            self.state.set_watermark(watermark)
        hours: dict[str, str] = {}
        failed: list[dict[str, Any]] = []
        advanced = watermark
        contiguous = True
        for hour_ms in range(watermark, min(last_closed, watermark + (MAX_HOURS_PER_TICK - 1) * HOUR_MS) + 1, HOUR_MS):
            s = self._step(hour_ms)
            hours[hour_of(hour_ms)] = s.stage
            if s.stage == FAILED_STAGE:
                failed.append({"hour": hour_of(hour_ms), "attempts": s.attempts, "reason": s.reason})
            if contiguous and s.stage == LOADED:
                advanced = hour_ms + HOUR_MS
            else:
                contiguous = False
        if advanced != watermark:
            self.state.set_watermark(advanced)
        return {"hours": hours, "failed": failed, "covered_until_ms": advanced}

    def retry(self, hour_ms: int) -> None:
        """An operator's retry of a FAILED hour: the next tick starts it again."""
        current = self.state.hour(hour_ms)
        if current is not None and current.stage == FAILED_STAGE:
            self.state.forget(hour_ms)
