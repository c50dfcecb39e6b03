"""The naive baseline: one DynamoDB item per reading, written with PynamoDB's batch_write.

`naive_model` is the table; `naive_ingest` has the signature of
chalicelib.domain.ingest.ingest, so the benchmarks can put it behind the real API
(same authentication, parsing, device-state update and metrics) and compare storage
designs and nothing else.
"""

from __future__ import annotations

import json
from typing import Any

from chalicelib.domain.chunks import deduplicate, latest_per_series
from chalicelib.domain.ingest import IngestOutcome, StateRecorder
from chalicelib.domain.readings import Reading

NAIVE_TABLE = "bench-naive-readings"


def naive_model(region: str, host: str | None = None, table: str = NAIVE_TABLE) -> Any:
    """A PynamoDB model of the naive table: (device, "ts#metric#unit") -> value."""
    from pynamodb.attributes import NumberAttribute, UnicodeAttribute
    from pynamodb.models import Model

    class NaiveReading(Model):
        class Meta:
            table_name = table
            billing_mode = "PAY_PER_REQUEST"

        device_id = UnicodeAttribute(hash_key=True)
        ts_metric_unit = UnicodeAttribute(range_key=True)
        metric = UnicodeAttribute()
        unit = UnicodeAttribute()
        ts = NumberAttribute()
        value = UnicodeAttribute()

    meta: Any = NaiveReading.Meta
    meta.region = region
    meta.host = host
    return NaiveReading


def naive_items(model: Any, device_id: str, readings: list[Reading]) -> list[Any]:
    return [
        model(
            device_id,
            f"{r.ts_ms}#{r.metric}#{r.unit}",
            metric=r.metric,
            unit=r.unit,
            ts=r.ts_ms,
            value=json.dumps(r.value),
        )
        for r in readings
    ]


def naive_writer(model: Any) -> Any:
    """An `ingest` replacement that stores one item per reading, then updates the device state."""

    def naive_ingest(
        device_id: str,
        readings: list[Reading],
        received_at_ms: int,
        *,
        store: Any,
        devices: StateRecorder,
        idempotency_key: str | None = None,
    ) -> IngestOutcome:
        unique = deduplicate(readings)
        with model.batch_write() as batch:
            for item in naive_items(model, device_id, unique):
                batch.save(item)
        devices.record_state(device_id, latest_per_series(unique), received_at_ms)
        return IngestOutcome(accepted=len(unique), chunks=len(unique))

    return naive_ingest
