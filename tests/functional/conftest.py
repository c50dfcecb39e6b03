"""Fixtures of the functional tests (the shared ones live in tests/conftest.py)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import botocore.session
import pytest

from chalicelib import wiring
from chalicelib.adapters.retry import RetryPolicy
from tests.functional.helpers import dynamodb, like_dynamodb


@pytest.fixture(scope="package", autouse=True)
def shared_botocore_session() -> Iterator[None]:
    """One botocore session for every PynamoDB connection of the functional tests.

    Each test binds the models afresh (new tables under moto), and every new
    connection would otherwise build a new session and re-read botocore's service
    and endpoint data: about 0.2 s a test. Created after importing moto, so the
    session carries moto's request hooks.
    """
    import moto  # noqa: F401  (registers moto's botocore handlers before the session exists)
    import pynamodb.connection.base as pynamodb_base

    shared = botocore.session.get_session()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(pynamodb_base, "get_session", lambda: shared)
        yield


@pytest.fixture(autouse=True)
def strict_dynamodb() -> Iterator[None]:
    """moto, refusing what DynamoDB refuses (see helpers.like_dynamodb)."""
    with dynamodb(like_dynamodb):
        yield


@pytest.fixture
def other_device(api: Any) -> dict[str, Any]:
    created: dict[str, Any] = api.create_device("thermo-2", type="thermometer")
    return created


@pytest.fixture
def sleeps(api: Any, monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The backoff delays the app's retries asked for; nothing actually sleeps.

    Each request's retry budget comes from wiring's policy; give it one whose `sleep` only records.
    """
    slept: list[float] = []
    policy = RetryPolicy.from_settings(wiring.bound_settings(), sleep=slept.append)
    monkeypatch.setattr(wiring, "retry_policy", lambda: policy)
    return slept
