"""A StoreKit (tests/contracts/router_store.py) over adapters.realtime's DynamoDB store, in moto.

The kit's whole-state reads scan the table, which the store itself never does; they read the
items by the key layout adapters.realtime documents, and go through the store's own reads where
one exists, so they see what the router would see (expired items are not there). The scans go
through a boto3 client of their own, not PynamoDB, so
bench.ingest's `counted_dynamodb_calls` counts only the store's calls."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import boto3

from chalicelib.adapters.realtime import RealtimeStore
from chalicelib.domain.wamp.store import PendingCall, Session, Subscription, call_key
from chalicelib.models import RealtimeModel


class DynamoDBKit:
    """StoreKit over RealtimeStore; needs moto running with the stage's tables (the aws fixture)."""

    def __init__(self, clock_ms: Callable[[], int]) -> None:
        self.store = RealtimeStore(clock_ms=clock_ms)

    @staticmethod
    def _items() -> list[RealtimeModel]:
        client = boto3.client("dynamodb", region_name=RealtimeModel.Meta.region)
        pages = client.get_paginator("scan").paginate(TableName=RealtimeModel.Meta.table_name, ConsistentRead=True)
        return [RealtimeModel.from_raw_data(item) for page in pages for item in page["Items"]]

    def sessions(self) -> dict[str, Session]:
        found: dict[str, Session] = {}
        for item in self._items():
            if item.partition.startswith("conn#") and item.sort_key == "session":
                session = self.store.get_session(item.partition.removeprefix("conn#"))
                if session is not None:
                    found[session.connection_id] = session
        return found

    def subscriptions(self) -> list[Subscription]:
        found: list[Subscription] = []
        for item in self._items():
            if item.partition.startswith(("topic#", "pfx#")) and item.body:
                doc = json.loads(item.body)
                subscription = Subscription(doc["c"], int(doc["sid"]), doc["t"], doc["m"])
                if subscription in self.store.subscribers(doc["t"], include_prefix=True):
                    found.append(subscription)
        return found

    def calls(self) -> list[PendingCall]:
        found: list[PendingCall] = []
        for item in self._items():
            if item.partition.startswith("conn#") and item.sort_key.startswith("call#"):
                key = call_key(item.partition.removeprefix("conn#"), int(item.sort_key.removeprefix("call#")))
                call = self.store.get_call(key)
                if call is not None:
                    found.append(call)
        return found

    def queue_command(self, device_id: str, procedure: str) -> str:
        return str(self.store.create_command(device_id, procedure, [], {}, 30_000)["id"])

    def command(self, command_id: str) -> dict[str, Any]:
        record = self.store.get_command(command_id)
        assert record is not None, command_id
        return {key: record[key] for key in ("status", "result", "error")}
