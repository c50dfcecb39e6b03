"""Every AWS call the code under test makes, counted and timed, with DynamoDB read units.

Patches botocore's BaseClient._make_api_call, which boto3 clients and PynamoDB both go
through, so the counts include every DynamoDB, S3, SQS or CloudWatch call. Read units
are computed from what each read returned, by DynamoDB's rules: 4 KB units, rounded up
per request (per item for GetItem and BatchGetItem), half a unit for an eventually
consistent read, twice for a transactional one, and at least one unit per request.
Write units are not computed here: an UpdateItem's cost depends on the stored item,
so callers price writes from the items they find in the table afterwards.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from unittest import mock

from bench.dynamo_size import item_size

READ_UNIT_BYTES = 4096


@dataclass
class CallLog:
    """What the patched client saw: calls by "service.Operation", seconds in them, read units."""

    calls: Counter[str] = field(default_factory=Counter)
    targets: Counter[str] = field(default_factory=Counter)  # DynamoDB "Operation table[/index]"
    seconds: float = 0.0
    read_units: float = 0.0
    table_read_units: dict[str, float] = field(default_factory=dict)  # read units by table (its quota)

    def count(self, prefix: str = "") -> int:
        return sum(n for name, n in self.calls.items() if name.startswith(prefix))

    def reset(self) -> None:
        self.calls.clear()
        self.targets.clear()
        self.seconds = 0.0
        self.read_units = 0.0
        self.table_read_units.clear()


def _units(size: int, consistent: bool) -> float:
    return max(1, math.ceil(size / READ_UNIT_BYTES)) * (1.0 if consistent else 0.5)


def read_units(operation: str, params: dict[str, Any], response: dict[str, Any]) -> float:
    """Read request units a DynamoDB read consumed, from the items it returned."""
    consistent = bool(params.get("ConsistentRead"))
    if operation == "GetItem":
        return _units(item_size(response.get("Item") or {}), consistent)
    if operation in ("Query", "Scan"):
        return _units(sum(item_size(i) for i in response.get("Items", [])), consistent)
    if operation == "BatchGetItem":
        units = 0.0
        for table, items in response.get("Responses", {}).items():
            strong = bool(params.get("RequestItems", {}).get(table, {}).get("ConsistentRead"))
            units += sum(_units(item_size(i), strong) for i in items)
        return units
    if operation == "TransactGetItems":
        return sum(2 * _units(item_size(r.get("Item") or {}), True) for r in response.get("Responses", []))
    return 0.0


@contextmanager
def recorded_aws_calls() -> Iterator[CallLog]:
    """Count and time every AWS API call made inside the block."""
    from botocore.client import BaseClient

    log = CallLog()
    real = BaseClient._make_api_call

    def recording(self: Any, operation_name: str, api_params: dict[str, Any]) -> Any:
        service = self.meta.service_model.service_name
        started = time.perf_counter()
        try:
            response = real(self, operation_name, api_params)
        finally:
            log.seconds += time.perf_counter() - started
            log.calls[f"{service}.{operation_name}"] += 1
        if service == "dynamodb":
            target = str(api_params.get("TableName", "*"))
            if api_params.get("IndexName"):
                target += "/" + str(api_params["IndexName"])
            log.targets[f"{operation_name} {target}"] += 1
            units = read_units(operation_name, api_params, response)
            log.read_units += units
            if units:
                table = str(api_params.get("TableName", "*"))
                log.table_read_units[table] = log.table_read_units.get(table, 0.0) + units
        return response

    with mock.patch.object(BaseClient, "_make_api_call", recording):
        yield log
