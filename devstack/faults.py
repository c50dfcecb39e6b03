"""Injected faults for the local stack: a throttling DynamoDB, a failing S3, a crashing handler.

moto never throttles, never answers BatchWriteItem with UnprocessedItems and never fails
a PutObject, so `make reliability` injects those failures inside the stack's process,
where the app runs, at the lowest level the app's own code still sees:

- DynamoDB: PynamoDB's `Connection._make_api_call` (below PynamoDB's retries and error
  wrapping, so a fault reaches the app exactly as botocore's ClientError would).
  BatchWriteItem calls fail at `batch_write_rate`: a third raise
  ProvisionedThroughputExceededException, a third hand every item back as UnprocessedItems,
  a third write the first half and hand back the rest. UpdateItem and Query calls raise
  ProvisionedThroughputExceededException at `update_rate` and `query_rate`. Only the
  request path's tables are faulted (readings and devices by default), so the alert
  evaluation beside the archiver is not drowned in retries of its own.
- S3: `S3Archive.put` of archive objects raises ArchiveUnavailableError at `s3_put_rate`
  (half of them before writing, half after: the write landed but its answer was lost).
- A crash: the first archiver invocation whose batch spans two or more hour partitions
  writes its first object, then raises (a handler dying mid-batch); the emulator
  delivers the batch again, as Lambda would.

Randomness is seeded. `LocalStack(faults=FaultPlan(...))` starts the plan once the app is
loaded and stops it when the stack stops; `stats` counts every injected fault.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from unittest import mock

from botocore.exceptions import ClientError

THROTTLED = "ProvisionedThroughputExceededException"
BATCH_WRITE = "BatchWriteItem"
UPDATE_ITEM = "UpdateItem"
QUERY = "Query"


class InjectedCrashError(RuntimeError):
    """A stream handler invocation dying mid-batch (an injected fault)."""


@dataclass
class FaultStats:
    """What the plan injected, by kind (and how many calls it saw)."""

    batch_write_calls: int = 0
    batch_write_throttled: int = 0
    batch_write_unprocessed_all: int = 0
    batch_write_unprocessed_part: int = 0
    update_calls: int = 0
    update_throttled: int = 0
    query_calls: int = 0
    query_throttled: int = 0
    s3_puts: int = 0
    s3_failed_before_write: int = 0
    s3_failed_after_write: int = 0
    crashes: int = 0
    objects_written_before_crash: int = 0

    def as_dict(self) -> dict[str, int]:
        return dict(vars(self))

    @property
    def dynamodb_faults(self) -> int:
        return (
            self.batch_write_throttled
            + self.batch_write_unprocessed_all
            + self.batch_write_unprocessed_part
            + self.update_throttled
            + self.query_throttled
        )

    @property
    def s3_faults(self) -> int:
        return self.s3_failed_before_write + self.s3_failed_after_write


def throttling_error(operation: str, table: str | None = None) -> ClientError:
    """The error PynamoDB's connection raises when DynamoDB throttles `operation`."""
    from pynamodb.exceptions import VerboseClientError

    error = {"Code": THROTTLED, "Message": "The level of configured provisioned throughput for the table was exceeded."}
    return VerboseClientError({"Error": error}, operation, {"request_id": "injected", "table_name": table or ""})


def _tables_of(operation: str, kwargs: dict[str, Any]) -> list[str]:
    if operation == BATCH_WRITE:
        return list(kwargs.get("RequestItems", {}))
    table = kwargs.get("TableName")
    return [str(table)] if table else []


