"""The RouterStore contract over the in-memory store (the one the router's unit tests use)."""

from __future__ import annotations

import pytest

from tests.contracts.router_store import MemoryKit, RouterStoreContract, StoreKit


class TestMemoryStore(RouterStoreContract):
    @pytest.fixture
    def kit(self) -> StoreKit:
        return MemoryKit()
