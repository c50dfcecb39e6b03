"""First use under concurrency builds each client once (issue 13, item 8).

PynamoDB builds a model's botocore client on first use without a lock, and boto3's default
session must not build two clients at once: a burst of first requests on a threaded server
had every thread build its own. These race many threads to the first use.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any
from unittest import mock

import botocore.session
import pytest

from chalicelib import models, wiring

THREADS = 32


@pytest.fixture
def fresh() -> Iterator[None]:
    wiring.reset()
    wiring.bound_settings()  # binds the models: no connection built yet
    yield
    wiring.reset()


def _race(first_use: Callable[[], Any]) -> tuple[list[Any], list[str]]:
    """Run first_use on THREADS threads released together; what each got and the clients built."""
    real = botocore.session.Session.create_client
    built: list[str] = []
    slow = threading.Event()

    def create_client(session: Any, service_name: str, *args: Any, **kwargs: Any) -> Any:
        built.append(service_name)
        slow.wait(0.2)  # long enough that every thread reaches the first use meanwhile
        return real(session, service_name, *args, **kwargs)

    barrier = threading.Barrier(THREADS)
    results: list[Any] = []

    def run() -> None:
        barrier.wait()
        results.append(first_use())

    with mock.patch.object(botocore.session.Session, "create_client", create_client):
        threads = [threading.Thread(target=run) for _ in range(THREADS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    return results, built


def test_a_models_botocore_client_is_built_once_by_concurrent_first_use(fresh: None) -> None:
    results, built = _race(lambda: models.DeviceModel._get_connection().connection.client)
    assert built == ["dynamodb"]
    assert len(results) == THREADS and all(client is results[0] for client in results)


def test_a_rebind_builds_a_new_client_once(fresh: None) -> None:
    first = models.ReadingChunkModel._get_connection().connection.client
    wiring.reset()
    wiring.bound_settings()
    results, built = _race(lambda: models.ReadingChunkModel._get_connection().connection.client)
    assert built == ["dynamodb"] and all(client is results[0] for client in results)
    assert results[0] is not first


def test_aws_client_is_built_once_per_service_by_concurrent_first_use(fresh: None) -> None:
    results, built = _race(lambda: wiring.aws_client("s3"))
    assert built == ["s3"]
    assert all(client is results[0] for client in results)
    assert wiring.aws_client("sqs") is not results[0]


def test_warm_sizes_every_pool_for_the_requests_that_run_at_once(fresh: None) -> None:
    import boto3
    from moto import mock_aws

    from infra.bootstrap import bootstrap

    with mock_aws():
        bootstrap(wiring.bound_settings(), lambda service: boto3.client(service, region_name="us-east-1"))
        wiring.warm(concurrency=40)
        assert wiring.aws_client("s3").meta.config.max_pool_connections == 40
        for model in models.ALL_MODELS:
            assert model._get_connection().connection.client.meta.config.max_pool_connections == 40
