"""The RouterStore contract over DynamoDB (adapters.realtime against moto)."""

from __future__ import annotations

import pytest

from tests.contracts.router_store import START_MS, RouterStoreContract, StoreKit
from tests.functional.realtime_kit import DynamoDBKit


class TestDynamoDBStore(RouterStoreContract):
    @pytest.fixture
    def kit(self, aws: None) -> StoreKit:
        return DynamoDBKit(lambda: START_MS)
