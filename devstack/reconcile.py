"""Counting what the stack holds, for the demo's summary and the end-to-end tests."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from chalicelib.domain.chunks import decode


def _scan(dynamodb: Any, table: str) -> Iterator[dict[str, Any]]:
    # A tool's full read of a local table, never a request path.
    kwargs: dict[str, Any] = {"TableName": table}
    while True:
        page = dynamodb.scan(**kwargs)
        yield from page["Items"]
        if "LastEvaluatedKey" not in page:
            return
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def stored_identities(dynamodb: Any, readings_table: str) -> set[tuple[str, str, str, int]]:
    """Every (device, metric, unit, ts) held in the readings table."""
    out: set[tuple[str, str, str, int]] = set()
    for item in _scan(dynamodb, readings_table):
        device = item["d"]["S"]
        for r in decode(item["b"]["B"]):
            out.add((device, r.metric, r.unit, r.ts_ms))
    return out


def stored_readings(dynamodb: Any, readings_table: str) -> int:
    return len(stored_identities(dynamodb, readings_table))
