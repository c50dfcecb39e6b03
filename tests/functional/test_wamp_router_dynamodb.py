"""The WAMP router's tests (tests/unit/test_wamp_router.py) again, over the DynamoDB store
(adapters.realtime against moto) instead of the in-memory one.

Every test there that builds its router through the harness fixtures (`h`, `make_harness`) is
store-agnostic: it reads the store's state only through the StoreKit. Those are collected here
too, with `make_kit` giving the DynamoDB kit; the others (codec, encoding) need no store."""

from __future__ import annotations

import inspect
from collections.abc import Iterator

import pytest

from bench.ingest import counted_dynamodb_calls
from tests.contracts.router_store import KitFactory
from tests.functional.realtime_kit import DynamoDBKit
from tests.unit import test_wamp_router as router_tests

HARNESS_FIXTURES = frozenset({"h", "make_harness"})
STORE_AGNOSTIC = {
    name: test
    for name, test in vars(router_tests).items()
    if name.startswith("test_") and HARNESS_FIXTURES & set(inspect.signature(test).parameters)
}
globals().update(STORE_AGNOSTIC)  # pytest collects them from this module, with this module's fixtures


@pytest.fixture
def make_kit(aws: None) -> Iterator[KitFactory]:
    """The DynamoDB store, for the harness fixtures (tests/contracts/router_harness.py)."""
    with counted_dynamodb_calls() as calls:
        yield DynamoDBKit
    assert "Scan" not in calls  # every routing decision is key-addressed (the kit's own scans are not counted)


def test_most_of_the_router_tests_run_here() -> None:
    # A guard on the selection above: a renamed fixture would silently empty it.
    every = [name for name in vars(router_tests) if name.startswith("test_")]
    assert len(STORE_AGNOSTIC) >= 0.9 * len(every), sorted(set(every) - set(STORE_AGNOSTIC))