@dataclass
class FaultPlan:
    """Seeded fault injection into the running app (see the module's docstring)."""

    seed: int = 1
    batch_write_rate: float = 0.3
    update_rate: float = 0.3
    query_rate: float = 0.3
    s3_put_rate: float = 0.2
    s3_prefix: str = "archive/"  # only archive objects (not reports)
    crash_handler: str | None = "archive_readings"  # the stream handler that crashes once mid-batch
    tables: frozenset[str] | None = None  # None: the stage's readings and devices tables
    stats: FaultStats = field(default_factory=FaultStats)
    enabled: bool = True
    _rng: random.Random = field(init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _patches: list[Any] = field(default_factory=list, repr=False)
    _wrapped_pumps: list[tuple[Any, Any]] = field(default_factory=list, repr=False)
    _local: threading.local = field(default_factory=threading.local, repr=False)
    _crash_done: bool = field(default=False, repr=False)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)

    # --- lifecycle --------------------------------------------------------------------------

    def start(self, emulator: Any | None = None) -> FaultPlan:
        """Patch the app's DynamoDB connection and S3 archive, and wrap the crashing stream handler."""
        from pynamodb.connection.base import Connection

        from chalicelib.adapters.archive import S3Archive

        if self._patches:
            return self
        if self.tables is None:
            from chalicelib import wiring

            settings = wiring.bound_settings()
            self.tables = frozenset({settings.readings_table, settings.devices_table})
        real_call = Connection._make_api_call
        real_put = S3Archive.put
        plan = self

        def make_api_call(connection: Any, operation_name: str, operation_kwargs: dict[str, Any]) -> Any:
            return plan._dynamodb(real_call, connection, operation_name, operation_kwargs)

        def put(archive: Any, key: str, body: bytes, *args: Any, **kwargs: Any) -> None:
            plan._s3_put(real_put, archive, key, body, *args, **kwargs)

        self._patches = [
            mock.patch.object(Connection, "_make_api_call", make_api_call),
            mock.patch.object(S3Archive, "put", put),
        ]
        for patcher in self._patches:
            patcher.start()
        if emulator is not None and self.crash_handler:
            for pump in emulator.pumps:
                if pump.name == self.crash_handler:
                    self._wrapped_pumps.append((pump, pump.handler))
                    pump.handler = self._crashing(pump.handler)
        return self

    def stop(self) -> None:
        """Remove every patch (safe to call twice, or without start)."""
        for pump, handler in self._wrapped_pumps:
            pump.handler = handler
        self._wrapped_pumps.clear()
        for patcher in reversed(self._patches):
            patcher.stop()
        self._patches.clear()

    def __enter__(self) -> FaultPlan:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- decisions --------------------------------------------------------------------------

    def _draw(self, rate: float) -> float | None:
        """A uniform draw in [0, 1) scaled to the rate when the fault fires, else None."""
        if not self.enabled or rate <= 0:
            return None
        with self._lock:
            value = self._rng.random()
        return value / rate if value < rate else None

    def _count(self, name: str, amount: int = 1) -> None:
        with self._lock:
            setattr(self.stats, name, getattr(self.stats, name) + amount)

    def _faulted_table(self, operation: str, kwargs: dict[str, Any]) -> bool:
        tables = _tables_of(operation, kwargs)
        return bool(tables) and (self.tables is None or all(t in self.tables for t in tables))

    # --- DynamoDB ---------------------------------------------------------------------------

    def _dynamodb(self, real: Callable[..., Any], connection: Any, operation: str, kwargs: dict[str, Any]) -> Any:
        if operation not in (BATCH_WRITE, UPDATE_ITEM, QUERY) or not self._faulted_table(operation, kwargs):
            return real(connection, operation, kwargs)
        table = _tables_of(operation, kwargs)[0]
        if operation == UPDATE_ITEM:
            self._count("update_calls")
            if self._draw(self.update_rate) is not None:
                self._count("update_throttled")
                raise throttling_error(operation, table)
            return real(connection, operation, kwargs)
        if operation == QUERY:
            self._count("query_calls")
            if self._draw(self.query_rate) is not None:
                self._count("query_throttled")
                raise throttling_error(operation, table)
            return real(connection, operation, kwargs)
        self._count("batch_write_calls")
        drawn = self._draw(self.batch_write_rate)
        if drawn is None:
            return real(connection, operation, kwargs)
        if drawn < 1 / 3:
            self._count("batch_write_throttled")
            raise throttling_error(operation, table)
        requests = kwargs["RequestItems"][table]
        if drawn < 2 / 3 or len(requests) < 2:
            self._count("batch_write_unprocessed_all")
            return {"UnprocessedItems": {table: list(requests)}}
        half = len(requests) // 2
        self._count("batch_write_unprocessed_part")
        answer = real(connection, operation, {**kwargs, "RequestItems": {table: requests[:half]}})
        return {**(answer or {}), "UnprocessedItems": {table: list(requests[half:])}}

    # --- S3 and the crash -------------------------------------------------------------------

    def _s3_put(
        self, real: Callable[..., None], archive: Any, key: str, body: bytes, *args: Any, **kwargs: Any
    ) -> None:
        from chalicelib.errors import ArchiveUnavailableError

        if not key.startswith(self.s3_prefix):
            real(archive, key, body, *args, **kwargs)
            return
        self._count("s3_puts")
        crash_after = getattr(self._local, "crash_after", None)
        if crash_after is not None:  # the crashing invocation: no random faults, a crash at a known point
            if self._local.written >= crash_after:
                self._local.crash_after = None
                self._count("crashes")
                self._count("objects_written_before_crash", self._local.written)
                raise InjectedCrashError(f"injected crash after {self._local.written} archive object(s)")
            real(archive, key, body, *args, **kwargs)
            self._local.written += 1
            return
        drawn = self._draw(self.s3_put_rate)
        if drawn is None:
            real(archive, key, body, *args, **kwargs)
            return
        if drawn < 0.5:
            self._count("s3_failed_before_write")
        else:
            real(archive, key, body, *args, **kwargs)
            self._count("s3_failed_after_write")
        raise ArchiveUnavailableError(f"injected S3 failure writing {key}")

    def _crashing(self, handler: Callable[[dict[str, Any], Any], Any]) -> Callable[[dict[str, Any], Any], Any]:
        """The handler, dying once mid-batch: after its first object of a multi-partition batch."""
        from chalicelib.domain.archive import archive_lines
        from chalicelib.jobs.archiver import change_of

        def invoke(event: dict[str, Any], context: Any) -> Any:
            crash = False
            if self.enabled and not self._crash_done:
                partitions = archive_lines(change_of(r) for r in event.get("Records", []))
                with self._lock:
                    if len(partitions) >= 2 and not self._crash_done:
                        self._crash_done = crash = True
            if not crash:
                return handler(event, context)
            self._local.crash_after, self._local.written = 1, 0
            try:
                return handler(event, context)
            finally:
                self._local.crash_after = None

        return invoke
